"""Detection sources and writers: COCO and YOLO in, pruned COCO files and YOLO lists out (round
trips through pycocotools and the files themselves), groups, ids in selections, and one-line
errors for bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import adaprune
from adaprune.cli.main import main
from adaprune.data import load_data
from adaprune.data.detection import DetectionDataset
from adaprune.errors import ConfigError, DataError
from adaprune.groups import whole_groups

# A COCO file written by hand with the quirks a real one has: odd spacing and number formats,
# key orders, an extra top-level entry, an image without annotations, a crowd region, extra
# image fields (a scene id) and images listed out of id order.
COCO_IMAGES = [
    # (id, file, width, height, scene)
    (7, "a/im7.png", 40, 30, "s1"),
    (3, "a/im3.png", 40, 30, "s1"),
    (12, "b/im12.png", 32, 32, "s2"),
    (4, "b/im4.png", 32, 32, "s2"),
    (5, "b/im5.png", 32, 32, "s3"),
    (9, "c/im9.png", 20, 40, "s3"),
    (10, "c/im10.png", 20, 40, "s4"),
    (11, "c/im11.png", 20, 40, "s4"),
]
COCO_TEXT_ANNOTATIONS = [
    '{"id": 101, "image_id": 7, "category_id": 2, "bbox": [1.50, 2e0, 10, 8.0], "area": 80.0, "iscrowd": 0}',
    '{"image_id":7,"id":102,"category_id":5,"bbox":[20,10,5.25,6],"iscrowd":0,"area":31.5}',
    '{"id": 103, "image_id": 3, "category_id": 2, "bbox": [0, 0, 40, 30], "area": 1200, "iscrowd": 0}',
    '{"id": 104, "image_id": 12, "category_id": 5, "bbox": [3, 4, 5, 6], "area": 30, "iscrowd": 1}',
    '{"id": 105, "image_id": 12, "category_id": 2, "bbox": [10, 10, 4, 4], "area": 16, "iscrowd": 0}',
    '{"id": 106, "image_id": 5,  "category_id": 2, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0, "note": "x"}',
    '{"id": 107, "image_id": 9, "category_id": 5, "bbox": [2, 30, 10, 9.5], "area": 95, "iscrowd": 0}',
    '{"id": 108, "image_id": 10, "category_id": 2, "bbox": [0, 0, 20, 40], "area": 800, "iscrowd": 0}',
    '{"id": 109, "image_id": 11, "category_id": 5, "bbox": [5, 5, 5, 5], "area": 25, "iscrowd": 0}',
]


def image_text(i: int, f: str, w: int, h: int, scene: str) -> str:
    return f'{{"id": {i}, "file_name": "{f}", "width": {w},  "height": {h}, "scene_id": "{scene}"}}'


def write_coco(folder: Path, *, annotations=COCO_TEXT_ANNOTATIONS, images=COCO_IMAGES, skip_files=()) -> Path:
    rng = np.random.default_rng(0)
    for _i, f, w, h, _ in images:
        if f in skip_files:
            continue
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(folder / f)
    text = (
        '{"info": {"year": 2024, "description": "hand-made"},\n "licenses": [{"id": 1, "name": "CC"}],\n'
        ' "extra": {"kept": true},\n'
        ' "images": [\n  ' + ",\n  ".join(image_text(*im) for im in images) + "\n ],\n"
        ' "annotations": [' + ",\n".join(annotations) + "],\n"
        ' "categories": [{"id": 2, "name": "car"}, {"id": 5, "name": "sign", "supercategory": "road"}]\n}\n'
    )
    path = folder / "ann.json"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().err


def test_coco_source_reads_every_image_lazily_with_targets_in_input_pixels(tmp_path):
    path = write_coco(tmp_path)
    data = load_data(f"coco:{path}")
    assert isinstance(data, DetectionDataset) and data.task_kind == "detection"
    assert data.n == 8 and data.class_names == ("car", "sign") and data.input_size == 64
    assert list(data.ids) == [7, 3, 12, 4, 5, 9, 10, 11]
    assert data.id_column == "id"
    # Image 7 (40x30) letterboxed to 64: scaled by 64/40 = 1.6 to 64x48, placed 8 px down.
    # Box [1.5, 2, 10, 8] -> xyxy [1.5 * 1.6, 2 * 1.6 + 8, 11.5 * 1.6, 10 * 1.6 + 8].
    np.testing.assert_allclose(data.boxes[0][0], [2.4, 11.2, 18.4, 24.0], rtol=1e-6)
    assert list(data.labels[0]) == [0, 1]
    assert len(data.boxes[3]) == 0  # image 4 has no annotations and is still a sample
    assert len(data.boxes[2]) == 1  # the crowd region of image 12 is not an object to detect
    assert data.x._cache == {}  # nothing decoded at load time
    batch = data.x[np.array([1, 4])]
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32 and 0 <= batch.min() <= batch.max() <= 1
    assert len(data.x._cache) == 2


def coco_objects(path: Path) -> dict:
    return json.loads(path.read_text())


def test_coco_round_trip_keeps_exactly_the_kept_images_and_all_their_annotations(tmp_path, capsys):
    from pycocotools.coco import COCO

    path = write_coco(tmp_path)
    out = tmp_path / "pruned.json"
    rc, err = run_cli(["prune", f"coco:{path}", "--method", "random", "--prune", "0.5", "--out", str(out),
                       "--quiet"], capsys)
    assert rc == 0, err
    expected = adaprune.prune(f"coco:{path}", "random", prune=0.5, seed=0, progress=False)
    kept_ids = set(np.asarray(expected.ids)[expected.kept].tolist())
    assert len(kept_ids) == 4

    source_text, pruned_text = path.read_text(), out.read_text()
    src, dst = coco_objects(path), coco_objects(out)
    for key in ("licenses", "categories", "extra"):
        assert dst[key] == src[key]
    assert {k: v for k, v in dst["info"].items() if k != "adaprune"} == src["info"]  # plus the provenance
    assert list(dst) == list(src)  # top-level order kept
    assert {im["id"] for im in dst["images"]} == kept_ids
    assert [im for im in src["images"] if im["id"] in kept_ids] == dst["images"]  # order kept too
    assert [a for a in src["annotations"] if a["image_id"] in kept_ids] == dst["annotations"]
    # Byte for byte: every kept object's text appears unchanged (number formats included).
    kept_texts = [image_text(*im) for im in COCO_IMAGES if im[0] in kept_ids]
    kept_texts += [t for t, a in zip(COCO_TEXT_ANNOTATIONS, src["annotations"], strict=True)
                   if a["image_id"] in kept_ids]
    for text in kept_texts:
        assert text in source_text and text in pruned_text
    dropped = [image_text(*im) for im in COCO_IMAGES if im[0] not in kept_ids]
    assert not any(t in pruned_text for t in dropped)

    coco = COCO(str(out))  # pycocotools loads it
    assert set(coco.getImgIds()) == kept_ids
    for image_id in kept_ids:
        want = sorted((a for a in src["annotations"] if a["image_id"] == image_id), key=lambda a: a["id"])
        got = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id])), key=lambda a: a["id"])
        assert got == want
    assert path.read_text() == source_text  # the input is never modified


def test_coco_selection_tables_carry_the_image_ids(tmp_path, capsys):
    path = write_coco(tmp_path)
    out = tmp_path / "sel.csv"
    rc, err = run_cli(["prune", f"coco:{path}", "--method", "random", "--keep", "0.5", "--out", str(out),
                       "--quiet"], capsys)
    assert rc == 0, err
    header, *rows = out.read_text().splitlines()
    assert header == "index,kept,score,id"
    assert [int(r.split(",")[3]) for r in rows] == [7, 3, 12, 4, 5, 9, 10, 11]
    sel = adaprune.Selection.load(out)
    assert sel.id_column == "id" and list(sel.ids) == [7, 3, 12, 4, 5, 9, 10, 11]


def write_yolo(folder: Path, *, label_override: dict[str, str] | None = None, names=("car", "sign")) -> Path:
    rng = np.random.default_rng(1)
    labels = {
        "scene01_f000": "0 0.5 0.5 0.2 0.3\n1 0.25 0.25 0.1 0.1\n",
        "scene01_f001": "0 0.52 0.5 0.2 0.3\n",
        "scene02_f000": "",
        "scene02_f001": "1 0.9 0.9 0.2 0.2\n",
        "scene03_f000": "0 0.1 0.1 0.2 0.2\n",
        "scene03_f001": None,  # no label file: an image without objects
    }
    labels.update(label_override or {})
    for split, stems in (("train", list(labels)), ("val", ["v0", "v1"])):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)).save(
                folder / "images" / split / f"{stem}.jpg")
            text = labels.get(stem, "0 0.5 0.5 0.5 0.5\n") if split == "train" else "1 0.5 0.5 0.5 0.5\n"
            if text is not None:
                (folder / "labels" / split / f"{stem}.txt").write_text(text)
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                    "names": dict(enumerate(names))}))
    return path


def test_yolo_source_and_round_trip_of_the_pruned_list(tmp_path, capsys):
    path = write_yolo(tmp_path)
    data = load_data(f"yolo:{path}")
    assert data.n == 6 and data.class_names == ("car", "sign") and data.has_test and len(data.x_test) == 2
    assert data.id_column == "path" and Path(data.ids[0]).name == "scene01_f000.jpg"
    # 64x48 images letterboxed to 64: not scaled, placed 8 px down (cx .5 cy .5 w .2 h .3 of 64x48).
    np.testing.assert_allclose(data.boxes[0], [[25.6, 24.8, 38.4, 39.2], [12.8, 17.6, 19.2, 22.4]], rtol=1e-5)
    assert len(data.boxes[2]) == 0 and len(data.boxes[5]) == 0

    out = tmp_path / "pruned"
    out.mkdir()
    rc, err = run_cli(["prune", f"yolo:{path}", "--method", "random", "--prune", "0.5", "--out", f"{out}/",
                       "--quiet"], capsys)
    assert rc == 0, err
    expected = adaprune.prune(f"yolo:{path}", "random", prune=0.5, seed=0, progress=False)
    listed = (out / "train.txt").read_text().splitlines()
    assert listed == [str(p) for p in np.asarray(expected.ids)[expected.kept]]
    assert len(listed) == 3 and all(Path(p).is_file() and Path(p).is_absolute() for p in listed)
    config = yaml.safe_load((out / "data.yaml").read_text())
    assert Path(config["train"]) == (out / "train.txt").resolve()
    assert config["names"] == {0: "car", 1: "sign"}
    # The pruned DATA.yaml is itself a valid source: the same images, boxes and the same val split.
    again = load_data(f"yolo:{out / 'data.yaml'}")
    assert list(again.ids) == listed and len(again.x_test) == 2
    for i, p in enumerate(listed):
        j = list(data.ids).index(p)
        np.testing.assert_array_equal(again.boxes[i], data.boxes[j])
    assert yaml.safe_load(path.read_text())["train"] == "images/train"  # input untouched


def test_group_by_keeps_scenes_whole(tmp_path, capsys):
    coco = write_coco(tmp_path)
    data = load_data(f"coco:{coco}", group_by="scene_id")
    assert list(data.groups) == ["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4"]
    for seed in range(5):
        sel = adaprune.prune(data, "random", prune=0.3, seed=seed, progress=False)
        kept_groups = data.groups[sel.kept]
        for g in np.unique(data.groups):
            assert (kept_groups == g).sum() in (0, 2)
        assert sel.n_kept == 6  # round(0.7 * 8) = 6: three whole scenes
    yolo = write_yolo(tmp_path / "y")
    data = load_data(f"yolo:{yolo}", group_by=r"(scene\d+)_")
    assert list(data.groups) == ["scene01", "scene01", "scene02", "scene02", "scene03", "scene03"]
    with pytest.raises(DataError, match="no such field"):
        load_data(f"coco:{coco}", group_by="camera")
    with pytest.raises(ConfigError, match="apply to the detection sources|applies to the detection sources"):
        load_data("digits", group_by="x")


def test_whole_groups_follows_the_methods_decision_and_fills_the_budget():
    groups = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    # The method kept all of group 1 and one of group 3 (a split group); budget 5.
    kept = np.array([2, 3, 4, 6, 7])[:4]
    out = whole_groups(kept, 5, groups)
    # Group 1 (share 1.0) first, then group 3 (share 0.5): 3 + 2 = 5 samples.
    assert list(out) == [2, 3, 4, 6, 7]
    # Scores break ties between groups with the same share: group 2's member scores higher than group 0's.
    scores = np.array([0.1, 0.2, 0, 0, 0, 0.9, 0, 0])
    out = whole_groups(np.array([], dtype=np.int64), 1, groups, scores=scores, higher_is_keep=True)
    assert list(out) == [5]
    out = whole_groups(np.array([], dtype=np.int64), 1, groups, scores=scores, higher_is_keep=False)
    assert list(out) == [2, 3, 4]  # mean score 0 is the lowest; the first such group wins
    whole = np.array([0, 1, 5])
    assert list(whole_groups(whole, 3, groups)) == [0, 1, 5]  # already whole: unchanged


BAD_COCO = {
    "unreadable JSON": (lambda t: t[:-5], "is not readable JSON"),
    "unknown image": (lambda t: t.replace('"image_id": 3,', '"image_id": 99,'), "unknown image id 99"),
    "unknown category": (lambda t: t.replace('"image_id": 3, "category_id": 2', '"image_id": 3, "category_id": 8'),
                         "unknown category id 8"),
    "non-positive box": (lambda t: t.replace("[0, 0, 40, 30]", "[0, 0, 0, 30]"), "non-positive size"),
    "box outside": (lambda t: t.replace("[0, 0, 40, 30]", "[10, 0, 40, 30]"), "lies outside"),
}


@pytest.mark.parametrize("case", list(BAD_COCO))
def test_bad_coco_inputs_fail_in_one_line(tmp_path, capsys, case):
    path = write_coco(tmp_path)
    edit, message = BAD_COCO[case]
    path.write_text(edit(path.read_text()))
    out = tmp_path / "pruned.json"
    rc, err = run_cli(["prune", f"coco:{path}", "--method", "random", "--prune", "0.5", "--out", str(out)], capsys)
    assert rc == 2 and err.startswith("adaprune: error: ") and message in err
    assert err.count("\n") == 1 and not out.exists()


def test_missing_coco_image_files_are_all_listed_in_one_message(tmp_path, capsys):
    path = write_coco(tmp_path, skip_files=("a/im3.png", "c/im11.png"))
    out = tmp_path / "sel.csv"
    rc, err = run_cli(["prune", f"coco:{path}", "--method", "random", "--prune", "0.5", "--out", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "2 image file(s) missing" in err
    assert "im3.png" in err and "im11.png" in err and not out.exists()


BAD_YOLO = {
    "unreadable YAML": ("yaml", "is not readable YAML"),
    "five fields": ("fields", "has 6 fields; expected 5"),
    "outside": ("outside", "lies outside the image"),
    "missing files": ("missing", "2 image file(s) missing"),
}


@pytest.mark.parametrize("case", list(BAD_YOLO))
def test_bad_yolo_inputs_fail_in_one_line(tmp_path, capsys, case):
    kind, message = BAD_YOLO[case]
    override = {}
    if kind == "fields":
        override = {"scene02_f001": "1 0.9 0.9 0.2 0.2 0.7\n"}
    elif kind == "outside":
        override = {"scene02_f001": "1 0.95 0.9 0.2 0.2\n"}
    path = write_yolo(tmp_path, label_override=override)
    if kind == "yaml":
        path.write_text("train: [images/train\nnames: {0: car")
    elif kind == "missing":
        listed = ("scene01_f000.jpg", "gone1.jpg", "gone2.jpg")
        (tmp_path / "list.txt").write_text("".join(f"images/train/{f}\n" for f in listed))
        config = yaml.safe_load(path.read_text())
        config["train"] = "list.txt"
        path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    out.mkdir()
    rc, err = run_cli(["prune", f"yolo:{path}", "--method", "random", "--prune", "0.5", "--out", f"{out}/"], capsys)
    assert rc == 2 and err.startswith("adaprune: error: ") and message in err, err
    assert err.count("\n") == 1 and list(out.iterdir()) == []
    if kind == "missing":
        assert "gone1.jpg" in err and "gone2.jpg" in err


def test_synthdet_is_deterministic_and_writes_coco(tmp_path):
    from pycocotools.coco import COCO

    a, b = load_data("synthdet:60"), load_data("synthdet:60")
    assert a.n == 60 and np.array_equal(a.x[:], b.x[:]) and a.has_test
    assert all(np.array_equal(p, q) for p, q in zip(a.boxes, b.boxes, strict=True))
    grouped = load_data("synthdet:60", group_by="scene_id")
    assert len(np.unique(grouped.groups)) >= 1
    out = tmp_path / "pruned.json"
    a.write(np.arange(0, 60, 2), out)
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == 30
