"""AdaDeDup: the per-cluster budget arithmetic, the rate rule, the proxy loop and its metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.adadedup import AdaDeDup, adapt_rates, allocate_quotas, plot_cluster_rates, robust_scale
from adaprune.methods.semdedup import SemDeDup
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
    p = np.array([0.2, 0.2, 0.2, 0.2, 0.0])
    d = np.array([1.0, -1.0, 0.0, 5.0, 3.0])
    defined = np.array([True, True, True, True, False])
    adapted, s, scale = adapt_rates(p, d, defined, alpha_plus=1.0, alpha_minus=0.5, beta=0.5, p_max=0.25)
    assert scale == pytest.approx(robust_scale(d[defined]))
    assert adapted[0] < 0.2 < adapted[1] <= 0.25  # hurt: prune less; easy: prune more (capped)
    assert adapted[2] == pytest.approx(0.2) and adapted[3] == 0.0 and adapted[4] == 0.0 and s[4] == 0.0
    assert adapted[1] == pytest.approx(min(0.25, 0.2 * (1 + 0.5 * 0.5 * abs(s[1]))))


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


def test_adadedup_moves_pruning_from_where_it_hurt_to_where_it_did_not(tmp_path):
    x, y, cluster = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    n_keep = len(x) - 210  # SemDeDup: the 120 copies and the 90 label-0 points of clusters 3-5
    paired = np.flatnonzero(cluster >= 3)
    sem = SemDeDup(n_clusters=6).run(task, n_keep, seed=0, progress=False)
    assert np.isin(sem.kept, paired).sum() == 90 and (y[np.intersect1d(sem.kept, paired)] == 1).all()
    res = AdaDeDup(n_clusters=6, epochs=10, rounds=2).run(task, n_keep, seed=0, progress=False)
    assert len(res.kept) == n_keep and np.all(np.diff(res.kept) > 0)
    # The proxy, trained on what SemDeDup kept, gets the pruned label-0 points wrong (d_c > 0) and
    # the pruned copies right (d_c ~ 0): pruning moves from the paired clusters to the copy-rich ones.
    assert np.isin(res.kept, paired).sum() >= 110
    details = json.loads(json.dumps(jsonable(res.details)))
    c = details["clusters"]
    assert sorted(c["size"]) == [60] * 6 and len(c["p_initial"]) == len(c["d"]) == len(c["final_rate"]) == 6
    assert round(float(np.dot(c["size"], c["final_rate"]))) == len(x) - n_keep
    assert len(details["rounds"]) == 2
    first = details["rounds"][0]
    hurt = [j for j in range(6) if abs(c["p_initial"][j] - 0.5) < 1e-9]
    assert len(hurt) == 3 and all(first["d"][j] > max(first["d"][i] for i in range(6) if i not in hurt) for j in hurt)
    # Budget moves out of the paired clusters as a whole (one of them may absorb what the capped
    # copy-rich clusters cannot) and into every copy-rich cluster.
    assert sum(first["p_after"][j] for j in hurt) < sum(c["p_initial"][j] for j in hurt) - 0.5
    assert all(first["p_after"][j] > c["p_initial"][j] for j in range(6) if j not in hurt)
    png = plot_cluster_rates(details, tmp_path / "rates.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adadedup_needs_labels_and_validates_parameters():
    x, _, _ = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="emb", x=x, y=np.zeros(len(x), dtype=np.int64)), model="mlp")
    with pytest.raises(ConfigError, match="needs labels"):
        AdaDeDup(n_clusters=3).run(task, 100, seed=0, progress=False)
    with pytest.raises(ConfigError, match="p_max"):
        AdaDeDup(p_max=0.0)
    with pytest.raises(ConfigError, match="epochs and rounds"):
        AdaDeDup(rounds=0)
    assert AdaDeDup.trains_model and "epochs" in AdaDeDup().params()


def test_adadedup_with_groups_keeps_groups_whole():
    x, y, _ = two_kinds_of_clusters(seed=1)
    groups = np.arange(len(x)) // 2
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y, groups=groups), model="mlp")
    res = AdaDeDup(n_clusters=6, epochs=3).run(task, 200, seed=0, progress=False)
    assert len(res.kept) == 200
    kept_groups, counts = np.unique(groups[res.kept], return_counts=True)
    assert (counts == 2).all()
