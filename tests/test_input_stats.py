"""Input statistics for standardisation: the trained subset's own (never the pruned rows'),
float64 running moments over chunks, and a memory-mapped set read without a whole float64 copy."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import adaprune.models as models
from adaprune.data import Dataset
from adaprune.models import InputStats
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import TrainConfig


def test_chunked_moments_equal_the_float64_formula(monkeypatch):
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(1001, 7))).astype(np.float32)  # a large mean: naive sums of squares lose digits
    x[:, 3] = 2.5  # a constant column is centred, not scaled
    monkeypatch.setattr(models, "STATS_CHUNK_BYTES", 8 * 7 * 64)  # chunks of 64 rows
    rows = rng.choice(1001, 300, replace=False)
    for idx in (None, rows):
        ref = x.astype(np.float64) if idx is None else x[np.sort(idx)].astype(np.float64)
        stats = InputStats.of(x, idx)
        np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=1e-7)
        expected_std = np.where(ref.std(axis=0) < models.MIN_STD, 1.0, ref.std(axis=0))
        np.testing.assert_allclose(stats.std, expected_std, rtol=1e-5)
    assert InputStats.of(x, rows).std[3] == 1.0


def test_an_evaluated_subset_is_standardised_by_its_own_statistics(monkeypatch):
    """A model trained on a subset sees only that subset's mean and std: here the kept rows sit
    around +5 and the pruned rows around -5, so the whole set's mean (0) would be wrong."""
    from adaprune.evaluate import harness

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(5, 1, size=(60, 4)), rng.normal(-5, 3, size=(60, 4))]).astype(np.float32)
    y = np.tile([0, 1], 60).astype(np.int64)
    data = Dataset(name="shifted", x=x, y=y, x_test=x[:10], y_test=y[:10])
    task = ClassificationTask(data, model="mlp", train=TrainConfig(epochs=1))
    built = []
    real_fit = harness.fit
    monkeypatch.setattr(harness, "fit", lambda model, *a, **k: built.append(model) or real_fit(model, *a, **k))
    kept = np.arange(60)
    harness.train_and_test(task, kept, seed=0, progress=False)
    harness.train_and_test(task, None, seed=0, progress=False)
    subset_model, full_model = built
    np.testing.assert_allclose(subset_model.standardize.mean.numpy(), x[kept].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(subset_model.standardize.std.numpy(), x[kept].astype(np.float64).std(0), rtol=1e-5)
    np.testing.assert_allclose(full_model.standardize.mean.numpy(), x.astype(np.float64).mean(0), atol=1e-5)


def test_a_memory_mapped_set_is_not_copied_whole(tmp_path):
    """32 MB of float32 rows on disk: the statistics allocate about 1.5 chunks of 4 MB (the old
    code allocated a float64 copy, twice the file, and temporaries of the same size)."""
    n, d = 65536, 128
    path = tmp_path / "emb.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, 8192):
        out[start : start + 8192] = np.random.default_rng(start).normal(size=(8192, d))
    out.flush()
    del out
    x = np.load(path, mmap_mode="r")
    file_bytes = n * d * 4
    for rows in (None, np.arange(0, n, 2)):
        tracemalloc.start()
        try:
            stats = InputStats.of(x) if rows is None else InputStats.of(x, rows)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < file_bytes / 2, f"peak {peak / 2**20:.1f} MiB for a {file_bytes / 2**20:.0f} MiB memmap"
    assert stats.mean.shape == (d,) and np.abs(stats.mean).max() < 0.05
    assert ClassificationTask(Dataset(name="m", x=x, y=np.zeros(n, np.int64)), model="mlp").standardizes
    pytest.importorskip("torch")
