"""DUAL: Difficulty and Uncertainty-Aware Lightweight pruning (Cho et al., "Lightweight Dataset Pruning
without Full Training via Example Difficulty and Prediction Uncertainty", ICML 2025).

From one short training run, p_t(i) is sample i's predicted probability of its own label after
epoch t (t = 1..T). Over every window of `window` consecutive epochs,

    uncertainty_w(i) = std_w(p(i))        (sample std, ddof = 1)
    difficulty_w(i)  = 1 - mean_w(p(i))
    DUAL(i)          = mean over windows of uncertainty_w(i) * difficulty_w(i)     (higher = keep)

(the paper's code multiplies by a constant 10, which changes no ranking and no sampling weight).

Below `beta_from` pruned, the kept set is the top of DUAL. From `beta_from` on, it is drawn without
replacement with weights Beta(mu(i); a, b) * DUAL(i), mu(i) the mean of p(i) over all T epochs, so
that at high rates the draw moves toward easier samples (the paper's "Beta sampling"):

    anchor = mean of mu over the 10 highest-DUAL samples
    b      = 15 * (1 - anchor) * (1 - prune ** c_d),    a = 16 - b

At a low rate the Beta's mode sits near the anchor's (hard) probability; as prune -> 1, b -> 0 and
the mode moves to mu -> 1 (easy). The paper scores from the first 30 epochs of a 200-epoch run
with windows of 10 epochs and takes mu over the whole run; here the run is `epochs` long (default
10, window 5) and mu is taken over it. `beta_from` (default 0.5) is our choice: the paper uses the
Beta draw for its high-rate results.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Selector
from adaprune.params import Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.selection import beta_density, rank_for_keep, sample_by_weight
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.trace import run_traces

ANCHOR_COUNT = 10  # the paper's: the mean probability of the 10 highest-scored samples


def dual_scores(p_true: np.ndarray, window: int) -> np.ndarray:
    """DUAL score of every sample from a (T, N) history of true-class probabilities: the mean over
    the T - window + 1 sliding windows of std (ddof 1) times (1 - mean)."""
    p = np.asarray(p_true, dtype=np.float64)
    if p.ndim != 2:
        raise ConfigError(f"p_true must be (epochs, samples), got shape {p.shape}")
    if not 2 <= window <= p.shape[0]:
        raise ConfigError(f"window must be in [2, {p.shape[0]}] (the recorded epochs), got {window}")
    windows = np.lib.stride_tricks.sliding_window_view(p, window, axis=0)  # (T - window + 1, N, window)
    return (windows.std(axis=2, ddof=1) * (1.0 - windows.mean(axis=2))).mean(axis=0)


def dual_beta_shape(anchor: float, prune: float, c_d: float) -> tuple[float, float]:
    """(a, b) of DUAL's Beta over mean true-class probability: b = 15 (1 - anchor)(1 - prune^c_d),
    a = 16 - b (b kept above 1e-3 so the density exists when every anchor sample is certain)."""
    b = max(15.0 * (1.0 - anchor) * (1.0 - prune**c_d), 1e-3)
    return 16.0 - b, b


def dual_beta_select(
    scores: np.ndarray, mean_p: np.ndarray, n_keep: int, *, prune: float, c_d: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """DUAL's Beta draw: `n_keep` samples without replacement, weights Beta(mean_p; a, b) * score."""
    scores = np.asarray(scores, dtype=np.float64)
    top = rank_for_keep(scores, higher_is_keep=True)[: min(ANCHOR_COUNT, len(scores))]
    anchor = float(np.mean(mean_p[top]))
    a, b = dual_beta_shape(anchor, prune, c_d)
    u = np.clip(np.asarray(mean_p, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    weights = beta_density(u, a, b) * np.maximum(scores, 0.0)
    if not np.isfinite(weights).all():  # an overflow of the unnormalised density: rescale in log space
        with np.errstate(divide="ignore"):
            logw = (a - 1) * np.log(u) + (b - 1) * np.log1p(-u) + np.log(np.maximum(scores, 0.0))
        weights = np.exp(logw - np.max(logw[np.isfinite(logw)]))
        weights[~np.isfinite(weights)] = 0.0
    kept = sample_by_weight(weights, n_keep, rng=rng)
    return kept, {"anchor": anchor, "beta_a": a, "beta_b": b}


@register_method("dual")
class DUAL(Selector):
    """DUAL (Cho et al., ICML 2025): uncertainty x difficulty from early training, Beta sampling at high rates.

    Score = mean over sliding windows of `window` epochs of std(p) * (1 - mean(p)), p the predicted
    probability of the true label after each of `epochs` epochs (higher = keep). Below `beta_from`
    pruned: the top of the score; from it on: a seeded draw weighted by a Beta over mean p (whose mode
    moves toward easy samples as the rate grows, via `c_d`) times the score.

    Parameters:
        epochs: training epochs whose end-of-epoch true-class probabilities are recorded
        window: epochs in each sliding window of the mean and std (at least 2; cut to `epochs` when longer)
        c_d: exponent of the pruning rate in the Beta's b = 15 (1 - anchor)(1 - prune^c_d)
        beta_from: pruning rate from which the Beta draw replaces the plain top of the score (1: never)"""

    higher_is_keep = True
    # Scores near 0 are both certain and easy; the high end is uncertain and hard.
    higher_is_hard: ClassVar[bool | None] = True
    trains_model = True

    param_spec = ParamSpec({
        "epochs": Interval(int, 2, None),  # a window of probabilities needs two epochs at least
        "window": Interval(int, 2, None),
        "c_d": Interval(float, 0, None, closed="neither"),
        "beta_from": Interval(float, 0, 1),
    })

    def __init__(self, *, epochs: int = 10, window: int = 5, c_d: float = 4.0, beta_from: float = 0.5) -> None:
        self.epochs = epochs
        self.window = window
        self.c_d = c_d
        self.beta_from = beta_from

    def trace_probabilities(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        """(epochs, N) true-class probabilities of one training run (model seed seed * 1000)."""
        trace = next(iter(run_traces(task, seed=seed, epochs=self.epochs, runs=1, progress=progress, desc="dual")))
        return trace.p_true

    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        self.check_task(task)
        p_true = self.trace_probabilities(task, seed=seed, progress=progress)
        window = min(self.window, self.epochs)
        scores = dual_scores(p_true, window)
        prune = 1.0 - n_keep / task.n
        if prune + 0.5 / task.n < self.beta_from:
            kept = np.sort(rank_for_keep(scores, higher_is_keep=True)[:n_keep]).astype(np.int64)
            return MethodResult(kept=kept, scores=scores, details={"sampling": "top", "window": window})
        rng = np.random.default_rng([seed, 0xD0A1])
        kept, details = dual_beta_select(scores, p_true.mean(axis=0), n_keep, prune=prune, c_d=self.c_d, rng=rng)
        return MethodResult(kept=kept, scores=scores, details={"sampling": "beta", "window": window, **details})
