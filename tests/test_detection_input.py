"""Detection images at the size a user trains: letterboxing (boxes mapped there and back), --input-size
on every command, the size in every output's metadata, a warning for a size far below the images',
pruned COCO files and YOLO folders that record their provenance and read back into `evaluate`,
per-category kept counts, and errors that never print a dataset."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import yaml
from PIL import Image
from test_detection_data import run_cli, write_coco, write_yolo

import adaprune
from adaprune.data import load_data
from adaprune.errors import ConfigError
from adaprune.selection import Selection


def test_letterbox_maps_a_box_there_and_back_exactly():
    from adaprune.data.detection import Letterbox

    # A 40x30 image into 64: scale 64/40 = 1.6 -> 64x48, placed 8 px down.
    # A 20x40 image into 64: scale 1.6 -> 32x64, placed 16 px right.
    lb = Letterbox.fit(np.array([[40, 30], [20, 40]]), 64)
    assert lb.resized.tolist() == [[64, 48], [32, 64]] and lb.pad.tolist() == [[0, 8], [16, 0]]
    box = np.array([[1.5, 2.0, 11.5, 10.0]])
    np.testing.assert_allclose(lb.to_input(0, box), [[2.4, 11.2, 18.4, 24.0]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lb.to_input(1, box), [[18.4, 3.2, 34.4, 16.0]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lb.to_source(0, lb.to_input(0, box)), box, rtol=0, atol=1e-12)
    # Any image shape, any box, any size: the round trip returns the box (float64 rounding only).
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 2000, size=(50, 2))
    for side in (16, 64, 132, 640):
        lb = Letterbox.fit(sizes, side)
        assert (lb.resized.max(axis=1) == side).all() and (lb.pad >= 0).all()
        assert (lb.resized + 2 * lb.pad <= side).all()
        for i, (w, h) in enumerate(sizes):
            xy = rng.uniform(0, 1, size=(4, 2)) * (w, h)
            boxes = np.hstack([xy.min(0), xy.max(0)])[None]
            inside = lb.to_input(i, boxes)
            assert (inside >= -1e-9).all() and (inside <= side + 1e-9).all()
            np.testing.assert_allclose(lb.to_source(i, inside), boxes, rtol=1e-13, atol=1e-9)


def test_coco_letterbox_keeps_the_aspect_ratio_in_pixels_and_boxes(tmp_path):
    from adaprune.data.detection import PAD_VALUE

    path = write_coco(tmp_path)
    data = load_data(f"coco:{path}", size=128)
    assert data.input_size == 128 and data.x.shape == (8, 3, 128, 128)
    # Image 7 (40x30) -> 128x96 placed 16 px down; its box [1.5, 2, 10, 8] -> scale 3.2, +16 in y.
    np.testing.assert_allclose(data.boxes[0][0], [4.8, 22.4, 36.8, 48.0], rtol=1e-6)
    np.testing.assert_allclose(data.source_boxes(0)[0], [1.5, 2.0, 11.5, 10.0], atol=1e-5)
    pixels = (data.x[0] * 255).round().astype(np.uint8)
    assert (pixels[:, :16] == PAD_VALUE).all() and (pixels[:, 112:] == PAD_VALUE).all()  # grey bars
    with Image.open(tmp_path / "a/im7.png") as im:
        want = np.asarray(im.convert("RGB").resize((128, 96), Image.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels[:, 16:112], want)  # the picture itself, not stretched
    # Image 9 (20x40) -> 64x128 placed 32 px right: bars left and right.
    tall = (data.x[5] * 255).round().astype(np.uint8)
    assert (tall[:, :, :32] == PAD_VALUE).all() and (tall[:, :, 96:] == PAD_VALUE).all()


def test_yolo_and_synthdet_take_a_size(tmp_path):
    data = load_data(f"yolo:{write_yolo(tmp_path)}", size=128)  # 64x48 images -> 128x96, 16 px down
    np.testing.assert_allclose(data.boxes[0][0], [51.2, 49.6, 76.8, 78.4], rtol=1e-5)
    assert data.x_test.shape == (2, 3, 128, 128) and data.x[0].shape == (3, 128, 128)
    small, big = load_data("synthdet:40"), load_data("synthdet:40", size=128)
    assert small.input_size == 64 and big.x.shape == (40, 3, 128, 128) and big.x_test.shape[-1] == 128
    for i in range(40):
        np.testing.assert_allclose(big.boxes[i], 2 * small.boxes[i], rtol=1e-6)
        np.testing.assert_allclose(big.source_boxes(i), small.boxes[i], atol=1e-5)
    with pytest.raises(ConfigError, match="multiple of 4, got 30"):
        load_data("synthdet:40", size=30)
    with pytest.raises(ConfigError, match="--input-size applies to the detection sources"):
        load_data("digits", size=64)


def test_a_size_far_below_the_images_own_is_warned_about(tmp_path, caplog):
    images = [(1, "big/a.png", 640, 480, "s"), (2, "big/b.png", 600, 400, "s"), (3, "big/c.png", 640, 640, "s")]
    path = write_coco(tmp_path, images=images, annotations=[
        '{"id": 1, "image_id": 1, "category_id": 2, "bbox": [10, 10, 100, 50], "area": 5000, "iscrowd": 0}'])
    with caplog.at_level(logging.WARNING, logger="adaprune"):
        load_data(f"coco:{path}", size=64)
    assert "median 640 px on their longer side, letterboxed to 64 px (10% of it)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="adaprune"):
        load_data(f"coco:{path}", size=160)  # a quarter of 640: no warning
    assert "letterboxed" not in caplog.text


def test_input_size_is_recorded_and_the_pruned_coco_file_reads_back_into_evaluate(tmp_path, capsys):
    path = write_coco(tmp_path)
    sel_path, pruned = tmp_path / "sel.csv", tmp_path / "pruned.json"
    for out in (sel_path, pruned):
        rc, err = run_cli(["prune", f"coco:{path}", "--method", "random", "--prune", "0.5", "--seed", "3",
                           "--input-size", "96", "--out", str(out)], capsys)
        assert rc == 0, err
    assert "kept per category (images with it; objects): car:" in err
    sel = Selection.load(sel_path)
    assert sel.details["input_size"] == 96
    counts = {c["category"]: c for c in sel.details["category_counts"]}
    # Hand count over the fixture: car is in images 7, 3, 12, 5, 10 (6 objects: 7 has one, 12's crowd is none).
    kept_ids = set(sel.ids[sel.kept].tolist())
    car_images = {7, 3, 12, 5, 10}
    assert counts["car"]["images"] == 5 and counts["car"]["images_kept"] == len(car_images & kept_ids)
    assert counts["sign"]["objects"] == 3  # 7, 9, 11 (12's sign is a crowd region)

    doc = json.loads(pruned.read_text())
    assert doc["info"]["year"] == 2024 and doc["info"]["description"] == "hand-made"  # the original's fields
    record = doc["info"]["adaprune"]
    assert record["method"] == "random" and record["seed"] == 3 and record["requested_keep"] == 0.5
    assert record["input_size"] == 96 and record["n_total"] == 8 and record["version"] == adaprune.__version__
    assert '"info": {"year": 2024, "description": "hand-made", "adaprune": {' in pruned.read_text()
    assert {im["id"] for im in doc["images"]} == kept_ids  # same seed, same images as the table

    from adaprune.cli.main import main

    rc = main(["evaluate", f"coco:{path}", "--selection", str(pruned), "--test", f"coco:{path}",
               "--seeds", "1", "--epochs", "1", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert text.splitlines()[1].split()[:2] == ["subset", "4"] and "letterboxed to 96 px" in text
    result = adaprune.evaluate(f"coco:{path}", str(pruned), test=load_data(f"coco:{path}", size=96), seeds=1,
                               epochs=1, progress=False)
    assert result.n_kept == 4 and result.method == "random" and result.input_size == 96


def test_evaluate_prints_no_std_for_one_seed_and_reads_a_pruned_yolo_folder(tmp_path, capsys):
    path = write_yolo(tmp_path)
    out = tmp_path / "pruned"
    out.mkdir()
    rc, err = run_cli(["prune", f"yolo:{path}", "--method", "random", "--keep", "0.5", "--input-size", "32",
                       "--out", f"{out}/", "--quiet"], capsys)
    assert rc == 0, err
    record = json.loads((out / "adaprune.json").read_text())
    assert record["method"] == "random" and record["input_size"] == 32 and record["n_kept"] == 3
    from adaprune.cli.main import main

    rc = main(["evaluate", f"yolo:{path}", "--selection", f"{out}/", "--seeds", "1", "--epochs", "1", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    head, subset, full, protocol = text.splitlines()
    assert head.split() == ["set", "samples", "map_mean", "map_std", "map50_mean", "map50_std", "per_seed"]
    assert subset.split()[:2] == ["subset", "3"] and subset.split()[3] == "-" and subset.split()[5] == "-"
    assert full.split()[3] == "-" and "letterboxed to 32 px" in protocol  # the size the selection was made at
    # Edited by hand (one image dropped from train.txt): evaluate follows the file.
    lines = (out / "train.txt").read_text().splitlines()
    (out / "train.txt").write_text("\n".join(lines[:2]) + "\n")
    sel = load_data(f"yolo:{path}").selection_from(out)
    assert sel.n_kept == 2 and sel.method == "random" and list(sel.ids[sel.kept]) == lines[:2]
    config = yaml.safe_load((out / "data.yaml").read_text())
    assert "adaprune" not in config  # the yaml stays as Ultralytics reads it


def test_api_takes_loaded_datasets_and_errors_never_print_one(tmp_path):
    data = load_data("digits")
    sel = adaprune.prune(data, "random", prune=0.5, seed=0, progress=False)
    result = adaprune.evaluate(data, sel, test=load_data("digits"), seeds=1, epochs=1, model="mlp",
                               include_full=False, progress=False)
    assert result.n_kept == sel.n_kept and len(result.subset) == 1
    with pytest.raises(ConfigError) as info:
        load_data(data, test=np.zeros((5000, 64)))
    message = str(info.value)
    assert len(message) < 400 and "0., 0." not in message and "a ndarray of shape (5000, 64) (float64)" in message
    with pytest.raises(ConfigError) as info:
        load_data(load_data("synthdet:40"), test=data)
    assert "dataset 'digits' (1347 samples of shape (1, 8, 8))" in str(info.value)
    assert "array(" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("command", ["prune", "score", "evaluate", "benchmark", "embed", "report"])
def test_every_command_that_reads_data_takes_input_size(command, capsys):
    from adaprune.cli.main import main

    assert main([command, "--help"]) == 0
    assert "--input-size N" in capsys.readouterr().out
