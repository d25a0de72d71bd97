from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.errors import ConfigError
from adaprune.methods._embedding import per_group_order
from adaprune.methods.herding import Herding, herding_order
from tests.conftest import blobs_dataset, standardized


def naive_herding(emb: np.ndarray) -> list[int]:
    """Reference: at each step try every remaining point, keep the one whose added mean is nearest mu."""
    mu = emb.mean(0)
    chosen: list[int] = []
    for _ in range(len(emb)):
        rest = [i for i in range(len(emb)) if i not in chosen]
        dists = [np.linalg.norm(mu - emb[chosen + [i]].mean(0)) for i in rest]
        chosen.append(rest[int(np.argmin(dists))])
    return chosen


def test_herding_order_by_hand():
    # mean = (0, 0). Step 1: (0,0) is the mean itself. Step 2: S=(0,0), the smallest point (-1,0).
    # Step 3: target 3mu - S = (1,0): (3,0) gives mean (2/3, 0), nearer than (0,2) (sqrt(5)/3).
    # Step 4: S=(2,0), target (-2,0): (-2,-2) brings the mean to (0,-1/2), nearer than (0,2) -> (1/2, 1/2).
    pts = np.array([[0, 0], [3, 0], [-1, 0], [0, 2], [-2, -2]], dtype=float)
    assert herding_order(pts).tolist() == [0, 2, 1, 4, 3]
    assert herding_order(pts, 3).tolist() == [0, 2, 1]


def test_herding_matches_naive_reference():
    emb = np.random.default_rng(3).normal(size=(25, 4))
    assert herding_order(emb).tolist() == naive_herding(emb)


def test_per_class_orders_are_independent():
    pts = np.array([[0, 0], [3, 0], [-1, 0], [0, 2], [-2, -2]], dtype=float)
    emb = np.vstack([pts, pts + 100.0])  # class 1: the same shape, shifted
    groups = np.array([0] * 5 + [1] * 5)
    pos = per_group_order(emb, groups, herding_order)
    expected = np.empty(5, dtype=int)
    expected[[0, 2, 1, 4, 3]] = np.arange(5)
    assert pos[:5].tolist() == expected.tolist()
    assert pos[5:].tolist() == expected.tolist()


def test_pixel_embedding_is_standardised():
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(50, 2, 3)).astype(np.float32)
    x[:, 0, 0] = 7.0  # a constant feature stays finite
    emb = standardized(x)
    assert emb.shape == (50, 6)
    assert np.allclose(emb.mean(0), 0.0)
    assert np.allclose(emb.std(0)[1:], 1.0) and np.all(emb[:, 0] == 0.0)


def test_bad_parameters_are_errors():
    with pytest.raises(ConfigError, match="embedding"):
        Herding(embedding="clip-ish")
    with pytest.raises(ConfigError, match="embedding"):
        Herding(embedding="")
    with pytest.raises(ConfigError, match="epochs"):
        Herding(epochs=0)


def test_pixel_embedding_kept_sets_are_nested_and_follow_the_order():
    data = blobs_dataset()
    small = prune(data, "herding", keep=0.3, params={"embedding": "standardized", "balance": False}, progress=False)
    large = prune(data, "herding", keep=0.6, params={"embedding": "standardized", "balance": False}, progress=False)
    assert set(small.kept) <= set(large.kept)
    order = herding_order(standardized(data.x))
    assert small.kept.tolist() == sorted(order[:36].tolist())


def test_other_embeddings_come_from_the_encoders_module():
    data = blobs_dataset()
    sel = prune(data, "herding", keep=0.5, params={"embedding": "identity", "balance": False}, progress=False)
    raw = np.asarray(data.x, dtype=np.float64)
    assert sel.kept.tolist() == sorted(herding_order(raw)[:60].tolist())
