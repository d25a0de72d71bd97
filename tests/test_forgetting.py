from __future__ import annotations

import itertools

import numpy as np
import pytest

import adaprune.training.trace as trace_mod
from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.forgetting import forgetting_counts, loss_tie_break
from adaprune.training.trace import TrainingTrace
from tests.conftest import flipped_blobs


def test_counts_on_scripted_correctness():
    # one column per sample, one row per epoch
    seqs = {
        (1, 0, 1, 0): 2,
        (0, 0, 0, 0): 4,  # never learned: T, above any count
        (0, 1, 1, 1): 0,
        (1, 1, 1, 1): 0,
        (1, 1, 0, 0): 1,
        (1, 0, 0, 1): 1,
        (0, 1, 0, 1): 1,
    }
    correct = np.array(list(seqs), dtype=bool).T
    assert forgetting_counts(correct).tolist() == list(seqs.values())
    assert forgetting_counts(correct).dtype == np.int64


def test_never_learned_outranks_every_possible_count():
    for t in range(1, 7):
        seqs = np.array(list(itertools.product([0, 1], repeat=t)), dtype=bool).T  # (t, 2^t)
        counts = forgetting_counts(seqs)
        never = ~seqs.any(axis=0)
        assert counts[never].tolist() == [t]
        assert counts[~never].max() == t // 2 < t


def test_counts_reject_a_bad_shape():
    with pytest.raises(ConfigError, match=r"\(T, N\)"):
        forgetting_counts(np.array([True, False]))


def test_tie_break_is_monotone_and_below_one():
    u = loss_tie_break(np.array([0.0, 0.1, 1.0, 50.0, 1e30, np.inf, np.nan]))
    assert (u >= 0).all() and (u < 1).all()
    assert (np.diff(u[:5]) > 0).all()


def fake_trace(correct: np.ndarray, loss: np.ndarray) -> TrainingTrace:
    t, n = correct.shape
    z = np.zeros((t, n))
    return TrainingTrace(loss=loss, correct=correct, p_true=z, p_max=z, p_second=z, entropy=z,
                         sum_sq_prob=z, logit_margin=z)


def test_scorer_orders_by_count_then_loss(monkeypatch):
    correct = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]], dtype=bool).T
    loss = np.tile([[0.1, 3.0, 0.2, 0.9, 0.5]], (4, 1))
    seeds = []

    def fake(task, *, seed, epochs, progress, desc="trace"):
        seeds.append(seed)
        return None, fake_trace(correct, loss)

    monkeypatch.setattr(trace_mod, "train_with_trace", fake)
    ds = Dataset(name="five", x=np.zeros((5, 2), np.float32), y=np.zeros(5, np.int64))
    from adaprune.tasks import ClassificationTask

    task = ClassificationTask(data=ds, model="mlp")
    scores = build_method("forgetting", {"epochs": 4, "runs": 2}).score(task, seed=3, progress=False)
    assert seeds == [3000, 3001]
    assert np.floor(scores).tolist() == [2, 4, 0, 0, 1]  # averaged equal counts stay integers
    assert scores[3] > scores[2]  # same count (0): the higher-loss sample ranks higher
    plain = build_method("forgetting", {"epochs": 4, "tie_break": False}).score(task, seed=3, progress=False)
    assert plain.tolist() == [2, 4, 0, 0, 1]


def test_validation():
    with pytest.raises(ConfigError, match="epochs"):
        build_method("forgetting", {"epochs": 1})
    with pytest.raises(ConfigError, match="runs"):
        build_method("forgetting", {"runs": 0})


def test_prune_budget_determinism_and_flipped_labels_are_forgotten_most():
    ds, flip = flipped_blobs()
    a = prune(ds, "forgetting", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(ds, "forgetting", prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == round(0.7 * ds.n) and np.array_equal(a.kept, b.kept)
    assert np.array_equal(a.scores, b.scores)
    sel = prune(ds, "forgetting", prune=0.3, seed=0, epochs=10, progress=False)
    clean = np.setdiff1d(np.arange(ds.n), flip)
    assert sel.scores[flip].mean() > sel.scores[clean].mean() + 3
    assert np.isin(flip, sel.kept).mean() >= 0.9  # the unforgettable are pruned, not the flipped
