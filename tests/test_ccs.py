from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import build_method, prune
from adaprune.errors import ConfigError
from adaprune.methods.ccs import CCS, ccs_allocation, ccs_select, equal_width_strata
from adaprune.registry import list_methods
from adaprune.selection import rank_for_keep
from adaprune.tasks import ClassificationTask
from tests.conftest import blobs_dataset


def test_allocation_on_a_known_histogram():
    # Budget 16 over 4 strata: 16//4 = 4 > 1 -> 1; 15//3 = 5 -> 5; 10//2 = 5; 5//1 = 5.
    assert ccs_allocation([1, 5, 10, 20], 16).tolist() == [1, 5, 5, 5]
    # Order is by size, not position; empty strata get nothing and do not count.
    assert ccs_allocation([20, 0, 1, 10, 5], 16).tolist() == [5, 0, 1, 5, 5]
    assert ccs_allocation([3, 3, 3], 8).tolist() == [2, 3, 3]  # ties: lower index first
    assert ccs_allocation([4, 2], 6).tolist() == [4, 2]
    assert ccs_allocation([4, 2], 0).tolist() == [0, 0]
    with pytest.raises(ConfigError, match="budget"):
        ccs_allocation([1, 2], 4)


def test_allocation_is_exact_and_within_sizes():
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(0, 30, size=rng.integers(1, 12))
        budget = int(rng.integers(0, sizes.sum() + 1))
        counts = ccs_allocation(sizes, budget)
        assert counts.sum() == budget
        assert np.all(counts <= sizes) and np.all(counts >= 0)


def test_equal_width_strata():
    assert equal_width_strata(np.array([0.0, 0.49, 0.5, 1.0]), 2).tolist() == [0, 0, 1, 1]
    assert equal_width_strata(np.array([2.0, 2.0]), 5).tolist() == [0, 0]


def test_hardest_beta_dropped_and_budget_exact():
    scores = np.random.default_rng(1).permutation(200).astype(float)  # all distinct
    hardest = set(np.argsort(-scores)[:20])  # hard = high, beta = 0.1
    kept, details = ccs_select(scores, 90, hard_is_high=True, beta=0.1, strata=10, rng=np.random.default_rng(0))
    assert len(kept) == 90 and len(set(kept)) == 90
    assert not hardest & set(kept)
    assert details["n_dropped_hard"] == 20
    # hard = low: the lowest scores go instead
    kept_low, _ = ccs_select(scores, 90, hard_is_high=False, beta=0.1, strata=10, rng=np.random.default_rng(0))
    assert not set(np.argsort(scores)[:20]) & set(kept_low)


def test_dropped_part_shrinks_when_the_budget_needs_it():
    scores = np.arange(100, dtype=float)
    kept, details = ccs_select(scores, 80, hard_is_high=True, beta=0.5, strata=4, rng=np.random.default_rng(0))
    assert kept.tolist() == list(range(80))  # only the 20 hardest could go
    assert details["n_dropped_hard"] == 20 and details["n_dropped_hard_requested"] == 50


def test_coverage_every_stratum_is_represented():
    # 95 easy samples bunched near 0, 5 spread over the range: top-k or random would miss the sparse strata.
    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.uniform(0, 0.1, 95), [0.3, 0.5, 0.7, 0.9, 1.0]])
    kept, details = ccs_select(scores, 10, hard_is_high=True, beta=0.0, strata=5, rng=np.random.default_rng(0))
    assert len(kept) == 10
    # Bins of width ~0.2: the 95 bunched ones, then 0.3 | 0.5 | 0.7 | 0.9 and 1.0.
    assert details["stratum_sizes"] == [95, 1, 1, 1, 2]
    assert details["stratum_counts"] == [5, 1, 1, 1, 2]  # smallest strata first, each in full
    assert set(range(95, 100)) <= set(kept)


def test_nan_scores_fill_only_when_needed():
    scores = np.array([np.nan, 1.0, 2.0, 3.0, np.nan])
    kept, _ = ccs_select(scores, 3, hard_is_high=True, beta=0.0, strata=2, rng=np.random.default_rng(0))
    assert kept.tolist() == [1, 2, 3]
    kept, _ = ccs_select(scores, 4, hard_is_high=True, beta=0.4, strata=2, rng=np.random.default_rng(0))
    assert kept.tolist() == [0, 1, 2, 3]


def test_bad_parameters_are_errors():
    with pytest.raises(ConfigError, match="beta"):
        CCS(beta=1.0)
    with pytest.raises(ConfigError, match="strata"):
        CCS(strata=0)
    with pytest.raises(ConfigError, match="base"):
        CCS(base="ccs")
    task = ClassificationTask(data=blobs_dataset())
    with pytest.raises(ConfigError, match="owns its keep"):
        CCS(base="glister").run(task, 10, seed=0, progress=False)
    with pytest.raises(ConfigError, match="no parameter"):
        CCS(base="random", base_params={"stratify": True}).run(task, 10, seed=0, progress=False)


@pytest.mark.parametrize(
    ("base", "base_params", "beta"),
    [("random", None, 0.0), ("herding", {"embedding": "standardized", "balance": False}, 0.2)],
)
def test_prune_end_to_end(base, base_params, beta):
    data = blobs_dataset()
    params = {"base": base, "base_params": base_params, "beta": beta, "strata": 5}
    a = prune(data, "ccs", prune=0.3, seed=0, epochs=2, params=params, progress=False)
    b = prune(data, "ccs", prune=0.3, seed=0, epochs=2, params=params, progress=False)
    assert a.n_kept == 84
    np.testing.assert_array_equal(a.kept, b.kept)
    # The scores are the base's own, computed with the same seed; its declared hard end goes first.
    base_obj = build_method(base, base_params)
    expected = base_obj.score_set(ClassificationTask(data=data), seed=0, progress=False)
    np.testing.assert_array_equal(a.scores, expected.scores)
    n_hard = round(beta * 120)
    assert a.details["n_dropped_hard"] == n_hard
    if n_hard:
        hardest = rank_for_keep(expected.scores, higher_is_keep=type(base_obj).higher_is_hard)[:n_hard]
        assert not set(hardest) & set(a.kept)


def test_default_base_end_to_end():
    if "el2n" not in {m.name for m in list_methods()}:
        pytest.skip("the default base 'el2n' is not registered in this tree")
    sel = prune(blobs_dataset(), "ccs", prune=0.3, seed=0, epochs=2, progress=False)
    assert sel.n_kept == 84


def test_aum_base_drops_the_flipped_labels_at_the_hard_cutoff():
    # AUM keeps high margins, and its hard end is the LOW one (negative margin: the label is argued
    # against). CCS must drop from that end: every planted flipped label goes at beta = 0.1 (24 of 240).
    from tests.conftest import flipped_blobs

    data, flip = flipped_blobs()
    sel = prune(data, "ccs", prune=0.3, seed=0, epochs=8, params={"base": "aum", "beta": 0.1}, progress=False)
    assert not set(flip.tolist()) & set(sel.kept.tolist())
    assert sel.details["n_dropped_hard"] == 24 and sel.details["base_higher_is_hard"] is False


def test_every_scorer_declares_its_hard_end_apart_from_its_kept_end():
    from adaprune.methods.base import Scorer
    from adaprune.registry import get_method

    hard = {m.name: get_method(m.name).higher_is_hard for m in list_methods() if m.kind == "scorer"}
    assert hard["aum"] is False and hard["herding"] is False  # low score = hard, yet higher = keep
    assert hard["el2n"] is True and hard["forgetting"] is True
    assert hard["random"] is None and hard["moderate"] is None  # no hard end: beta must be 0
    for name, value in hard.items():
        assert value in (True, False, None), name
        assert issubclass(get_method(name), Scorer)


def test_default_beta_follows_the_paper_per_pruning_rate():
    from adaprune.methods.ccs import paper_beta

    # 0 at low rates; the hard cut-off grows only at high pruning rates (see ccs.py's table).
    assert [paper_beta(p) for p in (0.0, 0.1, 0.3, 0.5, 0.6)] == [0.0] * 5
    assert paper_beta(0.7) == 0.1 and paper_beta(0.8) == 0.2 and paper_beta(0.9) == 0.3
    assert paper_beta(0.95) == 0.3
    sel = prune(blobs_dataset(), "ccs", prune=0.3, seed=0, params={"base": "random"}, progress=False)
    assert sel.details["beta"] == 0.0 and sel.details["n_dropped_hard"] == 0
    sel = prune(blobs_dataset(), "ccs", prune=0.9, seed=0, params={"base": "cgscore"}, progress=False)
    assert sel.details["beta"] == 0.3 and sel.details["n_dropped_hard"] == 36


def test_a_base_without_a_hard_end_refuses_a_positive_beta():
    task = ClassificationTask(data=blobs_dataset())
    with pytest.raises(ConfigError, match="no hard end"):
        CCS(base="random", beta=0.2).run(task, 60, seed=0, progress=False)
