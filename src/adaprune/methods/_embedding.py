"""The embedding the geometric methods share (herding, k-center, Moderate-DS, prototypes).

"model" = penultimate features of a freshly trained task model (`epochs` epochs); any other string
is an `adaprune.embed` encoder spec ("standardized" for standardised flattened inputs,
"pixels[:DIM]" for PCA, "clip:PATH", "minilm"), run through `adaprune.embed.task_embeddings`."""

from __future__ import annotations

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.tasks import Task


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


def sample_embedding(task: Task, embedding: str, *, seed: int, epochs: int, progress: bool) -> np.ndarray:
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


class EmbeddingScorer(Scorer):
    """A scorer over an embedding of every sample, optionally per class (class quotas then apply)."""

    higher_is_keep = True
    trains_model = True

    def __init__(self, *, embedding: str = "model", epochs: int = 10, balance: bool = True) -> None:
        check_embedding(embedding, epochs)
        self.embedding = embedding
        self.epochs = epochs
        self.balance = balance
        self.balance_classes = balance

    def embedding_of(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        return sample_embedding(task, self.embedding, seed=seed, epochs=self.epochs, progress=progress)
