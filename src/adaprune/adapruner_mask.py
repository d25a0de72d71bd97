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

from adaprune.errors import ConfigError, DataError
from adaprune.selection import Budget, Selection, select_beta_rank, select_top_k

log = logging.getLogger(__name__)

BINARIZE_CHOICES = ("budget", "threshold")
BALANCE_CHOICES = ("none", "class", "auto")
SAMPLING_CHOICES = ("top", "beta")
LAMBDA_RULES = ("adaptive", "constant")


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
    w = torch.sigmoid(alpha * batch_mask)
    l_cls = (w * ce).mean()
    l_sel = (w * -torch.log(ce.detach() + sel_eps)).mean()
    w_all = torch.sigmoid(alpha * full_mask)
    l_comp = (w_all.sum() / full_mask.numel() - keep) ** 2
    # w > 0.5 exactly when m > 0 (alpha > 0); r takes no gradient.
    r = float((full_mask.detach() > 0).float().mean())
    lam = adaptive_lambda(r, keep, lambda_scale=lambda_scale, rule=lambda_rule)
    return LossTerms(total=l_cls + l_sel + lam * l_comp, cls=l_cls, sel=l_sel, comp=l_comp, lam=lam, r=r)


def check_adapruner_params(
    *,
    warmup_epochs: int,
    epochs: int,
    max_extra_epochs: int,
    alpha_start: float,
    alpha_max: float,
    lambda_scale: float,
    epsilon: float,
    mask_lr: float,
    binarize: str,
    balance: str = "none",
    lambda_rule: str = "adaptive",
    sampling: str = "top",
    beta_power: float = 6.0,
    beta_mode_max: float = 0.875,
    beta_concentration: float = 20.0,
    beta_from: float = 0.5,
) -> None:
    if warmup_epochs < 0 or epochs < 1 or max_extra_epochs < 0:
        raise ConfigError(
            f"need warmup_epochs >= 0, epochs >= 1, max_extra_epochs >= 0; "
            f"got {warmup_epochs}, {epochs}, {max_extra_epochs}"
        )
    if not 0 < alpha_start <= alpha_max:
        raise ConfigError(f"need 0 < alpha_start <= alpha_max, got {alpha_start} and {alpha_max}")
    if binarize not in BINARIZE_CHOICES:
        raise ConfigError(f"binarize must be 'budget' or 'threshold', got {binarize!r}")
    if balance not in BALANCE_CHOICES:
        raise ConfigError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, got {balance!r}")
    if balance == "class" and binarize != "budget":
        raise ConfigError("balance='class' needs binarize='budget' (the threshold rule has no quota to split)")
    if sampling not in SAMPLING_CHOICES:
        raise ConfigError(f"sampling must be one of {', '.join(SAMPLING_CHOICES)}, got {sampling!r}")
    if not (isinstance(beta_power, (int, float)) and beta_power > 0):
        raise ConfigError(f"beta_power must be > 0, got {beta_power!r}")
    if not (isinstance(beta_from, (int, float)) and 0 <= beta_from <= 1):
        raise ConfigError(f"beta_from must be in [0, 1], got {beta_from!r}")
    if not (isinstance(beta_mode_max, (int, float)) and 0 < beta_mode_max <= 1):
        raise ConfigError(f"beta_mode_max must be in (0, 1], got {beta_mode_max!r}")
    if not (isinstance(beta_concentration, (int, float)) and beta_concentration > 2):
        raise ConfigError(f"beta_concentration must be > 2, got {beta_concentration!r}")
    if lambda_rule not in LAMBDA_RULES:
        raise ConfigError(f"lambda_rule must be one of {', '.join(LAMBDA_RULES)}, got {lambda_rule!r}")
    if mask_lr <= 0 or epsilon < 0 or lambda_scale < 0:
        raise ConfigError("mask_lr must be > 0, epsilon and lambda_scale >= 0")


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
    m, with class quotas only if `balance` is "class" (not "auto"). `labels` (when given) splits the
    budget into per-class quotas in proportion to class sizes, ranks taken within each class."""
    scores = np.asarray(scores, dtype=np.float64)
    if binarize == "threshold":
        kept = np.flatnonzero(scores > 0)
        if len(kept) == 0:
            raise ConfigError("adapruner's mask kept no sample (binarize='threshold'); use binarize='budget'")
        return kept
    prune = 1.0 - n_keep / len(scores)
    if sampling == "beta" and prune + 0.5 / len(scores) < beta_from:
        sampling, labels = "top", labels if balance == "class" else None
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

    The mask lives on the device of the losses it is given (moved on the first call)."""

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
        labels: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.budget = Budget.from_args(keep=keep)
        check_adapruner_params(
            warmup_epochs=warmup_epochs, epochs=epochs, max_extra_epochs=max_extra_epochs,
            alpha_start=alpha_start, alpha_max=alpha_max, lambda_scale=lambda_scale,
            epsilon=epsilon, mask_lr=mask_lr, binarize=binarize, balance=balance, lambda_rule=lambda_rule,
            sampling=sampling, beta_power=beta_power, beta_mode_max=beta_mode_max,
            beta_concentration=beta_concentration, beta_from=beta_from,
        )
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
        self.mask = torch.full((self.n_samples,), float(mask_init), requires_grad=True)
        self.optimizer = MaskSGD(self.mask, lr=mask_lr, momentum=mask_momentum, weight_decay=mask_weight_decay)
        self.epoch = 0  # epochs ended so far, warm-up included
        self.history: dict[str, list[float]] = {"alpha": [], "r": [], "lambda": [], "mean_w": []}
        self.done = False
        self.last_terms: LossTerms | None = None

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
        names = ("warmup_epochs", "epochs", "max_extra_epochs", "alpha_start", "alpha_max", "lambda_scale",
                 "epsilon", "mask_init", "mask_lr", "mask_momentum", "mask_weight_decay", "sel_eps", "binarize",
                 "balance", "lambda_rule", "sampling", "beta_power", "beta_mode_max", "beta_concentration",
                 "beta_from")
        return {name: getattr(self, name) for name in names}

    # ------------------------------------------------------------ per batch
    def _to_device(self, device: torch.device) -> None:
        if self.mask.device == device:
            return
        moved = self.mask.detach().to(device).requires_grad_(True)
        self.mask = moved
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
        idx_t = torch.as_tensor(idx, device=self.mask.device).long()
        if idx_t.shape != per_sample.shape:
            raise DataError(f"{len(idx_t)} sample ids for {len(per_sample)} losses")
        terms = adapruner_loss(
            per_sample, self.mask[idx_t], self.mask, alpha=self.alpha, keep=self.keep,
            lambda_scale=self.lambda_scale, sel_eps=self.sel_eps, lambda_rule=self.lambda_rule,
        )
        self.last_terms = terms
        return terms.total

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
            with torch.no_grad():
                alpha = self.alpha
                r = float((self.mask > 0).float().mean())
                self.history["alpha"].append(alpha)
                self.history["r"].append(r)
                self.history["lambda"].append(adaptive_lambda(
                    r, self.keep, lambda_scale=self.lambda_scale, rule=self.lambda_rule
                ))
                self.history["mean_w"].append(float(torch.sigmoid(alpha * self.mask).mean()))
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
        return {
            "n_samples": self.n_samples,
            "keep": self.keep,
            "params": self.params(),
            "mask": self.mask.detach().cpu().clone(),
            "momentum_buffer": None if buffer is None else buffer.detach().cpu().clone(),
            "epoch": self.epoch,
            "done": self.done,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; the mask stays on this object's current device."""
        if state["n_samples"] != self.n_samples or state["keep"] != self.keep or state["params"] != self.params():
            raise ConfigError(
                "checkpoint was written by an AdaPrunerMask with other settings "
                f"(n_samples={state['n_samples']}, keep={state['keep']}); build it with the same ones"
            )
        device = self.mask.device
        with torch.no_grad():
            self.mask.copy_(state["mask"].to(device))
        buffer = state["momentum_buffer"]
        self.optimizer.buffer = None if buffer is None else buffer.to(device).clone()
        self.mask.grad = None
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
