"""DUAL: the score on a hand-written probability trace, the Beta schedule, and the method end to end."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.errors import ConfigError
from adaprune.methods.dual import DUAL, dual_beta_select, dual_beta_shape, dual_scores
from tests.conftest import blobs_dataset

# Three samples over three epochs, windows of two epochs. The sample std of two values x, y is
# |x - y| / sqrt(2), so by hand:
#   sample 0, p = .2 .4 .8: (.2/r2)(1 - .3) and (.4/r2)(1 - .6) -> mean .15 / r2
#   sample 1, p = .9 .9 .9: 0 (certain: no uncertainty)
#   sample 2, p = .5 .0 .5: (.5/r2)(1 - .25) twice -> .375 / r2
TRACE = np.array([[0.2, 0.9, 0.5], [0.4, 0.9, 0.0], [0.8, 0.9, 0.5]])
EXPECTED = np.array([0.15, 0.0, 0.375]) / np.sqrt(2)


def test_dual_score_on_a_hand_written_trace():
    np.testing.assert_allclose(dual_scores(TRACE, 2), EXPECTED, atol=1e-12)
    # one window over all three epochs: std(ddof 1) * (1 - mean)
    p0 = TRACE[:, 0]
    np.testing.assert_allclose(dual_scores(TRACE, 3)[0], p0.std(ddof=1) * (1 - p0.mean()), atol=1e-12)


def test_dual_score_rejects_a_window_longer_than_the_trace():
    with pytest.raises(ConfigError, match="window"):
        dual_scores(TRACE, 4)


def test_beta_shape_by_hand_and_mode_moves_toward_easy_with_the_rate():
    a, b = dual_beta_shape(0.4, 0.5, 1.0)  # b = 15 * 0.6 * 0.5
    assert (a, b) == pytest.approx((11.5, 4.5))
    modes = []
    for rate in (0.3, 0.7, 0.9):
        a, b = dual_beta_shape(0.4, rate, 4.0)
        modes.append((a - 1) / (a + b - 2))
    assert modes == sorted(modes) and modes[-1] > 0.75


def test_beta_draw_keeps_easier_samples_at_higher_rates():
    n = 2000
    mean_p = (np.arange(n) + 0.5) / n  # mean true-class probability, evenly spread
    scores = np.full(n, 1.0)
    scores[:10] = 2.0  # the anchor: the 10 highest scores sit at the hardest probabilities
    easy = []
    for rate in (0.5, 0.9):
        kept, details = dual_beta_select(scores, mean_p, int(n * (1 - rate)), prune=rate, c_d=4.0,
                                         rng=np.random.default_rng(0))
        assert len(np.unique(kept)) == int(n * (1 - rate))
        easy.append(mean_p[kept].mean())
    assert details["anchor"] == pytest.approx(mean_p[:10].mean())
    assert easy[1] > easy[0] + 0.05


def test_dual_method_exact_budget_deterministic_and_top_below_beta_from():
    data = blobs_dataset()
    a = prune(data, "dual", prune=0.7, seed=1, epochs=3, params={"window": 2}, progress=False)
    b = prune(data, "dual", prune=0.7, seed=1, epochs=3, params={"window": 2}, progress=False)
    assert a.n_kept == round(0.3 * data.n)
    np.testing.assert_array_equal(a.kept, b.kept)
    low = prune(data, "dual", prune=0.2, seed=1, epochs=3, params={"window": 2}, progress=False)
    order = np.lexsort((np.arange(data.n), -low.scores))
    np.testing.assert_array_equal(low.kept, np.sort(order[: low.n_kept]))


def test_dual_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="window"):
        DUAL(window=1)
    with pytest.raises(ConfigError, match="beta_from"):
        DUAL(beta_from=1.5)
