"""CCS: Coverage-centric Coreset Selection (Zheng et al., "Coverage-centric Coreset Selection for
High Pruning Rates", ICLR 2023), over any registered scoring method.

1. Score every sample with the base method. Its declared direction says which end it keeps; that
   end is "hard" (EL2N, forgetting: high scores). For a base whose direction flips with the budget,
   the direction it declares (before any flip) defines "hard".
2. Drop the hardest `beta` fraction: round(beta * N) samples (ties: lower index counts as harder).
   If that leaves fewer samples than the budget, drop only N - n_keep (recorded in details).
3. Split the range [min, max] of the remaining scores into `strata` equal-width bins.
4. Allocate the budget from the smallest non-empty stratum up: each gets
   min(its size, floor(remaining budget / strata left)) (`ccs_allocation`; exact whenever the
   budget fits), and sample that many uniformly at random (seeded) inside the stratum.

Samples whose base score is NaN belong to no stratum and are never dropped as hard; they are
kept (lowest index first) only when the non-NaN samples cannot fill the budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Scorer, Selector
from adaprune.registry import build_method, get_method, method_parameters, register_method
from adaprune.selection import rank_for_keep
from adaprune.tasks.classification import ClassificationTask


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
    hard_is_high: bool,
    beta: float,
    strata: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """CCS on precomputed base scores: sorted kept indices and diagnostics (see the module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if not 0 < n_keep <= n:
        raise ConfigError(f"cannot keep {n_keep} of {n} samples")
    valid = np.flatnonzero(~np.isnan(scores))
    n_drop_requested = int(round(beta * n))
    n_drop = max(0, min(n_drop_requested, len(valid) - n_keep))
    # Hardest first among the scored samples; ties: lower index first.
    by_hardness = valid[rank_for_keep(scores[valid], higher_is_keep=hard_is_high)]
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
    "hard" is the end the base keeps. Defaults: beta=0.1 (0 allowed), strata=50 equal-width score
    bins, budget allocated from the smallest stratum up, uniform seeded sampling inside strata.
    `epochs`, when set, is passed to a base that trains. Scores in the result are the base's."""

    trains_model = True

    def __init__(
        self,
        *,
        base: str = "el2n",
        base_params: Mapping[str, Any] | None = None,
        beta: float = 0.1,
        strata: int = 50,
        epochs: int | None = None,
    ) -> None:
        if not isinstance(base, str) or base == "ccs":
            raise ConfigError(f"base must be the name of a scoring method other than 'ccs', got {base!r}")
        if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
            raise ConfigError(f"beta must be in [0, 1), got {beta!r}")
        if not (isinstance(strata, int) and strata >= 1):
            raise ConfigError(f"strata must be an integer >= 1, got {strata!r}")
        if epochs is not None and not (isinstance(epochs, int) and epochs >= 1):
            raise ConfigError(f"epochs must be an integer >= 1 or None, got {epochs!r}")
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
        params = dict(self.base_params or {})
        if self.epochs is not None and "epochs" in method_parameters(cls) and "epochs" not in params:
            params["epochs"] = self.epochs
        return build_method(self.base, params)

    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        base = self.base_method()
        score_set = base.score_set(task, seed=seed, progress=progress)
        hard_is_high = score_set.direction.higher_is_keep
        rng = np.random.default_rng([seed, 0xCC5])
        kept, details = ccs_select(
            score_set.scores, n_keep, hard_is_high=hard_is_high, beta=self.beta, strata=self.strata, rng=rng
        )
        details = {"base": self.base, "base_params": base.params(), "base_higher_is_keep": hard_is_high, **details}
        return MethodResult(kept=kept, scores=score_set.scores, details=details)
