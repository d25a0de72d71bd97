from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.errors import ConfigError
from adaprune.methods.kcenter import KCenterGreedy, kcenter_order
from tests.conftest import blobs_dataset, standardized


def naive_kcenter(emb: np.ndarray, first: int) -> list[int]:
    """Reference: recompute every point's distance to the whole picked set at every step."""
    chosen = [first]
    while len(chosen) < len(emb):
        d = np.linalg.norm(emb[:, None, :] - emb[None, chosen, :], axis=2).min(1)
        d[chosen] = -1.0
        chosen.append(int(np.argmax(d)))
    return chosen


def test_kcenter_picks_by_hand():
    # mean = (4, 0.2): nearest point (4,0) starts. Farthest from it: (10,0) at 6.
    # Then nearest-centre distances: (0,0) 4, (0,1) sqrt(17) ~ 4.12, (6,0) 2 -> (0,1).
    # Then (0,0) is 1 from (0,1), (6,0) still 2 -> (6,0); (0,0) last.
    pts = np.array([[0, 0], [0, 1], [10, 0], [4, 0], [6, 0]], dtype=float)
    assert kcenter_order(pts, start="mean").tolist() == [3, 2, 1, 4, 0]
    assert kcenter_order(pts, 2, start="mean").tolist() == [3, 2]


def test_random_start_is_seeded_and_then_farthest_first():
    emb = np.random.default_rng(5).normal(size=(40, 3))
    order = kcenter_order(emb, start="random", rng=np.random.default_rng(11))
    assert order[0] == np.random.default_rng(11).integers(40)
    assert order.tolist() == naive_kcenter(emb, int(order[0]))
    again = kcenter_order(emb, start="random", rng=np.random.default_rng(11))
    np.testing.assert_array_equal(order, again)


def test_duplicates_still_give_a_permutation():
    emb = np.ones((6, 2))
    order = kcenter_order(emb, start="mean")
    assert sorted(order.tolist()) == list(range(6))


def test_bad_parameters_are_errors():
    with pytest.raises(ConfigError, match="start"):
        KCenterGreedy(start="middle")
    with pytest.raises(ConfigError, match="rng"):
        kcenter_order(np.zeros((3, 2)), start="random")
    with pytest.raises(ConfigError, match="embedding"):
        KCenterGreedy(embedding="tfidf")


def test_pixel_embedding_global_order_covers_the_extremes():
    data = blobs_dataset()
    sel = prune(data, "kcenter", keep=0.5, seed=3, params={"embedding": "standardized", "balance": False,
                                                              "start": "mean"}, progress=False)
    emb = standardized(data.x)
    order = kcenter_order(emb, start="mean")
    assert sel.kept.tolist() == sorted(order[:60].tolist())
    # Coverage: the point farthest from the mean is among the first picks, so it is kept.
    assert int(np.argmax(np.linalg.norm(emb - emb.mean(0), axis=1))) in set(sel.kept)
