"""Scores that are NaN or infinite are refused in one line naming the method, whatever the method:
ranking them would keep an arbitrary set (NaN ties break by index)."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune, score
from adaprune.errors import ConfigError
from tests.conftest import blobs_dataset


def test_adapruner_with_a_negative_sel_eps_is_refused_not_run():
    """Today's failure: sel_eps=-1 makes -log(loss - 1) NaN for every sample, and prune kept the
    first rows by index with a warning. The spec refuses the value before anything trains."""
    with pytest.raises(ConfigError, match=r"^adapruner: sel_eps must be a float > 0, got -1$"):
        prune(blobs_dataset(), "adapruner", keep=0.5, seed=0, progress=False,
              params={"sel_eps": -1, "warmup_epochs": 0, "epochs": 2, "max_extra_epochs": 0})


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_scorer_with_non_finite_scores_is_refused(monkeypatch, bad):
    from adaprune.methods.random import RandomPruning

    def broken(self, task, *, seed, progress):
        out = np.random.default_rng(seed).random(task.n)
        out[3] = bad
        return out

    monkeypatch.setattr(RandomPruning, "score", broken)
    for call in (lambda: prune(blobs_dataset(), "random", keep=0.5, seed=0, progress=False),
                 lambda: score(blobs_dataset(), "random", seed=0, progress=False)):
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value).startswith("random: 1 of 120 scores are not finite (sample 3: ")


def test_a_selector_with_non_finite_scores_is_refused(monkeypatch):
    from adaprune.adapruner_mask import AdaPrunerMask

    monkeypatch.setattr(AdaPrunerMask, "scores", lambda self: np.full(self.n_samples, np.nan))
    with pytest.raises(ConfigError, match=r"^adapruner: 120 of 120 scores are not finite"):
        prune(blobs_dataset(), "adapruner", keep=0.5, seed=0, progress=False,
              params={"warmup_epochs": 0, "epochs": 1, "max_extra_epochs": 0})
