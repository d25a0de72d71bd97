"""AdaPruner (Yang et al., "Not All Data Matters", arXiv 2312.05599).

A learnable mask entry m_i per sample, trained jointly with the network:

    w_i    = sigmoid(alpha * m_i)                                  (scaled sigmoid)
    L_cls  = mean_batch(w_i * CE_i)                                trains network and m
    L_sel  = mean_batch(w_i * -log(CE_i.detach() + sel_eps))      trains m only (PPC)
    L_comp = (sum_all(w) / N - c_r)^2                              over the whole mask (ADP)
    L      = L_cls + L_sel + lambda * L_comp,  lambda = s * |r - c_r|

with c_r the fraction to keep and r = #{w_i > 0.5} / N over all N samples. r is recomputed from
the whole mask at every step (exact, and cheap: w_i > 0.5 iff m_i > 0), so a batch never
stands in for the set. Warm-up epochs train on all samples before the mask moves; then alpha
rises uniformly from alpha_start to alpha_max over `epochs` pruning epochs; once at alpha_max,
training stops when |r - c_r| <= epsilon or after `max_extra_epochs` more epochs.

Choices the paper leaves open, as parameters (defaults in the signature):
  mask_init       initial m (1.0: every sample starts kept, w > 0.5, and is pruned down);
  mask_optimizer  plain SGD on m, so per-sample gradient sizes (the ranking signal) are kept;
                  Adam would rescale every entry to the same step size;
  mask_lr         SGD step on m; mask gradients are O(1/batch), hence the large value;
  binarize        "budget" keeps exactly round(c_r * N) samples ranked by m (ties: lower
                  index first); "threshold" keeps w > 0.5, the paper's own rule, within epsilon.

Mask entries are indexed by sample index carried with every batch, never by loader position
(the public code binds them to positions in a shuffled loader, which breaks the method).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Selector
from adaprune.registry import register_method
from adaprune.selection import select_top_k
from adaprune.tasks import Task
from adaprune.training.loop import fit

log = logging.getLogger(__name__)


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


def adaptive_lambda(r: float, keep: float, *, lambda_scale: float) -> float:
    """lambda = s * |r - c_r|: the compression term weighs more the further the mask is off budget."""
    return lambda_scale * abs(r - keep)


def adapruner_loss(
    ce: Tensor,
    batch_mask: Tensor,
    full_mask: Tensor,
    *,
    alpha: float,
    keep: float,
    lambda_scale: float,
    sel_eps: float = 1e-5,
) -> LossTerms:
    """The paper's objective for one batch. `ce` are the batch's per-sample cross-entropies,
    `batch_mask` the mask entries of those samples (gathered by sample index), `full_mask` all N."""
    w = torch.sigmoid(alpha * batch_mask)
    l_cls = (w * ce).mean()
    l_sel = (w * -torch.log(ce.detach() + sel_eps)).mean()
    w_all = torch.sigmoid(alpha * full_mask)
    l_comp = (w_all.sum() / full_mask.numel() - keep) ** 2
    # w > 0.5 exactly when m > 0 (alpha > 0); r takes no gradient.
    r = float((full_mask.detach() > 0).float().mean())
    lam = adaptive_lambda(r, keep, lambda_scale=lambda_scale)
    return LossTerms(total=l_cls + l_sel + lam * l_comp, cls=l_cls, sel=l_sel, comp=l_comp, lam=lam, r=r)


@register_method("adapruner")
class AdaPruner(Selector):
    """AdaPruner (Yang et al. 2023, arXiv 2312.05599): a per-sample mask learned with the model.

    Score = the final mask value m_i (higher = keep)."""

    supported_tasks = ("classification", "detection")

    higher_is_keep = True
    trains_model = True

    def __init__(
        self,
        *,
        warmup_epochs: int = 5,
        epochs: int = 20,
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
    ) -> None:
        if warmup_epochs < 0 or epochs < 1 or max_extra_epochs < 0:
            raise ConfigError(
                f"need warmup_epochs >= 0, epochs >= 1, max_extra_epochs >= 0; "
                f"got {warmup_epochs}, {epochs}, {max_extra_epochs}"
            )
        if not 0 < alpha_start <= alpha_max:
            raise ConfigError(f"need 0 < alpha_start <= alpha_max, got {alpha_start} and {alpha_max}")
        if binarize not in ("budget", "threshold"):
            raise ConfigError(f"binarize must be 'budget' or 'threshold', got {binarize!r}")
        if mask_lr <= 0 or epsilon < 0 or lambda_scale < 0:
            raise ConfigError("mask_lr must be > 0, epsilon and lambda_scale >= 0")
        self.warmup_epochs = warmup_epochs
        self.epochs = epochs
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

    def train_mask(
        self, task: Task, keep: float, *, seed: int, progress: bool
    ) -> tuple[Tensor, dict]:
        """Warm up, then train network and mask jointly. Returns the final mask and the history."""
        n = task.n
        device = task.device
        model = task.new_model(seed)
        if self.warmup_epochs:
            fit(model, task, seed=seed, epochs=self.warmup_epochs, progress=progress, desc="warm-up")
        mask = torch.full((n,), float(self.mask_init), device=device, requires_grad=True)
        mask_opt = MaskSGD(mask, lr=self.mask_lr, momentum=self.mask_momentum, weight_decay=self.mask_weight_decay)
        history: dict[str, list[float]] = {"alpha": [], "r": [], "lambda": [], "mean_w": []}
        state = {"alpha": self.alpha_start, "terms": None}

        def loss_fn(per_sample: Tensor, idx: Tensor) -> Tensor:
            # Any task's per-sample loss (cross-entropy, a detector's per-image loss) plays CE_i.
            terms = adapruner_loss(
                per_sample, mask[idx], mask, alpha=state["alpha"], keep=keep,
                lambda_scale=self.lambda_scale, sel_eps=self.sel_eps,
            )
            state["terms"] = terms
            return terms.total

        def on_epoch_end(epoch: int) -> bool:
            with torch.no_grad():
                r = float((mask > 0).float().mean())
                history["alpha"].append(state["alpha"])
                history["r"].append(r)
                history["lambda"].append(adaptive_lambda(r, keep, lambda_scale=self.lambda_scale))
                history["mean_w"].append(float(torch.sigmoid(state["alpha"] * mask).mean()))
            at_max = epoch >= self.epochs - 1
            state["alpha"] = alpha_at(
                epoch + 1, epochs=self.epochs, alpha_start=self.alpha_start, alpha_max=self.alpha_max
            )
            return at_max and abs(r - keep) <= self.epsilon

        state["alpha"] = alpha_at(0, epochs=self.epochs, alpha_start=self.alpha_start, alpha_max=self.alpha_max)
        fit(
            model, task, seed=seed + 1, epochs=self.epochs + self.max_extra_epochs,
            loss_fn=loss_fn, extra_optimizers=(mask_opt,), on_epoch_end=on_epoch_end,
            progress=progress, desc="adapruner",
        )
        return mask.detach().cpu(), history

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        n = task.n
        keep = n_keep / n
        mask, history = self.train_mask(task, keep, seed=seed, progress=progress)
        scores = mask.double().numpy()
        converged = abs(history["r"][-1] - keep) <= self.epsilon
        if not converged:
            # Expected with the paper's lambda rule: the selection loss pushes every w down, so the mask
            # settles a little under budget. "budget" binarisation still keeps exactly n_keep.
            (log.warning if self.binarize == "threshold" else log.info)(
                "adapruner: mask kept %.3f of samples after %d pruning epochs, target %.3f (epsilon %.3f)",
                history["r"][-1], len(history["r"]), keep, self.epsilon,
            )
        if self.binarize == "budget":
            kept = select_top_k(scores, n_keep, higher_is_keep=True)
        else:
            kept = np.flatnonzero(scores > 0)
            if len(kept) == 0:
                raise ConfigError("adapruner's mask kept no sample (binarize='threshold'); use binarize='budget'")
        details = {
            "pruning_epochs_run": len(history["r"]),
            "converged": converged,
            "mask_keep_fraction": history["r"][-1],
            "history": history,
        }
        return MethodResult(kept=kept, scores=scores, details=details)
