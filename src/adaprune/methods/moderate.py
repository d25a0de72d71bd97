"""Moderate-DS (Xia et al., "Moderate Coreset: A Universal Method of Data Selection for Real-world
Data-efficient Deep Learning", ICLR 2023).

Per class c: the class centre is the coordinate-wise median of the class's embeddings; d_i is the
Euclidean distance of sample i to its class centre; score_i = -|d_i - median_c(d)|. Keeping the
highest scores keeps the middle band of distances (neither the easiest, nearest the centre, nor
the hardest, farthest away), which is the paper's rule.
"""

from __future__ import annotations

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods._embedding import EmbeddingScorer
from adaprune.registry import register_method
from adaprune.tasks.classification import ClassificationTask


def moderate_scores(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-|d_i - median of d over i's class|, d_i = ||emb_i - coordinate-wise median of i's class||."""
    emb = np.asarray(emb, dtype=np.float64)
    labels = np.asarray(labels)
    if emb.ndim != 2 or labels.shape != (len(emb),):
        raise ConfigError(f"need an (N, D) embedding and N labels, got {emb.shape} and {labels.shape}")
    scores = np.empty(len(emb))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        e = emb[members]
        d = np.linalg.norm(e - np.median(e, axis=0), axis=1)
        scores[members] = -np.abs(d - np.median(d))
    return scores


@register_method("moderate")
class ModerateDS(EmbeddingScorer):
    """Moderate-DS (Xia et al., ICLR 2023): keep distances to the class median nearest the median; higher = keep.

    Score = -|d_i - median_c(d)|, d_i = distance to the coordinate-wise median embedding of i's
    class. Defaults: embedding="model" (penultimate features of a task model trained `epochs`=10),
    balance=True (class quotas). embedding="standardized" uses flattened standardised inputs and
    trains nothing; any other value is an `adaprune.embed` encoder spec (e.g. "pixels:64")."""

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        emb = self.embedding_of(task, seed=seed, progress=progress)
        return moderate_scores(emb, task.data.y)
