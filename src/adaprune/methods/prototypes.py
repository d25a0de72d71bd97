"""Self-supervised prototypes (Sorscher et al., NeurIPS 2022, "Beyond neural scaling laws").

Cluster the embeddings with the codebase's one k-means (spherical, `adaprune.cluster`); a sample's
score is its cosine distance to the nearest centroid: far from every prototype = hard, close =
easy. The paper's rule: keep hard examples when much data is kept, easy ones when little is, so
the direction flips at `switch_keep` (kept fraction): keep >= switch_keep keeps the highest
distances, keep < switch_keep the lowest. No labels are used (the paper's point: the metric needs
no labels); the default embedding is therefore `auto`: PCA pixels for images and sequences, the
vectors themselves for (N, D) data and `embeddings:` sources; any `adaprune.embed` encoder spec
works (a CLIP folder gives the paper's self-supervised flavour).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.cluster import spherical_kmeans
from adaprune.methods._embedding import EMBEDDING, check_embedding, embedding_trains_classifier, sample_embedding
from adaprune.methods.base import Scorer
from adaprune.params import Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.tasks import Task


@register_method("prototypes")
class SelfSupervisedPrototypes(Scorer):
    """Self-supervised prototypes (Sorscher et al. 2022): distance to the nearest k-means centroid.

    Score = cosine distance to the nearest centroid; higher (hard) = keep when the kept fraction is at
    least `switch_keep` (default 0.5), lower (easy) = keep below it. Defaults: embedding="auto"
    (PCA pixels for images, the vectors as given for vectors and embeddings; no labels),
    n_clusters=None (the number of classes, or sqrt(N) without labels), epochs=10 (only for
    embedding="model"), k-means with `n_iter`=20 from the seed.

    Parameters:
        embedding: 'auto' (vectors as given, PCA pixels for images), 'model' (task model features) or an
            encoder spec such as 'pixels:64' or 'clip:PATH'
        n_clusters: k-means clusters (None: the number of classes, or sqrt(N) without labels)
        switch_keep: kept fraction below which easy (near) samples are kept instead of hard ones
        n_iter: k-means iterations
        epochs: training epochs of the task model (embedding='model' only)"""

    supported_tasks = ("classification", "detection")

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): far from every prototype = hard (the direction switch is
    # about what to keep).
    higher_is_hard: ClassVar[bool | None] = True
    switch_keep = 0.5
    param_spec = ParamSpec({
        "embedding": EMBEDDING,
        "n_clusters": [Interval(int, 1, None), None],
        "switch_keep": Interval(float, 0, 1),
        "n_iter": Interval(int, 1, None),
        "epochs": Interval(int, 1, None),
    })

    def __init__(
        self,
        *,
        embedding: str = "auto",
        n_clusters: int | None = None,
        switch_keep: float = 0.5,
        n_iter: int = 20,
        epochs: int = 10,
    ) -> None:
        check_embedding(embedding)
        self.embedding = embedding
        self.n_clusters = n_clusters
        self.switch_keep = switch_keep
        self.n_iter = n_iter
        self.epochs = epochs

    def uses_labels(self, data: object) -> bool:
        return embedding_trains_classifier(self.embedding, data)

    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        emb = sample_embedding(task, self.embedding, seed=seed, epochs=self.epochs, progress=progress)
        k = self.n_clusters
        if k is None:
            n_classes = len(np.unique(task.labels)) if task.labels is not None else 1
            k = n_classes if n_classes > 1 else None
        clustering = spherical_kmeans(emb, k, seed=seed, n_iter=self.n_iter, progress=progress)
        return clustering.distance.astype(np.float64)
