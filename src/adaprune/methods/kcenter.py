"""k-Center greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach", ICLR 2018).

Start from one point, then repeatedly add the point farthest (Euclidean) from the selected set,
keeping each point's distance to its nearest selected centre up to date after every pick. The
whole order is computed, so kept sets are nested across budgets; score = -(pick order).

Memory is O(N) beyond the embedding: no N x N distance matrix; each update is one mat-vec,
squared distances ||x||^2 - 2 x.c + ||c||^2 from the new centre c to every point (clipped at 0),
and an elementwise minimum. O(N D) per pick, in float64.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from adaprune.errors import ConfigError
from adaprune.methods._embedding import EmbeddingScorer, per_group_order
from adaprune.params import StrOptions
from adaprune.registry import register_method
from adaprune.tasks import Task

STARTS = ("random", "mean")


def kcenter_order(
    emb: np.ndarray,
    k: int | None = None,
    *,
    start: str = "random",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of `emb` (N, D) in k-center greedy order, the first `k` (all by default).

    `start="random"` begins at a point drawn with `rng`; `start="mean"` at the point nearest the
    mean (deterministic). Ties for the farthest point go to the lower index."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or len(emb) == 0:
        raise ConfigError(f"embedding must be a non-empty (N, D) array, got shape {emb.shape}")
    n = len(emb)
    k = n if k is None else k
    if not 0 <= k <= n:
        raise ConfigError(f"cannot pick {k} of {n} samples")
    if start not in STARTS:
        raise ConfigError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if start == "random":
        if rng is None:
            raise ConfigError("start='random' needs a numpy Generator (rng)")
        first = int(rng.integers(n))
    else:
        sq = np.einsum("ij,ij->i", emb, emb)
        first = int(np.argmin(_sq_distances(emb, sq, emb.mean(axis=0))))
    # Thousands of small mat-vecs: one BLAS thread is faster, and far faster on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        return _kcenter_order(emb, k, first)


def _sq_distances(emb: np.ndarray, sq: np.ndarray, centre: np.ndarray) -> np.ndarray:
    d = sq - 2.0 * (emb @ centre) + float(centre @ centre)
    return np.maximum(d, 0.0, out=d)


def _kcenter_order(emb: np.ndarray, k: int, first: int) -> np.ndarray:
    order = np.empty(k, dtype=np.int64)
    if k == 0:
        return order
    sq = np.einsum("ij,ij->i", emb, emb)
    min_dist = np.full(len(emb), np.inf)  # squared distance to the nearest picked point
    picked = np.zeros(len(emb), dtype=bool)
    i = first
    for t in range(k):
        order[t] = i
        picked[i] = True
        if t == k - 1:
            break
        np.minimum(min_dist, _sq_distances(emb, sq, emb[i]), out=min_dist)
        # Picked points have distance 0 already; -1 also keeps them out when every point is a duplicate.
        i = int(np.argmax(np.where(picked, -1.0, min_dist)))
    return order


@register_method("kcenter")
class KCenterGreedy(EmbeddingScorer):
    """k-Center greedy (Sener & Savarese, ICLR 2018): add the farthest point; score = -(pick order), higher = keep.

    Defaults: embedding="model" (penultimate features of a task model trained `epochs`=10),
    balance=True (one greedy run per class, class quotas), start="random" (the first centre is a
    point drawn from the seed; "mean" starts at the point nearest the mean, needing no randomness).
    embedding="standardized" uses flattened standardised inputs and trains nothing; any other value is an
    `adaprune.embed` encoder spec (e.g. "pixels:64", "clip:PATH").

    Parameters:
        start: first centre: random (drawn from the seed) or mean (the point nearest the mean)"""

    # The hard end (CCS drops its hardest beta there): early picks (high score) are the outlying samples farthest
    # from the rest.
    higher_is_hard: ClassVar[bool | None] = True

    supported_tasks = ("classification", "detection")
    param_spec = EmbeddingScorer.param_spec.extend({"start": StrOptions(STARTS)})

    def __init__(
        self, *, embedding: str = "model", epochs: int = 10, balance: bool = True, start: str = "random"
    ) -> None:
        super().__init__(embedding=embedding, epochs=epochs, balance=balance)
        self.start = start

    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        emb = self.embedding_of(task, seed=seed, progress=progress)
        groups = task.labels if self.balance else None
        rng = np.random.default_rng(seed)

        def kernel(e: np.ndarray) -> np.ndarray:
            return kcenter_order(e, start=self.start, rng=rng)

        return -per_group_order(emb, groups, kernel).astype(np.float64)
