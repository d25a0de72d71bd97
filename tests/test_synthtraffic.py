"""synthtraffic: deterministic from its seed, every scene kind in every split in proportion, boxes
inside the images, and the kinds built as the premise says (easy frames far apart in pixels with
few objects; junction frames near-copies in pixels that hold many objects and the rare classes).
Also the cosine learning-rate schedule the powered detection benchmark trains with."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.data import load_data
from adaprune.data.synthtraffic import FRAME_SHARES, SCENE_KINDS, SIZE, generate, scene_kinds
from adaprune.errors import ConfigError

RARE = {4, 5}  # COCO category ids of cyclist and sign


@pytest.fixture(scope="module")
def train():
    return generate(400, seed=3)


def test_same_seed_same_frames_and_boxes_other_seed_other_frames(train):
    pixels, coco = train
    again, coco_again = generate(400, seed=3)
    assert np.array_equal(pixels, again) and coco == coco_again
    other, _ = generate(400, seed=4)
    assert not np.array_equal(pixels, other)
    assert pixels.shape == (400, 3, SIZE, SIZE) and pixels.dtype == np.uint8


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_kind_in_every_split_in_proportion(split):
    kinds = scene_kinds(400, seed=3, split=split)
    for kind in SCENE_KINDS:
        assert abs(float(np.mean(kinds == kind)) - FRAME_SHARES[kind]) < 0.08, (split, kind)


def test_boxes_lie_inside_their_images_and_junction_objects_never_overlap(train):
    _, coco = train
    kind = {img["id"]: img["scene_kind"] for img in coco["images"]}
    assert coco["annotations"]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE
        assert ann["area"] == w * h
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        if kind[ann["image_id"]] == "junction":
            by_image.setdefault(ann["image_id"], []).append(ann["bbox"])
    for boxes in by_image.values():
        for i, (x, y, w, h) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1 :]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_scene_kinds_are_built_as_the_premise_says(train):
    pixels, coco = train
    kinds = np.asarray([img["scene_kind"] for img in coco["images"]])
    scene = np.asarray([img["scene_id"] for img in coco["images"]])
    count = np.bincount([a["image_id"] - 1 for a in coco["annotations"]], minlength=len(kinds))
    assert count[kinds == "easy"].mean() < 0.5 and count[kinds == "junction"].mean() >= 6
    rare = [kinds[a["image_id"] - 1] for a in coco["annotations"] if a["category_id"] in RARE]
    assert rare and np.mean(np.asarray(rare) == "junction") > 0.9
    # Consecutive frames of one scene: a junction's share one background and light (only objects and
    # sensor noise change), an easy scene's light and view change every frame.
    x = pixels.astype(np.float32) / 255

    def step_change(kind: str) -> float:
        same = (kinds[1:] == kind) & (scene[1:] == scene[:-1])
        return float(np.median(np.abs(x[1:][same] - x[:-1][same]), axis=(1, 2, 3)).mean())

    assert step_change("junction") < 0.5 * step_change("easy")


def test_a_spec_loads_it_with_separate_val_and_test_scenes():
    data, val = load_data("synthtraffic:60"), load_data("synthtraffic:60:val")
    assert data.n == 60 and data.has_test and len(data.x_test) == len(val.x_test) == 300
    assert np.array_equal(data.x[:], val.x[:])  # the same training frames
    assert not np.array_equal(data.x_test[:], val.x_test[:])
    grouped = load_data("synthtraffic:60", group_by="scene_id")
    assert len(np.unique(grouped.groups)) >= 2
    with pytest.raises(ConfigError, match="held-out split 'val'"):
        load_data("synthtraffic:60:train")
    with pytest.raises(ConfigError, match="whole number"):
        load_data("synthtraffic:lots")
    with pytest.raises(ConfigError, match="at least 20"):
        load_data("synthtraffic:10")


@pytest.mark.parametrize("schedule, last_lr", [("constant", 0.01), ("cosine", 0.0)])
def test_cosine_schedule_decays_the_model_lr_to_zero_over_the_planned_steps(monkeypatch, schedule, last_lr):
    from adaprune.data import Dataset
    from adaprune.tasks import make_task
    from adaprune.training import loop

    made = []
    real = loop.make_optimizer

    def spy(params, config):
        made.append(real(params, config))
        return made[-1]

    monkeypatch.setattr(loop, "make_optimizer", spy)
    rng = np.random.default_rng(0)
    data = Dataset(name="blobs", x=rng.normal(size=(40, 4)).astype(np.float32), y=np.arange(40) % 2)
    task = make_task(data, train=loop.TrainConfig(epochs=3, batch_size=16, lr=0.01, schedule=schedule))
    loop.fit(task.new_model(0), task, seed=0, progress=False)
    assert made[0].param_groups[0]["lr"] == pytest.approx(last_lr, abs=1e-12)
    with pytest.raises(ConfigError, match="schedule must be one of constant, cosine"):
        loop.TrainConfig(schedule="step")
