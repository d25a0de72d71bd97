"""Splitting oversized clusters (`adaprune.cluster.split`): a no-op where no cluster is too large,
bounded sizes and a smaller sum of squares where one is, the border rule applied to the parts
exactly (brute force), untouched rows bit for bit, and planted copies still resolved."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.cluster import normalize_rows, spherical_kmeans, split_oversized
from adaprune.cluster.split import default_max_size
from adaprune.methods.semdedup import (
    Units,
    border_reach,
    compute_redundancy,
    global_rank,
    semdedup_redundancy,
)
from tests.test_semdedup_border import compared


def uneven(seed: int = 0, d: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One wide blob of 3,000 rows and eight tight ones of 60, with 150 planted near-copies
    (cosine ~0.9999) of rows of the wide blob. Returns (x, copies, originals)."""
    rng = np.random.default_rng(seed)
    centres = normalize_rows(rng.normal(size=(9, d)))
    wide = centres[0] + 0.35 * rng.normal(size=(3000, d))
    tight = [c + 0.05 * rng.normal(size=(60, d)) for c in centres[1:]]
    x = np.concatenate([wide, *tight]).astype(np.float32)
    originals = rng.choice(3000, size=150, replace=False)
    copies = np.arange(len(x), len(x) + 150)
    x = np.concatenate([x, x[originals] + 0.001 * rng.normal(size=(150, d)).astype(np.float32)])
    return x, copies, originals


def test_no_cluster_over_the_limit_returns_the_clustering_itself():
    x, _, _ = uneven()
    clustering = spherical_kmeans(x, 10, seed=0, nearest=2, backend="sklearn")
    assert split_oversized(x, clustering, max_size=int(clustering.sizes().max()), seed=0) is clustering
    assert split_oversized(x, clustering, max_size=0, seed=0) is clustering
    # The default limit is at least 2,048 rows: no split on this set, so the default M is today's.
    assert default_max_size(len(x), 10) == 2048
    units = Units.from_groups(None, len(x))
    default = compute_redundancy(x, units, n_clusters=10, seed=0, backend="sklearn")
    never = compute_redundancy(x, units, n_clusters=10, seed=0, backend="sklearn", max_cluster=0)
    assert default.clustering.split == 0
    np.testing.assert_array_equal(default.m, never.m)


def test_split_bounds_the_sizes_and_leaves_other_rows_bit_for_bit():
    x, _, _ = uneven()
    clustering = spherical_kmeans(x, 10, seed=0, nearest=2, backend="sklearn")
    sizes = clustering.sizes()
    assert (sizes > 400).sum() >= 2  # the wide blob lies in a few large clusters
    split = split_oversized(x, clustering, max_size=400, part_size=200, seed=0)
    big = np.flatnonzero(sizes > 400)
    assert split.split == len(big)
    assert split.n_clusters == 10 + sum(int(np.ceil(sizes[c] / 200)) - 1 for c in big)
    assert split.sizes().sum() == len(x)
    assert (split.sizes() ** 2).sum() < 0.5 * (sizes**2).sum()
    np.testing.assert_allclose(np.linalg.norm(split.centroids, axis=1), 1.0, atol=1e-5)
    # Rows that neither sat in a split cluster nor had one as a next-nearest: every field as before.
    untouched = ~np.isin(clustering.assignment, big) & ~np.isin(clustering.next_nearest[:, 0], big)
    assert untouched.any()
    np.testing.assert_array_equal(split.assignment[untouched], clustering.assignment[untouched])
    np.testing.assert_array_equal(split.distance[untouched], clustering.distance[untouched])
    np.testing.assert_array_equal(split.next_nearest[untouched], clustering.next_nearest[untouched])
    np.testing.assert_array_equal(split.next_distance[untouched], clustering.next_distance[untouched])
    # Every row's own cluster is its nearest among the centroids it was offered, and its distance
    # is the cosine distance to that centroid.
    u = normalize_rows(x)
    own_sim = np.einsum("ij,ij->i", u, split.centroids[split.assignment])
    np.testing.assert_allclose(split.distance, 1 - own_sim, atol=1e-5)
    assert (split.next_nearest[:, 0] != split.assignment).all()


def test_the_border_rule_applies_to_the_parts_exactly():
    x, _, _ = uneven()
    clustering = split_oversized(x, spherical_kmeans(x, 10, seed=0, nearest=2, backend="sklearn"),
                                 max_size=400, part_size=200, seed=0)
    reach = border_reach(0.9)
    m = semdedup_redundancy(x, clustering, max_border=reach)
    # Brute force on the refined clustering: the largest cosine to an earlier row it is compared with.
    u = normalize_rows(x).astype(np.float64)
    rank = global_rank(clustering.distance, order="farthest")
    pairs = compared(x, clustering, max_border=reach)
    sims = u @ u.T
    earlier = rank[None, :] < rank[:, None]
    expected = np.where(pairs & earlier, sims, -1.0).max(axis=1)
    np.testing.assert_allclose(m, np.minimum(expected, 1.0), atol=1e-5)
    # Every pair at cosine >= 0.9 split between two parts that are each row's two nearest is compared.
    a, nxt = clustering.assignment, clustering.next_nearest[:, 0]
    close = np.triu(sims >= 0.9, 1) & (a[:, None] != a[None, :])
    i, j = np.nonzero(close)
    across = (nxt[i] == a[j]) & (nxt[j] == a[i])
    assert across.sum() > 0
    assert pairs[i[across], j[across]].all()


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_planted_copies_are_still_resolved_after_a_split(backend):
    pytest.importorskip("faiss") if backend == "faiss" else None
    x, copies, originals = uneven(seed=1)
    units = Units.from_groups(None, len(x))
    red = compute_redundancy(x, units, n_clusters=10, seed=0, backend=backend, max_cluster=400)
    assert red.clustering.split >= 1
    kept, _ = red.select(len(x) - len(copies))
    removed = np.setdiff1d(np.arange(len(x)), kept)
    pair_hit = np.isin(copies, removed) | np.isin(originals, removed)
    assert pair_hit.mean() == 1.0


def test_the_work_dir_key_covers_the_split(tmp_path, monkeypatch):
    """The recorded clustering holds the parts; a rerun with another max_cluster recomputes it, the
    same one reuses it and gives the same selection."""
    import adaprune.methods.semdedup as sd
    from adaprune.api import prune

    x, _, _ = uneven(seed=4)
    emb = tmp_path / "emb.npy"
    np.save(emb, x)
    real = sd.split_oversized
    calls: list[int | None] = []
    monkeypatch.setattr(sd, "split_oversized", lambda *a, **k: calls.append(k["max_size"]) or real(*a, **k))

    def run(max_cluster):
        return prune(f"embeddings:{emb}", "semdedup", prune=0.1, seed=0, progress=False,
                     params={"work_dir": str(tmp_path / "work"), "n_clusters": 10, "max_cluster": max_cluster})

    first = run(400)
    assert first.details["split_clusters"] >= 1
    assert run(400).kept.tolist() == first.kept.tolist() and calls == [400]
    other = run(0)
    assert calls == [400, 0] and other.details["split_clusters"] == 0


@pytest.mark.slow
def test_ray_splits_the_same_parts_as_the_local_engine(tmp_path, ray_session):
    from adaprune.api import prune

    x, _, _ = uneven(seed=5)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    params = {"n_clusters": 10, "max_cluster": 400}
    local = prune(f"embeddings:{path}", "semdedup", prune=0.2, seed=5, progress=False, params=params)
    remote = prune(f"embeddings:{path}", "semdedup", prune=0.2, seed=5, progress=False,
                   params={**params, "engine": "ray"})
    assert local.details["split_clusters"] >= 1
    local.save(tmp_path / "local.csv")
    remote.save(tmp_path / "ray.csv")
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "ray.csv").read_text()


def test_float16_embeddings_stay_float16_and_select_as_their_float32_values(tmp_path):
    """A float16 .npy is read in place (not converted to a float32 copy in memory); the stages read
    its rows into float32, so the selection is the one of the same values stored as float32."""
    from adaprune.api import prune
    from adaprune.data import load_data

    x, _, _ = uneven(seed=6)
    half = x.astype(np.float16)
    np.save(tmp_path / "half.npy", half)
    np.save(tmp_path / "full.npy", half.astype(np.float32))
    data = load_data(f"embeddings:{tmp_path / 'half.npy'}")
    assert data.x.dtype == np.float16 and isinstance(data.x, np.memmap)
    params = {"n_clusters": 10, "max_cluster": 400}
    a = prune(f"embeddings:{tmp_path / 'half.npy'}", "semdedup", prune=0.2, seed=0, progress=False, params=params)
    b = prune(f"embeddings:{tmp_path / 'full.npy'}", "semdedup", prune=0.2, seed=0, progress=False, params=params)
    assert a.kept.tolist() == b.kept.tolist()
    np.testing.assert_array_equal(a.scores, b.scores)


def rss_file_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("RssFile:"))


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_release_pages_drops_a_read_map_from_the_resident_set_and_keeps_its_values(tmp_path):
    from adaprune.io_utils import release_pages

    values = np.random.default_rng(0).normal(size=(64 * 1024, 128)).astype(np.float32)  # 32 MB
    np.save(tmp_path / "a.npy", values)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="c")
    before = rss_file_kb()
    total = float(mapped.sum(dtype=np.float64))  # touches every page
    assert rss_file_kb() - before > 24 * 1024
    assert release_pages(mapped)
    assert rss_file_kb() - before < 8 * 1024
    assert float(mapped.sum(dtype=np.float64)) == total  # read again on demand, unchanged
    assert not release_pages(values)  # an in-memory array: nothing to release
