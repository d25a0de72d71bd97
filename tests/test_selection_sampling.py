"""Weighted sampling without replacement and the Beta-over-rank draw (selection.py)."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.errors import ConfigError
from adaprune.selection import (
    beta_density,
    beta_shape,
    normalised_ranks,
    sample_by_weight,
    select_beta_rank,
)


def test_sample_by_weight_exact_distinct_sorted_and_seeded():
    w = np.arange(1.0, 21.0)
    a = sample_by_weight(w, 7, rng=np.random.default_rng(3))
    b = sample_by_weight(w, 7, rng=np.random.default_rng(3))
    assert len(a) == 7 and len(np.unique(a)) == 7 and (np.diff(a) > 0).all() and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)


def test_sample_by_weight_first_draw_is_proportional_to_weight():
    # one draw from weights 1 and 3: the second is taken with probability 3/4
    hits = sum(sample_by_weight(np.array([1.0, 3.0]), 1, rng=np.random.default_rng(s))[0] == 1 for s in range(4000))
    assert abs(hits / 4000 - 0.75) < 0.03


def test_zero_weights_come_only_after_every_positive_one():
    w = np.array([0.0, 5.0, 0.0, 1e-9, 0.0])
    kept = sample_by_weight(w, 3, rng=np.random.default_rng(0))
    assert {1, 3} <= set(kept.tolist()) and len(kept) == 3
    with pytest.raises(ConfigError, match="non-negative"):
        sample_by_weight(np.array([1.0, -1.0]), 1, rng=np.random.default_rng(0))


def test_normalised_ranks_and_beta_shape_by_hand():
    np.testing.assert_allclose(normalised_ranks(np.array([3.0, 1.0, 2.0, 1.0])), [0.875, 0.125, 0.625, 0.375])
    assert beta_shape(0.75, 10.0) == (7.0, 3.0)  # mode (a - 1) / (a + b - 2) = 6 / 8
    u = np.array([0.25, 0.5])
    np.testing.assert_allclose(beta_density(u, 3.0, 2.0), u**2 * (1 - u))


def test_beta_rank_draw_follows_its_mode_and_keeps_class_quotas():
    rng = np.random.default_rng(0)
    n = 3000
    y = np.repeat([0, 1, 2], n // 3)
    scores = rng.normal(size=n) + 10.0 * y  # class 2 holds every high score
    for mode in (0.2, 0.8):
        kept = select_beta_rank(scores, 600, mode=mode, concentration=12.0, rng=np.random.default_rng(1), strata=y)
        assert np.bincount(y[kept]).tolist() == [200, 200, 200]
        for c in range(3):
            members = np.flatnonzero(y == c)
            u = normalised_ranks(scores[members])[np.isin(members, kept)]
            assert abs(np.median(u) - mode) < 0.1
    # without strata the ranks are global: a high mode takes most of class 2
    kept = select_beta_rank(scores, 600, mode=0.95, concentration=12.0, rng=np.random.default_rng(1))
    assert np.bincount(y[kept], minlength=3)[2] > 450
