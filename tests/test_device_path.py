"""The dedup stages on a torch device (`adaprune.cluster.device`), run here on device="cpu" through
the same code a GPU runs: the same clusters, next-nearest clusters and kept samples as the numpy
path, M within float32 rounding, for the flat and the two-level assignment."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from adaprune.api import prune  # noqa: E402
from adaprune.cluster import assign_nearest, normalize_rows, spherical_kmeans  # noqa: E402
from adaprune.cluster.device import DeviceKernel  # noqa: E402
from adaprune.data import Dataset  # noqa: E402
from adaprune.methods.semdedup import Units, cluster_kernel, compute_redundancy  # noqa: E402
from tests.test_cluster_split import uneven  # noqa: E402


def test_kernel_matches_the_numpy_kernel_on_one_cluster():
    rng = np.random.default_rng(0)
    core = normalize_rows(rng.normal(size=(700, 12)))
    halo = normalize_rows(rng.normal(size=(300, 12)))
    ranks = rng.permutation(1000)
    core[5] = core[400]  # an exact copy inside the cluster
    halo[7] = core[9] * 1.0  # and one across the border
    for block_bytes in (64 * 2**20, 20_000):  # one product, and many blocks
        want = cluster_kernel(core, ranks[:700], halo, ranks[700:], block_bytes=block_bytes)
        got = DeviceKernel("cpu")(core, ranks[:700], halo, ranks[700:], block_bytes=block_bytes)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == np.float32 and g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=2e-6)
    later = max(5, 400, key=lambda i: ranks[i])
    assert got[0][later] == pytest.approx(1.0, abs=1e-6)


def test_empty_and_single_clusters():
    one = normalize_rows(np.ones((1, 4)))
    m_core, m_halo = DeviceKernel("cpu")(one, np.array([0]), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert m_core.tolist() == [-1.0] and m_halo.shape == (0,)


@pytest.mark.parametrize("n_clusters", [12, 600])  # flat, and through a coarse level (K >= 512)
def test_assignment_on_the_device_is_the_numpy_assignment(n_clusters):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 16)).astype(np.float32)
    clustering = spherical_kmeans(x, n_clusters, seed=0, nearest=3, backend="sklearn", n_iter=3)
    assert (clustering.coarse is not None) == (n_clusters >= 512)
    want = assign_nearest(x, clustering.centroids, nearest=3, coarse=clustering.coarse)
    got = assign_nearest(x, clustering.centroids, nearest=3, coarse=clustering.coarse, device="cpu")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[1], want[1], atol=2e-6)
    np.testing.assert_allclose(got[3], want[3], atol=2e-6)


def test_same_selection_as_the_numpy_path_with_a_split():
    x, copies, originals = uneven(seed=2)
    units = Units.from_groups(None, len(x))
    common = dict(n_clusters=10, seed=0, backend="sklearn", max_cluster=400)
    host = compute_redundancy(x, units, **common)
    dev = compute_redundancy(x, units, **common, device="cpu")
    assert host.clustering.split >= 1
    np.testing.assert_array_equal(dev.clustering.assignment, host.clustering.assignment)
    np.testing.assert_allclose(dev.m, host.m, atol=2e-6)
    for keep in (len(x) - len(copies), len(x) // 2):
        np.testing.assert_array_equal(dev.select(keep)[0], host.select(keep)[0])


def test_the_method_takes_the_torch_kernel_on_request(monkeypatch):
    import adaprune.cluster.device as device

    calls = {"kernel": 0, "assign": 0}
    kernel_call, assign_call = device.DeviceKernel.__call__, device.assign_chunk_on_device

    def counted_kernel(self, *args, **kwargs):
        calls["kernel"] += 1
        return kernel_call(self, *args, **kwargs)

    def counted_assign(*args, **kwargs):
        calls["assign"] += 1
        return assign_call(*args, **kwargs)

    monkeypatch.setattr(device.DeviceKernel, "__call__", counted_kernel)
    monkeypatch.setattr(device, "assign_chunk_on_device", counted_assign)
    x, _, _ = uneven(seed=3)
    data = Dataset(name="uneven", x=x, y=np.zeros(len(x), dtype=np.int64))
    common = dict(prune=0.3, seed=0, progress=False, encoder="identity")
    numpy_sel = prune(data, "semdedup", params={"kernel": "numpy", "n_clusters": 10}, **common)
    assert calls == {"kernel": 0, "assign": 0}
    torch_sel = prune(data, "semdedup", params={"kernel": "torch", "n_clusters": 10}, **common)
    assert torch_sel.kept_indices.tolist() == numpy_sel.kept_indices.tolist()
    assert calls["kernel"] >= 10 and calls["assign"] >= 1
