"""Which methods need real class labels: an `embeddings:` source without PATH.labels.npy has none."""

from __future__ import annotations

from adaprune.errors import ConfigError


def method_uses_labels(method: object, data: object) -> bool:
    """A method's own `uses_labels(data)` where it defines one; otherwise whether it trains a model
    (a classifier, trained on the labels)."""
    rule = getattr(method, "uses_labels", None)
    if rule is not None:
        return bool(rule(data))
    return bool(getattr(method, "trains_model", False))


def refuse_missing_labels(method: object, data: object) -> None:
    """One line when `method` needs labels that an unlabelled embeddings source lacks."""
    from adaprune.data.embeddings import EmbeddingsDataset

    if isinstance(data, EmbeddingsDataset) and not data.has_labels and method_uses_labels(method, data):
        name = getattr(method, "name", type(method).__name__)
        raise ConfigError(
            f"method {name!r} trains a classifier on the labels, and embeddings:{data.embeddings_path} has none; "
            f"write one integer label per row to {data.labels_path} (or use a method that needs no labels)"
        )
