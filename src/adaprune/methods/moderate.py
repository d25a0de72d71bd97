"""Moderate-DS (Xia et al., "Moderate Coreset: A Universal Method of Data Selection for Real-world
Data-efficient Deep Learning", ICLR 2023).

Per class c: the class centre is the coordinate-wise median of the class's embeddings; d_i is the
Euclidean distance of sample i to its class centre. The paper keeps the samples whose distances
are closest to the median *in rank*: sort the class by d, and keep a band of ranks around the
median rank (neither the easiest, nearest the centre, nor the hardest, farthest away). So
score_i = -|rank_c(d_i) - (n_c - 1) / 2| / n_c, with rank 0 for the nearest sample (ties: lower
index first). On skewed distances this differs from a band symmetric in distance around the
median distance, which would take more samples from the dense side.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods._embedding import EmbeddingScorer
from adaprune.registry import register_method
from adaprune.tasks.classification import ClassificationTask


def moderate_scores(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-|rank of d_i in its class - median rank| / class size, d_i = ||emb_i - coordinate-wise
    median of i's class||: highest at the median distance, falling off by rank on both sides."""
    emb = np.asarray(emb, dtype=np.float64)
    labels = np.asarray(labels)
    if emb.ndim != 2 or labels.shape != (len(emb),):
        raise ConfigError(f"need an (N, D) embedding and N labels, got {emb.shape} and {labels.shape}")
    scores = np.empty(len(emb))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        e = emb[members]
        d = np.linalg.norm(e - np.median(e, axis=0), axis=1)
        rank = np.empty(len(d))
        rank[np.argsort(d, kind="stable")] = np.arange(len(d))
        # Divided by the class size, so classes of different sizes share one scale (balance=False).
        scores[members] = -np.abs(rank - (len(d) - 1) / 2.0) / len(d)
    return scores


@register_method("moderate")
class ModerateDS(EmbeddingScorer):
    """Moderate-DS (Xia et al., ICLR 2023): keep the band of distance ranks around the median; higher = keep.

    Score = -|rank_c(d_i) - median rank| / n_c, d_i = distance to the coordinate-wise median
    embedding of i's class (ranked within the class). Defaults: embedding="model" (penultimate
    features of a task model trained `epochs`=10; on an `embeddings:` source, the vectors as given),
    balance=True (class quotas). embedding="standardized" uses flattened standardised inputs and
    trains nothing; any other value is an `adaprune.embed` encoder spec (e.g. "pixels:64")."""

    # The hard end (CCS drops its hardest beta there): both ends of -|rank - median rank| are extremes (easiest and
    # hardest): no one hard end.
    higher_is_hard: ClassVar[bool | None] = None

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        emb = self.embedding_of(task, seed=seed, progress=progress)
        return moderate_scores(emb, task.data.y)
