from __future__ import annotations

import numpy as np
import pytest
import torch

import adaprune.training.trace as trace_mod
from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.aum import aum_from_margins
from adaprune.training.trace import TrainingTrace, summarize_logits
from tests.conftest import make_blobs


def test_aum_is_the_mean_margin_over_epochs():
    np.testing.assert_allclose(aum_from_margins(np.array([[1.0, -2.0], [3.0, 0.0], [2.0, -4.0]])), [2.0, -2.0])
    with pytest.raises(ConfigError):
        aum_from_margins(np.array([1.0, 2.0]))


def test_scorer_reads_logit_margins_from_the_trace(monkeypatch):
    y = torch.tensor([0, 1])
    epoch0 = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])  # margins 1, -3
    epoch1 = torch.tensor([[4.0, 1.0, 0.0], [0.0, 2.0, 1.0]])  # margins 3, 1

    def fake(task, *, seed, epochs, progress, desc="trace"):
        return None, TrainingTrace.stack([summarize_logits(epoch0, y), summarize_logits(epoch1, y)])

    monkeypatch.setattr(trace_mod, "train_with_trace", fake)
    ds = Dataset(name="two", x=np.zeros((2, 2), np.float32), y=y.numpy())
    sel = prune(ds, "aum", keep=0.5, epochs=2, progress=False)
    np.testing.assert_allclose(sel.scores, [2.0, -1.0])
    assert sel.kept.tolist() == [0]  # low AUM (likely mislabeled) is pruned


def test_parameters():
    m = build_method("aum")
    assert m.params() == {"epochs": 10, "runs": 1} and m.higher_is_keep and m.trains_model
    with pytest.raises(ConfigError):
        build_method("aum", {"epochs": 0})


def test_prune_budget_determinism_and_flipped_labels_are_pruned():
    x, y = make_blobs(n=240, d=8, classes=3)
    flip = np.random.default_rng(1).choice(240, 24, replace=False)
    y[flip] = (y[flip] + 1) % 3
    ds = Dataset(name="blobs", x=x, y=y)
    a = prune(ds, "aum", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(ds, "aum", prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == 168 and np.array_equal(a.kept, b.kept)
    sel = prune(ds, "aum", prune=0.3, seed=0, epochs=8, progress=False)
    assert np.isin(flip, sel.kept).mean() <= 0.1
    assert sel.scores[flip].mean() < 0 < sel.scores[np.setdiff1d(np.arange(240), flip)].mean()
