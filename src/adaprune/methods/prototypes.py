"""Self-supervised prototypes (Sorscher et al., NeurIPS 2022, "Beyond neural scaling laws").

Cluster the embeddings with the codebase's one k-means (spherical, `adaprune.cluster`); a sample's
score is its cosine distance to the nearest centroid: far from every prototype = hard, close =
easy. The paper's rule: keep hard examples when much data is kept, easy ones when little is, so
the direction flips at `switch_keep` (kept fraction): keep >= switch_keep keeps the highest
distances, keep < switch_keep the lowest. No labels are used (the paper's point: the metric needs
no labels); the default embedding is therefore `pixels` (PCA), and any `adaprune.embed` encoder
spec works (a CLIP folder gives the paper's self-supervised flavour).
"""

from __future__ import annotations

import numpy as np

from adaprune.cluster import spherical_kmeans
from adaprune.errors import ConfigError
from adaprune.methods._embedding import check_embedding, sample_embedding
from adaprune.methods.base import Scorer
from adaprune.registry import register_method
from adaprune.tasks import Task


@register_method("prototypes")
class SelfSupervisedPrototypes(Scorer):
    """Self-supervised prototypes (Sorscher et al. 2022): distance to the nearest k-means centroid.

    Score = cosine distance to the nearest centroid; higher (hard) = keep when the kept fraction is at
    least `switch_keep` (default 0.5), lower (easy) = keep below it. Defaults: embedding="pixels"
    (PCA, no labels), n_clusters=None (the number of classes, or sqrt(N) without labels),
    epochs=10 (only for embedding="model"), k-means with `n_iter`=20 from the seed."""

    supported_tasks = ("classification", "detection")

    higher_is_keep = True
    switch_keep = 0.5

    def __init__(
        self,
        *,
        embedding: str = "pixels",
        n_clusters: int | None = None,
        switch_keep: float = 0.5,
        n_iter: int = 20,
        epochs: int = 10,
    ) -> None:
        check_embedding(embedding, epochs)
        if n_clusters is not None and n_clusters < 1:
            raise ConfigError(f"n_clusters must be at least 1, got {n_clusters}")
        if not 0.0 <= switch_keep <= 1.0:
            raise ConfigError(f"switch_keep must be in [0, 1], got {switch_keep}")
        self.embedding = embedding
        self.n_clusters = n_clusters
        self.switch_keep = switch_keep
        self.n_iter = n_iter
        self.epochs = epochs

    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        emb = sample_embedding(task, self.embedding, seed=seed, epochs=self.epochs, progress=progress)
        k = self.n_clusters
        if k is None:
            n_classes = len(np.unique(task.labels)) if task.labels is not None else 1
            k = n_classes if n_classes > 1 else None
        clustering = spherical_kmeans(emb, k, seed=seed, n_iter=self.n_iter, progress=progress)
        return clustering.distance.astype(np.float64)
