"""AdaPruner's mask step in O(batch) time: the lazy update behind `AdaPrunerMask(update="lazy")`.

The exact step (`MaskSGD`) touches all N entries every batch, because the compression term
lambda * (sum_all(w) / N - c_r)^2 has a gradient on every entry. That gradient is a global scalar
times a function of the entry alone:

    dL_comp/dm_i = G_t * phi(m_i),   G_t = lambda_t * 2 * (S_t / N - c_r) / N,
                                     phi(m) = alpha * sigmoid(alpha m) * (1 - sigmoid(alpha m)).

An entry not in the batch moves, under SGD with momentum mu and weight decay wd, by
b <- mu b + G_t phi(m) + wd m, m <- m - lr b. Split its buffer into a compression part phi(m) H_t
(H_{t+1} = mu H_t + G_t: the global force filtered by the momentum) and the rest. The rest (the
batch gradients' momentum tail, weight decay) is linear: (m, b_rest) <- M (m, b_rest) with
M = [[1 - lr wd, -lr mu], [wd, mu]], so n missed steps are M^n. The compression part moves m by
-lr phi(m) H_s a step: the flow dm = -lr phi(m) dC with C_t = H_1 + ... + H_t, which has an exact
solution, because dq/dm = alpha^2 / (2 phi(m)) for q(m) = alpha m + sinh(alpha m):

    q(m_t) = q(m_t0) - lr alpha^2 / 2 * (C_t - C_t0)      (solved for m_t by Newton's method)

So an entry brought up to date needs only H and C at its last step and now, and M^n: one pair of
floats per step since the last flush and a table of 2x2 powers (nothing grows geometrically, so
long gaps cannot overflow). An entry is brought up to date when its sample comes in a batch (before
its w enters the loss) and all entries at `flush()`, which AdaPrunerMask calls at every epoch's end
and before any read of the mask. sum(w) and the count of m > 0 (for r) are maintained from the
entries' values as last brought up to date, exactly for every entry touched.

What is exact and what is not, against the exact step: the batch terms, momentum, weight decay
and an entry's whole step at the steps it is in a batch are the exact step's, and with no
compression (lambda = 0) the lazy mask is the exact one up to rounding. Between its touches an
entry takes the compression step as the continuous flow above (the exact step's discrete steps
differ from it where one step moves m by much of the sigmoid's width, 1 / alpha: at small N with
the default mask_lr, since G is O(1 / N)), with its momentum part at the current phi, and the
controller (sum(w), r, hence G and lambda) sees an entry's drift only when the entry is next
touched or flushed. After each flush sum(w) and r are exact again.

On CPU the per-batch work (the catch-up, the step, the counts) runs on numpy views of the same
memory, and AdaPrunerMask gives the batch's mask gradient in closed form (MaskGrad: the upstream
gradient read from a leaf the loss adds) instead of an autograd graph through the mask: for a few
hundred entries torch's fixed cost per operation was most of the step. With numba installed (the
`fast` extra) that work is one compiled call a batch (adaprune._mask_kernels.fused_loss), which also
applies the step that step() armed after the previous backward, so step() only records the
gradient's scale; the mask value, buffer and stamp of an entry lie side by side (`records`), one
cache line per entry touched. Other devices take the torch path; tests/test_adapruner_lazy.py checks
that the three give the same mask.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from scipy.special import expit  # scipy comes with scikit-learn, a core dependency
from torch import Tensor

from adaprune._mask_layout import (
    ADAPTIVE,
    ALPHA,
    ARMED,
    CTL_SIZE,
    FLOW,
    G_ARMED,
    G_BATCH,
    KEEP,
    L_CLS,
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

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # entries per block in a flush (bounds its temporary memory)
Array = Any  # a torch Tensor, or (on CPU, per batch) a numpy view of the same memory
# The CPU catch-up solves z + sinh z = q through a table of its inverse on a uniform grid of
# y = asinh(q / 2) (where the inverse is nearly the identity: |z - y| < ln 2), read by linear
# interpolation: 2^16 intervals over |z| <= 21 give z to 1e-8, better than four Newton steps from
# asinh(q / 2) (4e-7), for one sinh and one asinh an entry instead of ten sinh/cosh. Past |z| = 20
# nothing flows (phi < 5e-9 alpha): the solve runs at the clipped z and the excess is added back.
_FLOW_LIMIT = 20.0
_INVERSE: tuple[np.ndarray, np.ndarray] | None = None


def _inverse_table() -> tuple[np.ndarray, np.ndarray]:
    """(y, z) with z + sinh z = 2 sinh y, y uniform over the image of |z| <= _FLOW_LIMIT + 1; built
    once per process (Newton to convergence, ~20 ms)."""
    global _INVERSE
    if _INVERSE is None:
        top = _FLOW_LIMIT + 1.0
        y_max = float(np.arcsinh((top + np.sinh(top)) / 2))
        y = np.linspace(-y_max, y_max, (1 << 16) + 1)
        q = 2 * np.sinh(y)
        z = y.copy()
        for _ in range(60):
            step = (z + np.sinh(z) - q) / (1 + np.cosh(z))
            z -= step
            if np.abs(step).max() <= 1e-13:
                break
        _INVERSE = (y, z)
    return _INVERSE


_TABLE_ARGS: tuple[np.ndarray, float, float] | None = None


def _table_args() -> tuple[np.ndarray, float, float]:
    """The table as the compiled kernels read it: (z values, y of the first, grid points per unit y)."""
    global _TABLE_ARGS
    if _TABLE_ARGS is None:
        y, z = _inverse_table()
        _TABLE_ARGS = (z, float(y[0]), (len(y) - 1) / float(y[-1] - y[0]))
    return _TABLE_ARGS


def sigmoid(x: Array) -> Array:
    return expit(x) if isinstance(x, np.ndarray) else torch.sigmoid(x)


class MaskGrad:
    """The mask gradient of one loss() call's entries on the numpy path: `coef` (d loss / d m per
    entry, for an upstream gradient of 1) times the upstream gradient backward brings, read from
    `leaf`: a scalar that the loss adds (holding the terms that take no gradient into the model), so
    its .grad is that upstream gradient, and a scaled loss (gradient accumulation, loss * k) scales the
    mask's gradient as autograd would, two backward passes adding."""

    __slots__ = ("coef", "leaf")

    def __init__(self, coef: np.ndarray, value: float, dtype: torch.dtype, leaf: Tensor | None = None) -> None:
        self.coef = coef
        self.leaf = torch.tensor(value, dtype=dtype, requires_grad=True) if leaf is None else leaf

    @property
    def scale(self) -> float | None:
        g = self.leaf.grad
        return None if g is None else float(g)

    @property
    def grad(self) -> np.ndarray | None:
        scale = self.scale
        return None if scale is None else (self.coef * scale).astype(np.float32)

    def zero(self) -> None:
        self.leaf.grad = None


class CpuBatch:
    """One loss() call's entries on the numpy path, brought up to step t: their float64 mask values
    and buffers, weights w = sigmoid(alpha m) (and w (1 - w) where the numpy path made it), with the
    batch's sum(w) and #{m > 0}, kept for the step that follows, so it neither gathers nor takes a
    sigmoid again."""

    __slots__ = ("m", "b", "w", "g", "w_sum", "n_pos")

    def __init__(self, m: np.ndarray, b: np.ndarray, w: np.ndarray, g: np.ndarray | None, w_sum: float,
                 n_pos: int) -> None:
        self.m, self.b, self.w, self.g = m, b, w, g
        self.w_sum, self.n_pos = w_sum, n_pos


_KERNELS: Any = None


def kernels() -> Any:
    """The compiled kernels (adaprune._mask_kernels) where numba is installed and ADAPRUNE_NUMBA is not
    "0"; None otherwise (the numpy path)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = False
        if os.environ.get("ADAPRUNE_NUMBA", "1") != "0":
            try:
                from adaprune import _mask_kernels
            except ImportError:
                log.debug("numba is not installed: the lazy mask step runs on numpy (pip install 'adaprune[fast]')")
            else:
                _KERNELS = _mask_kernels
    return _KERNELS or None


class _FusedBuffers:
    """The fused path's per-batch arrays for one batch size and loss dtype, in two sets (`current`: the
    next loss() writes it; the other holds the armed step): ids, rows m_t, b_t, w_t and coef, w / B
    with its torch view (the model's gradient), and the leaf whose value is L_sel + lambda L_comp and
    whose gradient is the upstream scale (MaskGrad)."""

    def __init__(self, n: int, dtype: np.dtype, torch_dtype: torch.dtype) -> None:
        self.n, self.dtype, self.torch_dtype = n, dtype, torch_dtype
        self.ids = np.empty((2, n), dtype=np.int64)
        self.out = np.empty((2, 4, n))
        self.w_over_b = np.empty((2, n), dtype=dtype)
        self.w_over_b_t = [torch.from_numpy(self.w_over_b[k]) for k in (0, 1)]
        self.current = 0
        self.new_leaf()

    def new_leaf(self) -> None:
        self.leaf = torch.zeros((), dtype=self.torch_dtype, requires_grad=True)
        self.leaf_view = self.leaf.detach().numpy().reshape(1)  # the kernel writes the value here


class LazyMaskSGD:
    """MaskSGD's update (momentum without dampening, weight decay) on AdaPruner's mask, where
    only the batch's entries are touched per step (see the module docstring)."""

    RECORD = np.dtype([("m", "<f4"), ("b", "<f4"), ("s", "<i4"), ("pad", "<i4")])  # 16 bytes: 4 a cache line

    @classmethod
    def records(cls, n: int) -> np.ndarray:
        """Zeroed storage for n entries' mask value m, buffer b and stamp s, side by side; the mask,
        buffer and stamp tensors are strided views of it (pass it as `records`)."""
        return np.zeros(n, dtype=cls.RECORD)

    def __init__(self, mask: Tensor, *, lr: float, momentum: float, weight_decay: float,
                 records: np.ndarray | None = None) -> None:
        self._ctl = np.zeros(CTL_SIZE)
        self._ctl[[LR, MU, WD, N]] = lr, momentum, weight_decay, mask.numel()
        self._flight: int | None = None  # the fused path's buffer set of a loss() not yet stepped
        self._fused: _FusedBuffers | None = None
        self.mask = mask
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.stepped = False  # False until the first step: the exact step's "no momentum buffer yet"
        n = mask.numel()
        if records is not None:  # mask is records["m"]; buffer and stamp are views of the other fields
            self.buffer = torch.from_numpy(records["b"])
            self.stamp = torch.from_numpy(records["s"])
        else:
            self.buffer = torch.zeros(n, dtype=mask.dtype, device=mask.device)
            self.stamp = torch.zeros(n, dtype=torch.int32, device=mask.device)  # step each entry is current at
        self.alpha: float | None = None  # the alpha of the steps since the last flush and of sum_w
        self.dirty = True  # sum_w and n_pos need a recount over the whole mask (after a flush or a read)
        self.sum_w = 0.0
        self.n_pos = 0
        # (ids, leaf or MaskGrad, G, CpuBatch or None) per loss() since the last step
        self.pending: list[tuple[Any, Any, float, CpuBatch | None]] = []
        lr_, mu, wd = self.lr, self.momentum, self.weight_decay
        self._m = ((1 - lr_ * wd, -lr_ * mu), (wd, mu))
        self.h = 0.0
        self._powers = torch.eye(2, dtype=torch.float64)[None]  # M^n, n = 0, 1, ...
        self._reset_history()

    def configure(self, *, keep: float, lambda_scale: float, adaptive: bool, sel_eps: float) -> None:
        """The objective's settings the fused path's controller needs (AdaPrunerMask sets them)."""
        self._ctl[[KEEP, LAMBDA_SCALE, ADAPTIVE, SEL_EPS]] = keep, lambda_scale, float(adaptive), sel_eps

    # The scalars live in `_ctl`, where the compiled kernels read and write them.
    t = property(lambda self: int(self._ctl[T]), lambda self, x: self._ctl.__setitem__(T, x),
                 doc="the step the history has reached since the last flush")
    h = property(lambda self: float(self._ctl[H]), lambda self, x: self._ctl.__setitem__(H, x),
                 doc="H_t = sum_s mu^(t-1-s) G_s: the compression force filtered by the momentum")
    _c = property(lambda self: float(self._ctl[C]), lambda self, x: self._ctl.__setitem__(C, x),
                  doc="C_t = H_1 + ... + H_t")
    sum_w = property(lambda self: float(self._ctl[SUM_W]), lambda self, x: self._ctl.__setitem__(SUM_W, x),
                     doc="sum(w) over the mask, entries as last brought up to date")
    n_pos = property(lambda self: int(self._ctl[N_POS]), lambda self, x: self._ctl.__setitem__(N_POS, x),
                     doc="#{m > 0} over the mask, entries as last brought up to date")

    # ------------------------------------------------------------ bookkeeping
    def _reset_history(self) -> None:
        self.t = 0
        self._c = 0.0
        # Per step since the flush: column 0 H_s, column 1 C_s = H_1 + ... + H_s.
        self._v = torch.zeros((256, 2), dtype=torch.float64, device=self.mask.device)
        self._v[0, 0] = self.h
        self.stamp.zero_()

    def _grow(self, upto: int | None = None) -> None:
        """Room for V_upto and M^upto (default t + 1)."""
        upto = self.t + 1 if upto is None else upto
        while upto >= len(self._v):
            self._v = torch.cat([self._v, torch.zeros_like(self._v)])
        while upto >= len(self._powers):
            powers = self._powers.cpu()
            m = torch.tensor(self._m, dtype=torch.float64)
            more = [powers[-1]]
            for _ in range(len(powers)):
                more.append(m @ more[-1])
            self._powers = torch.cat([powers, torch.stack(more[1:])]).to(self.mask.device)

    def to(self, device: torch.device) -> None:
        self.settle()
        self.buffer = self.buffer.to(device)
        self.stamp = self.stamp.to(device)
        self._v = self._v.to(device)
        self._powers = self._powers.to(device)

    def phi(self, m: Array, alpha: float) -> Array:
        s = sigmoid(alpha * m)
        return alpha * s * (1 - s)

    @property
    def cpu(self) -> bool:
        """Per-batch work through numpy views of the mask, buffer and stamps (same memory)."""
        return self.stamp.is_cpu

    def _views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """numpy views of the mask, buffer, stamps, V and the powers of M (same memory), made again
        only when one of those tensors has been replaced (moved, grown, loaded)."""
        key = (self.mask, self.buffer, self.stamp, self._v, self._powers)
        cached = getattr(self, "_view_cache", None)
        if cached is None or any(a is not b for a, b in zip(cached[0], key, strict=True)):
            cached = (key, (self.mask.detach().numpy(), self.buffer.numpy(), self.stamp.numpy(),
                            self._v.numpy(), self._powers.numpy()))
            self._view_cache = cached
        return cached[1]

    # ------------------------------------------------------------ lazy catch-up
    def _caught_up_np(self, m32: np.ndarray, b32: np.ndarray, stamp: np.ndarray,
                      alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The numpy catch-up (the torch one's rules, see `_caught_up`): (m_t, b_t, w_t, s_old) in
        float64, w_t = sigmoid(alpha m_t) and s_old = sigmoid(alpha m) of the values before."""
        v, powers = self._views()[3:]
        t = self.t
        uniform = stamp.min() == stamp.max()
        if uniform:
            # One gap for the whole batch (within an epoch every untouched entry is current at the
            # last flush): Python scalars instead of per-entry gathers.
            s = int(stamp[0])
            (p00, p01), (p10, p11) = powers[t - s].tolist()
            h0, c0 = v[s].tolist()
        else:
            vs, p = v[stamp], powers[t - stamp]
            p00, p01, p10, p11 = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1]
            h0, c0 = vs[:, 0], vs[:, 1]
        m = m32.astype(np.float64)
        s_old = expit(alpha * m)
        rest = b32 - (alpha * h0) * (s_old * (1.0 - s_old))  # the buffer less its compression part
        m_lin = p00 * m + p01 * rest
        rest_t = p10 * m + p11 * rest
        z = alpha * m_lin
        delta = (self.lr * alpha * alpha / 2) * (v[t, 1] - c0)
        if (delta != 0.0) if uniform else delta.any():
            # q(z) = z + sinh z moves by -delta; its inverse from the table (see _inverse_table).
            clipped = np.minimum(np.maximum(z, -_FLOW_LIMIT), _FLOW_LIMIT)
            y = np.arcsinh((clipped + np.sinh(clipped) - delta) * 0.5)
            z = np.interp(y, *_inverse_table()) + (z - clipped)
        w = expit(z)
        b_t = rest_t + (alpha * v[t, 0]) * (w * (1.0 - w))
        return z / alpha, b_t, w, s_old

    def _caught_up(self, m: Tensor, b: Tensor, stamp: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
        """(m, b) of entries last current at step `stamp`, brought to step t (float64 tensors)."""
        v, powers = self._v, self._powers
        m64, b64 = m.double(), b.double()
        v0, p = v[stamp], powers[self.t - stamp]
        # The buffer's compression part is phi(m) H; the rest (the batch gradients' momentum, weight
        # decay) is linear: (m, b_rest) <- M^n (m, b_rest).
        rest = b64 - self.phi(m64, alpha) * v0[:, 0]
        m_lin = p[:, 0, 0] * m64 + p[:, 0, 1] * rest
        rest_t = p[:, 1, 0] * m64 + p[:, 1, 1] * rest
        # The compression flow dm/ds = -lr phi(m) H_s, solved exactly: q(m) = z + sinh z (z = alpha m)
        # has dq/dm = alpha^2 / (2 phi), so q moves by -lr alpha^2 / 2 * (C_t - C_stamp).
        z = alpha * m_lin
        inside = float(abs(z).max()) < 600.0  # the usual case: clip and where below are no-ops
        if not inside:
            z = torch.clip(z, -600.0, 600.0)  # past |z| = 600, phi = 0: nothing flows (and no overflow)
        q = z + torch.sinh(z) - (self.lr * alpha * alpha / 2) * (v[self.t, 1] - v0[:, 1])
        z = torch.asinh(q / 2)
        for _ in range(5):  # Newton on z + sinh z = q: 5 steps from asinh(q / 2) reach 1e-13
            z = z - (z + torch.sinh(z) - q) / (1 + torch.cosh(z))
        m_t = z / alpha if inside else torch.where(abs(alpha * m_lin) < 600.0, z / alpha, m_lin)
        return m_t, rest_t + self.phi(m_t, alpha) * v[self.t, 0]

    def advance_np(self, ids: np.ndarray, alpha: float) -> CpuBatch:
        """Bring the entries `ids` (unique) up to the current step through numpy views (CPU)."""
        self.settle()
        mask, buffer, stamp = self._views()[:3]
        m32, b32 = mask[ids], buffer[ids]
        if self.t == 0:
            m, b = m32.astype(np.float64), b32.astype(np.float64)
            w = expit(alpha * m)
            return CpuBatch(m, b, w, w * (1.0 - w), float(w.sum()), int(np.count_nonzero(m32 > 0)))
        m, b, w, s_old = self._caught_up_np(m32, b32, stamp[ids], alpha)
        batch = CpuBatch(m, b, w, w * (1.0 - w), float(w.sum()), int(np.count_nonzero(m > 0)))
        self.sum_w += batch.w_sum - float(s_old.sum())
        self.n_pos += batch.n_pos - int(np.count_nonzero(m32 > 0))
        mask[ids] = m
        buffer[ids] = b
        stamp[ids] = self.t
        return batch

    @torch.no_grad()
    def advance(self, ids: Tensor, alpha: float) -> Tensor:
        """Bring the entries `ids` (unique) up to the current step (the torch path); returns their
        mask values."""
        self.settle()
        mask, buffer, stamp = self.mask.detach(), self.buffer, self.stamp
        m = mask[ids]
        if self.t == 0:
            return m
        m_t64, b_t = self._caught_up(m, buffer[ids], stamp[ids], alpha)
        m_t = m_t64.to(mask.dtype)
        self._account(m, m_t, alpha)
        mask[ids] = m_t
        buffer[ids] = b_t.to(mask.dtype)
        stamp[ids] = self.t
        return m_t

    def _account(self, old: Array, new: Array, alpha: float) -> None:
        """Entries move from `old` to `new`: sum(w) and the count of m > 0 follow."""
        if isinstance(old, np.ndarray):
            old64, new64 = old.astype(np.float64), new.astype(np.float64)
        else:
            old64, new64 = old.double(), new.double()
        self.sum_w += float((sigmoid(alpha * new64) - sigmoid(alpha * old64)).sum())
        self.n_pos += int((new > 0).sum()) - int((old > 0).sum())

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every entry up to the current step (O(N)) and start a new gap."""
        self.settle()
        if self.t > 0:
            assert self.alpha is not None
            cpu = self.cpu
            mask, buffer, stamp = self._views()[:3] if cpu else (self.mask.detach(), self.buffer, self.stamp)
            for start in range(0, len(mask), _CHUNK):
                part = slice(start, start + _CHUNK)
                if cpu and kernels() is not None:
                    v, powers = self._views()[3:]
                    kernels().flush_all(mask[part], buffer[part], stamp[part], v, powers, self.t, self.alpha,
                                        self.lr * self.alpha * self.alpha / 2, *_table_args())
                elif cpu:
                    mask[part], buffer[part] = self._caught_up_np(mask[part], buffer[part], stamp[part],
                                                                  self.alpha)[:2]
                else:
                    m_t, b_t = self._caught_up(mask[part], buffer[part], stamp[part], self.alpha)
                    mask[part], buffer[part] = m_t.to(mask.dtype), b_t.to(mask.dtype)
        self._reset_history()
        self.dirty = True  # the mask may be changed from outside now: recount before the next loss

    @torch.no_grad()
    def resync(self, alpha: float) -> None:
        """Flush, then recompute sum(w) and the count of m > 0 over the whole mask for `alpha`."""
        self.flush()
        mask = self.mask.detach()
        self.sum_w = float(torch.sigmoid(alpha * mask.double()).sum())
        self.n_pos = int((mask > 0).sum())
        self.alpha = alpha
        self._ctl[[ALPHA, FLOW]] = alpha, self.lr * alpha * alpha / 2
        self.dirty = False

    # ------------------------------------------------------------ the fused path (numba, CPU)
    def fused_loss(self, per_sample: Tensor, ids: np.ndarray, ce: np.ndarray) -> Tensor | None:
        """The loss of one batch through one compiled call (which also applies the step armed by the
        last step()): L_cls + L_sel + lambda L_comp, with the model's gradient w / B per loss. None
        (nothing done but the armed step) where an id repeats or a loss() is already in flight: the
        caller takes the numpy path."""
        if self._flight is not None:  # a second loss() before step(): the first joins `pending`
            self._land_flight()
            return None
        fused = self._fused
        if fused is None or fused.n != len(ids) or fused.dtype != ce.dtype:
            self.settle()  # the armed step reads its buffers
            fused = self._fused = _FusedBuffers(len(ids), ce.dtype, per_sample.dtype)
        ctl = self._ctl
        if ctl[T] + 2 >= self._room:
            self._grow(int(ctl[T]) + 2)
        mask, buffer, stamp, v, powers = self._views()
        current = fused.current
        armed = 1 - current
        table, y_low, per_y = _TABLE_ARGS or _table_args()
        unique = _KERNELS.fused_loss(
            ids, ce, mask, buffer, stamp, v, powers, table, y_low, per_y, ctl, fused.ids[armed], fused.out[armed],
            fused.ids[current], fused.out[current], fused.w_over_b[current], fused.leaf_view,
        )
        if not unique:
            return None
        self._flight = current
        return torch.dot(per_sample, fused.w_over_b_t[current]) + fused.leaf

    def last_batch_terms(self) -> np.ndarray:
        """L_cls, L_sel, L_comp, lambda and r of the fused path's last loss()."""
        return self._ctl[L_CLS:R + 1].copy()

    @property
    def _room(self) -> int:
        """Steps V and the powers of M have room for (cached: read every batch)."""
        key = (self._v, self._powers)
        cached = getattr(self, "_room_cache", None)
        if cached is None or cached[0][0] is not key[0] or cached[0][1] is not key[1]:
            cached = self._room_cache = (key, min(len(self._v), len(self._powers)))
        return cached[1]

    def settle(self) -> None:
        """Apply the fused path's armed step, and move a loss() in flight to `pending`, before any other
        path reads or writes the mask's state."""
        if self._flight is not None:
            self._land_flight()
        if self._ctl[ARMED]:
            fused = self._fused
            assert fused is not None
            self._grow(self.t + 1)
            mask, buffer, stamp, v, _ = self._views()
            armed = 1 - fused.current
            kernels().apply_armed(self._ctl, fused.ids[armed], fused.out[armed], mask, buffer, stamp, v)

    def _land_flight(self) -> None:
        """The loss() in flight as a `pending` entry (its gradient read from its own leaf at step)."""
        fused = self._fused
        assert fused is not None and self._flight is not None
        current, self._flight = self._flight, None
        holder = MaskGrad(fused.out[current, 3].copy(), 0.0, fused.torch_dtype, leaf=fused.leaf)
        self.pending.append((fused.ids[current].copy(), holder, float(self._ctl[G_BATCH]), None))
        fused.new_leaf()

    def discard(self) -> None:
        """Forget the fused path's armed step and loss() in flight, and `pending` (a loaded state
        replaces them)."""
        self._flight = None
        self._ctl[ARMED] = 0.0
        self.pending.clear()

    # ------------------------------------------------------------ the step
    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._flight is not None and self._fused is not None:
            self._fused.leaf.grad = None
        for _, leaf, _, _ in self.pending:
            if isinstance(leaf, MaskGrad):
                leaf.zero()
            else:
                leaf.grad = None

    def step(self) -> None:
        """The SGD step of the batch entries given to loss() since the last step (all of them current
        at step t); the rest of the mask takes it lazily through V. A no-op when no gradient came."""
        if self._flight is not None:  # one loss() on the fused path: arm its step for the next kernel call
            fused = self._fused
            assert fused is not None
            current, self._flight = self._flight, None
            grad = fused.leaf.grad
            if grad is not None:
                ctl = self._ctl
                ctl[[SCALE, G_ARMED, N_ARMED, ARMED]] = float(grad), ctl[G_BATCH], fused.n, 1.0
                fused.leaf.grad = None
                fused.current = 1 - current
                self.stepped = True
            return
        pending = self.pending
        if len(pending) == 1 and pending[0][3] is not None:  # one loss() on the numpy path: the usual loop
            ids, holder, big_g, batch = pending.pop()
            scale = holder.scale
            if scale is not None and self.alpha is not None:
                self._step_np(ids, holder.coef * scale, big_g, batch)
            return
        with torch.no_grad():
            self._step_general()

    def _step_general(self) -> None:
        """`step` for several loss() calls, repeated samples, or the torch path."""
        self.settle()
        live = [(ids, leaf.grad, g) for ids, leaf, g, _ in self.pending if leaf.grad is not None]
        self.pending.clear()
        if not live or self.alpha is None:
            return
        cpu = isinstance(live[0][0], np.ndarray)
        if len(live) == 1:
            ids, grad, big_g = live[0]
        elif cpu:  # several losses before one step: their gradients add, as autograd's do
            ids, inverse = np.unique(np.concatenate([x[0] for x in live]), return_inverse=True)
            grad = np.bincount(inverse, weights=np.concatenate([x[1] for x in live]),
                               minlength=len(ids)).astype(np.float32)
            big_g = sum(x[2] for x in live)
        else:
            ids, inverse = torch.unique(torch.cat([x[0] for x in live]), return_inverse=True)
            grad = torch.zeros(len(ids), dtype=self.mask.dtype, device=ids.device)
            grad.index_add_(0, inverse, torch.cat([x[1] for x in live]))
            big_g = sum(x[2] for x in live)
        alpha = self.alpha
        mask, buffer, stamp = self._views()[:3] if cpu else (self.mask.detach(), self.buffer, self.stamp)
        m = mask[ids]
        s = sigmoid(alpha * m)
        grad = grad + (big_g * alpha) * (s * (1 - s))
        if self.weight_decay:
            grad = grad + self.weight_decay * m
        # The buffer starts at zero, so the first step's mu * 0 + g is the exact step's "buffer = g".
        b = buffer[ids] * self.momentum + grad if self.momentum else grad
        m_new = m - self.lr * b
        mask[ids] = m_new
        buffer[ids] = b
        self._account(m, m_new, alpha)
        self._advance_history(big_g)
        stamp[ids] = self.t

    def _step_np(self, ids: np.ndarray, grad: np.ndarray, big_g: float, batch: CpuBatch) -> None:
        """`step` for one CpuBatch: the same update from the values its loss() brought up to date."""
        alpha = self.alpha
        assert alpha is not None
        grad = grad + (big_g * alpha) * batch.g
        if self.weight_decay:
            grad = grad + self.weight_decay * batch.m
        b = batch.b * self.momentum + grad if self.momentum else grad
        m_new = batch.m - self.lr * b
        mask, buffer, stamp = self._views()[:3]
        mask[ids] = m_new
        buffer[ids] = b
        self.sum_w += float(expit(alpha * m_new).sum()) - batch.w_sum
        self.n_pos += int(np.count_nonzero(m_new > 0)) - batch.n_pos
        self._advance_history(big_g)
        stamp[ids] = self.t

    def _advance_history(self, big_g: float) -> None:
        """Step t -> t + 1 of the global history: H, C and their row in V."""
        if self.t + 2 >= min(len(self._v), len(self._powers)):
            self._grow()
        self.h = self.momentum * self.h + big_g
        self._c += self.h
        v = self._views()[3] if self._v.device.type == "cpu" else self._v
        v[self.t + 1, 0] = self.h
        v[self.t + 1, 1] = self._c
        self.t += 1
        self.stepped = True
