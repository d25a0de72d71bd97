"""Compiled kernels for the lazy mask step on CPU (numba; `pip install 'adaprune[fast]'`).

The same arithmetic as LazyMaskSGD's numpy path (adaprune.adapruner_lazy), one call per batch
instead of some eighty numpy calls and two dozen Python statements: on a small model their fixed
cost (a microsecond or more each between the model's own operations) was most of AdaPruner's
overhead per step. `fused_loss` does a batch's loss side and, first, the step that step() armed
after the previous batch's backward (so step() itself only records the gradient's scale);
`apply_armed` does that step alone where another path needs the mask current (LazyMaskSGD.settle).
Imported only through `adaprune.adapruner_lazy.kernels()`, which falls back to numpy without numba.
The flow is solved through the numpy path's table (adaprune.adapruner_lazy._inverse_table).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from adaprune._mask_layout import (
    ADAPTIVE,
    ALPHA,
    ARMED,
    COMP,
    FLOW,
    G_ARMED,
    G_BATCH,
    KEEP,
    L_CLS,
    L_SEL,
    LAM,
    LAMBDA_SCALE,
    LR,
    MU,
    N_ARMED,
    N_POS,
    SCALE,
    SEL_EPS,
    SUM_W,
    WD,
    C,
    H,
    N,
    R,
    T,
)

FLOW_LIMIT = 20.0  # adaprune.adapruner_lazy._FLOW_LIMIT


@njit(cache=True, inline="always")
def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def _catch_up(m: float, b: float, s: int, t: int, v: np.ndarray, powers: np.ndarray, alpha: float,
              flow: float, table: np.ndarray, y_low: float, per_y: float) -> tuple[float, float, float, float]:
    """(m_t, b_t, w_t, w_old) of one entry last current at step s (LazyMaskSGD._caught_up_np, with
    its table of the inverse of z + sinh z: `table[k]` at y = y_low + k / per_y)."""
    w_old = _sigmoid(alpha * m)
    rest = b - alpha * v[s, 0] * w_old * (1.0 - w_old)
    n = t - s
    m_lin = powers[n, 0, 0] * m + powers[n, 0, 1] * rest
    rest_t = powers[n, 1, 0] * m + powers[n, 1, 1] * rest
    z = alpha * m_lin
    delta = flow * (v[t, 1] - v[s, 1])
    if delta != 0.0:
        clipped = min(max(z, -FLOW_LIMIT), FLOW_LIMIT)
        e = math.exp(clipped)
        half_q = 0.5 * clipped + 0.25 * (e - 1.0 / e) - 0.5 * delta  # (z + sinh z - delta) / 2
        # asinh through log and sqrt (libm's sinh and asinh cost three times as much here)
        y = math.log(abs(half_q) + math.sqrt(half_q * half_q + 1.0))
        u = ((y if half_q >= 0 else -y) - y_low) * per_y
        u = min(max(u, 0.0), table.shape[0] - 1.0)
        k = min(int(u), table.shape[0] - 2)
        z = table[k] + (u - k) * (table[k + 1] - table[k]) + (z - clipped)
    w = _sigmoid(z)
    return z / alpha, rest_t + alpha * v[t, 0] * w * (1.0 - w), w, w_old


@njit(cache=True)
def flush_all(mask: np.ndarray, buffer: np.ndarray, stamp: np.ndarray, v: np.ndarray, powers: np.ndarray,
              t: int, alpha: float, flow: float, table: np.ndarray, y_low: float, per_y: float) -> None:
    """Bring every entry to step t (LazyMaskSGD.flush)."""
    for i in range(mask.shape[0]):
        m_t, b_t, _, _ = _catch_up(np.float64(mask[i]), np.float64(buffer[i]), stamp[i], t, v, powers, alpha,
                                   flow, table, y_low, per_y)
        mask[i] = m_t
        buffer[i] = b_t


@njit(cache=True)
def apply_armed(ctl: np.ndarray, ids: np.ndarray, out: np.ndarray, mask: np.ndarray, buffer: np.ndarray,
                stamp: np.ndarray, v: np.ndarray) -> None:
    """The step of the batch armed by LazyMaskSGD.step (ids[:n], out rows m_t, b_t, w_t, coef), then
    the history's step t -> t + 1 (LazyMaskSGD._step_np and _advance_history)."""
    if ctl[ARMED] == 0.0:
        return
    t = int(ctl[T])
    n = int(ctl[N_ARMED])
    alpha, lr, momentum, weight_decay = ctl[ALPHA], ctl[LR], ctl[MU], ctl[WD]
    scale, big_g = ctl[SCALE], ctl[G_ARMED]
    d_sum_w = 0.0
    d_pos = 0
    for j in range(n):
        i = ids[j]
        m, w = out[0, j], out[2, j]
        grad = out[3, j] * scale + big_g * alpha * w * (1.0 - w) + weight_decay * m
        b = out[1, j] * momentum + grad
        m_new = m - lr * b
        mask[i] = m_new
        buffer[i] = b
        stamp[i] = t + 1
        d_sum_w += _sigmoid(alpha * m_new) - w
        d_pos += (1 if m_new > 0 else 0) - (1 if m > 0 else 0)
    ctl[SUM_W] += d_sum_w
    ctl[N_POS] += d_pos
    h = momentum * ctl[H] + big_g
    ctl[H] = h
    ctl[C] += h
    v[t + 1, 0] = h
    v[t + 1, 1] = ctl[C]
    ctl[T] = t + 1
    ctl[ARMED] = 0.0


@njit(cache=True)
def fused_loss(ids: np.ndarray, ce: np.ndarray, mask: np.ndarray, buffer: np.ndarray, stamp: np.ndarray,
               v: np.ndarray, powers: np.ndarray, table: np.ndarray, y_low: float, per_y: float, ctl: np.ndarray,
               armed_ids: np.ndarray, armed_out: np.ndarray, ids_out: np.ndarray, out: np.ndarray,
               w_over_b: np.ndarray, leaf: np.ndarray) -> bool:
    """One loss() of the fused path: the armed step (if any), the controller (lambda, G), and the
    batch brought to step t with its terms (LazyMaskSGD.advance_np, then the batch terms). Writes the
    batch's ids, m_t, b_t, w_t and coef into ids_out and out, w / B into w_over_b and L_sel + lambda
    L_comp into leaf[0]. False where an id repeats (the armed step is applied, nothing else is
    written)."""
    apply_armed(ctl, armed_ids, armed_out, mask, buffer, stamp, v)
    n = ids.shape[0]
    for j in range(n):
        i = ids[j]
        if stamp[i] < 0:
            for k in range(j):
                stamp[ids[k]] = -1 - stamp[ids[k]]
            return False
        stamp[i] = -1 - stamp[i]
    count = ctl[N]
    keep = ctl[KEEP]
    mean_w = ctl[SUM_W] / count
    r = ctl[N_POS] / count
    lam = ctl[LAMBDA_SCALE] * (abs(r - keep) if ctl[ADAPTIVE] != 0.0 else 1.0)
    big_g = lam * 2.0 * (mean_w - keep) / count
    comp = (mean_w - keep) ** 2
    t = int(ctl[T])
    alpha, flow, sel_eps = ctl[ALPHA], ctl[FLOW], ctl[SEL_EPS]
    d_sum_w = 0.0
    d_pos = 0
    l_cls = 0.0
    l_sel = 0.0
    for j in range(n):
        i = ids[j]
        s = -1 - stamp[i]
        m = np.float64(mask[i])
        b = np.float64(buffer[i])
        if t > 0:
            m_t, b_t, w, w_old = _catch_up(m, b, s, t, v, powers, alpha, flow, table, y_low, per_y)
            mask[i] = m_t
            buffer[i] = b_t
            d_sum_w += w - w_old
            d_pos += (1 if m_t > 0 else 0) - (1 if m > 0 else 0)
        else:
            m_t, b_t = m, b
            w = _sigmoid(alpha * m)
        stamp[i] = t
        c = np.float64(ce[j])
        log_c = math.log(c + sel_eps)
        l_cls += w * c
        l_sel -= w * log_c
        ids_out[j] = i
        out[0, j] = m_t
        out[1, j] = b_t
        out[2, j] = w
        out[3, j] = (c - log_c) * alpha * w * (1.0 - w) / n
        w_over_b[j] = w / n
    ctl[SUM_W] += d_sum_w
    ctl[N_POS] += d_pos
    ctl[G_BATCH] = big_g
    ctl[L_CLS] = l_cls / n
    ctl[L_SEL] = l_sel / n
    ctl[COMP] = comp
    ctl[LAM] = lam
    ctl[R] = r
    leaf[0] = l_sel / n + lam * comp
    return True
