"""The task protocol and the lazy image source: the seams detection, files and user loops build on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaprune import prune
from adaprune.data import Dataset
from adaprune.data.images import ImageFiles
from adaprune.errors import ConfigError, DataError
from adaprune.tasks import Task, make_task
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import TrainConfig, fit, per_sample_losses
from tests.conftest import blobs_dataset


def test_classification_task_follows_the_protocol_and_batches_carry_indices():
    task = make_task(blobs_dataset(n=30), model="mlp", train=TrainConfig(batch_size=8))
    assert isinstance(task, ClassificationTask) and isinstance(task, Task)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for batch in task.batches(torch.arange(30), 8, generator=gen):
        # Every batch's inputs and labels are those of the samples its indices name.
        np.testing.assert_array_equal(batch.inputs.numpy(), task.data.x[batch.idx.numpy()])
        np.testing.assert_array_equal(batch.targets.numpy(), task.data.y[batch.idx.numpy()])
        seen.append(batch.idx)
    order = torch.cat(seen)
    assert sorted(order.tolist()) == list(range(30)) and order.tolist() != list(range(30))  # shuffled, complete


def test_per_sample_losses_are_cross_entropies_in_index_order():
    task = make_task(blobs_dataset(n=40), model="mlp")
    model = task.new_model(3)
    idx = torch.tensor([7, 2, 31, 5])
    got = per_sample_losses(model, task, idx)
    with torch.no_grad():
        xb, yb = torch.from_numpy(task.data.x[idx.numpy()]), torch.from_numpy(task.data.y[idx.numpy()])
        expected = F.cross_entropy(model(xb), yb, reduction="none").double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_fit_passes_per_sample_losses_and_indices_to_loss_fn():
    task = make_task(blobs_dataset(n=24), model="mlp", train=TrainConfig(batch_size=10, lr=0.0))
    seen: list[torch.Tensor] = []

    def loss_fn(per_sample: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        assert per_sample.shape == idx.shape and per_sample.requires_grad
        seen.append(idx.clone())
        return per_sample.mean()

    fit(task.new_model(0), task, seed=1, indices=torch.arange(5, 24), loss_fn=loss_fn, epochs=2, progress=False)
    assert len(seen) == 4  # 19 samples in batches of 10, twice
    assert sorted(torch.cat(seen[:2]).tolist()) == list(range(5, 24))


def test_a_method_refuses_a_task_it_does_not_support():
    from types import SimpleNamespace

    from adaprune.registry import get_method

    detection = SimpleNamespace(kind="detection", data=SimpleNamespace(name="boxes"))
    with pytest.raises(ConfigError, match="method 'el2n' supports classification tasks, but boxes is a detection"):
        get_method("el2n").check_task(detection)
    get_method("adapruner").check_task(detection)  # needs only a per-sample loss: accepted
    get_method("semdedup").check_task(detection)


def _write_images(tmp_path, n: int, size: tuple[int, int] = (6, 5)) -> tuple[list[str], np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, size[0], size[1]), dtype=np.uint8)
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(pixels[i]).save(path)
        paths.append(str(path))
    return paths, pixels


def test_image_files_decode_lazily_and_exactly(tmp_path):
    paths, pixels = _write_images(tmp_path, 7)
    images = ImageFiles(paths, channels=1)
    assert images.shape == (7, 1, 6, 5) and len(images) == 7
    np.testing.assert_allclose(images[[4, 1]], pixels[[4, 1], None] / 255.0, atol=1e-7)
    np.testing.assert_allclose(images[2], pixels[2][None] / 255.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(images), pixels[:, None] / 255.0, atol=1e-7)
    assert images.with_size((3, 4))[0:2].shape == (2, 1, 3, 4)


def test_image_files_name_a_bad_file(tmp_path):
    paths, _ = _write_images(tmp_path, 3)
    (tmp_path / "img1.png").write_bytes(b"not an image")
    images = ImageFiles(paths, channels=1)
    with pytest.raises(DataError, match="img1.png"):
        images[[0, 1]]


def test_a_lazy_image_dataset_trains_like_the_same_arrays_in_memory(tmp_path):
    paths, pixels = _write_images(tmp_path, 20, size=(8, 8))
    y = np.arange(20) % 2
    lazy = Dataset(name="files", x=ImageFiles(paths, channels=1), y=y)
    eager = Dataset(name="arrays", x=(pixels[:, None] / 255.0).astype(np.float32), y=y)
    masks = []
    for data in (lazy, eager):
        sel = prune(data, "adapruner", keep=0.5, seed=0, model="mlp", epochs=2,
                    params={"warmup_epochs": 1, "max_extra_epochs": 0}, progress=False)
        masks.append(sel.scores)
    np.testing.assert_allclose(masks[0], masks[1], rtol=1e-5, atol=1e-6)
