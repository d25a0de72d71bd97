from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.moderate import ModerateDS, moderate_scores
from adaprune.selection import select_top_k
from tests.conftest import blobs_dataset, standardized


def test_middle_band_by_hand_1d():
    # Class median 2; distances d = [2, 1, 0, 1, 8]; ranks by d (ties: lower index first) = [3, 1, 0, 2, 4];
    # median rank 2; score = -|rank - 2| / 5.
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    scores = moderate_scores(emb, np.zeros(5, dtype=int))
    np.testing.assert_allclose(scores, [-0.2, -0.2, -0.4, 0.0, -0.4])
    # Keeping 3: ranks 1..3 (samples 1, 3, 0); the centre sample (2) and the outlier (10) go.
    assert select_top_k(scores, 3, higher_is_keep=True).tolist() == [0, 1, 3]


def test_centre_is_the_coordinate_wise_median_per_class():
    # Class 0's mean is pulled by the outlier to (25.5, 0); its coordinate-wise median is (1.5, 0).
    c0 = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [99.0, 0.0]])
    emb = np.vstack([c0, c0 + 1000.0])  # class 1: same shape far away, scored against its own centre
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # d = [1.5, 0.5, 0.5, 97.5] -> ranks [2, 0, 1, 3]; median rank 1.5. (Around the mean the ranks
    # would be [2, 1, 0, 3].)
    expected = -np.abs(np.array([2, 0, 1, 3]) - 1.5) / 4
    np.testing.assert_allclose(moderate_scores(emb, labels), np.concatenate([expected, expected]))


def test_bad_inputs_are_errors():
    with pytest.raises(ConfigError):
        moderate_scores(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ConfigError, match="embedding"):
        ModerateDS(embedding="bert")


def test_pixel_embedding_prunes_the_planted_outlier_and_the_centre():
    data = blobs_dataset()
    x = data.x.copy()
    x[0] = x[0] + 40.0  # class 0's planted outlier
    cls0 = np.flatnonzero(data.y == 0)
    emb = standardized(x)
    centre = np.median(emb[cls0], axis=0)
    nearest = cls0[np.argmin(np.linalg.norm(emb[cls0] - centre, axis=1))]
    sel = prune(Dataset(name="b", x=x, y=data.y), "moderate", keep=0.5, params={"embedding": "standardized"},
                progress=False)
    assert sel.n_kept == 60
    assert 0 not in set(sel.kept) and nearest not in set(sel.kept)


def test_keeps_a_band_of_ranks_around_the_median_not_a_symmetric_distance_band():
    # One class: a sample at 0 and 100 more at distinct, strongly skewed (log-normal) distances r,
    # alternately at +r and -r on one axis, so the class centre (coordinate-wise median of 101 values)
    # is exactly 0 and d_i = r_i, sorted, so sample i has rank i. The paper keeps the samples whose
    # distance RANKS lie nearest the median rank 50: keeping 71, ranks 15..85.
    r = np.concatenate([[0.0], np.sort(np.exp(np.random.default_rng(0).normal(0.0, 1.5, 100)))])
    sign = np.where(np.arange(101) % 2 == 0, 1.0, -1.0)
    emb = np.stack([sign * r, np.zeros(101)], axis=1)
    scores = moderate_scores(emb, np.zeros(101, dtype=int))
    kept = select_top_k(scores, 71, higher_is_keep=True)
    assert kept.tolist() == list(range(15, 86))
    # A band symmetric in distance around the median distance keeps a different set on skewed data.
    symmetric = select_top_k(-np.abs(r - np.median(r)), 71, higher_is_keep=True)
    assert len(set(symmetric.tolist()) & set(kept.tolist())) < 60
