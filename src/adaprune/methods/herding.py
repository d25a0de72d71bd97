"""Herding (Welling 2009; used for coresets by Chen et al. 2010 and DeepCore).

Greedy: at step t, add the sample that brings the mean of the selected set closest to the mean of
all samples (of the class, with `balance=True`). The whole order is computed, so kept sets are
nested across budgets; score = -(pick order), higher = keep.

This module also holds `sample_embedding`, the embedding switch the geometric methods (herding,
k-center, Moderate-DS) share: "model" = penultimate features of a freshly trained task model
(`epochs` epochs); any other string is an `adaprune.embed` encoder spec ("standardized" for
standardised flattened inputs, "pixels[:DIM]" for PCA, "clip:PATH", "minilm"), run through
`adaprune.embed.task_embeddings`.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.registry import register_method
from adaprune.tasks import ClassificationTask


def check_embedding(embedding: str, epochs: int) -> None:
    """Fail early on a bad embedding name (an unknown `adaprune.embed` spec included) or epochs."""
    if not (isinstance(embedding, str) and embedding):
        raise ConfigError(f"embedding must be 'model' or an encoder spec, got {embedding!r}")
    if embedding != "model":
        from adaprune.embed.encoders import get_encoder

        try:
            get_encoder(embedding)
        except ConfigError as exc:
            raise ConfigError(f"embedding must be 'model' or an encoder spec: {exc}") from None
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")


def sample_embedding(task: ClassificationTask, embedding: str, *, seed: int, epochs: int, progress: bool) -> np.ndarray:
    """(N, D) float64 embedding of every training sample: "model" or an encoder spec."""
    from adaprune.embed import task_embeddings

    encoder = f"model:{epochs}" if embedding == "model" else embedding
    return np.asarray(task_embeddings(task, encoder=encoder, seed=seed, progress=progress), dtype=np.float64)


def per_group_order(emb: np.ndarray, groups: np.ndarray | None, kernel) -> np.ndarray:
    """Run `kernel(emb_of_group) -> local pick order` inside every group (all samples when
    `groups` is None); return each sample's position in its group's order (0 = picked first)."""
    n = len(emb)
    position = np.empty(n, dtype=np.int64)
    members_list = [np.arange(n)] if groups is None else [np.flatnonzero(groups == g) for g in np.unique(groups)]
    for members in members_list:
        order = kernel(emb[members])
        position[members[order]] = np.arange(len(members))
    return position


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
class Herding(Scorer):
    """Herding (Welling 2009; Chen et al. 2010): greedy mean matching; score = -(pick order), higher = keep.

    Each step adds the sample that brings the selected set's mean closest to the mean of all
    samples (per class with `balance=True`, the default; class quotas then apply). Defaults:
    embedding="model" (penultimate features of a task model trained `epochs`=10), balance=True.
    embedding="standardized" uses flattened standardised inputs and trains nothing; any other value is an
    `adaprune.embed` encoder spec (e.g. "pixels:64", "clip:PATH")."""

    higher_is_keep = True
    trains_model = True

    def __init__(self, *, embedding: str = "model", epochs: int = 10, balance: bool = True) -> None:
        check_embedding(embedding, epochs)
        self.embedding = embedding
        self.epochs = epochs
        self.balance = balance
        self.balance_classes = balance

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        emb = sample_embedding(task, self.embedding, seed=seed, epochs=self.epochs, progress=progress)
        groups = task.data.y if self.balance else None
        return -per_group_order(emb, groups, herding_order).astype(np.float64)
