"""Spherical k-means: both backends, seeding, memory maps, chunked assignment."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from adaprune.cluster import have_faiss, normalize_rows, spherical_kmeans
from adaprune.cluster import kmeans as km
from adaprune.errors import ConfigError, DataError

needs_faiss = pytest.mark.skipif(not have_faiss(), reason="faiss not installed")


def separated(n_per: int = 60, k: int = 6, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k tight, well-separated directions: any sane k-means recovers them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 10
    labels = np.repeat(np.arange(k), n_per)
    x = centers[labels] + rng.normal(size=(len(labels), d))
    perm = rng.permutation(len(labels))
    return x[perm].astype(np.float32), labels[perm]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renaming the clusters."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@needs_faiss
def test_faiss_and_sklearn_give_the_same_partition_and_centroids():
    x, labels = separated()
    f = spherical_kmeans(x, 6, seed=0, backend="faiss")
    s = spherical_kmeans(x, 6, seed=0, backend="sklearn")
    assert f.backend == "faiss" and s.backend == "sklearn"
    assert np.array_equal(f.assignment, s.assignment)  # same init, same Lloyd steps: same ids too
    assert same_partition(f.assignment, labels)
    np.testing.assert_allclose(f.centroids, s.centroids, atol=1e-4)
    np.testing.assert_allclose(f.distance, s.distance, atol=1e-4)


@pytest.mark.parametrize("backend", ["sklearn", pytest.param("faiss", marks=needs_faiss)])
def test_result_contract(backend):
    x, _ = separated(seed=1)
    c = spherical_kmeans(x, 6, seed=3, backend=backend)
    assert c.centroids.shape == (6, 16) and c.centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(c.centroids, axis=1), 1.0, atol=1e-5)
    assert c.assignment.shape == (len(x),) and c.assignment.dtype == np.int64
    # Distance kept is 1 - cos to the assigned centroid, and that centroid is the nearest one.
    cos = normalize_rows(x) @ c.centroids.T
    np.testing.assert_allclose(c.distance, 1 - cos[np.arange(len(x)), c.assignment], atol=1e-5)
    assert np.array_equal(c.assignment, cos.argmax(1))
    assert c.sizes().sum() == len(x)
    members = c.members()
    assert all((c.assignment[m] == j).all() for j, m in enumerate(members))
    # Seeded: the same seed gives the same result.
    again = spherical_kmeans(x, 6, seed=3, backend=backend)
    assert np.array_equal(again.assignment, c.assignment)


def test_auto_falls_back_to_sklearn_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    x, labels = separated(seed=2)
    c = spherical_kmeans(x, 6, seed=0)
    assert c.backend == "sklearn" and same_partition(c.assignment, labels)
    with pytest.raises(Exception, match="pip install 'adaprune\\[faiss\\]'"):
        spherical_kmeans(x, 6, seed=0, backend="faiss")


def test_memory_map_is_read_in_chunks_and_left_untouched(tmp_path, monkeypatch):
    x, _ = separated(n_per=100, seed=4)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    ref = spherical_kmeans(x, 6, seed=0, sample_size=300)
    monkeypatch.setattr(km, "_ASSIGN_BYTES", 4 * 6 * 10)  # tiny chunks for the numpy path
    for backend in ("sklearn", "auto"):
        c = spherical_kmeans(mm, 6, seed=0, sample_size=300, backend=backend)
        assert same_partition(c.assignment, ref.assignment)
    assert np.array_equal(np.load(path), x)


def test_default_cluster_count_and_validation():
    x, _ = separated(n_per=10, k=4)
    assert spherical_kmeans(x, None, seed=0, backend="sklearn").n_clusters == round(np.sqrt(len(x)))
    with pytest.raises(ConfigError, match="n_clusters must be in"):
        spherical_kmeans(x, len(x) + 1, seed=0)
    with pytest.raises(ConfigError, match="backend must be one of"):
        spherical_kmeans(x, 2, seed=0, backend="annoy")
    with pytest.raises(DataError, match="2-D"):
        spherical_kmeans(x[:, :, None], 2, seed=0)
