"""AdaPruner's kept set at high pruning rates, pinned on a planted mask (no training, no accuracy).

The planted mask ranks one class entirely above the others, as the learned mask does on MNIST-1D
where the hardest-first ranking wipes out whole classes at 70% pruned. The default must keep every
class near its share, leave out the very top of the ranking (the ambiguous tail) at high rates, and
stay close to the paper's top-k at a low rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaprune.adapruner_mask import AdaPrunerMask, beta_mode, mask_kept
from adaprune.errors import ConfigError
from adaprune.methods.adapruner import AdaPruner
from adaprune.selection import normalised_ranks, select_top_k

N_PER_CLASS = 400
Y = np.repeat(np.arange(5), N_PER_CLASS)
# class c's mask values sit around 3c: class 4 holds every high value, class 0 every low one
M = np.random.default_rng(0).normal(size=len(Y)) + 3.0 * Y


def default_kept(keep: float, *, seed: int | None = None) -> np.ndarray:
    pruner = AdaPrunerMask(len(Y), keep=keep, labels=Y)
    with torch.no_grad():
        pruner.mask.copy_(torch.from_numpy(M).float())
    return pruner.kept() if seed is None else pruner.kept(seed=seed)


def class_shares(kept: np.ndarray) -> np.ndarray:
    return np.bincount(Y[kept], minlength=5) / N_PER_CLASS / (len(kept) / len(Y))


@pytest.mark.parametrize("keep", [0.5, 0.3, 0.1])
def test_default_keeps_every_class_near_its_share_at_high_rates(keep):
    kept = default_kept(keep)
    assert len(kept) == round(keep * len(Y))
    assert class_shares(kept).min() >= 0.95
    # the paper's global top-k on the same mask keeps almost nothing of the low classes
    assert class_shares(select_top_k(M, len(kept), higher_is_keep=True)).min() < 0.05


def test_default_leaves_out_the_hardest_band_first_at_high_rates():
    def keep_rate(keep: float, lo: float, hi: float) -> float:
        kept = default_kept(keep)
        is_kept = np.isin(np.arange(len(Y)), kept)
        rates = []
        for c in range(5):
            members = np.flatnonzero(np.equal(Y, c))
            u = normalised_ranks(M[members])  # within the class: 1 = its highest m
            rates.append(is_kept[members][(u > lo) & (u <= hi)].mean())
        return float(np.mean(rates))

    # 70% pruned: the top 2% of every class is kept less often than the overall 30%, the band below it
    # almost always (the paper's top-k keeps the top 2% always)
    assert keep_rate(0.3, 0.98, 1.0) < 0.3 and keep_rate(0.3, 0.75, 0.93) > 0.9
    # 90% pruned: nothing of the hardest 20%, the kept samples come from the middle
    assert keep_rate(0.1, 0.8, 1.0) == 0.0 and keep_rate(0.1, 0.3, 0.7) > 0.15


def test_default_is_the_papers_ranking_below_half_pruned():
    # below beta_from (50% pruned) the kept set is the n_keep highest m, exactly the old default
    np.testing.assert_array_equal(default_kept(0.7), select_top_k(M, 1400, higher_is_keep=True))
    np.testing.assert_array_equal(default_kept(0.7), mask_kept(M, 1400, sampling="top"))
    # the draw itself at 30% pruned stays close to the per-class top-k
    drawn = mask_kept(M, 1400, sampling="beta", labels=Y, seed=0)
    per_class_top = select_top_k(M, 1400, higher_is_keep=True, strata=Y)
    assert len(np.intersect1d(drawn, per_class_top)) / 1400 >= 0.85


def test_draw_is_seeded_and_the_old_rule_is_one_setting_away():
    np.testing.assert_array_equal(default_kept(0.3, seed=4), default_kept(0.3, seed=4))
    assert not np.array_equal(default_kept(0.3, seed=4), default_kept(0.3, seed=5))
    old = mask_kept(M, 300, sampling="top")
    np.testing.assert_array_equal(old, select_top_k(M, 300, higher_is_keep=True))


def test_beta_mode_moves_toward_easy_as_the_rate_grows_and_bad_values_are_refused():
    modes = [beta_mode(keep, beta_power=2.0) for keep in (0.7, 0.5, 0.3, 0.1)]
    assert modes == pytest.approx([0.91, 0.75, 0.51, 0.19])
    # the defaults: a ceiling of 0.875 (the hardest tail left out) until 1 - prune**6 falls under it
    defaults = [beta_mode(keep, beta_power=6.0, beta_mode_max=0.875) for keep in (0.7, 0.5, 0.3, 0.1)]
    assert defaults == pytest.approx([0.875, 0.875, 0.875, 1 - 0.9**6])
    with pytest.raises(ConfigError, match="sampling"):
        AdaPruner(sampling="random")
    with pytest.raises(ConfigError, match="beta_concentration"):
        AdaPrunerMask(10, keep=0.5, beta_concentration=2.0)
    # the threshold rule keeps m > 0 whatever the sampling (which only splits a budget)
    assert AdaPruner(binarize="threshold").sampling == "pick"
    np.testing.assert_array_equal(mask_kept(M, 600, binarize="threshold", sampling="beta"), np.flatnonzero(M > 0))


def test_auto_balance_without_labels_ranks_globally():
    pruner = AdaPrunerMask(len(Y), keep=0.3, balance="auto", sampling="top")
    with torch.no_grad():
        pruner.mask.copy_(torch.from_numpy(M).float())
    np.testing.assert_array_equal(pruner.kept(), select_top_k(M, 600, higher_is_keep=True))


def test_without_labels_auto_balance_keeps_the_paper_ranking_at_high_rates():
    # Detection sources have no class per image: the Beta draw (whose reason is class coverage) does
    # not apply, and the n_keep highest mask values are kept, as measured on the detection benchmark.

    scores = np.random.default_rng(0).normal(size=200)
    kept = mask_kept(scores, 60, sampling="beta", beta_from=0.5, balance="auto", labels=None, seed=0)
    assert kept.tolist() == sorted(np.argsort(-scores, kind="stable")[:60].tolist())
    drawn = mask_kept(scores, 60, sampling="beta", beta_from=0.5, balance="auto", labels=np.arange(200) % 2, seed=0)
    assert drawn.tolist() != kept.tolist()  # with classes the draw applies
