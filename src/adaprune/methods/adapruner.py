"""AdaPruner (Yang et al., "Not All Data Matters", arXiv 2312.05599).

A learnable mask entry m_i per sample, trained jointly with the network:

    w_i    = sigmoid(alpha * m_i)                                  (scaled sigmoid)
    L_cls  = mean_batch(w_i * CE_i)                                trains network and m
    L_sel  = mean_batch(w_i * -log(CE_i.detach() + sel_eps))      trains m only (PPC)
    L_comp = (sum_all(w) / N - c_r)^2                              over the whole mask (ADP)
    L      = L_cls + L_sel + lambda * L_comp,  lambda = s * |r - c_r|

with c_r the fraction to keep and r = #{w_i > 0.5} / N over all N samples (w_i > 0.5 iff
m_i > 0), so a batch never stands in for the set: recounted over the whole mask at every step
with update="exact"; with update="lazy" a maintained count, exact for each entry as of its last
update and recounted at every epoch's flush (the default "auto" is lazy from 100,000 samples on).
Warm-up epochs train on all samples before the mask moves; then alpha rises uniformly from
alpha_start to alpha_max over `epochs` pruning epochs; once at alpha_max, training stops when
|r - c_r| <= epsilon or after `max_extra_epochs` more epochs.

Choices the paper leaves open, as parameters (defaults in the signature):
  mask_init       initial m (1.0: every sample starts kept, w > 0.5, and is pruned down);
  mask_optimizer  plain SGD on m, so per-sample gradient sizes (the ranking signal) are kept;
                  Adam would rescale every entry to the same step size;
  mask_lr         SGD step on m; mask gradients are O(1/batch), hence the large value;
  binarize        "budget" keeps exactly round(c_r * N) samples ranked by m (ties: lower
                  index first); "threshold" keeps w > 0.5, the paper's own rule, within epsilon;
  balance         with "budget": "none" ranks all samples at once, "class" keeps per-class
                  quotas in proportion to class sizes (so no class is wiped out);
  lambda_rule     "adaptive" is the paper's lambda = s * |r - c_r|; "constant" uses lambda = s;
  update          "lazy" (O(batch) a step; compression applied to untouched entries when next seen,
                  flushed every epoch), "exact" (all N entries every step), or "auto" (the default:
                  lazy from LAZY_FROM = 100,000 samples on, where it is the cheaper of the two and one
                  step moves an entry little; exact below).

Mask entries are indexed by sample index carried with every batch, never by loader position
(the public code binds them to positions in a shuffled loader, which breaks the method).
"""

from __future__ import annotations

import numpy as np

# The loss terms, the schedule and the mask's optimizer are written once, in adapruner_mask.
from adaprune.adapruner_mask import ADAPRUNER_SPEC, AdaPrunerMask, check_adapruner_params
from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Selector
from adaprune.registry import register_method
from adaprune.tasks import Task
from adaprune.training.loop import fit


@register_method("adapruner")
class AdaPruner(Selector):
    """AdaPruner (Yang et al. 2023, arXiv 2312.05599): a per-sample mask learned with the model.

    Score = the final mask value m_i (higher = keep).

    Parameters:
        balance: none: one global ranking of m; class: per-class quotas in proportion to class sizes
            (budget); auto: class when the task has labels, none otherwise
        lambda_rule: adaptive: lambda = s * |r - c_r| (the paper's); constant: lambda = s
        update: lazy: the mask step costs O(batch), untouched entries catch up when next seen (see
            adaprune.adapruner_lazy); exact: every step updates all N entries; auto: lazy from 100,000 samples
        sampling: top: the highest m (the paper's ranking); beta: a seeded draw weighted by a Beta over
            the within-class rank of m, mode min(beta_mode_max, 1 - prune**beta_power)
        beta_power: how fast the Beta's mode leaves the hard end as the pruning rate grows (sampling=beta)
        beta_mode_max: highest mode of the Beta over the rank of m (below 1: the hardest tail is left out)
        beta_concentration: a + b of the Beta over the rank of m; larger = a narrower band (sampling=beta)
        beta_from: pruned fraction from which sampling=beta applies; below it, the n_keep highest m (with
            class quotas only for balance=class), the paper's rule, which wins at low rates
    """

    supported_tasks = ("classification", "detection")

    higher_is_keep = True
    trains_model = True
    param_spec = ADAPRUNER_SPEC  # the same parameters as AdaPrunerMask

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
        balance: str = "auto",
        lambda_rule: str = "adaptive",
        update: str = "auto",
        sampling: str = "beta",
        beta_power: float = 6.0,
        beta_mode_max: float = 0.875,
        beta_concentration: float = 20.0,
        beta_from: float = 0.5,
    ) -> None:
        check_adapruner_params(alpha_start=alpha_start, alpha_max=alpha_max, binarize=binarize, balance=balance)
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
        self.balance = balance
        self.lambda_rule = lambda_rule
        self.update = update
        self.sampling = sampling
        self.beta_power = beta_power
        self.beta_mode_max = beta_mode_max
        self.beta_concentration = beta_concentration
        self.beta_from = beta_from

    def new_mask(self, n: int, keep: float, *, labels: np.ndarray | None = None) -> AdaPrunerMask:
        """The mask object this method drives, with this method's parameters (`labels`: the class
        of each sample, needed by balance='class')."""
        return AdaPrunerMask(n, keep=keep, labels=labels, **self.params())

    def train_mask(self, task: Task, keep: float, *, seed: int, progress: bool) -> AdaPrunerMask:
        """Warm up, then train network and mask jointly, in one run of the training loop (seed
        `seed`: model initialisation and batch order), exactly as a user's loop drives
        AdaPrunerMask. Any task's per-sample loss (cross-entropy, a detector's per-image loss)
        plays CE_i. Returns the trained mask object."""
        labels = None
        if self.balance in ("class", "auto"):
            labels = getattr(task, "labels", None)
            if labels is None and self.balance == "class":
                raise ConfigError("adapruner balance='class' needs one class label per sample; this task has none")
        pruner = self.new_mask(task.n, keep, labels=labels)
        model = task.new_model(seed)
        fit(
            model, task, seed=seed, epochs=pruner.total_epochs, loss_fn=pruner.loss,
            extra_optimizers=(pruner,), on_epoch_end=lambda epoch: pruner.end_epoch(),
            progress=progress, desc="adapruner",
        )
        return pruner

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        selection = self.train_mask(task, n_keep / task.n, seed=seed, progress=progress).selection(seed=seed)
        return MethodResult(kept=selection.kept, scores=selection.scores, details=selection.details)
