"""SemDeDup across cluster borders, its audit trail (twin, similarity) and its threshold mode:
a pair split by the clustering, brute-force references for M and for the twins, planted cosines
around a threshold."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune
from adaprune.cli.main import main
from adaprune.cluster import Clustering, assign_nearest, normalize_rows
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.semdedup import (
    Units,
    attach_twins,
    compute_redundancy,
    global_rank,
    semdedup_redundancy,
)
from adaprune.tasks import ClassificationTask


def clustering_of(x: np.ndarray, centroids: np.ndarray, nearest: int) -> Clustering:
    assignment, distance, next_nearest, next_distance = assign_nearest(x, normalize_rows(centroids),
                                                                        nearest=nearest)
    return Clustering(centroids=normalize_rows(centroids), assignment=assignment, distance=distance,
                      backend="sklearn", seed=0, n_iter=0, sample_size=len(x), next_nearest=next_nearest,
                      next_distance=next_distance)


def compared(x: np.ndarray, clustering: Clustering, max_border: float = np.inf) -> np.ndarray:
    """Brute force: i and j are compared when they share a cluster, or when j's cluster is a
    next-nearest one of i and i lies within max_border of the hyperplane bisecting i's centroid
    and j's (or the other way round)."""
    a, c = clustering.assignment, clustering.centroids.astype(np.float64)
    u = normalize_rows(x).astype(np.float64)
    same = a[:, None] == a[None, :]
    if clustering.next_nearest is None:
        return same
    across = np.zeros_like(same)
    for i in range(len(x)):
        for b in clustering.next_nearest[i]:
            normal = c[a[i]] - c[b]
            if u[i] @ normal / np.linalg.norm(normal) <= max_border:
                across[i, a == b] = True
    return same | across | across.T


def border_pair(seed: int = 0):
    """Two blobs around e0 and e1 in 16-d; a near pair on the bisector, the original nudged
    towards e0 and its copy towards e1 (cosine of the pair ~0.993), so that k-means splits it."""
    rng = np.random.default_rng(seed)
    d = 16
    e0, e1 = np.eye(d)[0], np.eye(d)[1]
    blob0 = e0 + 0.2 * rng.normal(size=(100, d))
    blob1 = e1 + 0.2 * rng.normal(size=(100, d))
    mid = (e0 + e1) / np.sqrt(2)
    nudge = 0.06 * (e0 - e1) / np.sqrt(2)
    x = np.vstack([blob0, blob1, mid + nudge, mid - nudge]).astype(np.float32)
    return x, len(x) - 2, len(x) - 1


def test_a_pair_split_by_the_border_is_resolved_only_with_the_next_nearest_cluster():
    x, orig, copy = border_pair()
    units = Units.from_groups(None, len(x))
    red1 = compute_redundancy(x, units, n_clusters=2, seed=0, nearest_clusters=1)
    red2 = compute_redundancy(x, units, n_clusters=2, seed=0, nearest_clusters=2)
    # Observed: the clustering puts the two rows of the pair on either side of the border.
    assert red1.clustering.assignment[orig] != red1.clustering.assignment[copy]
    assert np.array_equal(red1.clustering.assignment, red2.clustering.assignment)
    cos = float((normalize_rows(x[[orig]]) @ normalize_rows(x[[copy]]).T)[0, 0])
    assert cos > 0.99
    # Own cluster only: neither row of the pair sees the other, so removing one sample misses the pair.
    assert max(red1.m[orig], red1.m[copy]) < 0.99
    kept1, _ = red1.select(len(x) - 1)
    assert {orig, copy} <= set(kept1.tolist())
    # With the next-nearest cluster the later row of the pair has M = their cosine and goes first.
    later = orig if red2.clustering.distance[orig] < red2.clustering.distance[copy] else copy  # farthest first
    assert red2.m[later] == pytest.approx(cos, abs=1e-6)
    kept2, _ = red2.select(len(x) - 1)
    assert set(range(len(x))) - set(kept2.tolist()) == {later}
    # Only rows near the border are compared across it: most of each blob is not.
    near = red2.clustering.border_distance()[:, 0] <= red2.max_border
    assert near[[orig, copy]].all() and near.sum() < len(x) / 2


@pytest.mark.parametrize(("nearest", "block_bytes", "max_border"),
                         [(1, 64 * 2**20, np.inf), (2, 4 * 900, np.inf), (2, 4 * 900, 0.2), (3, 64 * 2**20, 0.3)])
@pytest.mark.parametrize("order", ["farthest", "closest"])
def test_redundancy_matches_brute_force_over_compared_pairs(nearest, block_bytes, max_border, order):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 6)).astype(np.float32)
    x[100:120] = x[:20] + 0.01 * rng.normal(size=(20, 6))  # some near pairs, wherever they land
    clustering = clustering_of(x, rng.normal(size=(6, 6)), nearest)
    m = semdedup_redundancy(x, clustering, order=order, block_bytes=block_bytes, max_border=max_border)
    u = normalize_rows(x).astype(np.float64)
    sims = u @ u.T
    rank = global_rank(clustering.distance, order=order)
    # [i, j]: i is compared with j and earlier than j
    ok = compared(x, clustering, max_border) & (rank[:, None] < rank[None, :])
    expected = np.where(ok, sims, -np.inf).max(axis=0)
    expected = np.maximum(expected, -1.0)
    np.testing.assert_allclose(m, expected, atol=1e-5)


@pytest.mark.parametrize("max_border", [np.inf, 0.25])
def test_twins_match_brute_force_nearest_kept_compared_row(max_border):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    clustering = clustering_of(x, rng.normal(size=(5, 5)), 2)
    kept = rng.random(120) < 0.6
    twin, sim = attach_twins(x, clustering, kept, block_bytes=4 * 30, max_border=max_border)
    u = normalize_rows(x).astype(np.float64)
    # [i, j]: a kept i compared with j
    sims = np.where(compared(x, clustering, max_border) & kept[:, None], u @ u.T, -np.inf)
    for j in range(120):
        if kept[j] or not np.isfinite(sims[:, j]).any():
            assert twin[j] == -1 and np.isnan(sim[j])
            continue
        best = sims[:, j].max()
        assert kept[twin[j]] and sim[j] == pytest.approx(best, abs=1e-5)
        assert twin[j] == np.flatnonzero(np.isclose(sims[:, j], best, atol=1e-6, rtol=0))[0]
    assert (twin[~kept] >= 0).sum() > 30


def test_twin_of_every_removed_copy_is_its_kept_partner_with_their_cosine():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 24)) * 4
    base = centers[rng.integers(0, 5, 300)] + rng.normal(size=(300, 24))
    originals = rng.choice(300, 30, replace=False)
    x = np.concatenate([base, base[originals] + 0.001 * rng.normal(size=(30, 24))]).astype(np.float32)
    copies = 300 + np.arange(30)
    sel = prune(x_dataset(x), "semdedup", prune=30 / 330, params={"n_clusters": 5}, progress=False)
    removed = np.flatnonzero(~sel.mask)
    u = normalize_rows(x).astype(np.float64)
    partner = dict(zip(originals.tolist(), copies.tolist(), strict=True)) | dict(
        zip(copies.tolist(), originals.tolist(), strict=True))
    assert len(removed) == 30
    for r in removed.tolist():
        assert sel.twin[r] == partner[r] and sel.mask[sel.twin[r]]
        assert sel.similarity[r] == pytest.approx(float(u[r] @ u[partner[r]]), abs=1e-5)
    assert (sel.twin[sel.kept] == -1).all() and np.isnan(sel.similarity[sel.kept]).all()


def x_dataset(x: np.ndarray, groups=None) -> Dataset:
    return Dataset(name="t", x=x, y=np.zeros(len(x), dtype=np.int64), groups=groups)


def at_cosine(u: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine exactly `c` to unit vector `u`."""
    v = rng.normal(size=u.shape)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    return c * u + np.sqrt(1 - c * c) * v


COSINES = (0.90, 0.93, 0.945, 0.955, 0.97, 0.99)


def planted_cosines(seed: int = 0):
    """60 random unit rows in 64-d (pairwise cosines well below 0.9) and, for six of them, one
    partner at a planted cosine around 0.95."""
    rng = np.random.default_rng(seed)
    base = normalize_rows(rng.normal(size=(60, 64))).astype(np.float64)
    partners = np.array([at_cosine(base[i], c, rng) for i, c in enumerate(COSINES)])
    x = np.concatenate([base, partners]).astype(np.float32)
    return x, np.arange(len(COSINES)), 60 + np.arange(len(COSINES))


@pytest.mark.parametrize("n_clusters", [1, 3])
def test_threshold_removes_exactly_the_planted_pairs_above_it(n_clusters):
    x, originals, partners = planted_cosines()
    sel = prune(x_dataset(x), "semdedup", threshold=0.95, params={"n_clusters": n_clusters}, progress=False)
    removed = set(np.flatnonzero(~sel.mask).tolist())
    above = [i for i, c in enumerate(COSINES) if c > 0.95]
    assert len(removed) == len(above)
    for i, (o, p) in enumerate(zip(originals.tolist(), partners.tolist(), strict=True)):
        assert len({o, p} & removed) == (1 if i in above else 0)
    for r in removed:  # the audit trail names the partner at the planted cosine
        i = r if r < 60 else r - 60
        assert sel.similarity[r] == pytest.approx(COSINES[i], abs=1e-5)
    assert sel.realised_keep == pytest.approx(1 - len(above) / len(x))
    assert sel.details["threshold"] == 0.95 and sel.requested_keep == sel.realised_keep
    # The same M as the budget mode: the budget that removes as many samples removes the same ones.
    same = prune(x_dataset(x), "semdedup", prune=len(above) / len(x), params={"n_clusters": n_clusters},
                 progress=False)
    assert np.array_equal(same.kept, sel.kept)


def test_threshold_removes_whole_groups_whose_m_is_above_it():
    x, originals, partners = planted_cosines(seed=1)
    groups = np.arange(len(x))
    groups[[7, 8]] = 7  # a group of two unrelated rows: its mean row has no near partner
    groups[[60 + 4, 10]] = 100  # partner at 0.97 grouped with an unrelated row: M drops below the threshold
    sel = prune(x_dataset(x, groups), "semdedup", threshold=0.95, params={"n_clusters": 1}, progress=False)
    removed = set(np.flatnonzero(~sel.mask).tolist())
    # Pairs 3 (0.955) and 5 (0.99) go by one row each; pair 4 (0.97) is no near pair once row 64 is
    # averaged with row 10, and the group of rows 7 and 8 has no partner: both stay whole.
    assert len(removed) == 2 and len(removed & {3, 63}) == 1 and len(removed & {5, 65}) == 1
    assert sel.mask[[64, 10, 7, 8, 4]].all()


def test_threshold_refusals(tmp_path, capsys):
    x, _, _ = planted_cosines()
    with pytest.raises(ConfigError, match="either threshold or keep/prune"):
        prune(x_dataset(x), "semdedup", threshold=0.9, prune=0.1, progress=False)
    with pytest.raises(ConfigError, match="no similarity threshold"):
        prune(x_dataset(x), "random", threshold=0.9, progress=False)
    with pytest.raises(ConfigError, match="no similarity threshold"):
        prune(x_dataset(x), "adadedup", threshold=0.9, progress=False)
    with pytest.raises(ConfigError, match="threshold must be a cosine"):
        prune(x_dataset(x), "semdedup", threshold=1.5, progress=False)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=x, y=np.arange(len(x)) % 2)
    out = tmp_path / "sel.csv"
    for extra, expected in ((["--method", "semdedup", "--threshold", "0.9", "--prune", "0.1"], "not both"),
                            (["--method", "random", "--threshold", "0.9"], "no similarity threshold")):
        assert main(["prune", f"npz:{npz}", *extra, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("adaprune: error:") and expected in err[0]
        assert not out.exists()
    assert main(["prune", f"npz:{npz}", "--method", "semdedup", "--threshold", "0.95", "--param", "n_clusters=2",
                 "--out", str(out), "--quiet"]) == 0
    header, *rows = out.read_text().splitlines()
    assert header == "index,kept,score,twin,similarity,cause,cause_similarity"
    removed = [r.split(",") for r in rows if r.split(",")[1] == "0"]
    assert len(removed) == 3 and all(r[3] != "" and float(r[4]) > 0.95 for r in removed)
    assert all(r[5] != "" and float(r[6]) > 0.95 for r in removed)  # the cause: above the threshold
    assert all(r.split(",")[3:] == ["", "", "", ""] for r in rows if r.split(",")[1] == "1")


def test_adadedup_selection_carries_the_same_audit_trail():
    from adaprune.methods.adadedup import AdaDeDup

    rng = np.random.default_rng(4)
    centers = rng.normal(size=(4, 12)) * 3
    labels = rng.integers(0, 4, 160)
    base = centers[labels] + rng.normal(size=(160, 12))
    x = np.concatenate([base, base[:40] + 0.001 * rng.normal(size=(40, 12))]).astype(np.float32)
    y = np.concatenate([labels, labels[:40]])
    task = ClassificationTask(data=Dataset(name="t", x=x, y=y))
    method = AdaDeDup(n_clusters=4, epochs=1)
    res = method.run(task, 170, seed=0, progress=False)
    red = method.redundancy(task, seed=0, progress=False)
    kept = np.zeros(len(x), dtype=bool)
    kept[res.kept] = True
    u = normalize_rows(x).astype(np.float64)
    sims = np.where(compared(x, red.clustering, red.max_border) & kept[:, None], u @ u.T, -np.inf)
    removed = np.flatnonzero(~kept)
    assert len(removed) == 30 and (res.twin[kept] == -1).all()
    for r in removed:
        assert kept[res.twin[r]] and res.similarity[r] == pytest.approx(sims[:, r].max(), abs=1e-5)
