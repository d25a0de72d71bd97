from __future__ import annotations

import numpy as np
import pytest
import torch

# Tiny models run fastest on one thread; two spin-waiting threads on a busy 2-core machine are far slower.
torch.set_num_threads(1)


def make_blobs(n: int = 240, d: int = 8, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable Gaussian blobs: small enough to train on in a fraction of a second."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(scale=3.0, size=(classes, d))
    x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y.astype(np.int64)


def blobs_dataset(n: int = 120, with_test: bool = False, test_seed: int = 1):
    """Three Gaussian blobs in 6 dimensions, optionally with a separate test split."""
    from adaprune.data import Dataset

    x, y = make_blobs(n=n, d=6, classes=3)
    if not with_test:
        return Dataset(name="blobs", x=x, y=y)
    xt, yt = make_blobs(n=30, d=6, classes=3, seed=test_seed)
    return Dataset(name="blobs", x=x, y=y, x_test=xt, y_test=yt)


def flipped_blobs(n: int = 240, n_flip: int = 24, seed: int = 0):
    """Blobs with `n_flip` labels moved to the next class: the planted hard (mislabelled) samples."""
    from adaprune.data import Dataset

    x, y = make_blobs(n=n, d=8, classes=3, seed=seed)
    flip = np.random.default_rng(seed + 1).choice(n, n_flip, replace=False)
    y = y.copy()
    y[flip] = (y[flip] + 1) % 3
    return Dataset(name="blobs", x=x, y=y), flip


@pytest.fixture
def blobs_npz(tmp_path):
    x, y = make_blobs()
    xt, yt = make_blobs(n=60, seed=1)
    path = tmp_path / "train.npz"
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    return path


def standardized(x: np.ndarray) -> np.ndarray:
    """The "standardized" encoder's output, as the geometric methods see it."""
    from adaprune.data import Dataset
    from adaprune.embed.encoders import StandardizedEncoder

    enc = StandardizedEncoder()
    enc.fit(Dataset(name="s", x=np.asarray(x, np.float32), y=np.zeros(len(x), np.int64)), seed=0, progress=False)
    return enc.encode(x).astype(np.float64)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray cluster (2 CPUs) for a test module's Ray tests: starting one costs seconds."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
