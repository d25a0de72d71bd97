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
memory, and AdaPrunerMask gives the batch's mask gradient in closed form (MaskGrad, scaled by the
upstream gradient its WeightedMean receives) instead of an autograd graph through the mask: for a
few hundred entries torch's fixed cost per operation was most of the step. Other devices take the
torch path; tests/test_adapruner_lazy.py checks that the two give the same mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

_CHUNK = 1 << 20  # entries per block in a flush (bounds its temporary memory)
Array = Any  # a torch Tensor, or (on CPU, per batch) a numpy view of the same memory


def sigmoid(x: Array) -> Array:
    # numpy's form through tanh: no overflow warning where alpha * m is large.
    return 0.5 * (1.0 + np.tanh(0.5 * x)) if isinstance(x, np.ndarray) else torch.sigmoid(x)


def _xp(x: Array) -> Any:
    """The array module of x: the catch-up is written once for numpy (the per-batch path on CPU,
    where a few hundred entries cost far less through numpy than through torch's per-op overhead)
    and torch (flush, and every step on other devices)."""
    return np if isinstance(x, np.ndarray) else torch


class MaskGrad:
    """The mask gradient of one loss() call's entries, filled by backward: `coef` (d loss / d m per
    entry, for an upstream gradient of 1) times the upstream gradient backward saw, so a scaled loss
    (gradient accumulation, loss * k) scales the mask's gradient as autograd would."""

    __slots__ = ("coef", "scale")

    def __init__(self, coef: np.ndarray) -> None:
        self.coef = coef
        self.scale: float | None = None

    @property
    def grad(self) -> np.ndarray | None:
        return None if self.scale is None else (self.coef * self.scale).astype(np.float32)


class WeightedMean(torch.autograd.Function):
    """mean(w * ce) with w constant: the model's gradient g * w / B; the mask's gradient is the
    closed form in MaskGrad, scaled by the g that backward receives."""

    @staticmethod
    def forward(ctx: Any, ce: Tensor, w: Tensor, holder: MaskGrad) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        ctx.holder = holder
        return (w * ce.detach()).mean()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        holder = ctx.holder
        holder.scale = float(g) + (holder.scale or 0.0)  # two backward passes add, as gradients do
        return g * w / w.numel(), None, None


class LazyMaskSGD:
    """MaskSGD's update (momentum without dampening, weight decay) on AdaPruner's mask, where
    only the batch's entries are touched per step (see the module docstring)."""

    def __init__(self, mask: Tensor, *, lr: float, momentum: float, weight_decay: float) -> None:
        self.mask = mask
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.stepped = False  # False until the first step: the exact step's "no momentum buffer yet"
        n = mask.numel()
        self.buffer = torch.zeros(n, dtype=mask.dtype, device=mask.device)
        self.stamp = torch.zeros(n, dtype=torch.long, device=mask.device)  # step each entry is current at
        self.alpha: float | None = None  # the alpha of the steps since the last flush and of sum_w
        self.dirty = True  # sum_w and n_pos need a recount over the whole mask (after a flush or a read)
        self.sum_w = 0.0
        self.n_pos = 0
        self.pending: list[tuple[Tensor, Tensor, float]] = []  # (ids, leaf, G) per loss() since the last step
        lr_, mu, wd = self.lr, self.momentum, self.weight_decay
        self._m = ((1 - lr_ * wd, -lr_ * mu), (wd, mu))
        self.h = 0.0  # H_t = sum_s mu^(t-1-s) G_s: the compression force filtered by the momentum
        self._powers = torch.eye(2, dtype=torch.float64)[None]  # M^n, n = 0, 1, ...
        self._reset_history()

    # ------------------------------------------------------------ bookkeeping
    def _reset_history(self) -> None:
        self.t = 0
        self._c = 0.0
        # Per step since the flush: column 0 H_s, column 1 C_s = H_1 + ... + H_s.
        self._v = torch.zeros((256, 2), dtype=torch.float64, device=self.mask.device)
        self._v[0, 0] = self.h
        self.stamp.zero_()

    def _grow(self) -> None:
        """Room for V_{t+1} and M^{t+1}."""
        if self.t + 1 >= len(self._v):
            self._v = torch.cat([self._v, torch.zeros_like(self._v)])
        while self.t + 1 >= len(self._powers):
            powers = self._powers.cpu()
            m = torch.tensor(self._m, dtype=torch.float64)
            more = [powers[-1]]
            for _ in range(len(powers)):
                more.append(m @ more[-1])
            self._powers = torch.cat([powers, torch.stack(more[1:])]).to(self.mask.device)

    def to(self, device: torch.device) -> None:
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
        return self.mask.device.type == "cpu"

    def _views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.mask.detach().numpy(), self.buffer.numpy(), self.stamp.numpy()

    # ------------------------------------------------------------ lazy catch-up
    def _caught_up(self, m: Array, b: Array, stamp: Array, alpha: float) -> tuple[Array, Array]:
        """(m, b) of entries last current at step `stamp`, brought to step t (float64; numpy arrays
        or tensors, the same module out as in)."""
        xp = _xp(m)
        v, powers = (self._v.numpy(), self._powers.numpy()) if xp is np else (self._v, self._powers)
        m64, b64 = (m.astype(np.float64), b.astype(np.float64)) if xp is np else (m.double(), b.double())
        if xp is np and stamp[0] == stamp.min() == stamp.max():
            # One gap for the whole batch (within an epoch every untouched entry is current at the
            # last flush): scalars instead of per-entry gathers.
            v0, p = v[int(stamp[0])][None], powers[self.t - int(stamp[0])][None]
        else:
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
            z = xp.clip(z, -600.0, 600.0)  # past |z| = 600, phi = 0: nothing flows (and no overflow)
        q = z + xp.sinh(z) - (self.lr * alpha * alpha / 2) * (v[self.t, 1] - v0[:, 1])
        z = xp.asinh(q / 2)
        for _ in range(4):  # Newton on z + sinh z = q: 4 steps from asinh(q / 2) reach 4e-8 (relative)
            z = z - (z + xp.sinh(z) - q) / (1 + xp.cosh(z))
        m_t = z / alpha if inside else xp.where(abs(alpha * m_lin) < 600.0, z / alpha, m_lin)
        return m_t, rest_t + self.phi(m_t, alpha) * v[self.t, 0]

    @torch.no_grad()
    def advance(self, ids: Array, alpha: float) -> Array:
        """Bring the entries `ids` (unique; a numpy array on CPU) up to the current step; returns
        their mask values."""
        if isinstance(ids, np.ndarray):
            mask, buffer, stamp = self._views()
        else:
            mask, buffer, stamp = self.mask.detach(), self.buffer, self.stamp
        m = mask[ids]
        if self.t == 0:
            return m
        m_t64, b_t = self._caught_up(m, buffer[ids], stamp[ids], alpha)
        m_t = m_t64.astype(np.float32) if isinstance(m, np.ndarray) else m_t64.to(mask.dtype)
        self._account(m, m_t, alpha)
        mask[ids] = m_t
        buffer[ids] = b_t.astype(np.float32) if isinstance(m, np.ndarray) else b_t.to(mask.dtype)
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
        if self.t > 0:
            assert self.alpha is not None
            mask = self.mask.detach()
            for start in range(0, mask.numel(), _CHUNK):
                part = slice(start, start + _CHUNK)
                m_t, b_t = self._caught_up(mask[part], self.buffer[part], self.stamp[part], self.alpha)
                mask[part] = m_t.to(mask.dtype)
                self.buffer[part] = b_t.to(mask.dtype)
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
        self.dirty = False

    # ------------------------------------------------------------ the step
    def zero_grad(self, set_to_none: bool = True) -> None:
        for _, leaf, _ in self.pending:
            if isinstance(leaf, MaskGrad):
                leaf.scale = None
            else:
                leaf.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """The SGD step of the batch entries given to loss() since the last step (all of them current
        at step t); the rest of the mask takes it lazily through V. A no-op when no gradient came."""
        live = [(ids, leaf.grad, g) for ids, leaf, g in self.pending if leaf.grad is not None]
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
        mask, buffer, stamp = self._views() if cpu else (self.mask.detach(), self.buffer, self.stamp)
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
        self._grow()
        self.h = self.momentum * self.h + big_g
        self._c += self.h
        v = self._v.numpy() if self._v.device.type == "cpu" else self._v
        v[self.t + 1, 0] = self.h
        v[self.t + 1, 1] = self._c
        self._account(m, m_new, alpha)
        self.t += 1
        stamp[ids] = self.t
        self.stepped = True
