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

import logging

import numpy as np
import torch

# The loss terms, the schedule and the mask's optimizer are written once, in adapruner_mask.
from adaprune.adapruner_mask import ADAPRUNER_SPEC, AdaPrunerMask, beta_mode, check_adapruner_params
from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Selector
from adaprune.registry import register_method
from adaprune.selection import select_beta_rank, select_top_k
from adaprune.tasks import Task
from adaprune.training.loop import fit

log = logging.getLogger(__name__)


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
            the within-class rank of m, mode min(beta_mode_max, 1 - prune**beta_power); pick: from
            beta_from on (class labels needed), the rule among class_top, beta, beta_mid and class-stratified
            random whose subset trains the best proxy on a validation split carved from the training set
        beta_power: how fast the Beta's mode leaves the hard end as the pruning rate grows (sampling=beta)
        beta_mode_max: highest mode of the Beta over the rank of m (below 1: the hardest tail is left out)
        beta_concentration: a + b of the Beta over the rank of m; larger = a narrower band (sampling=beta)
        beta_from: pruned fraction from which sampling=beta applies; below it, the n_keep highest m (with
            class quotas only for balance=class), the paper's rule, which wins at low rates
        pick_epochs: epochs each proxy model trains on a candidate subset (sampling=pick)
        pick_draws: draws (proxy seeds and rule draws) averaged per candidate rule (sampling=pick)
        pick_val_fraction: share of each class held out as the picker's validation split (sampling=pick,
            and the held-out part that measures data scarcity for sampling=beta)
        scarce_below: with sampling=beta from beta_from on (class labels needed): a proxy model trained
            pick_epochs epochs on the rest of the training set is scored on a stratified pick_val_fraction
            held out of it; held-out accuracy below scarce_below counts as scarce data (Sorscher et al.
            2022: keep easier samples when data is scarce) and the draw uses scarce_mode and
            scarce_concentration instead; 0 turns the check (and its proxy training) off
        scarce_mode: the Beta's mode over the within-class rank of m when the data is scarce
        scarce_concentration: a + b of the Beta when the data is scarce (lower = broader)
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
        pick_epochs: int = 30,
        pick_draws: int = 2,
        pick_val_fraction: float = 0.2,
        scarce_below: float = 0.8,
        scarce_mode: float = 0.5,
        scarce_concentration: float = 6.0,
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
        self.pick_epochs = pick_epochs
        self.pick_draws = pick_draws
        self.pick_val_fraction = pick_val_fraction
        self.scarce_below = scarce_below
        self.scarce_mode = scarce_mode
        self.scarce_concentration = scarce_concentration

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

    def picks(self, task: Task, n_keep: int) -> bool:
        """Whether sampling='pick' runs the validation picker for this task and budget: budget
        binarisation, class labels (balance class/auto) and at least beta_from pruned."""
        labels = getattr(task, "labels", None)
        prune = 1.0 - n_keep / task.n
        return (self.sampling == "pick" and self.binarize == "budget" and self.balance in ("class", "auto")
                and labels is not None and prune + 0.5 / task.n >= self.beta_from)

    def checks_scarcity(self, task: Task, n_keep: int) -> bool:
        """Whether sampling='beta' measures data scarcity for this task and budget (scarce_below > 0,
        budget binarisation, class labels, at least beta_from pruned)."""
        labels = getattr(task, "labels", None)
        prune = 1.0 - n_keep / task.n
        return (self.sampling == "beta" and self.scarce_below > 0 and self.binarize == "budget"
                and self.balance in ("class", "auto") and labels is not None and prune + 0.5 / task.n >= self.beta_from)

    def scarcity_kept(self, kept: np.ndarray, scores: np.ndarray, n_keep: int, labels: np.ndarray, *, seed: int,
                      accuracy: float) -> tuple[np.ndarray, dict]:
        """The kept set after the scarcity check, given the proxy's held-out `accuracy`: `kept` (the
        default draw) unless accuracy < scarce_below, else the Beta draw at scarce_mode and
        scarce_concentration (class quotas from `labels`, seeded by `seed`). Also a report."""
        scarce = bool(accuracy < self.scarce_below)
        if scarce:
            kept = select_beta_rank(scores, n_keep, mode=self.scarce_mode, concentration=self.scarce_concentration,
                                    rng=np.random.default_rng([int(seed), 0xADA]), strata=labels)
        log.info("adapruner: held-out accuracy %.3f (scarce below %.3f): %s draw", accuracy, self.scarce_below,
                 "the scarce-data" if scarce else "the default")
        return kept, {"holdout_accuracy": float(accuracy), "scarce_below": self.scarce_below, "scarce": scarce}

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        mask = self.train_mask(task, n_keep / task.n, seed=seed, progress=progress)
        selection = mask.selection(seed=seed)
        details = dict(selection.details)
        kept = selection.kept
        if self.checks_scarcity(task, n_keep):
            accuracy = holdout_accuracy(task, seed=seed, epochs=self.pick_epochs, val_fraction=self.pick_val_fraction)
            kept, details["scarcity"] = self.scarcity_kept(kept, mask.scores(), n_keep, np.asarray(task.labels),
                                                           seed=seed, accuracy=accuracy)
        if self.picks(task, n_keep):
            scores = mask.scores()
            rule, report = pick_rule(
                task, scores, n_keep, seed=seed, epochs=self.pick_epochs, draws=self.pick_draws,
                val_fraction=self.pick_val_fraction, beta_mode=beta_mode(
                    n_keep / task.n, beta_power=self.beta_power, beta_mode_max=self.beta_mode_max),
                beta_concentration=self.beta_concentration,
            )
            kept = draw_rule(rule, scores, n_keep, np.asarray(task.labels), seed=seed,
                             beta_mode=report["beta_mode"], beta_concentration=self.beta_concentration)
            details["pick"] = report
            log.info("adapruner: sampling='pick' chose %s (validation accuracy %s)", rule, report["val_accuracy"])
        return MethodResult(kept=kept, scores=selection.scores, details=details)


# ------------------------------------------------------------------ sampling="pick"
# The candidate rules, in the order ties are broken (the earlier wins). class_top: per-class top of m;
# beta: the Beta draw of sampling="beta"; beta_mid: the same draw with its mode at the middle of each
# class's rank; random: class-stratified uniform (the floor: what the mask's rank must beat).
PICK_RULES = ("beta", "class_top", "beta_mid", "random")
MID_MODE = 0.5


def draw_rule(rule: str, scores: np.ndarray, n_keep: int, labels: np.ndarray, *, seed: int,
              beta_mode: float, beta_concentration: float) -> np.ndarray:
    """Kept indices (sorted) of `n_keep` samples drawn by candidate `rule` from the ranking `scores`,
    class quotas from `labels`; the draw is seeded by `seed`."""
    rng = np.random.default_rng([int(seed), 0xADA])
    if rule == "class_top":
        return select_top_k(scores, n_keep, higher_is_keep=True, strata=labels)
    if rule == "random":
        return select_top_k(rng.random(len(scores)), n_keep, higher_is_keep=True, strata=labels)
    mode = beta_mode if rule == "beta" else MID_MODE
    return select_beta_rank(scores, n_keep, mode=mode, concentration=beta_concentration, rng=rng, strata=labels)


def stratified_holdout(labels: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """A boolean mask of held-out samples: round(fraction * n_c) of each class c (at least one when
    the class has two or more), drawn with `seed`."""
    rng = np.random.default_rng([int(seed), 0x5A1])
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        held[rng.choice(members, size=k, replace=False)] = True
    return held


def holdout_accuracy(task: Task, *, seed: int, epochs: int, val_fraction: float) -> float:
    """Accuracy on a stratified `val_fraction` held out of the training set (seeded as the picker's)
    of a fresh task model trained `epochs` epochs on the rest (seed `seed`): how well the data at hand
    generalises, the scarcity signal of sampling='beta'. The test split is never read."""
    labels = np.asarray(task.labels)
    held = stratified_holdout(labels, val_fraction, seed=seed)
    val, pool = np.flatnonzero(held), np.flatnonzero(~held)
    model = task.new_model(seed, indices=pool)
    fit(model, task, seed=seed, indices=torch.as_tensor(pool), epochs=epochs, progress=False, desc="scarcity proxy")
    pred = task.logits(model, torch.as_tensor(val)).argmax(1)
    return float((pred == torch.as_tensor(labels[val])).double().mean())


def pick_rule(task: Task, scores: np.ndarray, n_keep: int, *, seed: int, epochs: int, draws: int,
              val_fraction: float, beta_mode: float, beta_concentration: float) -> tuple[str, dict]:
    """Choose a candidate rule on held-out training data. A stratified `val_fraction` of the
    training set is held out (seeded); each rule draws the same kept fraction from the rest, ranked
    by `scores`, a fresh task model trains `epochs` epochs on it, and its accuracy on the held-out
    samples is averaged over `draws` draws (draw d: rule seed and model seed `seed` + d). The test
    split is never read. Returns the best rule (ties: the earlier in PICK_RULES) and a report."""
    labels = np.asarray(task.labels)
    held = stratified_holdout(labels, val_fraction, seed=seed)
    val, pool = np.flatnonzero(held), np.flatnonzero(~held)
    k_pool = max(1, round(n_keep / task.n * len(pool)))
    y_val = torch.as_tensor(labels[val])
    accs: dict[str, list[float]] = {rule: [] for rule in PICK_RULES}
    for d in range(draws):
        for rule in PICK_RULES:
            local = draw_rule(rule, scores[pool], k_pool, labels[pool], seed=seed + d,
                              beta_mode=beta_mode, beta_concentration=beta_concentration)
            kept = pool[local]
            model = task.new_model(seed + d, indices=kept)
            fit(model, task, seed=seed + d, indices=torch.as_tensor(kept), epochs=epochs, progress=False,
                desc=f"pick {rule}")
            pred = task.logits(model, torch.as_tensor(val)).argmax(1)
            accs[rule].append(float((pred == y_val).double().mean()))
    means = {rule: float(np.mean(v)) for rule, v in accs.items()}
    best = max(PICK_RULES, key=lambda rule: (means[rule], -PICK_RULES.index(rule)))
    report = {"rule": best, "val_accuracy": means, "val_accuracy_draws": accs, "n_val": int(len(val)),
              "n_pool": int(len(pool)), "proxy_epochs": epochs, "draws": draws, "beta_mode": beta_mode}
    return best, report
