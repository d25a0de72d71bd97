"""AdaPruner's mask as an object for any PyTorch training loop (Yang et al., arXiv 2312.05599).

The paper's objective, written once here and used both by adaprune's own `adapruner` method and by
a user's loop:

    w_i    = sigmoid(alpha * m_i)                                  (scaled sigmoid)
    L_cls  = mean_batch(w_i * loss_i)                              trains network and m
    L_sel  = mean_batch(w_i * -log(loss_i.detach() + sel_eps))    trains m only (PPC)
    L_comp = (sum_all(w) / N - c_r)^2                              over the whole mask (ADP)
    L      = L_cls + L_sel + lambda * L_comp,  lambda = s * |r - c_r|

with c_r the fraction to keep and r = #{w_i > 0.5} / N over all N samples (w_i > 0.5 iff m_i > 0).
`loss_i` is any task's per-sample loss (cross-entropy, a detector's per-image loss).

    pruner = AdaPrunerMask(n_samples=len(train_set), keep=0.7, epochs=20, warmup_epochs=5)
    for epoch in range(pruner.total_epochs):
        for x, y, idx in loader:                     # with_indices(train_set) yields sample ids
            loss = pruner.loss(criterion(model(x), y), idx)
            loss.backward(); opt.step(); pruner.step(); opt.zero_grad()
        if pruner.end_epoch():                       # True once the mask has converged
            break
    selection = pruner.selection()

Mask entries are indexed by the sample ids carried with every batch, never by loader position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adaprune.adapruner_lazy import LazyMaskSGD, MaskGrad, kernels
from adaprune.errors import ConfigError, DataError
from adaprune.params import Interval, ParamSpec, StrOptions
from adaprune.selection import Budget, Selection, select_beta_rank, select_top_k

log = logging.getLogger(__name__)

BINARIZE_CHOICES = ("budget", "threshold")
BALANCE_CHOICES = ("none", "class", "auto")
SAMPLING_CHOICES = ("top", "beta", "pick")
LAMBDA_RULES = ("adaptive", "constant")
UPDATE_CHOICES = ("auto", "lazy", "exact")
# update="auto": the lazy O(B) step from this many samples on, the exact O(N) step below. Below it the
# exact step is the cheaper one (benchmarks/results/adapruner_epoch_cost.md: 1.65x plain at 10^4
# against lazy's 2.73x), and one step moves an entry by a larger share of the sigmoid's width (the
# compression gradient scales as 1/N), where the lazy catch-up drifts from the exact mask.
LAZY_FROM = 100_000


@dataclass(frozen=True)
class LossTerms:
    total: Tensor
    cls: Tensor
    sel: Tensor
    comp: Tensor
    lam: float
    r: float


class MaskSGD:
    """SGD with momentum and weight decay (torch's semantics: no dampening, no Nesterov) on the one
    mask tensor, without the generic optimizer machinery, whose per-step cost is comparable to
    the mask's own arithmetic."""

    def __init__(self, mask: Tensor, *, lr: float, momentum: float, weight_decay: float) -> None:
        self.mask = mask
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffer: Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.mask.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grad = self.mask.grad
        if grad is None:
            return
        if self.weight_decay:
            grad = grad.add(self.mask, alpha=self.weight_decay)
        if self.momentum:
            if self.buffer is None:
                self.buffer = grad.clone()
            else:
                self.buffer.mul_(self.momentum).add_(grad)
            grad = self.buffer
        self.mask.add_(grad, alpha=-self.lr)


def alpha_at(epoch: int, *, epochs: int, alpha_start: float, alpha_max: float) -> float:
    """Alpha for pruning epoch `epoch` (0-based): a uniform ramp reaching alpha_max at the last
    pruning epoch, then held."""
    if epochs <= 1 or epoch >= epochs - 1:
        return alpha_max
    return alpha_start + (alpha_max - alpha_start) * epoch / (epochs - 1)


def adaptive_lambda(r: float, keep: float, *, lambda_scale: float, rule: str = "adaptive") -> float:
    """lambda = s * |r - c_r|: the compression term weighs more the further the mask is off budget
    ("adaptive", the paper's); "constant" holds lambda = s."""
    return lambda_scale if rule == "constant" else lambda_scale * abs(r - keep)


def batch_terms(ce: Tensor, w: Tensor, *, sel_eps: float) -> tuple[Tensor, Tensor]:
    """L_cls and L_sel of one batch from its per-sample losses and mask weights."""
    return (w * ce).mean(), (w * -torch.log(ce.detach() + sel_eps)).mean()


def adapruner_loss(
    ce: Tensor,
    batch_mask: Tensor,
    full_mask: Tensor,
    *,
    alpha: float,
    keep: float,
    lambda_scale: float,
    sel_eps: float = 1e-5,
    lambda_rule: str = "adaptive",
) -> LossTerms:
    """The paper's objective for one batch. `ce` are the batch's per-sample losses,
    `batch_mask` the mask entries of those samples (gathered by sample index), `full_mask` all N."""
    l_cls, l_sel = batch_terms(ce, torch.sigmoid(alpha * batch_mask), sel_eps=sel_eps)
    w_all = torch.sigmoid(alpha * full_mask)
    l_comp = (w_all.sum() / full_mask.numel() - keep) ** 2
    # w > 0.5 exactly when m > 0 (alpha > 0); r takes no gradient.
    r = float((full_mask.detach() > 0).float().mean())
    lam = adaptive_lambda(r, keep, lambda_scale=lambda_scale, rule=lambda_rule)
    return LossTerms(total=l_cls + l_sel + lam * l_comp, cls=l_cls, sel=l_sel, comp=l_comp, lam=lam, r=r)


# The parameters AdaPruner (the method) and AdaPrunerMask (for a user's loop) share, with their
# constraints: written once, checked once at construction of either (adaprune.params).
ADAPRUNER_SPEC = ParamSpec({
    "warmup_epochs": Interval(int, 0, None),
    "epochs": Interval(int, 1, None),
    "max_extra_epochs": Interval(int, 0, None),
    "alpha_start": Interval(float, 0, None, closed="neither"),
    "alpha_max": Interval(float, 0, None, closed="neither"),
    "lambda_scale": Interval(float, 0, None),
    "epsilon": Interval(float, 0, 1),
    "mask_init": Interval(float, None, None),
    "mask_lr": Interval(float, 0, None, closed="neither"),
    "mask_momentum": Interval(float, 0, 1, closed="left"),
    "mask_weight_decay": Interval(float, 0, None),
    "sel_eps": Interval(float, 0, None, closed="neither"),  # -log(loss + sel_eps) needs loss + sel_eps > 0
    "binarize": StrOptions(BINARIZE_CHOICES),
    "balance": StrOptions(BALANCE_CHOICES),
    "lambda_rule": StrOptions(LAMBDA_RULES),
    "sampling": StrOptions(SAMPLING_CHOICES),
    "beta_power": Interval(float, 0, None, closed="neither"),
    "beta_mode_max": Interval(float, 0, 1, closed="right"),
    "beta_concentration": Interval(float, 2, None, closed="neither"),  # a, b > 1: a Beta with one mode
    "beta_from": Interval(float, 0, 1),
    "pick_epochs": Interval(int, 1, None),
    "pick_draws": Interval(int, 1, None),
    "pick_val_fraction": Interval(float, 0, 0.5, closed="neither"),
    "scarce_below": Interval(float, 0, 1),
    "scarce_mode": Interval(float, 0, 1, closed="right"),
    "scarce_concentration": Interval(float, 2, None, closed="neither"),
    "update": StrOptions(UPDATE_CHOICES),
})


def check_adapruner_params(*, alpha_start: float, alpha_max: float, binarize: str, balance: str = "none") -> None:
    """What no single parameter's constraint says (each one is checked against ADAPRUNER_SPEC)."""
    if alpha_start > alpha_max:
        raise ConfigError(f"need alpha_start <= alpha_max, got {alpha_start} and {alpha_max}")
    if balance == "class" and binarize != "budget":
        raise ConfigError("balance='class' needs binarize='budget' (the threshold rule has no quota to split)")


def beta_mode(keep: float, *, beta_power: float, beta_mode_max: float = 1.0) -> float:
    """Mode of sampling='beta' over the mask's within-class rank (1 = highest m, the hardest) at kept
    fraction `keep`: min(beta_mode_max, 1 - prune ** beta_power). The ceiling leaves the hardest tail
    (ambiguous or mislabelled samples) out at every rate; past the rate where 1 - prune ** beta_power
    falls under it, the mode moves toward the easy end (defaults 6 and 0.875: 0.875 up to about 70%
    pruned, 0.47 at 90%)."""
    return min(beta_mode_max, 1.0 - (1.0 - keep) ** beta_power)


def mask_kept(
    scores: np.ndarray,
    n_keep: int,
    *,
    binarize: str = "budget",
    sampling: str = "top",
    beta_power: float = 6.0,
    beta_mode_max: float = 0.875,
    beta_concentration: float = 20.0,
    beta_from: float = 0.0,
    balance: str = "class",
    labels: np.ndarray | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Turn mask values m (higher = keep) into a kept set of sorted indices.

    binarize="threshold": every m > 0 (the paper's rule). binarize="budget": exactly `n_keep`,
    either the `n_keep` highest m (sampling="top") or drawn without replacement with weights
    Beta(a, b) at each sample's normalised rank of m (sampling="beta"; mode `beta_mode`, a + b =
    `beta_concentration`; seeded by `seed`, None = 0). With the defaults the draw keeps the band
    just under the hardest few percent of each class up to about 70% pruned and a middle band at 90%.
    Below `beta_from` pruned, sampling="beta" falls back to the paper's ranking: the `n_keep` highest
    m, with class quotas only if `balance` is "class" (not "auto"); so does balance="auto" without
    labels (detection). `labels` (when given) splits the budget into per-class quotas in proportion
    to class sizes, ranks taken within each class."""
    scores = np.asarray(scores, dtype=np.float64)
    if sampling == "pick":  # the validation picker lives in AdaPruner.run; without a task: the Beta draw
        sampling = "beta"
    if binarize == "threshold":
        kept = np.flatnonzero(scores > 0)
        if len(kept) == 0:
            raise ConfigError("adapruner's mask kept no sample (binarize='threshold'); use binarize='budget'")
        return kept
    prune = 1.0 - n_keep / len(scores)
    if sampling == "beta" and prune + 0.5 / len(scores) < beta_from:
        sampling, labels = "top", labels if balance == "class" else None
    elif sampling == "beta" and balance == "auto" and labels is None:
        # No classes to keep covered (detection, unlabelled data): the draw's reason is gone, and on
        # the paired detection benchmark the top-k kept set beat random at 30% and 50% pruned
        # (benchmarks/results/detection_powered.md), so the paper's ranking stays.
        sampling = "top"
    if sampling == "top":
        return select_top_k(scores, n_keep, higher_is_keep=True, strata=labels)
    rng = np.random.default_rng([0 if seed is None else int(seed), 0xADA])
    mode = beta_mode(n_keep / len(scores), beta_power=beta_power, beta_mode_max=beta_mode_max)
    return select_beta_rank(scores, n_keep, mode=mode, concentration=beta_concentration, rng=rng, strata=labels)


class AdaPrunerMask:
    """AdaPruner's per-sample mask and schedule, for any training loop.

    Per batch: `loss(per_sample_loss, idx)` (the plain mean during the `warmup_epochs` first epochs,
    then L_cls + L_sel + lambda * L_comp), backward, the model's optimizer step, then `step()` (the
    mask's own SGD step; it also clears the mask's gradient). Per epoch: `end_epoch()`, which returns
    True when training may stop (alpha has reached alpha_max and the mask keeps within `epsilon` of
    `keep`, or `max_extra_epochs` more epochs have passed). `total_epochs` is the most epochs the
    schedule uses. `selection()` gives the kept set: exactly round(keep * N) samples ranked by mask
    value ("budget"; with `balance="class"` and `labels`, per-class quotas in proportion to class
    sizes), or the entries with w > 0.5 ("threshold", the paper's rule). `lambda_rule="constant"`
    holds lambda = lambda_scale instead of the paper's adaptive s * |r - c_r|.

    The mask lives on the device of the losses it is given (moved on the first call).

    `history` is a dict of per-epoch lists, one entry appended per pruning epoch (warm-up epochs
    add none): `history["alpha"][e]` the sigmoid sharpness, `history["r"][e]` the mask's keep
    fraction, `history["lambda"][e]` the weight of the budget term and `history["mean_w"][e]` the
    mean mask weight, after pruning epoch e. It is not a list of per-epoch dicts:
    `len(history["r"])` is the number of pruning epochs run."""

    def __init__(
        self,
        n_samples: int,
        *,
        keep: float,
        epochs: int = 20,
        warmup_epochs: int = 5,
        max_extra_epochs: int = 10,
        alpha_start: float = 0.1,
        alpha_max: float = 5.0,
        lambda_scale: float = 100.0,
        epsilon: float = 0.02,
        mask_init: float = 1.0,
        mask_lr: float = 20.0,
        mask_momentum: float = 0.9,
        mask_weight_decay: float = 0.0,
        sel_eps: float = 1e-5,
        binarize: str = "budget",
        balance: str = "auto",
        lambda_rule: str = "adaptive",
        sampling: str = "beta",
        beta_power: float = 6.0,
        beta_mode_max: float = 0.875,
        beta_concentration: float = 20.0,
        beta_from: float = 0.5,
        pick_epochs: int = 30,
        pick_draws: int = 2,
        pick_val_fraction: float = 0.2,
        scarce_below: float = 0.8,
        scarce_mode: float = 0.5,
        scarce_concentration: float = 6.0,
        labels: Sequence[int] | np.ndarray | None = None,
        update: str = "auto",
    ) -> None:
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.budget = Budget.from_args(keep=keep)
        given = locals()
        ADAPRUNER_SPEC.validate("AdaPrunerMask", {name: given[name] for name in ADAPRUNER_SPEC})
        check_adapruner_params(alpha_start=alpha_start, alpha_max=alpha_max, binarize=binarize, balance=balance)
        if balance == "class" and labels is None:
            raise ConfigError("AdaPrunerMask balance='class' needs labels (one class label per sample)")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n_samples,):
                raise DataError(f"labels must have one entry per sample ({n_samples}), got shape {labels.shape}")
        # "auto": class quotas when labels are given, one global ranking otherwise.
        self.labels = labels if balance in ("class", "auto") else None
        self.n_samples = int(n_samples)
        self.keep = float(keep)
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.max_extra_epochs = max_extra_epochs
        self.alpha_start = alpha_start
        self.alpha_max = alpha_max
        self.lambda_scale = lambda_scale
        self.epsilon = epsilon
        self.mask_init = mask_init
        self.mask_lr = mask_lr
        self.mask_momentum = mask_momentum
        self.mask_weight_decay = mask_weight_decay
        self.sel_eps = sel_eps
        self.binarize = binarize
        self.balance = balance
        self.lambda_rule = lambda_rule
        self.sampling = sampling
        self.beta_power = beta_power
        self.beta_mode_max = beta_mode_max
        self.beta_concentration = beta_concentration
        self.beta_from = beta_from
        # sampling="pick" is resolved by AdaPruner.run (it needs the task to train proxies on); this
        # object alone, with no task, draws as sampling="beta".
        self.pick_epochs = pick_epochs
        self.pick_draws = pick_draws
        self.pick_val_fraction = pick_val_fraction
        # The scarcity check (scarce_*) also needs the task (a proxy trained on held-out data):
        # AdaPruner.run applies it; this object alone draws with the beta_* parameters.
        self.scarce_below = scarce_below
        self.scarce_mode = scarce_mode
        self.scarce_concentration = scarce_concentration
        self.update = update
        lazy = update == "lazy" or (update == "auto" and n_samples >= LAZY_FROM)
        self.optimizer: MaskSGD | LazyMaskSGD
        if lazy:
            # Each entry's mask value, momentum buffer and stamp side by side (LazyMaskSGD.records): a
            # lazy step reads and writes a batch's entries at random, one cache line each this way.
            records = LazyMaskSGD.records(self.n_samples)
            records["m"] = mask_init
            self._mask = torch.from_numpy(records["m"]).requires_grad_(True)
            self.optimizer = LazyMaskSGD(self._mask, lr=mask_lr, momentum=mask_momentum,
                                         weight_decay=mask_weight_decay, records=records)
            self.optimizer.configure(keep=self.keep, lambda_scale=lambda_scale, adaptive=lambda_rule == "adaptive",
                                     sel_eps=sel_eps)
        else:
            self._mask = torch.full((self.n_samples,), float(mask_init), requires_grad=True)
            self.optimizer = MaskSGD(self._mask, lr=mask_lr, momentum=mask_momentum, weight_decay=mask_weight_decay)
        self.epoch = 0  # epochs ended so far, warm-up included
        # Per-epoch lists (see the class docstring): history[name][e] is the value after pruning epoch e.
        self.history: dict[str, list[float]] = {"alpha": [], "r": [], "lambda": [], "mean_w": []}
        self.done = False
        self._last_terms: LossTerms | tuple | None = None

    # ------------------------------------------------------------ schedule
    @property
    def total_epochs(self) -> int:
        """The most epochs the schedule runs: warm-up, the alpha ramp, and the extra epochs."""
        return self.warmup_epochs + self.epochs + self.max_extra_epochs

    @property
    def in_warmup(self) -> bool:
        return self.epoch < self.warmup_epochs

    @property
    def pruning_epoch(self) -> int:
        """0-based index of the current pruning epoch (negative during warm-up)."""
        return self.epoch - self.warmup_epochs

    @property
    def alpha(self) -> float:
        return alpha_at(max(self.pruning_epoch, 0), epochs=self.epochs, alpha_start=self.alpha_start,
                        alpha_max=self.alpha_max)

    def params(self) -> dict[str, Any]:
        """The parameters that define the schedule (recorded in the selection's metadata)."""
        return {name: getattr(self, name) for name in ADAPRUNER_SPEC}

    @property
    def mask(self) -> Tensor:
        """All N mask entries, up to date (the lazy update brings every entry current first, and
        recounts sum(w) and r from the whole mask at the next loss, in case it is modified)."""
        if isinstance(self.optimizer, LazyMaskSGD):
            self.optimizer.flush()
        return self._mask

    # ------------------------------------------------------------ per batch
    def _to_device(self, device: torch.device) -> None:
        if self._mask.device == device:
            return
        if isinstance(self.optimizer, LazyMaskSGD):
            self.optimizer.flush()
            self.optimizer.to(device)
        moved = self._mask.detach().to(device).requires_grad_(True)
        self._mask = moved
        self.optimizer.mask = moved
        if self.optimizer.buffer is not None:
            self.optimizer.buffer = self.optimizer.buffer.to(device)

    def loss(self, per_sample: Tensor, idx: Tensor | Sequence[int]) -> Tensor:
        """The training loss of one batch from its per-sample losses (shape (B,), differentiable) and
        the batch's sample ids (B,). The plain mean during warm-up."""
        if per_sample.ndim != 1:
            raise DataError(f"per_sample must be one loss per sample (B,), got shape {tuple(per_sample.shape)}")
        if self.in_warmup:
            return per_sample.mean()
        self._to_device(per_sample.device)
        if isinstance(idx, Tensor) and idx.dtype == torch.long and idx.device == self._mask.device:
            idx_t = idx
        else:
            idx_t = torch.as_tensor(idx, device=self._mask.device).long()
        if idx_t.shape != per_sample.shape:
            raise DataError(f"{len(idx_t)} sample ids for {len(per_sample)} losses")
        if isinstance(self.optimizer, LazyMaskSGD):
            return self._lazy_loss(per_sample, idx_t)
        terms = adapruner_loss(
            per_sample, self._mask[idx_t], self._mask, alpha=self.alpha, keep=self.keep,
            lambda_scale=self.lambda_scale, sel_eps=self.sel_eps, lambda_rule=self.lambda_rule,
        )
        self.last_terms = terms
        return terms.total

    @property
    def last_terms(self) -> LossTerms | None:
        """The terms of the last loss() outside warm-up (None before the first)."""
        terms = self._last_terms
        if isinstance(terms, tuple):  # the lazy paths keep floats; tensors are made when asked for
            total, (cls, sel, comp, lam, r) = terms[0], terms[1:] if len(terms) == 6 else terms[1].tolist()
            terms = LossTerms(total=total, cls=torch.tensor(cls, dtype=total.dtype),
                              sel=torch.tensor(sel, dtype=total.dtype), comp=torch.tensor(comp, dtype=total.dtype),
                              lam=lam, r=r)
            self._last_terms = terms
        return terms

    @last_terms.setter
    def last_terms(self, terms: LossTerms | None) -> None:
        self._last_terms = terms

    def _lazy_loss(self, per_sample: Tensor, idx: Tensor) -> Tensor:
        """adapruner_loss with the batch's entries brought up to date and sum(w), r from the
        maintained counts; L_comp's gradient is applied by the lazy step, not through autograd."""
        lazy = self.optimizer
        assert isinstance(lazy, LazyMaskSGD)
        alpha = self.alpha
        if lazy.dirty or lazy.alpha != alpha:
            lazy.resync(alpha)
        if lazy.cpu and kernels() is not None and not lazy.pending:  # the fused path (numba): the usual loop
            total = lazy.fused_loss(per_sample, idx.numpy(), per_sample.detach().numpy())
            if total is not None:
                self._last_terms = (total, lazy.last_batch_terms())
                return total
        mean_w = lazy.sum_w / self.n_samples
        r = lazy.n_pos / self.n_samples
        lam = adaptive_lambda(r, self.keep, lambda_scale=self.lambda_scale, rule=self.lambda_rule)
        big_g = lam * 2 * (mean_w - self.keep) / self.n_samples
        comp = (mean_w - self.keep) ** 2
        if lazy.cpu:
            return self._lazy_loss_cpu(per_sample, idx.numpy(), alpha, big_g, lam, comp, r)
        ids, inverse = torch.unique(idx, return_inverse=True)
        leaf = lazy.advance(ids, alpha).requires_grad_(True)
        l_cls, l_sel = batch_terms(per_sample, torch.sigmoid(alpha * leaf)[inverse], sel_eps=self.sel_eps)
        lazy.pending.append((ids, leaf, big_g, None))
        comp_t = torch.tensor(comp, dtype=per_sample.dtype, device=per_sample.device)
        terms = LossTerms(total=l_cls + l_sel + lam * comp_t, cls=l_cls, sel=l_sel, comp=comp_t, lam=lam, r=r)
        self.last_terms = terms
        return terms.total

    def _lazy_loss_cpu(self, per_sample: Tensor, idx: np.ndarray, alpha: float, big_g: float, lam: float,
                       comp: float, r: float) -> Tensor:
        """The lazy loss on CPU with the mask's gradient in closed form (MaskGrad):
        d(L_cls + L_sel)/dm_i = sum over i's positions of (ce - log(ce + sel_eps)) / B * alpha w (1 - w).
        A few numpy operations on the batch's entries instead of an autograd graph through the mask:
        on a small model the graph's fixed cost per step was most of AdaPruner's overhead."""
        lazy = self.optimizer
        assert isinstance(lazy, LazyMaskSGD)
        ce32 = per_sample.detach().numpy()
        n = len(ce32)
        scratch = self._scratch
        positions = self._positions(n)
        scratch[idx] = positions
        if (scratch[idx] == positions).all():  # no sample twice in the batch (the usual case)
            ids, inverse = idx, None
        else:
            ids, inverse = np.unique(idx, return_inverse=True)
        batch = lazy.advance_np(ids, alpha)
        ce = ce32.astype(np.float64)
        w = batch.w if inverse is None else batch.w[inverse]
        log_ce = np.log(ce + self.sel_eps)
        per_position = ce - log_ce  # B * d(L_cls + L_sel)/dw at each position
        per_id = per_position if inverse is None else np.bincount(inverse, weights=per_position,
                                                                  minlength=len(ids))
        coef = per_id * (alpha * batch.w * (1.0 - batch.w) / n)
        w_over_b = (w / n).astype(ce32.dtype)
        l_cls, l_sel = float(w @ ce) / n, -float(w @ log_ce) / n
        # L_sel and L_comp take no gradient into the model: they ride on the holder's leaf, whose
        # gradient is the upstream scale the mask's closed-form gradient needs (MaskGrad).
        holder = MaskGrad(coef, l_sel + lam * comp, per_sample.dtype)
        lazy.pending.append((ids, holder, big_g, batch if inverse is None else None))
        total = torch.dot(per_sample, torch.from_numpy(w_over_b)) + holder.leaf
        self._last_terms = (total, l_cls, l_sel, comp, lam, r)
        return total

    def _positions(self, n: int) -> np.ndarray:
        """0 .. n - 1, kept between batches of one size."""
        positions = getattr(self, "_positions_array", None)
        if positions is None or len(positions) != n:
            positions = self._positions_array = np.arange(n)
        return positions

    @property
    def _scratch(self) -> np.ndarray:
        """One int per sample, to tell a batch with a repeated sample from one without in O(B)."""
        if getattr(self, "_scratch_array", None) is None:
            self._scratch_array = np.zeros(self.n_samples, dtype=np.int64)
        return self._scratch_array

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        """The mask's SGD step (after backward); clears the mask's gradient. A no-op in warm-up."""
        self.optimizer.step()
        self.optimizer.zero_grad()

    # ------------------------------------------------------------ per epoch
    def end_epoch(self) -> bool:
        """Close an epoch: record the mask's state, advance alpha. True when training may stop."""
        if not self.in_warmup:
            if isinstance(self.optimizer, LazyMaskSGD):
                self.optimizer.flush()  # every entry current; sums recounted under the next alpha
            with torch.no_grad():
                alpha = self.alpha
                r = float((self._mask > 0).float().mean())
                self.history["alpha"].append(alpha)
                self.history["r"].append(r)
                self.history["lambda"].append(adaptive_lambda(
                    r, self.keep, lambda_scale=self.lambda_scale, rule=self.lambda_rule
                ))
                self.history["mean_w"].append(float(torch.sigmoid(alpha * self._mask).mean()))
            at_max = self.pruning_epoch >= self.epochs - 1
            ran_out = self.pruning_epoch >= self.epochs + self.max_extra_epochs - 1
            self.done = (at_max and abs(r - self.keep) <= self.epsilon) or ran_out
        self.epoch += 1
        return self.done

    # ------------------------------------------------------------ result
    @property
    def converged(self) -> bool:
        return bool(self.history["r"]) and abs(self.history["r"][-1] - self.keep) <= self.epsilon

    def scores(self) -> np.ndarray:
        """The mask values m_i as float64 (higher = keep)."""
        return self.mask.detach().cpu().double().numpy()

    def kept(self, *, seed: int | None = None) -> np.ndarray:
        """The kept indices (`mask_kept` with this object's settings; `seed` draws sampling='beta')."""
        return mask_kept(
            self.scores(), self.budget.count(self.n_samples), binarize=self.binarize, sampling=self.sampling,
            beta_power=self.beta_power, beta_mode_max=self.beta_mode_max, beta_concentration=self.beta_concentration,
            beta_from=self.beta_from, balance=self.balance, labels=self.labels, seed=seed,
        )

    def selection(self, *, seed: int | None = None) -> Selection:
        """The kept set as a Selection (same files as `adaprune prune`); `seed` is recorded as given."""
        if not self.history["r"]:
            raise ConfigError(
                f"no pruning epoch has ended yet ({self.epoch} of {self.warmup_epochs} warm-up epochs); "
                "call end_epoch() after every epoch"
            )
        if not self.converged:
            # Expected with the paper's lambda rule: the selection loss pushes every w down, so the mask
            # settles a little under budget. "budget" binarisation still keeps exactly the budget.
            if self.binarize == "threshold":
                log.warning(
                    "adapruner: mask kept %.3f of samples after %d pruning epochs, target %.3f (epsilon %.3f)",
                    self.history["r"][-1], len(self.history["r"]), self.keep, self.epsilon,
                )
            else:  # not a failure: the kept set is the top of the budget by mask value
                log.debug(
                    "adapruner: the mask's w > 0.5 covers %.3f of samples (target %.3f); the budget is met "
                    "exactly by ranking the mask", self.history["r"][-1], self.keep,
                )
        details = {
            "pruning_epochs_run": len(self.history["r"]),
            "converged": self.converged,
            "mask_keep_fraction": self.history["r"][-1],
            "history": {k: list(v) for k, v in self.history.items()},
        }
        return Selection(
            kept=self.kept(seed=seed), n_total=self.n_samples, method="adapruner", params=self.params(), seed=seed,
            requested_keep=self.keep, scores=self.scores(), higher_is_keep=True, details=details,
        )

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        buffer = self.optimizer.buffer
        if isinstance(self.optimizer, LazyMaskSGD):
            self.optimizer.flush()
            buffer = buffer if self.optimizer.stepped else None
        return {
            "n_samples": self.n_samples,
            "keep": self.keep,
            "params": self.params(),
            "mask": self.mask.detach().cpu().clone(),
            "momentum_buffer": None if buffer is None else buffer.detach().cpu().clone(),
            # the lazy step's momentum-filtered compression force (how it splits each buffer)
            "compression_force": getattr(self.optimizer, "h", 0.0),
            "epoch": self.epoch,
            "done": self.done,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; the mask stays on this object's current device."""
        # The update rule is how the step is computed, not a setting of the mask: either loads either.
        mine = {k: v for k, v in self.params().items() if k != "update"}
        theirs = {k: v for k, v in state["params"].items() if k != "update"}
        if state["n_samples"] != self.n_samples or state["keep"] != self.keep or theirs != mine:
            raise ConfigError(
                "checkpoint was written by an AdaPrunerMask with other settings "
                f"(n_samples={state['n_samples']}, keep={state['keep']}); build it with the same ones"
            )
        device = self._mask.device
        with torch.no_grad():
            self.mask.copy_(state["mask"].to(device))  # (the lazy update: flushed, recounted at the next step)
        buffer = state["momentum_buffer"]
        if isinstance(self.optimizer, LazyMaskSGD):
            self.optimizer.discard()
            self.optimizer.stepped = buffer is not None
            self.optimizer.h = float(state.get("compression_force", 0.0))
            zero = torch.zeros_like(self.optimizer.buffer)
            self.optimizer.buffer = zero if buffer is None else buffer.to(device).clone()
        else:
            self.optimizer.buffer = None if buffer is None else buffer.to(device).clone()
        self._mask.grad = None
        self.epoch = int(state["epoch"])
        self.done = bool(state["done"])
        self.history = {k: list(v) for k, v in state["history"].items()}


class IndexedDataset(torch.utils.data.Dataset):
    """A map-style dataset whose items carry their index: (*item, index) for tuple/list items,
    (item, index) otherwise."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise ConfigError(f"with_indices needs a map-style dataset (__getitem__ and __len__), got {type(dataset)}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple:
        item = self.dataset[index]
        if isinstance(item, (tuple, list)):
            return (*item, index)
        return (item, index)


def with_indices(dataset: torch.utils.data.Dataset) -> IndexedDataset:
    """Wrap a map-style torch Dataset so every item comes out as (*item, index); the default
    collate turns the indices into an int64 tensor, the `idx` AdaPrunerMask and the recorder take."""
    return IndexedDataset(dataset)


class Reshuffle(torch.utils.data.Sampler):
    """One permutation per epoch from a seeded generator, as adaprune's own loop draws them, so a
    user loop can reproduce our mask bit for bit. (torch's RandomSampler draws a second, unused
    permutation every epoch, so its later epochs differ from a plain randperm stream.)"""

    def __init__(self, n: int, *, seed: int) -> None:
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())
