"""`voc:DIR`: Pascal VOC XML read like COCO (boxes into input pixels), written back as a pruned VOC
folder; on real aerial photographs (deepforest's VOC files) the mAP equals pycocotools' own."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest

from adaprune.cli.main import main
from adaprune.data import load_data
from adaprune.errors import DataError


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, int, int, int, int, int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>" for n, a, b, c, e, d in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>\n")


def make_voc(root, n: int = 6):
    """A VOC root: n images 80x40 with one or two boxes, a difficult one on image 0, ImageSets splits."""
    from PIL import Image

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"im{i}.jpg")
        objects = [("dog" if i % 2 else "cat", 11, 5, 50, 30, 0)]
        if i == 0:
            objects.append(("bird", 2, 2, 9, 9, 1))  # difficult: not a target
        (root / "Annotations" / f"im{i}.xml").write_text(voc_xml(f"im{i}.jpg", 80, 40, objects))
    (root / "ImageSets/Main/train.txt").write_text("".join(f"im{i}\n" for i in range(n - 2)))
    (root / "ImageSets/Main/val.txt").write_text(f"im{n - 2}\nim{n - 1}\n")
    return root


def test_voc_boxes_are_read_one_based_and_letterboxed_to_the_input(tmp_path):
    d = load_data(f"voc:{make_voc(tmp_path / 'voc')}")
    assert d.n == 4 and len(d.x_test) == 2
    assert d.class_names == ("cat", "dog")  # the difficult bird is no target (and no class)
    assert d.ids.tolist() == ["im0", "im1", "im2", "im3"]
    s = d.input_size
    # xmin 11 (1-based) -> 10; the 80x40 image is letterboxed: both axes scaled by s/80, the height
    # (s/2 px) centred on the square, so y moves down by (s - s/2) // 2
    scale, pad_y = s / 80, (s - s // 2) // 2
    assert np.allclose(d.boxes[0], [[10 * scale, 4 * scale + pad_y, 50 * scale, 30 * scale + pad_y]])
    assert np.allclose(d.source_boxes(0), [[10, 4, 50, 30]])  # and back to the image's own pixels
    assert d.labels[1].tolist() == [1] and d.labels[0].tolist() == [0]


def test_pruned_voc_folder_copies_the_kept_xml_and_reads_back(tmp_path):
    src = make_voc(tmp_path / "voc")
    out = tmp_path / "pruned"
    assert main(["prune", f"voc:{src}", "--method", "random", "--keep", "0.5", "--out", f"{out}/", "--quiet"]) == 0
    kept = (out / "ImageSets/Main/train.txt").read_text().split()
    assert len(kept) == 2 and set(kept) <= {"im0", "im1", "im2", "im3"}
    for i in kept:
        assert (out / "Annotations" / f"{i}.xml").read_bytes() == (src / "Annotations" / f"{i}.xml").read_bytes()
        assert (out / "JPEGImages" / f"{i}.jpg").read_bytes() == (src / "JPEGImages" / f"{i}.jpg").read_bytes()
    assert sorted(os.listdir(out / "Annotations")) == sorted(f"{i}.xml" for i in kept)
    assert load_data(f"voc:{out}").ids.tolist() == kept


def test_voc_errors_name_the_file_and_the_field(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    (root / "a.xml").write_text(voc_xml("a.png", 10, 10, [("x", 1, 1, 5, 5, 0)]))
    with pytest.raises(DataError, match=r"a.xml.*image 'a.png' not found"):
        load_data(f"voc:{root}")
    (root / "a.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    with pytest.raises(DataError, match=r"a.xml.*missing <width>"):
        load_data(f"voc:{root}")


def deepforest_wheel(tmp_path) -> str:
    """The deepforest wheel: $ADAPRUNE_DEEPFOREST_WHEEL, or downloaded (no dependencies) by pip."""
    given = os.environ.get("ADAPRUNE_DEEPFOREST_WHEEL")
    if given and os.path.isfile(given):
        return given
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp_path),
                        "deepforest"], check=True, timeout=300, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"the deepforest wheel is not available offline and pip could not fetch it ({exc})")
    wheels = sorted(tmp_path.glob("deepforest-*.whl"))
    if not wheels:
        pytest.skip("pip fetched no deepforest wheel")
    return str(wheels[0])


def raw_voc_boxes(xml_path) -> tuple[list[list[float]], list[str]]:
    """An independent reading of the XML (the VOC devkit's 1-based inclusive boxes, as 0-based xyxy)."""
    out, names = [], []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        if (obj.findtext("difficult") or "0").strip() not in ("0", ""):
            continue
        b = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (float(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
        out.append([max(0.0, xmin - 1), max(0.0, ymin - 1), xmax, ymax])
        names.append(obj.findtext("name"))
    return out, names


@pytest.mark.slow
def test_deepforest_aerial_photographs_through_voc_give_pycocotools_map(tmp_path):
    """The deepforest wheel ships aerial images with tree-crown boxes as VOC XML. Read through voc:
    (boxes letterboxed into 64 px input pixels), jittered boxes scored by adaprune's mAP equal pycocotools' mAP
    on the XML's own boxes in source pixels."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from adaprune.tasks.detection import coco_map

    data_dir = tmp_path / "voc"
    data_dir.mkdir()
    with zipfile.ZipFile(deepforest_wheel(tmp_path / "wheel")) as whl:
        names = whl.namelist()
        for name in names:
            if name.startswith("deepforest/data/") and name.endswith(".xml"):
                xml_text = whl.read(name)
                image = ET.fromstring(xml_text).findtext("filename")
                if f"deepforest/data/{image}" in names:
                    (data_dir / os.path.basename(name)).write_bytes(xml_text)
                    (data_dir / image).write_bytes(whl.read(f"deepforest/data/{image}"))
    if not list(data_dir.glob("*.xml")):
        pytest.skip("this deepforest wheel ships no VOC XML with its images")
    d = load_data(f"voc:{data_dir}")
    assert d.class_names and d.n >= 2
    raw, raw_names = zip(*(raw_voc_boxes(data_dir / f"{i}.xml") for i in d.ids), strict=True)
    assert [len(b) for b in raw] == [len(b) for b in d.boxes]
    classes = sorted({n for names in raw_names for n in names})

    rng = np.random.default_rng(0)
    dets_src, dets_input = [], []
    for boxes in raw:
        b = np.asarray(boxes, dtype=np.float64)
        span = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, axis=1)
        jittered = b + rng.uniform(-0.25, 0.25, b.shape) * span  # some hits, some misses at each IoU
        scores = rng.uniform(size=len(b))
        dets_src.append((jittered, scores))
        i = len(dets_input)  # into the input's pixels as the images were: letterboxed
        dets_input.append({"boxes": d.letterbox.to_input(i, jittered), "scores": scores, "labels": d.labels[i]})
    ours = coco_map(dets_input, d.boxes, d.labels, d.num_classes)

    images, anns, results = [], [], []
    for i, (boxes, names, (jit, scores)) in enumerate(zip(raw, raw_names, dets_src, strict=True)):
        images.append({"id": i + 1})
        for (x0, y0, x1, y1), n in zip(boxes, names, strict=True):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": classes.index(n) + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        for (x0, y0, x1, y1), s, n in zip(jit, scores, names, strict=True):
            results.append({"image_id": i + 1, "category_id": classes.index(n) + 1,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": k + 1} for k in range(len(classes))]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(results), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert 0.05 < ev.stats[0] < 0.95  # a real test: neither trivial nor empty
    assert ours["map"] == pytest.approx(ev.stats[0], abs=2e-3)
    assert ours["map50"] == pytest.approx(ev.stats[1], abs=2e-3)
