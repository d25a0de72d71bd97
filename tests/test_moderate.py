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
    # Class median 2; distances d = [2, 1, 0, 1, 8]; median distance 1; score -|d - 1|.
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    scores = moderate_scores(emb, np.zeros(5, dtype=int))
    assert scores.tolist() == [-1.0, 0.0, -1.0, 0.0, -7.0]
    # Keeping 2: the middle band (1 and 3); the centre sample (2) and the outlier (10) go.
    assert select_top_k(scores, 2, higher_is_keep=True).tolist() == [1, 3]
    assert 4 not in select_top_k(scores, 4, higher_is_keep=True)


def test_centre_is_the_coordinate_wise_median_per_class():
    # Class 0's mean is pulled by the outlier to (25.5, 0); its coordinate-wise median is (1.5, 0).
    c0 = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [99.0, 0.0]])
    emb = np.vstack([c0, c0 + 1000.0])  # class 1: same shape far away, scored against its own centre
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    d = np.abs(c0[:, 0] - 1.5)  # [1.5, 0.5, 0.5, 97.5], median 1.0
    expected = -np.abs(d - np.median(d))
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
