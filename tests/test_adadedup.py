"""AdaDeDup: the per-cluster budget arithmetic, the rate rule, the proxy loop and its metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaprune.data import Dataset
from adaprune.errors import ConfigError, DataError
from adaprune.methods.adadedup import (
    AdaDeDup,
    adapt_rates,
    allocate_quotas,
    bonferroni_z,
    cluster_gaps,
    crossfit_folds,
    crossfit_unit_losses,
    plot_cluster_rates,
    shrunk_signal,
)
from adaprune.methods.semdedup import SemDeDup, Units
from adaprune.tables import jsonable
from adaprune.tasks import ClassificationTask


@pytest.mark.parametrize("seed", range(30))
def test_quotas_meet_the_global_budget_exactly(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 40))
    sizes = rng.integers(1, 200, k)
    rates = rng.random(k) * (rng.random(k) > 0.2)
    p_max = float(rng.uniform(0.3, 1.0))
    cap = np.where(rates > 0, np.floor(p_max * sizes + 1e-9), 0).astype(int)
    n_remove = int(rng.integers(0, cap.sum() + 1))
    quotas, factor = allocate_quotas(sizes, rates, n_remove, p_max=p_max)
    assert quotas.sum() == n_remove
    assert (quotas <= cap).all() and (quotas >= 0).all()
    assert (quotas[rates == 0] == 0).all()
    if n_remove:
        # Each cluster gets its share of the one rescaled rate, to within one sample of rounding.
        target = np.minimum(factor * rates * sizes, cap)
        assert np.abs(quotas - target).max() < 1 + 1e-6


def test_quotas_when_the_rated_clusters_cannot_absorb_the_budget():
    quotas, factor = allocate_quotas(np.array([10, 10, 10]), np.array([0.5, 0.0, 0.2]), 25, p_max=0.5)
    assert quotas.tolist() == [5, 0, 5] and factor == np.inf
    with pytest.raises(ConfigError):
        allocate_quotas(np.array([3]), np.array([1.0]), 4)


def test_rate_rule_prunes_less_where_pruning_hurt():
    p = np.array([0.2, 0.2, 0.2, 0.0])
    s = np.array([1.0, -1.0, 0.0, 3.0])
    adapted = adapt_rates(p, s, alpha_plus=1.0, alpha_minus=0.5, beta=0.5, p_max=0.25)
    # hurt: 0.2 (1 - 0.5); covered: 0.2 (1 + 0.25) capped at 0.25; no signal: unchanged; p = 0 stays 0
    assert adapted.tolist() == pytest.approx([0.1, 0.25, 0.2, 0.0])


def test_cluster_gaps_by_hand():
    # cluster 0: pruned losses 0, 0.2 (mean 0.1), kept 1, 1.2, 0.8 (mean 1.0); cluster 1: one pruned unit only.
    loss = np.array([0.0, 0.2, 1.0, 1.2, 0.8, 5.0, 2.0, 2.0])
    cluster = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    removed = np.array([1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    g = cluster_gaps(loss, np.ones(8), cluster, removed, 2)
    assert g.defined.tolist() == [True, False]
    assert g.mean_pruned[0] == pytest.approx(0.1) and g.mean_kept[0] == pytest.approx(1.0)
    assert g.gap[0] == pytest.approx((0.1 - 1.0) / 1.0) and g.gap[1] == 0.0
    se = np.sqrt(0.02 / 2 + 0.04 / 3)  # sample variances 0.02 and 0.04
    assert g.se[0] == pytest.approx(se) and g.se[1] == 0.0


def test_signal_is_centred_and_shrunk_toward_zero():
    gap = np.array([-0.8, -0.8, 0.4, 0.1])
    se = np.array([0.05, 0.05, 0.1, 0.5])
    defined = np.array([True, True, True, False])
    s, centre = shrunk_signal(gap, se, defined, np.array([10, 10, 20, 99]), z=2.0)
    assert centre == pytest.approx((-8 - 8 + 8) / 40)
    # -0.8 - (-0.2) = -0.6, less 2 x 0.05: -0.5; 0.4 + 0.2 = 0.6, less 0.2: 0.4; undefined: 0
    assert s.tolist() == pytest.approx([-0.5, -0.5, 0.4, 0.0])
    # A common gap is no evidence; a gap inside its noise moves nothing.
    assert (shrunk_signal(np.full(3, -0.7), np.full(3, 0.01), np.ones(3, bool), np.ones(3), z=2.0)[0] == 0).all()
    assert (shrunk_signal(np.array([0.1, -0.1]), np.array([0.1, 0.1]), np.ones(2, bool), np.ones(2), z=1.0)[0]
            == 0).all()


def test_default_noise_guard_is_bonferroni_over_the_clusters():
    assert bonferroni_z(1) == pytest.approx(1.959964, abs=1e-5)  # the two-sided 5% quantile
    assert bonferroni_z(50) == pytest.approx(3.290527, abs=1e-5)  # the two-sided 0.1% quantile


def test_crossfit_holds_out_what_it_scores():
    units = Units.from_groups(None, 40)
    cluster = np.repeat([0, 1], 20)
    removed = np.zeros(40, dtype=bool)
    removed[::4] = True
    fold = crossfit_folds(cluster[~removed], 3, np.random.default_rng(0))
    full_fold = np.full(40, -1)
    full_fold[~removed] = fold
    for c in (0, 1):  # balanced inside every cluster
        counts = np.bincount(fold[cluster[~removed] == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    seen: list[np.ndarray] = []

    def proxy(train: np.ndarray) -> np.ndarray:  # loss 1 on trained samples, 0 on the rest
        seen.append(train)
        out = np.zeros(40)
        out[train] = 1.0
        return out + len(seen)  # plus the call number, to tell the proxies apart

    loss = crossfit_unit_losses(proxy, units, removed, full_fold, 3)
    assert len(seen) == 3 and not any(removed[t].any() for t in seen)
    # Every score is a held-out one: a kept unit's from the proxy of its own fold, a pruned unit's the mean.
    assert np.allclose(loss[~removed], fold + 1) and np.allclose(loss[removed], 2.0)


def two_kinds_of_clusters(seed: int = 0):
    """Six clusters. Clusters 0-2: 20 points with one label per cluster, each point with two
    0.001-noise copies (pruning a copy costs nothing: its twin stays). Clusters 3-5: 30 pairs of
    a point (label 0) and a partner nudged away from the cluster centre (label 1): near-duplicates
    by embedding, yet pruning one loses its label. Farthest-first ordering keeps the partners."""
    rng = np.random.default_rng(seed)
    d = 16
    centers = rng.normal(size=(6, d)) * 8
    parts, labels, cluster = [], [], []
    for c in range(6):
        base = centers[c] + rng.normal(size=(30 if c >= 3 else 20, d))
        if c < 3:
            parts += [base] + [base + 0.001 * rng.normal(size=base.shape) for _ in range(2)]
            labels.append(np.full(60, c % 2))
        else:
            unit = centers[c] / np.linalg.norm(centers[c])
            away = base - (base @ unit)[:, None] * unit
            away /= np.linalg.norm(away, axis=1, keepdims=True)
            parts += [base, base + 0.3 * away]
            labels += [np.zeros(30), np.ones(30)]
        cluster += [c] * 60
    x = np.concatenate(parts).astype(np.float32)
    return x, np.concatenate(labels).astype(np.int64), np.array(cluster)


def check_budget_moves_out_of_the_paired_clusters(res, x, y, cluster, n_keep):
    assert len(res.kept) == n_keep and np.all(np.diff(res.kept) > 0)
    paired = np.flatnonzero(cluster >= 3)
    # Held-out, the pruned label-0 points of clusters 3-5 are wrong (their kept partner says 1) while
    # the pruned copies of clusters 0-2 are explained by their twins: pruning moves to the copy-rich ones.
    assert np.isin(res.kept, paired).sum() >= 100  # SemDeDup keeps 90
    details = json.loads(json.dumps(jsonable(res.details)))
    c = details["clusters"]
    assert sorted(c["size"]) == [60] * 6 and len(c["p_initial"]) == len(c["d"]) == len(c["final_rate"]) == 6
    assert round(float(np.dot(c["size"], c["final_rate"]))) == len(x) - n_keep
    first = details["rounds"][0]
    hurt = [j for j in range(6) if abs(c["p_initial"][j] - 0.5) < 1e-9]
    assert len(hurt) == 3 and all(first["s"][j] > 0 for j in hurt)
    assert all(first["s"][j] <= 0 for j in range(6) if j not in hurt)
    assert sum(first["p_after"][j] for j in hurt) < sum(c["p_initial"][j] for j in hurt) - 0.15
    return details


def test_adadedup_moves_pruning_from_where_it_hurt_to_where_it_did_not(tmp_path):
    x, y, cluster = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    n_keep = len(x) - 210  # SemDeDup: the 120 copies and the 90 label-0 points of clusters 3-5
    paired = np.flatnonzero(cluster >= 3)
    sem = SemDeDup(n_clusters=6).run(task, n_keep, seed=0, progress=False)
    assert np.isin(sem.kept, paired).sum() == 90 and (y[np.intersect1d(sem.kept, paired)] == 1).all()
    res = AdaDeDup(n_clusters=6, epochs=5).run(task, n_keep, seed=0, progress=False)
    details = check_budget_moves_out_of_the_paired_clusters(res, x, y, cluster, n_keep)
    png = plot_cluster_rates(details, tmp_path / "rates.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_users_proxy_drives_the_feedback():
    """A 1-nearest-neighbour classifier as the user's proxy: loss 1 where the nearest trained
    sample has another label. Called once per fold, never trained on a pruned sample."""
    x, y, cluster = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    n_keep = len(x) - 210
    calls: list[np.ndarray] = []

    def nearest_neighbour_losses(train: np.ndarray) -> np.ndarray:
        calls.append(train)
        dist = ((x[:, None, :] - x[None, train, :]) ** 2).sum(-1)
        dist[train, np.arange(len(train))] = np.inf  # a sample is not its own neighbour
        return (y[train[dist.argmin(1)]] != y).astype(float) + 0.01

    sem_kept = SemDeDup(n_clusters=6).run(task, n_keep, seed=0, progress=False).kept
    method = AdaDeDup(n_clusters=6, folds=4, proxy_losses=nearest_neighbour_losses)
    res = method.run(task, n_keep, seed=0, progress=False)
    assert len(calls) == 4 and all(np.isin(t, sem_kept).all() for t in calls)
    check_budget_moves_out_of_the_paired_clusters(res, x, y, cluster, n_keep)
    assert method.params()["proxy_losses"].endswith("nearest_neighbour_losses")
    with pytest.raises(DataError, match="proxy_losses must return"):
        AdaDeDup(n_clusters=6, proxy_losses=lambda t: np.zeros(3)).run(task, n_keep, seed=0, progress=False)


def test_feedback_off_is_semdedup_exactly():
    x, y, _ = two_kinds_of_clusters(seed=2)
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    for n_keep in (300, 200, 77):
        sem = SemDeDup(n_clusters=5).run(task, n_keep, seed=3, progress=False)
        off = AdaDeDup(n_clusters=5, feedback=False).run(task, n_keep, seed=3, progress=False)
        assert np.array_equal(sem.kept, off.kept) and np.array_equal(sem.scores, off.scores)
        assert off.details["rounds"] == []


def planted_digits(seed: int):
    """600 real digits and 200 near-copies (noise 0.01) of randomly chosen ones; group = source."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(digits.target))[:600]
    x0, y0 = (digits.data[idx] / 16).astype(np.float32), digits.target[idx].astype(np.int64)
    source = rng.choice(600, 200)
    copies = x0[source] + 0.01 * rng.standard_normal((200, 64)).astype(np.float32)
    return np.concatenate([x0, copies]), np.concatenate([y0, y0[source]]), np.concatenate([np.arange(600), source])


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_copies_at_the_surplus_budget(seed):
    x, y, source = planted_digits(seed)
    task = ClassificationTask(data=Dataset(name="planted", x=x, y=y), model="mlp")
    n_keep = len(np.unique(source))  # prune exactly the surplus
    res = AdaDeDup(n_clusters=10, epochs=3).run(task, n_keep, seed=seed, progress=False)
    assert len(res.kept) == n_keep and len(np.unique(source[res.kept])) == n_keep  # no group lost
    # ... so every surplus copy went; and the density step was right, so the feedback moved nothing
    assert res.details["rounds"][0]["samples_moved"] == 0


def test_adadedup_needs_labels_and_validates_parameters():
    x, _, _ = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="emb", x=x, y=np.zeros(len(x), dtype=np.int64)), model="mlp")
    with pytest.raises(ConfigError, match="needs labels"):
        AdaDeDup(n_clusters=3).run(task, 100, seed=0, progress=False)
    with pytest.raises(ConfigError, match="p_max"):
        AdaDeDup(p_max=0.0)
    with pytest.raises(ConfigError, match=r"^adadedup: rounds must be an int >= 1, got 0$"):
        AdaDeDup(rounds=0)
    with pytest.raises(ConfigError, match="folds"):
        AdaDeDup(folds=1)
    with pytest.raises(ConfigError, match="proxy_losses"):
        AdaDeDup(proxy_losses=3)  # type: ignore[arg-type]
    # Without feedback no proxy trains, so no labels are needed.
    assert len(AdaDeDup(n_clusters=3, feedback=False).run(task, 100, seed=0, progress=False).kept) == 100
    assert AdaDeDup.trains_model and "epochs" in AdaDeDup().params()


def test_adadedup_with_groups_keeps_groups_whole():
    x, y, _ = two_kinds_of_clusters(seed=1)
    groups = np.arange(len(x)) // 2
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y, groups=groups), model="mlp")
    res = AdaDeDup(n_clusters=6, epochs=3).run(task, 200, seed=0, progress=False)
    assert len(res.kept) == 200
    kept_groups, counts = np.unique(groups[res.kept], return_counts=True)
    assert (counts == 2).all()
