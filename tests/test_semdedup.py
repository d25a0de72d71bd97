"""SemDeDup: planted near-duplicates, the blocked kernel against a full matrix, exact budgets,
both clustering backends, groups, the API and CLI on an `embeddings:` source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.cli.main import main
from adaprune.cluster import have_faiss, normalize_rows
from adaprune.data import Dataset, load_data
from adaprune.methods import semdedup as sd
from adaprune.methods.semdedup import SemDeDup, Units, cluster_redundancy, compute_redundancy, priority_order
from adaprune.tasks import ClassificationTask

needs_faiss = pytest.mark.skipif(not have_faiss(), reason="faiss not installed")


def planted(n: int = 300, n_dup: int = 30, d: int = 24, k: int = 5, seed: int = 0):
    """Mixture of k Gaussians; `n_dup` rows are copies of distinct originals plus 0.001-scale noise.

    Returns x, the originals' indices and the copies' indices (row n + i copies originals[i])."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    x = centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    originals = rng.choice(n, n_dup, replace=False)
    copies = x[originals] + 0.001 * rng.normal(size=(n_dup, d))
    return np.concatenate([x, copies]).astype(np.float32), originals, n + np.arange(n_dup)


def naive_m(x: np.ndarray, assignment: np.ndarray, distance: np.ndarray, order: str) -> np.ndarray:
    """Reference: a full similarity matrix per cluster, max over earlier samples."""
    m = np.full(len(x), -1.0)
    for c in np.unique(assignment):
        idx = np.flatnonzero(assignment == c)
        idx = idx[priority_order(distance[idx], order=order)]
        u = normalize_rows(x[idx]).astype(np.float64)
        sims = u @ u.T
        for j in range(1, len(idx)):
            m[idx[j]] = sims[j, :j].max()
    return m


def task_of(x: np.ndarray, groups=None) -> ClassificationTask:
    return ClassificationTask(data=Dataset(name="t", x=x, y=np.zeros(len(x), dtype=np.int64), groups=groups))


def removed_of(kept: np.ndarray, n: int) -> set[int]:
    return set(range(n)) - set(kept.tolist())


@pytest.mark.parametrize("block_bytes", [4 * 7 * 100, 64 * 2**20])
def test_blocked_kernel_matches_full_matrix(block_bytes):
    rng = np.random.default_rng(1)
    u = normalize_rows(rng.normal(size=(100, 8)))
    full = u @ u.T
    expected = np.array([-1.0] + [full[j, :j].max() for j in range(1, 100)])
    np.testing.assert_allclose(cluster_redundancy(u, block_bytes=block_bytes), expected, atol=1e-6)


@pytest.mark.parametrize("order", ["farthest", "closest"])
def test_redundancy_matches_naive_reference_on_an_oversized_cluster(order):
    x, _, _ = planted(n=400, n_dup=20)
    # One cluster of 420 rows, 1 MiB blocks of a few hundred rows: never a full square matrix at once.
    red = compute_redundancy(x, Units.from_groups(None, len(x)), n_clusters=1, seed=0, order=order,
                             block_bytes=4 * 420 * 50, backend="sklearn")
    ref = naive_m(x, red.clustering.assignment, red.clustering.distance, order)
    np.testing.assert_allclose(red.m, ref, atol=1e-5)


@pytest.mark.parametrize("backend", ["sklearn", pytest.param("faiss", marks=needs_faiss)])
def test_planted_duplicates_go_before_any_original(backend):
    x, originals, copies = planted()
    n = len(x)
    method = SemDeDup(n_clusters=5, backend=backend)
    task = task_of(x)
    result = method.run(task, n - len(copies), seed=0, progress=False)
    removed = removed_of(result.kept, n)
    # Exactly one of every (original, copy) pair goes, and no unique sample does: SemDeDup cannot
    # tell which of two near-identical rows came first, only that one of them is redundant.
    assert len(removed) == len(copies)
    for o, c in zip(originals, copies, strict=True):
        assert len({int(o), int(c)} & removed) == 1
    assert removed <= set(originals.tolist()) | set(copies.tolist())
    # The pairs' M are the highest of all; every other row is far from 1.
    pair_rows = np.concatenate([originals, copies])
    assert np.sort(result.scores)[-len(copies):].min() > 0.999
    assert np.delete(result.scores, pair_rows).max() < 0.99
    eps = result.details["epsilon"]
    assert eps is not None and set(np.flatnonzero(result.scores > 1 - eps).tolist()) == removed


@needs_faiss
def test_faiss_and_sklearn_keep_the_same_set():
    x, _, _ = planted(seed=3)
    for n_keep in (300, 250, 200):
        kept = [SemDeDup(n_clusters=5, backend=b).run(task_of(x), n_keep, seed=0, progress=False).kept
                for b in ("faiss", "sklearn")]
        assert np.array_equal(kept[0], kept[1])


def test_exact_budgets_nested_and_cached(monkeypatch):
    x, _, _ = planted(seed=2)
    calls = []
    real = sd.compute_redundancy
    monkeypatch.setattr(sd, "compute_redundancy", lambda *a, **k: calls.append(1) or real(*a, **k))
    method = SemDeDup(n_clusters=5)
    task = task_of(x)
    kept_sets = {}
    for n_keep in (330, 301, 250, 120, 1):
        res = method.run(task, n_keep, seed=0, progress=False)
        assert len(res.kept) == n_keep and np.all(np.diff(res.kept) > 0)
        kept_sets[n_keep] = set(res.kept.tolist())
    assert len(calls) == 1  # M computed once; every new budget is a selection from it
    assert kept_sets[120] <= kept_sets[250] <= kept_sets[301]
    method.run(task, 100, seed=1, progress=False)
    assert len(calls) == 2  # another seed: recomputed
    with pytest.raises(Exception, match="cannot keep"):
        method.redundancy(task, seed=0, progress=False).select(0)


def test_groups_are_removed_whole():
    rng = np.random.default_rng(5)
    scenes = rng.normal(size=(40, 3, 16)) * 3  # 40 scenes of 3 frames each
    frames = scenes + rng.normal(size=scenes.shape) * 0.3
    dup_scenes = frames[:6] + 0.001 * rng.normal(size=(6, 3, 16))  # 6 scenes copied whole
    x = np.concatenate([frames, dup_scenes]).reshape(-1, 16).astype(np.float32)
    groups = np.repeat(np.arange(46), 3)
    res = SemDeDup(n_clusters=4).run(task_of(x, groups), len(x) - 18, seed=0, progress=False)
    removed = np.array(sorted(removed_of(res.kept, len(x))))
    assert len(removed) == 18
    removed_groups = np.unique(groups[removed])
    assert len(removed_groups) == 6
    assert all(np.isin(np.flatnonzero(groups == g), removed).all() for g in removed_groups)  # never split
    # Each removed group is one of a copied pair (scene i and its copy 40 + i).
    assert sorted(g % 40 for g in removed_groups) == list(range(6))
    # A budget that whole groups cannot meet keeps the smallest count above it.
    res = SemDeDup(n_clusters=4).run(task_of(x, groups), len(x) - 17, seed=0, progress=False)
    assert len(res.kept) == len(x) - 15


def test_api_and_cli_on_an_unlabelled_embeddings_source(tmp_path, capsys):
    x, _, copies = planted()
    path = tmp_path / "emb.npy"
    np.save(path, x)
    data = load_data(f"embeddings:{path}")
    assert data.n == len(x) and (data.y == 0).all()
    sel = prune(f"embeddings:{path}", "semdedup", prune=len(copies) / len(x), params={"n_clusters": 5},
                progress=False)
    assert sel.n_kept == len(x) - len(copies) and sel.higher_is_keep is False
    json.dumps(sel.metadata())
    # The CLI: an npz source, with its embeddings reused from a file.
    npz = tmp_path / "d.npz"
    np.savez(npz, x=x, y=np.arange(len(x)) % 3)
    out = tmp_path / "sel.csv"
    code = main(["prune", f"npz:{npz}", "--method", "semdedup", "--prune", "0.1", "--embeddings", str(path),
                 "--out", str(out), "--quiet", "--param", "n_clusters=5"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["n_kept"] == round(0.9 * len(x)) and meta["params"]["embeddings"] == str(path)
    # An embedding option for a method that takes none, and embeddings of the wrong length, are errors.
    assert main(["prune", f"npz:{npz}", "--method", "random", "--prune", "0.1", "--encoder", "pixels",
                 "--out", str(out), "--quiet"]) == 2
    np.save(tmp_path / "short.npy", x[:10])
    assert main(["prune", f"npz:{npz}", "--method", "semdedup", "--prune", "0.1", "--embeddings",
                 str(tmp_path / "short.npy"), "--out", str(out), "--quiet"]) == 2
    assert "one row per sample" in capsys.readouterr().err
