"""The default's scarcity check (sampling='beta' from beta_from on): a proxy trained on part of the
training set is scored on a held-out part of it; held-out accuracy under scarce_below switches the
draw to scarce_mode / scarce_concentration (easier, broader), as Sorscher et al. 2022 advise when
data is scarce. The signal is planted: the same inputs with learnable labels (the proxy generalises)
or with labels shuffled (it cannot: held-out accuracy near chance). No test split is given."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.data.dataset import Dataset
from adaprune.methods.adapruner import AdaPruner, holdout_accuracy
from adaprune.selection import select_beta_rank
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import TrainConfig

K, PER_CLASS, DIM = 4, 60, 8
FAST = {"warmup_epochs": 1, "epochs": 2, "max_extra_epochs": 0, "pick_epochs": 8}


def planted(learnable: bool) -> ClassificationTask:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), PER_CLASS)
    x = (4.0 * rng.normal(size=(K, DIM))[y] + rng.normal(size=(len(y), DIM))).astype(np.float32)
    labels = y if learnable else rng.permutation(y)  # shuffled: class sizes kept, no signal in x
    return ClassificationTask(data=Dataset(name="planted", x=x, y=labels), model="mlp",
                              train=TrainConfig(epochs=5, lr=1e-2))


def test_holdout_accuracy_reacts_to_the_planted_signal():
    clean = holdout_accuracy(planted(True), seed=0, epochs=8, val_fraction=0.2)
    shuffled = holdout_accuracy(planted(False), seed=0, epochs=8, val_fraction=0.2)
    assert clean > 0.9
    assert shuffled < 0.5  # chance is 1/K = 0.25


@pytest.mark.parametrize("learnable", [True, False])
def test_scarce_data_switches_the_draw(learnable):
    task = planted(learnable)
    n_keep = int(0.3 * task.n)  # 70% pruned: past beta_from
    result = AdaPruner(**FAST).run(task, n_keep, seed=0, progress=False)
    scarcity = result.details["scarcity"]
    assert scarcity["scarce"] is (not learnable)
    assert scarcity["scarce"] is (scarcity["holdout_accuracy"] < AdaPruner().scarce_below)
    off = AdaPruner(**FAST, scarce_below=0.0).run(task, n_keep, seed=0, progress=False)
    assert "scarcity" not in off.details
    np.testing.assert_array_equal(result.scores, off.scores)  # the same mask either way
    scarce_draw = select_beta_rank(off.scores, n_keep, mode=0.5, concentration=6.0,
                                   rng=np.random.default_rng([0, 0xADA]), strata=np.asarray(task.labels))
    if learnable:  # enough data: the default draw, unchanged
        np.testing.assert_array_equal(result.kept, off.kept)
    else:
        np.testing.assert_array_equal(result.kept, scarce_draw)
        assert not np.array_equal(result.kept, off.kept)


def test_no_check_below_beta_from():
    task = planted(False)
    result = AdaPruner(**FAST).run(task, int(0.8 * task.n), seed=0, progress=False)  # 20% pruned
    assert "scarcity" not in result.details
