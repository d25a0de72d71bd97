from __future__ import annotations

import numpy as np
import pytest
import torch

import adaprune.training.trace as trace_mod
from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.el2n import el2n_from_logits
from adaprune.registry import list_methods
from adaprune.tasks import ClassificationTask
from adaprune.training.trace import TrainingTrace, summarize_logits
from tests.conftest import flipped_blobs

LOGITS = torch.tensor([[0.0, 0.0, -np.inf], [np.log(3.0), 0.0, -np.inf], [1.0, 1.0, 1.0], [50.0, 0.0, 0.0]])
LABELS = torch.tensor([0, 1, 2, 0])
# by hand: p = (1/2, 1/2, 0); (3/4, 1/4, 0); (1/3, 1/3, 1/3); ~(1, 0, 0)
EXPECTED = [np.sqrt(0.5), 0.75 * np.sqrt(2), np.sqrt(6) / 3, 0.0]


def test_el2n_on_hand_written_logits():
    np.testing.assert_allclose(el2n_from_logits(LOGITS, LABELS), EXPECTED, atol=1e-12)
    # the trace's summary computes the same quantity
    np.testing.assert_allclose(summarize_logits(LOGITS, LABELS).el2n, EXPECTED, atol=1e-7)


def test_el2n_rejects_mismatched_shapes():
    with pytest.raises(ConfigError, match="logits"):
        el2n_from_logits(LOGITS, LABELS[:3])


def test_scorer_averages_runs_from_derived_seeds(monkeypatch):
    calls = []
    per_seed_logits = {2000: LOGITS, 2001: LOGITS.flip(1).contiguous()}

    def fake(task, *, seed, epochs, progress, desc="trace"):
        calls.append((seed, epochs))
        # epoch 0 is uninformative; the score must read the last epoch
        summaries = [summarize_logits(torch.zeros(4, 3), LABELS), summarize_logits(per_seed_logits[seed], LABELS)]
        return None, TrainingTrace.stack(summaries)

    monkeypatch.setattr(trace_mod, "train_with_trace", fake)
    task = ClassificationTask(data=Dataset(name="t", x=np.zeros((4, 2), np.float32), y=LABELS.numpy()), model="mlp")
    out = build_method("el2n", {"epochs": 2, "runs": 2}).score(task, seed=2, progress=False)
    assert calls == [(2000, 2), (2001, 2)]
    expected = (el2n_from_logits(LOGITS, LABELS) + el2n_from_logits(LOGITS.flip(1), LABELS)) / 2
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_run_seeds_derive_from_the_seed():
    assert trace_mod.run_seeds(7, 3) == [7000, 7001, 7002]
    assert trace_mod.run_seeds(0, 1) == [0]


def test_parameters_are_stored_and_checked():
    m = build_method("el2n", {"epochs": 4, "runs": 2})
    assert m.params() == {"epochs": 4, "runs": 2}
    assert m.trains_model and m.higher_is_keep
    with pytest.raises(ConfigError, match="runs"):
        build_method("el2n", {"runs": 0})
    with pytest.raises(ConfigError, match="epochs"):
        build_method("el2n", {"epochs": 0})
    info = next(i for i in list_methods() if i.name == "el2n")
    assert "Paul" in info.summary and "higher = keep" in info.summary
    assert info.parameters == {"epochs": 10, "runs": 3}


def test_prune_budget_determinism_and_flipped_labels_score_highest():
    ds, flip = flipped_blobs()
    a = prune(ds, "el2n", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(ds, "el2n", prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == round(0.7 * ds.n) == len(np.unique(a.kept))
    assert np.array_equal(a.kept, b.kept) and np.array_equal(a.scores, b.scores)
    assert a.params == {"epochs": 2, "runs": 3} and a.details["selection_balance"] == "none"
    clean = np.setdiff1d(np.arange(ds.n), flip)
    for sel in (a, prune(ds, "el2n", prune=0.3, seed=1, epochs=8, progress=False)):
        assert sel.scores[flip].mean() > 2 * sel.scores[clean].mean()
        assert np.isin(flip, sel.kept).all()  # 10% flipped, 70% kept: every flipped sample kept
