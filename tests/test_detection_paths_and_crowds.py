"""Detection answers that must match the reference tools: COCO mAP with crowd regions is
pycocotools' number on the original file, and a YOLO set behind a symlinked images/ folder keeps
its labels (Ultralytics derives the label path from the path as given)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from adaprune.data import load_data
from adaprune.data.detection import DEFAULT_INPUT_SIZE
from adaprune.tasks.detection import coco_map

pytest.importorskip("pycocotools")


def crowd_file(folder: Path) -> Path:
    """One 100 x 100 image: one object and one crowd region of the same category."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((100, 100, 3), dtype=np.uint8)).save(folder / "im.png")
    doc = {
        "images": [{"id": 1, "file_name": "im.png", "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [55, 55, 40, 40], "area": 1600, "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = folder / "ann.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def pycocotools_map(path: Path, detections: list[dict]) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(detections), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_a_detection_on_a_crowd_region_is_ignored_as_pycocotools_does(tmp_path):
    path = crowd_file(tmp_path)
    # A detection on the object and a more confident one on the crowd region, in the file's pixels (xywh).
    on_file = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.8},
               {"image_id": 1, "category_id": 1, "bbox": [57, 57, 36, 36], "score": 0.9}]
    reference = pycocotools_map(path, on_file)
    assert reference == pytest.approx(1.0)

    data = load_data(f"coco:{path}")
    assert [len(b) for b in data.boxes] == [1]  # the crowd region is not a training object
    s = DEFAULT_INPUT_SIZE / 100
    dets = [{"boxes": np.array([[10, 10, 40, 40], [57, 57, 93, 93]], dtype=np.float32) * s,
             "scores": np.array([0.8, 0.9], dtype=np.float32), "labels": np.array([0, 0])}]
    ours = coco_map(dets, data.boxes, data.labels, data.num_classes, crowd=data.crowd)
    assert ours["map"] == pytest.approx(reference, abs=1e-6)
    # Without the crowd region the first-ranked detection is a false positive (what the old code scored).
    assert coco_map(dets, data.boxes, data.labels, data.num_classes)["map"] == pytest.approx(0.5, abs=0.01)
    # Given as the test split of another source, the crowd regions come along.
    assert data.with_test(data).crowd_test is data.crowd


def test_yolo_behind_a_symlinked_images_folder_keeps_every_label(tmp_path):
    """dataset/images -> a folder elsewhere (no labels beside it); dataset/labels is real."""
    storage = tmp_path / "storage" / "pictures"
    storage.mkdir(parents=True)
    dataset = tmp_path / "dataset"
    (dataset / "labels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)).save(storage / f"im{k}.jpg")
        (dataset / "labels" / f"im{k}.txt").write_text(f"0 0.5 0.5 0.{k + 2} 0.{k + 2}\n")
    (dataset / "images").symlink_to(storage, target_is_directory=True)
    path = dataset / "data.yaml"
    path.write_text(yaml.safe_dump({"path": ".", "train": "images", "names": ["thing"]}))

    data = load_data(f"yolo:{path}")
    assert data.n == 3
    assert [len(b) for b in data.boxes] == [1, 1, 1]
    widths = [float(b[0, 2] - b[0, 0]) for b in data.boxes]
    np.testing.assert_allclose(widths, [0.2 * 64, 0.3 * 64, 0.4 * 64], rtol=1e-5)
    # Ids are the paths as the yaml names them (absolute), not the symlink's target.
    assert all(Path(p).parent == dataset / "images" for p in data.ids)
