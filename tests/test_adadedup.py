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
    crossfit_folds,
    crossfit_unit_losses,
    explained_by_twin,
    james_stein,
    plot_cluster_rates,
    probe_gaps,
    probe_units,
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


def test_rate_rule_is_additive_so_a_cluster_density_left_alone_can_be_pruned():
    p = np.array([0.2, 0.2, 0.2, 0.0, 0.0])
    s = np.array([0.1, -0.2, 0.0, -0.4, 0.3])
    adapted = adapt_rates(p, s, alpha_plus=1.0, alpha_minus=0.5, beta=0.5, p_max=0.25)
    # hurt: 0.2 - 0.05; covered: 0.2 + 0.05; no signal: unchanged; p = 0 and covered: 0.1; p = 0 and hurt: 0
    assert adapted.tolist() == pytest.approx([0.15, 0.25, 0.2, 0.1, 0.0])


def test_probe_takes_each_clusters_most_redundant_free_units():
    cluster = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    order = np.array([5, 4, 9, 3, 8, 2, 1, 7, 0, 6, 10, 11])  # removal order (most redundant first)
    free = np.ones(12, dtype=bool)
    free[4] = False  # locked: never probed
    probe = probe_units(order, cluster, free, 0.5, 3)
    # cluster 0: 5 free units, ceil(2.5) = 3 of them in removal order (5, 3, 2); cluster 1: max(3, 2) = 3
    # units (9, 8, 7); cluster 2 has 2 units, fewer than a probe needs
    assert np.flatnonzero(probe).tolist() == [2, 3, 5, 7, 8, 9]


def test_probe_gaps_by_hand():
    loss = np.array([1.0, 3.0, 2.0, 0.1, 0.2, 0.3, 9.0])
    cluster = np.array([0, 0, 0, 1, 1, 1, 1])
    probe = np.array([1, 1, 1, 1, 1, 1, 0], dtype=bool)
    g = probe_gaps(loss, np.ones(7), cluster, probe, 2, level=1.0)
    assert g.mean.tolist()[:2] == pytest.approx([2.0, 0.2]) and g.n.tolist() == [3, 3]
    assert g.centre == pytest.approx(1.1) and g.scale == pytest.approx(1.1)
    assert g.d.tolist() == pytest.approx([0.9 / 1.1, -0.9 / 1.1])
    assert g.se.tolist() == pytest.approx([np.sqrt(1.0 / 3) / 1.1, np.sqrt(0.01 / 3) / 1.1])


def test_james_stein_keeps_real_spread_and_shrinks_noise():
    d = np.array([0.5, -0.5, 0.0, 0.7])
    se = np.array([0.1, 0.1, 0.1, 1.0])
    defined = np.array([True, True, True, False])
    s, tau2 = james_stein(d, se, defined)
    assert tau2 == pytest.approx(0.5 / 2 - 0.01)  # sum d^2 / (m - 1) - mean se^2 over the defined three
    assert s.tolist() == pytest.approx([0.5 * 0.24 / 0.25, -0.5 * 0.24 / 0.25, 0.0, 0.0])
    # Gaps inside their noise: no spread beyond it, nothing moves.
    s, tau2 = james_stein(np.array([0.05, -0.05, 0.0]), np.full(3, 0.2), np.ones(3, bool))
    assert tau2 == 0.0 and (s == 0).all()


def test_a_pruned_unit_is_locked_only_where_every_proxy_scores_it_as_its_twin():
    per_fold = np.array([[0.10, 0.11, 2.0, 0.5, 0.3],
                         [0.20, 0.20, 0.1, 0.5, 0.3]])
    removed = np.array([False, True, True, False, True])
    twin = np.array([-1, 0, 0, -1, -1])
    # unit 1: within 0.02 of its twin under both proxies; unit 2: the proxy that trained on the twin misses it
    assert explained_by_twin(per_fold, removed, twin, 0.02).tolist() == [False, True, False, False, False]


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

    loss, per_fold = crossfit_unit_losses(proxy, units, removed, full_fold, 3)
    assert len(seen) == 3 and not any(removed[t].any() for t in seen)
    # Every score is a held-out one: a kept unit's from the proxy of its own fold, a pruned unit's the mean.
    assert np.allclose(loss[~removed], fold + 1) and np.allclose(loss[removed], 2.0)
    assert per_fold.shape == (3, 40) and np.allclose(per_fold[:, removed], [[1], [2], [3]])


def two_kinds_of_clusters(seed: int = 0):
    """Six clusters of 60. Clusters 0-2: spread points (noise 3), one label each (2, 3, 4): easy for
    a proxy, and not redundant by embedding, so density leaves them alone. Clusters 3-5: 30 pairs of
    a point (label 0) and a partner moved 3 away from it, off the cluster centre (label 1):
    near-duplicates by embedding (cosine near 0.995, not copies), yet pruning one loses its label.
    Farthest-first ordering keeps the partners."""
    rng = np.random.default_rng(seed)
    d = 16
    centers = 32 * np.eye(d)[rng.permutation(d)[:6]]  # one axis each
    parts, labels, cluster = [], [], []
    for c in range(6):
        if c < 3:
            parts.append(centers[c] + 3 * rng.normal(size=(60, d)))
            labels.append(np.full(60, 2 + c))
        else:
            base = centers[c] + rng.normal(size=(30, d))
            unit = centers[c] / np.linalg.norm(centers[c])
            away = base - (base @ unit)[:, None] * unit
            away /= np.linalg.norm(away, axis=1, keepdims=True)
            parts += [base, base + 3.0 * away]
            labels += [np.zeros(30), np.ones(30)]
        cluster += [c] * 60
    x = np.concatenate(parts).astype(np.float32)
    return x, np.concatenate(labels).astype(np.int64), np.array(cluster)


def check_budget_moves_out_of_the_paired_clusters(res, x, y, cluster, n_keep):
    assert len(res.kept) == n_keep and np.all(np.diff(res.kept) > 0)
    paired = np.flatnonzero(cluster >= 3)
    # Held-out, the pruned label-0 points of clusters 3-5 are wrong (their kept partner says 1) while
    # the easy clusters 0-2 are predicted without training on them: pruning moves to the easy ones.
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
    n_keep = len(x) - 90  # SemDeDup: the 90 label-0 points of clusters 3-5
    paired = np.flatnonzero(cluster >= 3)
    sem = SemDeDup(n_clusters=6).run(task, n_keep, seed=0, progress=False)
    assert np.isin(sem.kept, paired).sum() == 90  # density takes the whole budget from the paired clusters
    res = AdaDeDup(n_clusters=6, epochs=5).run(task, n_keep, seed=0, progress=False)
    details = check_budget_moves_out_of_the_paired_clusters(res, x, y, cluster, n_keep)
    png = plot_cluster_rates(details, tmp_path / "rates.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_users_proxy_drives_the_feedback():
    """A 1-nearest-neighbour classifier as the user's proxy: loss 1 where the nearest trained
    sample has another label. Called once per fold, never trained on a pruned sample."""
    x, y, cluster = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    n_keep = len(x) - 90
    calls: list[np.ndarray] = []

    def nearest_neighbour_losses(train: np.ndarray) -> np.ndarray:
        calls.append(train)
        dist = ((x[:, None, :] - x[None, train, :]) ** 2).sum(-1)
        dist[train, np.arange(len(train))] = np.inf  # a sample is not its own neighbour
        return (y[train[dist.argmin(1)]] != y).astype(float) + 0.01

    sem_kept = SemDeDup(n_clusters=6).run(task, n_keep, seed=0, progress=False).kept
    method = AdaDeDup(n_clusters=6, folds=4, proxy_losses=nearest_neighbour_losses)
    res = method.run(task, n_keep, seed=0, progress=False)
    assert len(calls) % 4 == 0 and np.isin(calls[0], sem_kept).all()  # round 0 trains on SemDeDup's kept set
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


def test_adadedup_needs_labels_and_validates_parameters():
    x, _, _ = two_kinds_of_clusters()
    task = ClassificationTask(data=Dataset(name="emb", x=x, y=np.zeros(len(x), dtype=np.int64)), model="mlp")
    with pytest.raises(ConfigError, match="needs labels"):
        AdaDeDup(n_clusters=3).run(task, 100, seed=0, progress=False)
    with pytest.raises(ConfigError, match="p_max"):
        AdaDeDup(p_max=0.0)
    with pytest.raises(ConfigError, match="copy_cosine"):
        AdaDeDup(copy_cosine=1.5)
    with pytest.raises(ConfigError, match="lock_tol"):
        AdaDeDup(lock_tol=-1.0)
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


# ---------------------------------------------------------------- where density misleads
def tight_informative_and_spread_easy(seed: int = 0):
    """Three clusters of 60 along three axes. A (0-59): tight (noise 0.3), so density sees it as
    redundant (cosines near 0.993, no copies), but informative: the proxy misses a sample it did not
    train on (loss 2.0; 0.1 once trained). B (60-119): spread (noise 4), so density leaves it
    alone, but easy: loss 0.05 trained or not. C (120-179): in between (noise 1), loss 1.0 held out, 0.5 trained."""
    rng = np.random.default_rng(seed)
    d = 8
    axes = np.eye(d)[:3] * 10
    x = np.concatenate([axes[0] + 0.3 * rng.normal(size=(60, d)), axes[1] + 4.0 * rng.normal(size=(60, d)),
                        axes[2] + 1.0 * rng.normal(size=(60, d))]).astype(np.float32)
    y = np.tile([0, 1], 90).astype(np.int64)
    jitter = 0.01 * (np.arange(180) * 37 % 10) / 10  # fixed per sample, so every mean has a spread

    def known_losses(train: np.ndarray) -> np.ndarray:
        trained = np.zeros(180, dtype=bool)
        trained[train] = True
        loss = np.where(trained, 0.1, 2.0)
        loss[60:120] = 0.05
        loss[120:] = np.where(trained[120:], 0.5, 1.0)
        return loss + jitter

    return x, y, known_losses


def removed_per_cluster(kept: np.ndarray) -> list[int]:
    removed = np.setdiff1d(np.arange(180), kept)
    return np.bincount(removed // 60, minlength=3).tolist()


def test_feedback_moves_removals_from_a_tight_informative_cluster_to_a_spread_easy_one():
    """Done-when of issue 20: density removes almost only from the tight cluster and none from the
    spread one (p_c = 0 there); the proxy's known losses move removals from the first to the second."""
    x, y, known_losses = tight_informative_and_spread_easy()
    task = ClassificationTask(data=Dataset(name="misleading", x=x, y=y), model="mlp")
    n_keep = 120
    sem = SemDeDup(n_clusters=3).run(task, n_keep, seed=0, progress=False)
    sem_a, sem_b, _ = removed_per_cluster(sem.kept)
    assert sem_a >= 55 and sem_b == 0  # density: the tight cluster pays for the whole budget
    method = AdaDeDup(n_clusters=3, proxy_losses=known_losses)
    res = method.run(task, n_keep, seed=0, progress=False)
    assert len(res.kept) == n_keep
    ada_a, ada_b, _ = removed_per_cluster(res.kept)
    assert ada_a <= sem_a - 20 and ada_b >= 20, (sem_a, sem_b, ada_a, ada_b)
    a, b = method.redundancy(task, seed=0, progress=False).clustering.assignment[[0, 60]]
    first = res.details["rounds"][0]
    assert first["d"][a] > 0 > first["d"][b] and first["s"][a] > 0 > first["s"][b]
    # Inside a cluster the most redundant go first: A's removals are its highest-M members.
    m = res.scores
    removed_a = np.setdiff1d(np.arange(60), res.kept)
    kept_a = np.intersect1d(np.arange(60), res.kept)
    assert m[removed_a].min() >= m[kept_a].max() - 1e-6 or len(kept_a) == 0


def test_pure_noise_moves_little():
    """Every cluster equally informative, with loss noise: James-Stein finds no spread beyond it."""
    x, y, _ = tight_informative_and_spread_easy()
    task = ClassificationTask(data=Dataset(name="null", x=x, y=y), model="mlp")
    rng = np.random.default_rng(1)

    def noisy(train: np.ndarray) -> np.ndarray:
        return 1.0 + 0.3 * rng.standard_normal(180)

    sem = SemDeDup(n_clusters=3).run(task, 120, seed=0, progress=False)
    res = AdaDeDup(n_clusters=3, proxy_losses=noisy, rounds=1).run(task, 120, seed=0, progress=False)
    moved = len(np.setdiff1d(sem.kept, res.kept))
    assert moved <= 6, moved


# ---------------------------------------------------------------- where density is right
def planted_pairs(n: int = 400, n_copies: int = 100, d: int = 12, seed: int = 0):
    """n distinct points in 8 clusters and near-copies (noise 1e-3) of n_copies of them; group = source."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, d)) * 3
    lab = rng.integers(0, 8, n)
    base = centers[lab] + rng.normal(size=(n, d))
    source = rng.choice(n, n_copies, replace=False)
    x = np.concatenate([base, base[source] + 1e-3 * rng.normal(size=(n_copies, d))]).astype(np.float32)
    return x, np.concatenate([lab % 2, lab[source] % 2]).astype(np.int64), np.concatenate([np.arange(n), source])


def smooth_proxy(x: np.ndarray, seed: int):
    """A proxy that is a function of the input, as a model is: a random smooth field per call, lowered
    near the samples it trained on. Copies of a trained sample score as it does; others do not."""
    rng = np.random.default_rng(seed)

    def proxy(train: np.ndarray) -> np.ndarray:
        w = rng.normal(size=x.shape[1])
        base = 1.0 + 0.3 * np.tanh(x @ w / 10)
        near = np.exp(-((x[:, None, :] - x[None, train, :]) ** 2).sum(-1).min(1) / 0.5)
        return base * (1 - 0.9 * near)

    return proxy


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_planted_copies_nothing_lost_up_to_the_surplus(share):
    x, y, source = planted_pairs()
    task = ClassificationTask(data=Dataset(name="planted", x=x, y=y), model="mlp")
    n_keep = len(x) - int(share * 100)
    sem = SemDeDup(n_clusters=8).run(task, n_keep, seed=0, progress=False)
    res = AdaDeDup(n_clusters=8, proxy_losses=smooth_proxy(x, 0)).run(task, n_keep, seed=0, progress=False)

    def resolved_and_lost(kept):
        counts = np.bincount(source[kept], minlength=400)
        return int((counts == 1).sum() - (np.bincount(source, minlength=400) == 1).sum()), set(
            np.flatnonzero(counts == 0).tolist())

    r_sem, lost_sem = resolved_and_lost(sem.kept)
    r_ada, lost_ada = resolved_and_lost(res.kept)
    assert r_sem == int(share * 100) and not lost_sem
    assert not (lost_ada - lost_sem) and r_ada >= 0.99 * r_sem
    assert res.details["rounds"][0]["locked_samples"] == len(x) - n_keep  # every removal a locked copy


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
    # ... so every surplus copy went; every removal is locked, so the feedback had nothing to move
    first = res.details["rounds"][0]
    assert first["samples_moved"] == 0 and first["free_budget"] == 0


# ---------------------------------------------------------------- every SemDeDup option
def test_every_semdedup_parameter_is_an_adadedup_parameter_and_reaches_the_semdedup_stage(monkeypatch, tmp_path):
    import inspect

    from adaprune.engine import LocalEngine
    from adaprune.methods import semdedup as semdedup_module
    from adaprune.registry import method_parameters

    sem_params = list(method_parameters(SemDeDup))
    ada_params = list(method_parameters(AdaDeDup))
    assert ada_params[: len(sem_params)] == sem_params  # derived, in SemDeDup's order
    for name in sem_params:
        assert inspect.signature(AdaDeDup.__init__).parameters[name].default == \
            inspect.signature(SemDeDup.__init__).parameters[name].default
    values = {"encoder": "identity", "embeddings": None, "n_clusters": 3, "n_iter": 7, "kmeans_sample": 150,
              "max_cluster": 5000, "order": "closest", "backend": "sklearn", "block_mb": 3, "kernel": "torch",
              "nearest_clusters": 1, "border_cosine": 0.5, "engine": "ray", "ray_address": "ray://example:10001",
              "work_dir": str(tmp_path / "w")}
    assert set(values) == set(sem_params), "a new SemDeDup parameter needs a value here"
    seen: dict = {}

    def fake_engine(name, *, address=None):
        seen["engine"] = (name, address)
        return LocalEngine()

    real = semdedup_module.compute_redundancy

    def spy(emb, units, **kwargs):
        seen["kwargs"] = kwargs
        return real(emb, units, **kwargs)

    monkeypatch.setattr(semdedup_module, "get_engine", fake_engine)
    monkeypatch.setattr(semdedup_module, "compute_redundancy", spy)
    x, y, known = tight_informative_and_spread_easy()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    method = AdaDeDup(**values, proxy_losses=known)
    assert {k: method.params()[k] for k in values} == values
    method.run(task, 150, seed=0, progress=False)
    kw = seen["kwargs"]
    assert seen["engine"] == ("ray", "ray://example:10001")
    assert (kw["n_clusters"], kw["n_iter"], kw["kmeans_sample"], kw["order"], kw["backend"]) == (3, 7, 150, "closest",
                                                                                                 "sklearn")
    assert (kw["block_bytes"], kw["nearest_clusters"], kw["border_cosine"]) == (3 * 2**20, 1, 0.5)
    assert (kw["max_cluster"], kw["device"]) == (5000, "cpu")  # the torch kernel on the task's device
    assert kw["store"] is not None and (tmp_path / "w" / "clustering.done.json").is_file()
    with pytest.raises(ConfigError, match="nearest_cluster"):  # a misspelt option is an error, not silence
        AdaDeDup(nearest_cluster=2)
def test_work_dir_resumes_adadedup(monkeypatch, tmp_path):
    from adaprune.methods import adadedup as adadedup_module
    from adaprune.methods import semdedup as semdedup_module

    x, y, known = tight_informative_and_spread_easy()
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y), model="mlp")
    calls = []

    def counting_task_proxy(task, *, epochs, seed, progress):
        def proxy(train):
            calls.append(len(train))
            if len(calls) == 3 and fail[0]:
                raise KeyboardInterrupt  # killed during the third proxy
            return known(train)
        return proxy

    monkeypatch.setattr(adadedup_module, "task_proxy", counting_task_proxy)
    fail = [True]
    with pytest.raises(KeyboardInterrupt):
        AdaDeDup(n_clusters=3, work_dir=str(tmp_path)).run(task, 120, seed=0, progress=False)
    assert len(calls) == 3
    fail[0] = False

    def no_kmeans(*a, **k):
        raise AssertionError("the clustering should come from the work dir")

    monkeypatch.setattr(semdedup_module, "spherical_kmeans", no_kmeans)
    calls.clear()
    resumed = AdaDeDup(n_clusters=3, work_dir=str(tmp_path)).run(task, 120, seed=0, progress=False)
    n_proxies = 3 * len(resumed.details["rounds"])
    assert len(calls) == n_proxies - 2  # the two finished proxies were not retrained
    calls.clear()
    again = AdaDeDup(n_clusters=3, work_dir=str(tmp_path)).run(task, 120, seed=0, progress=False)
    assert calls == [] and np.array_equal(again.kept, resumed.kept)
    monkeypatch.undo()
    fresh = AdaDeDup(n_clusters=3, proxy_losses=known).run(task, 120, seed=0, progress=False)
    assert np.array_equal(fresh.kept, resumed.kept)  # the records give the same selection as no records
    # semdedup on the same work dir reuses the stages adadedup recorded
    monkeypatch.setattr(semdedup_module, "spherical_kmeans", no_kmeans)
    SemDeDup(n_clusters=3, work_dir=str(tmp_path)).run(task, 120, seed=0, progress=False)
