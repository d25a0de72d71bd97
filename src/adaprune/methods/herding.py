"""Herding (Welling 2009; used for coresets by Chen et al. 2010 and DeepCore).

Greedy: at step t, add the sample that brings the mean of the selected set closest to the mean of
all samples (of the class, with `balance=True`). The whole order is computed, so kept sets are
nested across budgets; score = -(pick order), higher = keep.

The embedding comes from `methods/_embedding.py`, shared with k-center, Moderate-DS and prototypes.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from adaprune.errors import ConfigError
from adaprune.methods._embedding import EmbeddingScorer, per_group_order
from adaprune.registry import register_method
from adaprune.tasks import Task


def herding_order(emb: np.ndarray, k: int | None = None) -> np.ndarray:
    """Indices of `emb` (N, D) in herding order, the first `k` (all by default).

    Step t picks argmin_x ||mu - (S + x) / t||, S the sum of the t-1 picked rows, i.e.
    argmin_x ||x||^2 - 2 x.(t mu - S). Each step is one mat-vec over the N rows (O(N D)), with
    x.S kept up to date incrementally; ties go to the lower index."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ConfigError(f"embedding must be (N, D), got shape {emb.shape}")
    n = len(emb)
    k = n if k is None else k
    if not 0 <= k <= n:
        raise ConfigError(f"cannot pick {k} of {n} samples")
    # Thousands of small mat-vecs: one BLAS thread is faster, and far faster on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        return _herding_order(emb, k)


def _herding_order(emb: np.ndarray, k: int) -> np.ndarray:
    n = len(emb)
    sq = np.einsum("ij,ij->i", emb, emb)
    x_mu = emb @ emb.mean(axis=0)  # x . mu, fixed
    x_s = np.zeros(n)  # x . S, S = sum of picked rows
    available = np.ones(n, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    for t in range(k):
        cost = sq - 2.0 * ((t + 1) * x_mu - x_s)
        cost[~available] = np.inf
        i = int(np.argmin(cost))
        order[t] = i
        available[i] = False
        x_s += emb @ emb[i]
    return order


@register_method("herding")
class Herding(EmbeddingScorer):
    """Herding (Welling 2009; Chen et al. 2010): greedy mean matching; score = -(pick order), higher = keep.

    Each step adds the sample that brings the selected set's mean closest to the mean of all
    samples (per class with `balance=True`, the default; class quotas then apply). Defaults:
    embedding="model" (penultimate features of a task model trained `epochs`=10), balance=True.
    embedding="standardized" uses flattened standardised inputs and trains nothing; any other value is an
    `adaprune.embed` encoder spec (e.g. "pixels:64", "clip:PATH")."""

    supported_tasks = ("classification", "detection")

    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        emb = self.embedding_of(task, seed=seed, progress=progress)
        groups = task.labels if self.balance else None
        return -per_group_order(emb, groups, herding_order).astype(np.float64)
