"""The embedding the geometric methods share (herding, k-center, Moderate-DS, prototypes).

"model" = penultimate features of a freshly trained task model (`epochs` epochs); any other string
is an `adaprune.embed` encoder spec ("standardized" for standardised flattened inputs,
"pixels[:DIM]" for PCA, "clip:PATH", "minilm"), run through `adaprune.embed.task_embeddings`.
On an `embeddings:E.npy` source, "model" means the vectors as given: they already are an embedding,
and training a model on them would replace the user's embedding with ours."""

from __future__ import annotations

import logging

import numpy as np

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.params import AnyString, Boolean, Interval, ParamSpec
from adaprune.tasks import Task

log = logging.getLogger(__name__)


def check_embedding(embedding: str) -> None:
    """Fail early on an unknown embedding name (an `adaprune.embed` spec); its type is in the spec."""
    if embedding != "model":
        from adaprune.embed.encoders import get_encoder

        try:
            get_encoder(embedding)
        except ConfigError as exc:
            raise ConfigError(f"embedding must be 'model' or an encoder spec: {exc}") from None


EMBEDDING = AnyString("'model' or an encoder spec")


def is_embeddings_source(data: object) -> bool:
    """Whether `data` came from `embeddings:E.npy` (rows already are an embedding)."""
    from adaprune.data.embeddings import EmbeddingsDataset

    return isinstance(data, EmbeddingsDataset)


def embedding_trains_classifier(embedding: str, data: object) -> bool:
    """Whether computing `embedding` for `data` trains a classifier on its labels."""
    if embedding == "model":
        return not is_embeddings_source(data)
    return embedding.partition(":")[0] == "model"


def sample_embedding(task: Task, embedding: str, *, seed: int, epochs: int, progress: bool) -> np.ndarray:
    """(N, D) float64 embedding of every training sample: "model" or an encoder spec."""
    from adaprune.embed import task_embeddings

    if embedding in ("model", "auto", "identity") and is_embeddings_source(task.data):
        log.info("embeddings:%s: using the vectors as given (no model is trained on an embeddings source)",
                 task.data.embeddings_path)
        return np.asarray(task.data.x, dtype=np.float64)
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
    """A scorer over an embedding of every sample, optionally per class (class quotas then apply).

    Parameters:
        embedding: 'model' (penultimate features of a trained task model; on an embeddings: source, the
            vectors as given), 'standardized', or an encoder spec such as 'pixels:64' or 'clip:PATH'
        epochs: training epochs of the task model (embedding='model' only)
        balance: run per class and keep class quotas"""

    higher_is_keep = True
    trains_model = True
    param_spec = ParamSpec({"embedding": EMBEDDING, "epochs": Interval(int, 1, None), "balance": Boolean()})

    def __init__(self, *, embedding: str = "model", epochs: int = 10, balance: bool = True) -> None:
        check_embedding(embedding)
        self.embedding = embedding
        self.epochs = epochs
        self.balance = balance
        self.balance_classes = balance

    def uses_labels(self, data: object) -> bool:
        """Whether this method needs real class labels on `data` (it trains a classifier for its embedding)."""
        return embedding_trains_classifier(self.embedding, data)

    def embedding_of(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        return sample_embedding(task, self.embedding, seed=seed, epochs=self.epochs, progress=progress)
