"""sampling='pick' (opt-in; the default stays the Beta draw, which the picker did not beat): the rule
is chosen on a validation split carved from the training set, never on the test split.

Planted data: 10 overlapping Gaussian classes. The mask's ranking is planted, not trained: in
one case the top of each class is mislabelled (the picker must not take the top), in the other
everything below the top of each class is a redundant near-copy of its class centre (the top is
the only informative band: the picker must take a rule from the top end)."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.data.dataset import Dataset
from adaprune.methods.adapruner import PICK_RULES, AdaPruner, draw_rule, pick_rule, stratified_holdout
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import TrainConfig

K, PER_CLASS, DIM = 10, 200, 20


def planted(bad_band: str) -> tuple[ClassificationTask, np.ndarray]:
    """Ten overlapping Gaussian classes and planted mask scores. bad_band='top': the mask's top 30%
    of each class is mislabelled (some other class). bad_band='below': everything under that top is
    a near-copy of its class centre (correctly labelled, redundant), so only the top is informative."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), PER_CLASS)
    centres = rng.normal(size=(K, DIM))
    x = (centres[y] + rng.normal(size=(len(y), DIM))).astype(np.float32)
    scores = rng.random(len(y))
    labels = y.copy()
    for c in range(K):
        members = np.flatnonzero(y == c)
        order = members[np.argsort(scores[members])]  # ascending: the last 30% are the class's top
        cut = int(0.7 * len(order))
        if bad_band == "top":
            labels[order[cut:]] = (c + 1 + rng.integers(0, K - 1, size=len(order) - cut)) % K
        else:
            x[order[:cut]] = (centres[c] + 0.01 * rng.normal(size=(cut, DIM))).astype(np.float32)
    data = Dataset(name="planted", x=x, y=labels)  # no test split at all
    task = ClassificationTask(data=data, model="mlp", train=TrainConfig(epochs=5, lr=1e-2))
    return task, scores


def test_picker_leaves_a_mislabelled_top_out():
    task, scores = planted("top")
    rule, report = pick_rule(task, scores, n_keep=600, seed=0, epochs=15, draws=2, val_fraction=0.2,
                             beta_mode=0.875, beta_concentration=20.0)
    assert rule in ("beta_mid", "random")
    assert report["val_accuracy"]["class_top"] < report["val_accuracy"][rule] - 0.2


def test_picker_takes_a_clean_top():
    task, scores = planted("below")
    rule, report = pick_rule(task, scores, n_keep=600, seed=0, epochs=15, draws=2, val_fraction=0.2,
                             beta_mode=0.875, beta_concentration=20.0)
    assert rule in ("class_top", "beta")
    assert min(report["val_accuracy"][r] for r in ("class_top", "beta")) > report["val_accuracy"]["random"] + 0.01


def test_holdout_is_stratified_seeded_and_disjoint_from_the_pool():
    y = np.repeat(np.arange(3), [10, 20, 50])
    held = stratified_holdout(y, 0.2, seed=3)
    assert np.bincount(y[held]).tolist() == [2, 4, 10]
    assert np.array_equal(held, stratified_holdout(y, 0.2, seed=3))
    assert not np.array_equal(held, stratified_holdout(y, 0.2, seed=4))


@pytest.mark.parametrize("rule", PICK_RULES)
def test_each_rule_keeps_class_quotas(rule):
    y = np.repeat(np.arange(4), 100)
    kept = draw_rule(rule, np.random.default_rng(1).random(400), 120, y, seed=0, beta_mode=0.875,
                     beta_concentration=20.0)
    assert len(np.unique(kept)) == 120 and np.bincount(y[kept]).tolist() == [30, 30, 30, 30]


def test_method_runs_without_a_test_split_records_its_choice_and_is_deterministic():
    task, _ = planted("top")
    method = AdaPruner(warmup_epochs=1, epochs=2, max_extra_epochs=0, sampling="pick", pick_epochs=3, pick_draws=1)
    assert task.data.x_test is None and task.data.y_test is None
    first = method.run(task, 600, seed=5, progress=False)
    second = method.run(task, 600, seed=5, progress=False)
    assert first.details["pick"]["rule"] in PICK_RULES
    assert set(first.details["pick"]["val_accuracy"]) == set(PICK_RULES)
    assert np.array_equal(first.kept, second.kept) and len(first.kept) == 600
    # the default (the Beta draw) does not pick, and below beta_from there is no picking
    old = AdaPruner(warmup_epochs=1, epochs=2, max_extra_epochs=0).run(task, 600, seed=5,
                                                                                         progress=False)
    assert "pick" not in old.details
    low = method.run(task, 1600, seed=5, progress=False)
    assert "pick" not in low.details
