"""`voc:DIR`: Pascal VOC XML annotations (the AdaPruner paper's detection format), and its writer.

DIR is a VOC root (`Annotations/*.xml`, images in `JPEGImages/`, optional `ImageSets/Main/train.txt`
and `val.txt` naming the splits by image id), or a flat folder of XML files with their images beside
them. Without `ImageSets/Main/train.txt` every annotated image is a training image. Each XML gives
`filename`, `size/width`, `size/height` and `object`s with `name` and `bndbox` (`xmin ymin xmax
ymax`, 1-based inclusive pixels as the VOC devkit writes them: read as the 0-based box
[xmin - 1, ymin - 1, xmax, ymax], as detectron2 does). Objects marked `difficult` are left out of
the targets, as COCO crowd regions are (the XML keeps them). Classes are the object names in sorted
order. Image ids are the XML file stems (what ImageSets lists); `group_by` is a regular expression
over the image file name, as for YOLO.

The writer gives a pruned VOC set back as a folder: `Annotations/` with the kept images' XML files
copied byte for byte, `ImageSets/Main/train.txt` listing their ids, and `JPEGImages/` with the kept
images hard-linked (symlinked across devices), so `voc:OUT` reads the pruned set."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write_text, refuse_input_paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocImage:
    xml: str
    image: str
    width: float
    height: float
    boxes: list[list[float]]  # 0-based xyxy, source pixels
    names: list[str]


def _text(node: ET.Element | None, tag: str, *, what: str) -> str:
    found = None if node is None else node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise DataError(f"{what}: missing <{tag}>")
    return found.text.strip()


def _number(node: ET.Element | None, tag: str, *, what: str) -> float:
    text = _text(node, tag, what=what)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{what}: <{tag}> must be a number, got {text!r}") from None


def read_voc_xml(xml: Path, root: Path) -> VocImage:
    """One annotation file: its image (found in ROOT/JPEGImages, beside the XML, or in ROOT) and boxes."""
    what = f"VOC file {str(xml)!r}"
    try:
        doc = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"{what} is not readable XML: {exc}") from None
    filename = _text(doc, "filename", what=what)
    size = doc.find("size")
    width, height = _number(size, "width", what=what), _number(size, "height", what=what)
    if width <= 0 or height <= 0:
        raise DataError(f"{what}: <size> must be positive, got {width:g}x{height:g}")
    candidates = [root / "JPEGImages" / filename, xml.parent / filename, root / filename]
    image = next((c for c in candidates if c.is_file()), None)
    if image is None:
        looked = ", ".join(str(c.parent) for c in candidates)
        raise DataError(f"{what}: image {filename!r} not found (looked in {looked})")
    boxes, names = [], []
    for k, obj in enumerate(doc.findall("object")):
        name = _text(obj, "name", what=f"{what} object {k}")
        difficult = obj.find("difficult")
        if difficult is not None and (difficult.text or "0").strip() not in ("0", ""):
            continue
        bb = obj.find("bndbox")
        owhat = f"{what} object {k} ({name})"
        xmin, ymin = _number(bb, "xmin", what=owhat), _number(bb, "ymin", what=owhat)
        xmax, ymax = _number(bb, "xmax", what=owhat), _number(bb, "ymax", what=owhat)
        x0, y0 = max(0.0, xmin - 1), max(0.0, ymin - 1)
        if xmax <= x0 or ymax <= y0:
            raise DataError(f"{owhat}: box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} has no area")
        tol = 1.0
        if xmax > width + tol or ymax > height + tol:
            raise DataError(f"{owhat}: box xmax={xmax:g} ymax={ymax:g} lies outside its {width:g}x{height:g} image")
        boxes.append([x0, y0, min(xmax, width), min(ymax, height)])
        names.append(name)
    return VocImage(str(xml), str(image), width, height, boxes, names)


def _split_ids(root: Path, split: str) -> list[str] | None:
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        return None
    return [line.split()[0] for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class VocDocument:
    """A VOC set: its root and the XML file of every training image (one per sample)."""

    path: str
    xml_paths: tuple[str, ...]

    id_column = "id"

    def writes_own_format(self, out: str | os.PathLike) -> bool:
        text = str(out)
        return text.endswith(("/", os.sep)) or Path(text).is_dir()

    def check_output(self, out: str | os.PathLike, *, inputs: Sequence[str]) -> None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"a pruned VOC set is written to a folder (DIR/), got the file {str(out)!r}")
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"a pruned VOC set needs a new (or empty) folder, but {str(out)!r} holds files")
        if path.resolve() == Path(self.path).resolve():
            raise ConfigError(f"output {str(out)!r} is the input VOC folder; choose another path")
        refuse_input_paths(path / "Annotations", inputs)

    def write(
        self, kept: np.ndarray, image_paths: Sequence[str], out: str | os.PathLike, *,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        """OUT/Annotations (kept XML copies), OUT/ImageSets/Main/train.txt (their ids), OUT/JPEGImages (links),
        and `provenance` (method, budget, seed, version) in OUT/adaprune.json as for a pruned YOLO folder."""
        out = Path(out)
        kept = np.sort(np.asarray(kept, dtype=np.int64))
        (out / "Annotations").mkdir(parents=True, exist_ok=True)
        (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        ids = []
        for i in kept:
            xml, image = Path(self.xml_paths[int(i)]), Path(image_paths[int(i)])
            shutil.copyfile(xml, out / "Annotations" / xml.name)
            _link(image, out / "JPEGImages" / image.name)
            ids.append(xml.stem)
        atomic_write_text(out / "ImageSets" / "Main" / "train.txt", "".join(f"{i}\n" for i in ids))
        if provenance is not None:
            from adaprune.data.detection import YOLO_PROVENANCE

            atomic_write_text(out / YOLO_PROVENANCE, json.dumps(provenance, indent=2, sort_keys=True) + "\n")


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        os.symlink(src.resolve(), dst)


def load_voc(path: str, *, size: int | None = None, group_by: str | None = None):
    """`voc:DIR` as a DetectionDataset (boxes in input pixels, images decoded lazily)."""
    from adaprune.data.detection import (
        DEFAULT_INPUT_SIZE,
        DetectionDataset,
        LazyImages,
        Letterbox,
        _regex_groups,
        _to_input,
        check_input_size,
        warn_if_small,
    )

    size = check_input_size(size if size is not None else DEFAULT_INPUT_SIZE)
    if not path:
        raise ConfigError("data source 'voc' needs a folder: voc:DIR (Annotations/ and JPEGImages/, or XML files)")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"VOC folder {path!r} does not exist")
    root = root.resolve()
    ann_dir = root / "Annotations" if (root / "Annotations").is_dir() else root
    train_ids, val_ids = _split_ids(root, "train"), _split_ids(root, "val")
    if train_ids is None:
        xmls = sorted(ann_dir.glob("*.xml"))
        val_xmls: list[Path] = []
    else:
        xmls = [ann_dir / f"{i}.xml" for i in train_ids]
        val_xmls = [ann_dir / f"{i}.xml" for i in val_ids or []]
    if not xmls:
        raise DataError(f"VOC folder {path!r} has no annotation files (looked for {ann_dir}/*.xml)")
    missing = [str(q) for q in xmls + val_xmls if not q.is_file()]
    if missing:
        raise DataError(f"VOC folder {path!r}: {len(missing)} annotation file(s) listed but missing: "
                        f"{', '.join(missing[:5])}")
    train = [read_voc_xml(q, root) for q in xmls]
    test = [read_voc_xml(q, root) for q in val_xmls]
    names = tuple(sorted({n for im in train + test for n in im.names}))
    index = {n: i for i, n in enumerate(names)}

    def fit(images: list[VocImage]) -> Letterbox:
        return Letterbox.fit(np.asarray([[im.width, im.height] for im in images], dtype=np.float64), size)

    box_train = fit(train)
    box_test = fit(test) if test else None
    warn_if_small(box_train, what=f"VOC folder {root.name!r}")

    def targets(images: list[VocImage], letterbox: Letterbox) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        boxes = tuple(_to_input(letterbox, i, im.boxes) for i, im in enumerate(images))
        labels = tuple(np.asarray([index[n] for n in im.names], dtype=np.int64) for im in images)
        return boxes, labels

    boxes, labels = targets(train, box_train)
    boxes_test, labels_test = targets(test, box_test) if box_test is not None else (None, None)
    image_paths = tuple(im.image for im in train)
    groups = _regex_groups(list(image_paths), group_by) if group_by is not None else None
    log.info("voc %s: %d training images, %d test images, %d classes", path, len(train), len(test), len(names))
    return DetectionDataset(
        name=root.name,
        x=LazyImages(image_paths, letterbox=box_train),
        boxes=boxes,
        labels=labels,
        ids=np.asarray([Path(im.xml).stem for im in train]),
        class_names=names,
        category_ids=tuple(range(len(names))),
        x_test=LazyImages([im.image for im in test], letterbox=box_test) if box_test is not None else None,
        boxes_test=boxes_test,
        labels_test=labels_test,
        groups=groups,
        source_paths=tuple(im.xml for im in train + test),
        image_paths=image_paths,
        document=VocDocument(path=str(root), xml_paths=tuple(im.xml for im in train)),
        letterbox=box_train,
    )
