from __future__ import annotations

import numpy as np
import pytest
import torch

import adaprune.training.trace as trace_mod
from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.uncertainty import MEASURES, uncertainty_scores
from adaprune.training.trace import TrainingTrace, summarize_logits

PROBS = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [0.05, 0.9, 0.05], [0.45, 0.15, 0.4]])
LOGITS = torch.tensor(np.log(PROBS))
LABELS = torch.tensor([0, 1, 2, 0])  # labels play no part in uncertainty
EXPECTED = {
    "least_confidence": [0.3, 2 / 3, 0.1, 0.55],
    "margin": [1 - 0.5, 1.0, 1 - 0.85, 1 - 0.05],  # 1 - (p_max - p_second)
    "entropy": [-(p * np.log(p)).sum() for p in PROBS],
}


@pytest.mark.parametrize("measure", MEASURES)
def test_measures_on_hand_written_probabilities(measure):
    summary = summarize_logits(LOGITS, LABELS)
    np.testing.assert_allclose(uncertainty_scores(summary, measure), EXPECTED[measure], atol=1e-7)


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_keeps_the_uncertain(monkeypatch, measure):
    """One direction for all three: the uniform prediction (row 1) is kept first, the confident
    one (row 2) pruned first. (DeepCore keeps the lowest in one branch, the highest in another.)"""

    def fake(task, *, seed, epochs, progress, desc="trace"):
        return None, TrainingTrace.stack([summarize_logits(LOGITS, LABELS)])

    monkeypatch.setattr(trace_mod, "train_with_trace", fake)
    ds = Dataset(name="four", x=np.zeros((4, 2), np.float32), y=LABELS.numpy())
    assert prune(ds, "uncertainty", keep=0.25, params={"measure": measure}, progress=False).kept.tolist() == [1]
    assert 2 not in prune(ds, "uncertainty", keep=0.75, params={"measure": measure}, progress=False).kept


def test_bad_measure_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="one of 'entropy', 'least_confidence', 'margin'"):
        build_method("uncertainty", {"measure": "variance"})
    with pytest.raises(ConfigError):
        uncertainty_scores(summarize_logits(LOGITS, LABELS), "max")
    m = build_method("uncertainty")
    assert m.params() == {"measure": "entropy", "epochs": 10, "runs": 1} and m.higher_is_keep


def boundary_blobs(n: int = 240, n_mid: int = 20, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """Three Gaussian blobs plus `n_mid` points at the midpoint of blobs 0 and 1, labelled 0 or 1."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(3, 8))
    y = np.arange(n) % 3
    x = centers[y] + rng.normal(size=(n, 8))
    mid = (centers[0] + centers[1]) / 2 + 0.1 * rng.normal(size=(n_mid, 8))
    x = np.concatenate([x, mid]).astype(np.float32)
    y = np.concatenate([y, np.arange(n_mid) % 2]).astype(np.int64)
    return Dataset(name="boundary", x=x, y=y), np.arange(n, n + n_mid)


def test_prune_budget_determinism_and_boundary_points_are_most_uncertain():
    ds, mid = boundary_blobs()
    a = prune(ds, "uncertainty", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(ds, "uncertainty", prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == round(0.7 * ds.n) and np.array_equal(a.kept, b.kept)
    sel = prune(ds, "uncertainty", prune=0.3, seed=0, epochs=10, progress=False)
    rest = np.setdiff1d(np.arange(ds.n), mid)
    assert sel.scores[mid].mean() > 3 * sel.scores[rest].mean()
    assert np.isin(mid, sel.kept).all()
