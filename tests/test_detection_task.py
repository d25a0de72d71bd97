"""DetectionTask: batches carry image indices, per-image losses, COCO mAP through pycocotools,
AdaPruner's mask bound to images under a shuffled loader, whole groups for every method that runs
on detection, refusals of classification-only methods, and a small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import adaprune
from adaprune.cli.main import main
from adaprune.data import load_data
from adaprune.errors import ConfigError
from adaprune.methods.adapruner import AdaPruner
from adaprune.registry import get_method, list_methods
from adaprune.tasks import make_task
from adaprune.tasks.detection import DetectionTask, coco_map
from adaprune.training.loop import TrainConfig, per_sample_losses


@pytest.fixture(scope="module")
def small():
    return load_data("synthdet:48", group_by="scene_id")


def test_make_task_picks_detection_and_batches_carry_image_indices(small):
    task = make_task(small)
    assert isinstance(task, DetectionTask) and task.kind == "detection" and task.labels is None
    assert task.n == 48 and task.n_test == 200
    gen = torch.Generator().manual_seed(0)
    seen = []
    for batch in task.batches(torch.arange(48), 10, generator=gen):
        assert batch.inputs.shape == (len(batch.idx), 3, 64, 64)
        for j, i in enumerate(batch.idx.tolist()):
            np.testing.assert_array_equal(batch.targets[j]["boxes"].numpy(), small.boxes[i])
            np.testing.assert_array_equal(batch.inputs[j].numpy(), small.x[i])
        seen += batch.idx.tolist()
    assert sorted(seen) == list(range(48)) and seen != list(range(48))  # shuffled, each image once


def test_per_sample_losses_follow_the_indices_not_the_order(small):
    task = make_task(small)
    model = task.new_model(0)
    order = torch.from_numpy(np.random.default_rng(0).permutation(48))
    a = per_sample_losses(model, task)
    b = per_sample_losses(model, task, order)
    np.testing.assert_allclose(b, a[order.numpy()], rtol=1e-5)
    assert a.std() > 0.01


def test_model_encoder_embeds_images_with_the_detectors_pooled_backbone(small):
    from adaprune.embed import task_embeddings
    from adaprune.models.detector import CenterNet

    emb = task_embeddings(make_task(small), encoder="model:1", seed=0)
    assert emb.shape == (48, CenterNet(5).feature_dim) and np.isfinite(emb).all() and emb.std() > 0


def test_coco_map_is_pycocotools_on_hand_made_detections():
    boxes = [np.array([[0, 0, 10, 10], [20, 20, 40, 30]], dtype=np.float32),
             np.array([[5, 5, 15, 25]], dtype=np.float32)]
    labels = [np.array([0, 1]), np.array([1])]
    perfect = [{"boxes": b, "scores": np.ones(len(b)), "labels": lab} for b, lab in zip(boxes, labels, strict=True)]
    assert coco_map(perfect, boxes, labels, 2) == {"map": 1.0, "map50": 1.0}
    wrong_class = [{**d, "labels": 1 - d["labels"]} for d in perfect]
    assert coco_map(wrong_class, boxes, labels, 2) == {"map": 0.0, "map50": 0.0}
    none = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, dtype=np.int64)}] * 2
    assert coco_map(none, boxes, labels, 2) == {"map": 0.0, "map50": 0.0}
    # Class 1 found only in image 0: recall 1/2 for class 1, class 0 perfect -> mAP (1 + 0.5) / 2 at every IoU.
    half = [perfect[0], none[0]]
    result = coco_map(half, boxes, labels, 2)
    assert result["map"] == pytest.approx(0.75, abs=0.01) and result["map50"] == pytest.approx(0.75, abs=0.01)


def test_adapruner_mask_entry_follows_its_image_under_a_shuffled_loader(small):
    """Frozen detector (lr 0), no compression, plain SGD on the mask, one epoch: each m_i moves by
    exactly the gradient of its own image's detection loss. A mask bound to loader positions would
    get another image's loss, since the loader shuffles."""
    batch = 16
    task = DetectionTask(data=small, train=TrainConfig(lr=0.0, batch_size=batch))
    alpha, m0, lr, eps = 3.0, 0.3, 0.7, 1e-5
    method = AdaPruner(warmup_epochs=0, epochs=1, max_extra_epochs=0, alpha_max=alpha, lambda_scale=0.0,
                       mask_init=m0, mask_lr=lr, mask_momentum=0.0, sel_eps=eps)
    mask = method.train_mask(task, 0.5, seed=11, progress=False).mask.detach().cpu()
    model = task.new_model(11)  # the same initial weights the method trained (frozen) from
    loss = torch.from_numpy(per_sample_losses(model, task))
    w = torch.sigmoid(torch.tensor(alpha * m0, dtype=torch.float64))
    expected = m0 - lr * alpha * w * (1 - w) * (loss - torch.log(loss + eps)) / batch
    assert loss.std() > 0.05  # the images' losses differ, so a mix-up would show
    torch.testing.assert_close(mask.double(), expected, rtol=1e-4, atol=1e-6)


DETECTION_PARAMS = {
    "adapruner": {"warmup_epochs": 0, "epochs": 1, "max_extra_epochs": 0},
    "adadedup": {"epochs": 1},
    "kcenter": {"embedding": "pixels:8"},
    "herding": {"embedding": "pixels:8"},
    "prototypes": {"embedding": "pixels:8"},
}


def detection_methods() -> list[str]:
    return [m.name for m in list_methods() if "detection" in get_method(m.name).supported_tasks]


def test_the_methods_that_run_on_detection_include_the_dedup_family_and_adapruner():
    assert {"random", "adapruner", "semdedup", "adadedup", "kcenter", "herding"} <= set(detection_methods())


@pytest.mark.parametrize("method", detection_methods())
def test_no_method_splits_a_group_on_detection(small, method):
    params = dict(DETECTION_PARAMS.get(method, {}))
    if "encoder" in adaprune.registry.method_parameters(get_method(method)):
        params["encoder"] = "pixels:8"
    sel = adaprune.prune(small, method, prune=0.3, seed=0, params=params, progress=False)
    kept = np.zeros(small.n, dtype=bool)
    kept[sel.kept] = True
    for g in np.unique(small.groups):
        members = kept[small.groups == g]
        assert members.all() or not members.any(), f"{method} split scene {g}"
    assert sel.n_kept >= round(0.7 * small.n)
    assert list(sel.ids) == list(small.ids) and sel.id_column == "id"


def test_classification_only_methods_refuse_detection_in_one_line(small, capsys, tmp_path):
    refused = [m.name for m in list_methods() if "detection" not in get_method(m.name).supported_tasks]
    assert "el2n" in refused and "forgetting" in refused
    with pytest.raises(ConfigError, match="supports classification tasks, but synthdet-48 is a detection source"):
        adaprune.prune(small, "el2n", prune=0.3, progress=False)
    out = tmp_path / "sel.csv"
    rc = main(["prune", "synthdet:48", "--method", "forgetting", "--prune", "0.3", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("adaprune: error: ") and err.count("\n") == 1 and not out.exists()


@pytest.mark.slow
def test_evaluate_a_pruned_synthdet_reports_map_end_to_end(tmp_path, capsys):
    sel = tmp_path / "sel.csv"
    assert main(["prune", "synthdet:40", "--method", "random", "--prune", "0.5", "--out", str(sel), "--quiet"]) == 0
    rc = main(["evaluate", "synthdet:40", "--selection", str(sel), "--seeds", "1", "--epochs", "1", "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "map" in out.out and "map50" in out.out


@pytest.mark.slow
def test_benchmark_on_synthdet_writes_map_and_map50_tables(tmp_path, capsys):
    rc = main(["benchmark", "synthdet:40", "--methods", "random", "--prune", "0.5", "--seeds", "1",
               "--epochs", "1", "--out", str(tmp_path), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    table = (tmp_path / "results.md").read_text()
    assert "mAP@[.5:.95]" in table and "mAP@.5" in table
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["metric"] == "map" and "map50" in result["runs"][0]["extras"]


def test_each_task_fills_in_its_own_batch_size_and_honours_an_explicit_one(small):
    assert TrainConfig().batch_size is None  # "the task's default"
    assert make_task(small).train.batch_size == 32
    assert make_task(small, train=TrainConfig(batch_size=128)).train.batch_size == 128
    assert make_task(load_data("digits")).train.batch_size == 128
    assert make_task(load_data("digits"), train=TrainConfig(batch_size=32)).train.batch_size == 32
    # Swapping the training keeps the rule: an unset size becomes the task's default again.
    assert make_task(small).with_train(TrainConfig(epochs=2)).train.batch_size == 32
