"""CCS: Coverage-centric Coreset Selection (Zheng et al., "Coverage-centric Coreset Selection for
High Pruning Rates", ICLR 2023), over any registered scoring method.

1. Score every sample with the base method. The base declares which end of its score is hard
   (`higher_is_hard`), apart from the end it keeps: EL2N and forgetting keep their hard (high) end,
   while AUM keeps its high end and its hard end is the low one (negative margins: likely
   mislabelled), so "the end the base keeps" is not "hard" in general.
2. Drop the hardest `beta` fraction: round(beta * N) samples (ties: lower index counts as harder).
   If that leaves fewer samples than the budget, drop only N - n_keep (recorded in details).
3. Split the range [min, max] of the remaining scores into `strata` equal-width bins.
4. Allocate the budget from the smallest non-empty stratum up: each gets
   min(its size, floor(remaining budget / strata left)) (`ccs_allocation`; exact whenever the
   budget fits), and sample that many uniformly at random (seeded) inside the stratum.

The hard cut-off beta (default: per pruning rate, `paper_beta`) follows the paper, which sets it
per rate by grid search, 0 at low rates and larger only at high ones. The table we follow:

    pruning rate     beta    where it comes from
    below 70%        0       the paper: no hard cut-off at low rates (CIFAR-10 30%, 50%)
    70% to < 80%     0.1     the paper's CIFAR-10 appendix value at 70% (as we read it)
    80% to < 90%     0.2     the official code's README: ImageNet at 80% pruned, --mis-ratio 0.2
    90% and above    0.3     the official code's README: CIFAR-10 and ImageNet at 90%, --mis-ratio 0.3

A rate between two rows takes the row below it (the realised rate, within half a sample).

Samples whose base score is NaN belong to no stratum and are never dropped as hard; they are
kept (lowest index first) only when the non-NaN samples cannot fill the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods._labels import method_uses_labels
from adaprune.methods.base import MethodResult, Scorer, Selector
from adaprune.params import AnyString, Interval, MappingValue, ParamSpec
from adaprune.registry import build_method, get_method, method_parameters, register_method
from adaprune.selection import rank_for_keep
from adaprune.tasks.classification import ClassificationTask

log = logging.getLogger(__name__)

# (pruning rate from which it applies, beta): see the module docstring for the sources.
PAPER_BETA: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.7, 0.1), (0.8, 0.2), (0.9, 0.3))


def paper_beta(prune: float, *, tolerance: float = 1e-9) -> float:
    """The hard cut-off CCS's paper uses at pruning rate `prune` (the row of PAPER_BETA below it)."""
    if not 0.0 <= prune < 1.0:
        raise ConfigError(f"prune must be in [0, 1), got {prune}")
    beta = 0.0
    for start, value in PAPER_BETA:
        if prune + tolerance >= start:
            beta = value
    return beta


def ccs_allocation(sizes: Sequence[int], budget: int) -> np.ndarray:
    """Per-stratum counts for a budget: visit non-empty strata from smallest to largest (ties: lower
    index first), giving each min(size, floor(remaining budget / strata not yet visited)).

    The counts sum to exactly `budget` (the last stratum takes what is left, and every earlier
    stratum that takes less than its fair share takes all of itself)."""
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    if sizes_arr.ndim != 1 or (sizes_arr < 0).any():
        raise ConfigError(f"sizes must be non-negative counts, got {list(sizes_arr)}")
    if not 0 <= budget <= int(sizes_arr.sum()):
        raise ConfigError(f"budget {budget} is outside [0, {int(sizes_arr.sum())}]")
    counts = np.zeros(len(sizes_arr), dtype=np.int64)
    nonempty = np.flatnonzero(sizes_arr > 0)
    order = nonempty[np.argsort(sizes_arr[nonempty], kind="stable")]
    remaining = int(budget)
    for left, j in zip(range(len(order), 0, -1), order, strict=True):
        counts[j] = min(int(sizes_arr[j]), remaining // left)
        remaining -= int(counts[j])
    assert remaining == 0, "ccs_allocation: budget not met"
    return counts


def equal_width_strata(scores: np.ndarray, strata: int) -> np.ndarray:
    """Stratum (0..strata-1) of each score: `strata` equal-width bins over [min, max], max in the last."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return np.zeros(len(scores), dtype=np.int64)
    return np.clip(np.floor((scores - lo) / (hi - lo) * strata).astype(np.int64), 0, strata - 1)


def ccs_select(
    scores: np.ndarray,
    n_keep: int,
    *,
    hard_is_high: bool | None,
    beta: float,
    strata: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """CCS on precomputed base scores: sorted kept indices and diagnostics (see the module doc).
    `hard_is_high=None` (a score with no hard end) allows only beta = 0."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if not 0 < n_keep <= n:
        raise ConfigError(f"cannot keep {n_keep} of {n} samples")
    if hard_is_high is None and beta > 0:
        raise ConfigError(f"a score with no hard end needs beta = 0, got {beta:g}")
    valid = np.flatnonzero(~np.isnan(scores))
    n_drop_requested = int(round(beta * n))
    n_drop = max(0, min(n_drop_requested, len(valid) - n_keep))
    # Hardest first among the scored samples; ties: lower index first.
    by_hardness = valid[rank_for_keep(scores[valid], higher_is_keep=bool(hard_is_high))]
    pool = by_hardness[n_drop:]
    kept_parts = []
    n_from_pool = min(n_keep, len(pool))
    sizes = np.zeros(strata, dtype=np.int64)
    counts = np.zeros(strata, dtype=np.int64)
    if n_from_pool:
        pool = np.sort(pool)
        bins = equal_width_strata(scores[pool], strata)
        sizes = np.bincount(bins, minlength=strata)
        counts = ccs_allocation(sizes, n_from_pool)
        for j in np.flatnonzero(counts):
            members = pool[bins == j]
            kept_parts.append(rng.choice(members, size=int(counts[j]), replace=False))
    if n_keep > n_from_pool:  # only NaN-scored samples are left to fill the budget
        kept_parts.append(np.flatnonzero(np.isnan(scores))[: n_keep - n_from_pool])
    kept = np.sort(np.concatenate(kept_parts)).astype(np.int64)
    details = {
        "n_dropped_hard": int(n_drop),
        "n_dropped_hard_requested": n_drop_requested,
        "stratum_sizes": sizes.tolist(),
        "stratum_counts": counts.tolist(),
        "n_nan_scores": int(n - len(valid)),
    }
    return kept, details


@register_method("ccs")
class CCS(Selector):
    """CCS (Zheng et al., ICLR 2023): drop the hardest beta of a base score, then sample evenly over score strata.

    Wraps a registered scoring method `base` (default "el2n", its parameters in `base_params`);
    "hard" is the end the base declares hard (`higher_is_hard`: AUM's low margins, EL2N's high
    error). Defaults: beta=None (the paper's value for the pruning rate: 0 below 70% pruned, 0.1,
    0.2 and 0.3 from 70, 80 and 90%), strata=50 equal-width score bins, budget allocated from the
    smallest stratum up, uniform seeded sampling inside strata. `epochs`, when set, is passed to a
    base that trains. Scores in the result are the base's.

    Parameters:
        base: name of the registered scoring method whose score is stratified
        base_params: keyword parameters of the base method
        beta: fraction of all samples dropped from the hard end first; None = the paper's per-rate table
        strata: number of equal-width score bins sampled evenly
        epochs: training epochs passed to a base that trains (None = the base's default)"""

    trains_model = True
    param_spec = ParamSpec({
        "base": AnyString("the name of a scoring method"),
        "base_params": [MappingValue(), None],
        "beta": [Interval(float, 0, 1, closed="left"), None],  # None: the paper's value per pruning rate
        "strata": Interval(int, 1, None),
        "epochs": [Interval(int, 1, None), None],
    })

    def __init__(
        self,
        *,
        base: str = "el2n",
        base_params: Mapping[str, Any] | None = None,
        beta: float | None = None,
        strata: int = 50,
        epochs: int | None = None,
    ) -> None:
        if base == "ccs":
            raise ConfigError(f"base must be the name of a scoring method other than 'ccs', got {base!r}")
        self.base = base
        self.base_params = dict(base_params) if base_params is not None else None
        self.beta = beta
        self.strata = strata
        self.epochs = epochs

    def base_method(self) -> Scorer:
        """The configured base scorer (resolved when used, so any registered scorer works)."""
        cls = get_method(self.base)
        if not issubclass(cls, Scorer):
            raise ConfigError(f"ccs needs a scoring method as base; {self.base!r} owns its keep decision")
        if not hasattr(cls, "higher_is_hard"):
            raise ConfigError(f"ccs needs a base that declares its hard end (higher_is_hard); {self.base!r} does not")
        params = dict(self.base_params or {})
        if self.epochs is not None and "epochs" in method_parameters(cls) and "epochs" not in params:
            params["epochs"] = self.epochs
        return build_method(self.base, params)

    def uses_labels(self, data: object) -> bool:
        return method_uses_labels(self.base_method(), data)

    def resolve_beta(self, n_keep: int, n: int, hard_is_high: bool | None) -> float:
        """The beta this run uses: the given one, or the paper's for the realised pruning rate."""
        if self.beta is not None:
            if hard_is_high is None and self.beta > 0:
                raise ConfigError(
                    f"ccs base {self.base!r} has no hard end to drop from; use beta=0, got beta={self.beta:g}"
                )
            return float(self.beta)
        beta = paper_beta(1.0 - n_keep / n, tolerance=0.5 / n)
        if hard_is_high is None and beta > 0:
            log.info("ccs: base %r has no hard end; beta 0 instead of the paper's %g", self.base, beta)
            return 0.0
        return beta

    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        base = self.base_method()
        hard_is_high = type(base).higher_is_hard
        beta = self.resolve_beta(n_keep, task.n, hard_is_high)
        score_set = base.score_set(task, seed=seed, progress=progress)
        rng = np.random.default_rng([seed, 0xCC5])
        kept, details = ccs_select(
            score_set.scores, n_keep, hard_is_high=hard_is_high, beta=beta, strata=self.strata, rng=rng
        )
        details = {"base": self.base, "base_params": base.params(), "base_higher_is_hard": hard_is_high,
                   "beta": beta, **details}
        return MethodResult(kept=kept, scores=score_set.scores, details=details)
