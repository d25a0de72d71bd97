"""The API edge: seeds and budgets are validated once, and an `embeddings:` source is read as it is."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from adaprune.api import prune, score
from adaprune.errors import ConfigError
from adaprune.methods.kcenter import kcenter_order
from adaprune.selection import Budget
from tests.conftest import blobs_dataset, make_blobs


@pytest.mark.parametrize("method", ["random", "el2n", "kcenter"])
def test_seed_none_is_refused_in_one_line(method):
    with pytest.raises(ConfigError, match="^seed must be an integer, got None$"):
        prune(blobs_dataset(), method, keep=0.5, seed=None, progress=False)
    with pytest.raises(ConfigError, match="^seed must be an integer, got None$"):
        score(blobs_dataset(), method, seed=None, progress=False)


@pytest.mark.parametrize("seed", [1.5, "0", True, -1])
def test_other_bad_seeds_are_refused(seed):
    with pytest.raises(ConfigError, match="seed must be"):
        prune(blobs_dataset(), "random", keep=0.5, seed=seed, progress=False)


def test_boolean_budgets_are_refused():
    with pytest.raises(ConfigError, match=r"^keep must be a fraction in \(0, 1\], got True$"):
        prune(blobs_dataset(), "random", keep=True, progress=False)
    with pytest.raises(ConfigError, match=r"^prune must be a fraction in \[0, 1\), got False$"):
        Budget.from_args(prune=False)


def test_counts_round_half_up():
    # keep 0.5 of 5 keeps 3 (not 2, Python's round-half-to-even), of 7 keeps 4; the float error of
    # 1 - 0.55 does not turn 4.5 into 4.
    assert Budget.from_args(keep=0.5).count(5) == 3
    assert Budget.from_args(keep=0.5).count(7) == 4
    assert Budget.from_args(prune=0.55).count(10) == 5
    assert Budget.from_args(keep=0.25).count(10) == 3
    assert Budget.from_args(prune=0.3).count(1000) == 700


def write_embeddings(tmp_path, labels: bool):
    x, y = make_blobs(n=90, d=5)
    path = tmp_path / "e.npy"
    np.save(path, x)
    if labels:
        np.save(tmp_path / "e.labels.npy", y)
    return path, x, y


def test_kcenter_on_embeddings_uses_the_vectors_as_given(tmp_path, caplog):
    path, x, y = write_embeddings(tmp_path, labels=True)
    with caplog.at_level(logging.INFO, logger="adaprune"):
        sel = prune(f"embeddings:{path}", "kcenter", keep=0.5, seed=3, progress=False)
    assert "as given" in caplog.text and "embedded" not in caplog.text  # no model was trained on them
    # The same per-class greedy order on the raw vectors, seeded the same way.
    rng = np.random.default_rng(3)
    expected = np.empty(90)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        order = kcenter_order(x[members].astype(np.float64), start="random", rng=rng)
        expected[members[order]] = -np.arange(len(members))
    np.testing.assert_array_equal(sel.scores, expected)


@pytest.mark.parametrize("method", ["el2n", "aum", "adapruner"])
def test_unlabelled_embeddings_are_refused_by_methods_that_train_a_classifier(tmp_path, method):
    path, _, _ = write_embeddings(tmp_path, labels=False)
    with pytest.raises(ConfigError, match=r"e\.labels\.npy"):
        prune(f"embeddings:{path}", method, keep=0.5, progress=False)


def test_unlabelled_embeddings_still_serve_methods_that_need_no_classifier(tmp_path):
    path, _, _ = write_embeddings(tmp_path, labels=False)
    for method in ("semdedup", "kcenter", "random"):
        assert prune(f"embeddings:{path}", method, keep=0.5, progress=False).n_kept == 45


def test_prototypes_on_embeddings_uses_the_vectors_as_given(tmp_path, caplog):
    path, x, y = write_embeddings(tmp_path, labels=False)
    with caplog.at_level(logging.INFO, logger="adaprune"):
        sel = prune(f"embeddings:{path}", "prototypes", keep=0.6, seed=1, progress=False)
    assert "as given" in caplog.text
    from adaprune.data import Dataset

    same = prune(Dataset(name="v", x=x, y=np.zeros(90, np.int64)), "prototypes", keep=0.6, seed=1,
                 params={"embedding": "identity"}, progress=False)
    np.testing.assert_allclose(sel.scores, same.scores)
