"""Clustering shared by every method that needs it: spherical k-means through faiss when it is
installed, scikit-learn otherwise, with the same result type and (on separable data) the same
partition."""

from __future__ import annotations

from adaprune.cluster.kmeans import (
    BACKENDS,
    Clustering,
    assign,
    assign_nearest,
    default_n_clusters,
    have_faiss,
    normalize_rows,
    row_norms,
    spherical_kmeans,
)
from adaprune.cluster.split import default_max_size, split_oversized

__all__ = [
    "BACKENDS",
    "Clustering",
    "assign",
    "assign_nearest",
    "default_max_size",
    "default_n_clusters",
    "have_faiss",
    "normalize_rows",
    "row_norms",
    "spherical_kmeans",
    "split_oversized",
]
