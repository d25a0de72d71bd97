from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune, score, select
from adaprune.data import Dataset
from adaprune.errors import ConfigError


def ring_data(seed: int = 0) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Two tight directions (prototypes) with a few samples planted far off both."""
    rng = np.random.default_rng(seed)
    a = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    hard = np.array([0.6, 0.6, 0.5]) + 0.01 * rng.normal(size=(6, 3))
    x = np.vstack([a, b, hard]).astype(np.float32)
    y = np.array([0] * 50 + [1] * 50 + [0, 1] * 3)
    easy = np.arange(100)
    return Dataset(name="ring", x=x, y=y), easy, np.arange(100, 106)


def test_score_is_cosine_distance_to_nearest_prototype():
    data, easy, hard = ring_data()
    s = score(data, "prototypes", seed=0, params={"embedding": "identity"}, progress=False)
    assert s.scores[hard].min() > s.scores[easy].max()  # planted off-prototype samples are the hardest
    assert (s.scores >= -1e-6).all() and (s.scores <= 2 + 1e-6).all()
    cos = 1 - s.scores[easy]
    assert cos.min() > 0.99


def test_keeps_hard_at_large_budgets_and_easy_at_small_ones():
    data, easy, hard = ring_data()
    params = {"embedding": "identity", "switch_keep": 0.5}
    large = prune(data, "prototypes", keep=0.8, seed=0, params=params, progress=False)
    small = prune(data, "prototypes", keep=0.2, seed=0, params=params, progress=False)
    assert np.isin(hard, large.kept).all() and large.higher_is_keep is True
    assert not np.isin(hard, small.kept).any() and small.higher_is_keep is False
    assert large.n_kept == round(0.8 * 106) and small.n_kept == round(0.2 * 106)
    # score once, select at both budgets: the same sets
    s = score(data, "prototypes", seed=0, params=params, progress=False)
    np.testing.assert_array_equal(select(s, keep=0.8).kept, large.kept)
    np.testing.assert_array_equal(select(s, keep=0.2).kept, small.kept)


def test_default_pixels_embedding_budget_and_determinism():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 1, 6, 6)).astype(np.float32)
    data = Dataset(name="img", x=x, y=np.arange(90) % 3)
    a = prune(data, "prototypes", prune=0.3, seed=2, progress=False)
    b = prune(data, "prototypes", prune=0.3, seed=2, progress=False)
    assert a.n_kept == 63 and np.array_equal(a.kept, b.kept)


@pytest.mark.parametrize("kwargs", [{"switch_keep": 1.5}, {"n_clusters": 0}, {"embedding": "nope"}])
def test_bad_parameters(kwargs):
    from adaprune.methods.prototypes import SelfSupervisedPrototypes

    with pytest.raises(ConfigError):
        SelfSupervisedPrototypes(**kwargs)


def test_cli_encoder_option_reaches_the_geometric_methods_embedding():
    data, easy, hard = ring_data()
    sel = prune(data, "prototypes", keep=0.8, seed=0, encoder="identity", progress=False)
    assert sel.params["embedding"] == "identity" and np.isin(hard, sel.kept).all()
    with pytest.raises(ConfigError, match="takes no encoder"):
        prune(data, "random", keep=0.5, encoder="identity", progress=False)
