"""The tie rule (`adaprune.cluster.ties`): the numpy and the torch paths give the same clusters, the
same M (bit for bit) and the same kept samples on the same input, near-ties included. The torch
path runs on the CPU here; a GPU's different summation order is imitated by perturbing its float32
similarities by a few ulps before it ranks them, which the rule must absorb."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import adaprune.cluster.device as device  # noqa: E402
from adaprune.api import prune  # noqa: E402
from adaprune.cluster import assign_nearest, normalize_rows  # noqa: E402
from adaprune.cluster.kmeans import CoarseLevel  # noqa: E402
from adaprune.cluster.ties import pair_dots, tie_margin  # noqa: E402
from adaprune.data import Dataset  # noqa: E402
from adaprune.methods.semdedup import Units, compute_redundancy  # noqa: E402


def _jitter(t, scale: float = 4e-7):
    """A deterministic perturbation of float32 similarities by about `scale` (a few ulps near 1)."""
    import torch

    if t.numel() == 0:
        return t
    g = torch.Generator().manual_seed(int(t.shape[0]) * 7919 + int(t.shape[1]))
    noise = (torch.rand(t.shape, generator=g) - 0.5) * 2 * scale
    return t + torch.where(torch.isfinite(t), noise.to(t.device), torch.zeros_like(noise).to(t.device))


@pytest.fixture
def noisy_device(monkeypatch):
    """The torch path with its similarities perturbed before every choice it makes."""
    top, partners = device._top, device._partners
    monkeypatch.setattr(device, "_top", lambda sims, m: top(_jitter(sims), m))
    monkeypatch.setattr(device, "_partners", lambda sims: partners(_jitter(sims)))


def test_pair_dots_do_not_depend_on_the_batch_or_its_alignment():
    rng = np.random.default_rng(0)
    for d in (17, 256):
        a = rng.normal(size=(500, d)).astype(np.float32)
        b = rng.normal(size=(500, d)).astype(np.float32)
        idx = np.arange(500)
        full = pair_dots(a, idx, b, idx)
        for start in (0, 1, 37, 499):
            buf = np.empty((500 - start) * d + 1, dtype=np.float32)[1:].reshape(500 - start, d)  # misaligned
            buf[:] = a[start:]
            np.testing.assert_array_equal(pair_dots(buf, idx[: 500 - start], b[start:], idx[: 500 - start]),
                                          full[start:])
        one = np.array([pair_dots(a[i : i + 1], [0], b[i : i + 1], [0])[0] for i in range(500)])
        np.testing.assert_array_equal(one, full)


def planted_rows(centroids: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows between two or three centroids, within 1e-7 of equidistant: near-ties for the nearest
    and for the next-nearest, and random rows around them."""
    k = len(centroids)
    pairs = rng.integers(0, k, size=(n, 3))
    mix = centroids[pairs[:, 0]] + centroids[pairs[:, 1]]
    third = 2 * centroids[pairs[:, 0]] + centroids[pairs[:, 1]] + centroids[pairs[:, 2]]
    x = np.concatenate([mix, third, centroids[pairs[:, 0]] + 0.6 * rng.normal(size=centroids[pairs[:, 0]].shape)])
    return (x + 1e-7 * rng.normal(size=x.shape)).astype(np.float32)


def test_an_exactly_equidistant_row_goes_to_the_lower_cluster_on_both_paths(noisy_device):
    centroids = np.eye(4, 8, dtype=np.float32)[[2, 0, 1, 3]]  # rows 1 and 2 are e0, e1
    x = np.zeros((3, 8), dtype=np.float32)
    x[:, 0] = x[:, 1] = 1.0  # exactly halfway between clusters 1 and 2
    x[1, 2] = 0.5  # also nearer cluster 0 than cluster 3
    for dev in (None, "cpu"):
        assignment, distance, nxt, _ = assign_nearest(x, centroids, nearest=2, device=dev)
        assert assignment.tolist() == [1, 1, 1] and nxt[:, 0].tolist() == [2, 2, 2]
        np.testing.assert_allclose(distance, [1 - np.sqrt(0.5), 1 - 1 / 1.5, 1 - np.sqrt(0.5)], atol=1e-7)


@pytest.mark.parametrize("coarse", [False, True])
def test_near_equidistant_rows_get_the_same_clusters_on_both_paths(noisy_device, coarse):
    rng = np.random.default_rng(3)
    d, k = 16, 40
    centroids = normalize_rows(rng.normal(size=(k, d)))
    level = None
    if coarse:  # an inverted index of 6 cells (3 probed), as the two-level assignment past K = 512 uses
        cells = normalize_rows(rng.normal(size=(6, d)))
        owner = np.argmax(centroids @ cells.T, axis=1)
        centroids = np.concatenate([centroids, cells])  # so rows are planted between two cells too
        level = CoarseLevel(cells, np.concatenate([owner, np.arange(6)]))
    x = planted_rows(centroids, rng, 400)
    want = assign_nearest(x, centroids, nearest=3, coarse=level)
    got = assign_nearest(x, centroids, nearest=3, coarse=level, device="cpu")
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)
    # The perturbed proposals do differ from numpy's on some rows: the rule, not luck, makes them agree.
    unit = normalize_rows(x)
    cand, _ = device.top_on_device(unit, np.ascontiguousarray(centroids.T), 3, "cpu")
    assert (cand != np.argsort(-(unit @ centroids.T), axis=1, kind="stable")[:, :3]).any()
    # Outside the near-ties the numpy path's choice is the plain argmax of its float32 products.
    sims = np.sort(unit @ centroids.T, axis=1)
    clear = sims[:, -1] - sims[:, -2] > 10 * tie_margin(d)
    if not coarse:
        np.testing.assert_array_equal(want[0][clear], np.argmax(unit @ centroids.T, axis=1)[clear])
    assert clear.sum() > 300


def test_m_and_the_threshold_are_the_same_on_both_paths_near_ties(noisy_device):
    rng = np.random.default_rng(5)
    d = 16
    base = normalize_rows(rng.normal(size=(300, d)) + 3 * normalize_rows(rng.normal(size=(1, d))))
    # Originals with a copy 1e-7 away (a third row sees the two within rounding), and pairs whose
    # cosine lies within rounding of one threshold.
    twins = base[:40] + 1e-7 * rng.normal(size=(40, d))
    step = normalize_rows(rng.normal(size=(40, d)))
    target = 0.95
    near = np.sqrt(target) * base[40:80] + np.sqrt(1 - target) * step  # cosine ~ sqrt(0.95) to its source
    x = np.concatenate([base, twins, near]).astype(np.float32)
    units = Units.from_groups(None, len(x))
    common = dict(n_clusters=3, seed=0, backend="sklearn")
    host = compute_redundancy(x, units, **common)
    dev = compute_redundancy(x, units, **common, device="cpu")
    np.testing.assert_array_equal(dev.clustering.assignment, host.clustering.assignment)
    np.testing.assert_array_equal(dev.clustering.distance, host.clustering.distance)
    np.testing.assert_array_equal(dev.m, host.m)  # bit for bit
    for threshold in np.unique(host.m[300:])[::5]:  # thresholds at the planted rows' own M
        np.testing.assert_array_equal(dev.keep_units_below(threshold), host.keep_units_below(threshold))
    for keep in (len(x) - 40, len(x) - 55, len(x) // 2):
        np.testing.assert_array_equal(dev.select(keep)[0], host.select(keep)[0])


def mixture(n: int, d: int = 256, *, components: int = 500, seed: int = 0) -> np.ndarray:
    """The scale benchmark's mixture (`benchmarks/scale_dedup.make_embeddings`, the same values):
    Gaussian components with 0.75 noise, 10% of rows replaced by copies of others plus 0.001 noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(components, d)).astype(np.float32)
    comp = rng.integers(0, components, n)
    x = centres[comp] + np.float32(0.75) * rng.standard_normal((n, d), dtype=np.float32)
    n_dup = int(round(0.1 * n))
    perm = rng.permutation(n)
    copies, originals = np.sort(perm[:n_dup]), perm[n_dup : 2 * n_dup]
    x[copies] = x[originals] + 0.001 * rng.standard_normal((n_dup, d), dtype=np.float32)
    return x


def test_the_torch_and_numpy_kernels_keep_the_same_rows_of_the_benchmark_mixture():
    # 50,000 rows: before the tie rule the two kernels kept different rows here (M differed by up to
    # 0.35 where rows whose distances to their centroid tie within rounding swapped ranks).
    x = mixture(50_000)
    data = Dataset(name="mixture", x=x, y=np.zeros(len(x), dtype=np.int64))
    common = dict(prune=0.1, seed=0, progress=False, encoder="identity")
    numpy_sel = prune(data, "semdedup", params={"kernel": "numpy"}, **common)
    torch_sel = prune(data, "semdedup", params={"kernel": "torch"}, **common)
    assert torch_sel.kept_indices.tobytes() == numpy_sel.kept_indices.tobytes()
