"""The clustering kernels: the scikit-learn backend's iterations are spherical (the faiss
backend's `spherical=True`), seeding is scikit-learn's k-means++, group sums are a sparse
product equal to np.add.at, and the default worker count follows the CPU affinity mask."""

from __future__ import annotations

import os

import numpy as np
import pytest

from adaprune.cluster import kmeans as km


def lopsided(seed: int = 0) -> np.ndarray:
    """Unit rows: a diffuse cloud with a denser lobe, where Euclidean and spherical Lloyd part ways."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 8)) + np.where(rng.random((2000, 1)) < 0.3, 3.0, 0.0) * np.eye(8)[0]
    return km.normalize_rows(x)


def test_sklearn_backend_iterates_spherical_kmeans_like_faiss():
    pytest.importorskip("faiss")
    xs = lopsided()
    init = km._init_centroids(xs, 12, np.random.default_rng(1))
    ours = km._train_sklearn(xs, init, n_iter=30, seed=0)
    faiss = km._train_faiss(xs, init, n_iter=30, seed=0)
    np.testing.assert_allclose(ours, faiss, atol=1e-5)


def test_spherical_fixed_point_every_centroid_is_its_members_normalised_mean():
    xs = lopsided(seed=2)
    init = km._init_centroids(xs, 10, np.random.default_rng(0))
    cents = km._train_sklearn(xs, init, n_iter=300, seed=0)
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1.0, atol=1e-6)
    assign = np.argmax(xs @ cents.T, axis=1)  # assignment by cosine to the unit centroids
    for c in range(len(cents)):
        members = xs[assign == c]
        np.testing.assert_allclose(cents[c], km.normalize_rows(members.sum(0, keepdims=True))[0], atol=1e-5)


def test_seeding_is_kmeans_plusplus_from_the_seed():
    xs = lopsided(seed=3)
    a = km._init_centroids(xs, 7, np.random.default_rng(5))
    b = km._init_centroids(xs, 7, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.shape == (7, 8)
    # Every centre is a row of the data, all distinct.
    rows = {r.tobytes() for r in xs}
    assert all(c.tobytes() in rows for c in a) and len({c.tobytes() for c in a}) == 7


def test_group_sums_match_add_at():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, 6)).astype(np.float32)
    index = rng.integers(3, 40, size=500)
    groups, sums = km.group_sums(index, rows)
    expected = np.zeros((40, 6))
    np.add.at(expected, index, rows.astype(np.float64))
    assert np.array_equal(groups, np.unique(index))
    np.testing.assert_allclose(sums, expected[groups], rtol=1e-12, atol=1e-12)


def test_default_workers_follows_the_affinity_mask(monkeypatch):
    from adaprune.engine import base

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert base.default_workers() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert base.default_workers() == 8


def test_the_two_fingerprints_have_distinct_names():
    from adaprune.embed import fingerprint
    from adaprune.engine import stages

    assert not hasattr(stages, "array_fingerprint") and not hasattr(fingerprint, "array_fingerprint")
    assert isinstance(fingerprint.array_digest(np.zeros((3, 2))), str)
    assert stages.input_identity(np.zeros((3, 2)))["shape"] == [3, 2]
