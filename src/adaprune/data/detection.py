"""Object-detection sources: `coco:ANNOTATIONS.json[:IMAGES_DIR]`, `yolo:DATA.yaml`, `synthdet[:N]`,
`synthtraffic[:N[:val]]`,
and the writers that give the user their own format back (a pruned COCO file, a YOLO list).

One sample per image (images without objects included). Pixels are decoded only when a batch asks
for them (`LazyImages`), resized to a fixed square input; boxes are rescaled with them, so every
target is in input pixels (xyxy). Each image keeps a stable id (a COCO image id, a YOLO file path)
that every output carries.

The COCO writer copies the source's JSON objects as text: each kept image and each of its
annotations is written byte for byte as it came (ids, number formatting and key order included),
with `info`, `licenses`, `categories` and any other top-level entry as they were."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adaprune.errors import ConfigError, DataError, require
from adaprune.io_utils import atomic_write_text, refuse_input_paths

log = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = 64
SYNTHDET_DEFAULT_N = 1500
CACHE_BYTES = 2 << 30  # decoded (resized, uint8) images kept in memory, at most
_WS = re.compile(r"\s*")


# ---------------------------------------------------------------- lazy pixels
class LazyImages:
    """Array-like (N, 3, S, S) float32 in [0, 1] over image files, decoded when indexed.

    Each image is read with Pillow, converted to RGB and resized (stretched) to S x S. Decoded
    images are cached as uint8 while the cache stays under `CACHE_BYTES`, so later epochs do not
    decode again; beyond that, every access decodes."""

    dtype = np.float32
    ndim = 4

    def __init__(self, paths: Sequence[str | os.PathLike], *, size: int) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.size = size
        self.shape = (len(self.paths), 3, size, size)
        self._cache: dict[int, np.ndarray] = {}
        self._cache_limit = CACHE_BYTES // (3 * size * size)

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, i: int) -> np.ndarray:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        image_mod = require("PIL.Image", "images")
        try:
            with image_mod.open(self.paths[i]) as im:
                arr = np.asarray(im.convert("RGB").resize((self.size, self.size), image_mod.BILINEAR))
        except Exception as exc:  # Pillow raises several unrelated types for a bad file
            raise DataError(f"image {self.paths[i]!r} is not readable: {exc}") from None
        arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        if len(self._cache) < self._cache_limit:
            self._cache[i] = arr
        return arr

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self._decode(int(idx)).astype(np.float32) / 255.0
        rows = np.arange(len(self))[idx]
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        for j, i in enumerate(rows):
            out[j] = self._decode(int(i))
        return out / 255.0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


class ArrayImages:
    """Array-like (N, 3, S, S) float32 in [0, 1] over an in-memory uint8 array (synthdet)."""

    dtype = np.float32
    ndim = 4

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.shape = pixels.shape

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, idx: Any) -> np.ndarray:
        return self.pixels[idx].astype(np.float32) / 255.0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


# ---------------------------------------------------------------- what a writer needs
@dataclass(frozen=True)
class CocoDocument:
    """A COCO file kept as text: every top-level entry, image and annotation as its original JSON
    text, so a pruned file carries each object exactly as it came."""

    path: str
    top_level: tuple[tuple[str, str], ...]  # (key, raw JSON text) in file order, images/annotations included
    images_raw: tuple[str, ...]  # per sample (dataset order)
    annotations_raw: tuple[str, ...]  # every annotation, file order
    image_of_annotation: np.ndarray  # sample index of every annotation

    def write(self, kept: np.ndarray, out: str | os.PathLike) -> None:
        """Write a COCO file with exactly the images `kept` (sample indices) and all their annotations."""
        keep = np.zeros(len(self.images_raw), dtype=bool)
        keep[np.asarray(kept, dtype=np.int64)] = True
        images = [self.images_raw[i] for i in np.flatnonzero(keep)]
        anns = [a for a, img in zip(self.annotations_raw, self.image_of_annotation, strict=True) if keep[img]]
        parts = []
        for key, raw in self.top_level:
            if key == "images":
                raw = _json_list(images)
            elif key == "annotations":
                raw = _json_list(anns)
            parts.append(f"{json.dumps(key)}: {raw}")
        atomic_write_text(out, "{\n" + ",\n".join(parts) + "\n}\n")


def _json_list(items: Sequence[str]) -> str:
    return "[\n" + ",\n".join(items) + "\n]" if items else "[]"


@dataclass(frozen=True)
class YoloDocument:
    """A YOLO DATA.yaml and the image files of its training split (one per sample)."""

    path: str
    config: dict[str, Any]
    root: str  # the dataset root the yaml's relative paths resolve against

    def write(self, kept: np.ndarray, image_paths: Sequence[str], out_dir: str | os.PathLike) -> None:
        """`out_dir/train.txt` (the kept images' absolute paths) and `out_dir/<name>.yaml` pointing at it."""
        out = Path(out_dir)
        yaml = require("yaml", "detection")
        train_txt = out / "train.txt"
        text = "".join(f"{image_paths[i]}\n" for i in np.sort(np.asarray(kept, dtype=np.int64)))
        config = dict(self.config)
        config["path"] = self.root
        config["train"] = str(train_txt.resolve())
        atomic_write_text(train_txt, text)
        atomic_write_text(out / Path(self.path).name, yaml.safe_dump(config, sort_keys=False))


# ---------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class DetectionDataset:
    """Images with boxes: a training split and an optional test split.

    `x` is an array-like (N, 3, S, S) float32 in [0, 1], decoded lazily; `boxes[i]` is a (k, 4)
    float32 array of xyxy boxes in input pixels and `labels[i]` the (k,) int64 category indices
    0..K-1 (`class_names` in order; `category_ids` the source's own ids). `ids` names every image
    (COCO image ids, YOLO file paths, synthdet ids); `groups` ties images kept or dropped together.
    The test split only ever reports mAP, never chooses anything."""

    task_kind: ClassVar[str] = "detection"

    name: str
    x: Any
    boxes: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    ids: np.ndarray
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...] = ()
    x_test: Any = None
    boxes_test: tuple[np.ndarray, ...] | None = None
    labels_test: tuple[np.ndarray, ...] | None = None
    groups: np.ndarray | None = None
    source_paths: tuple[str, ...] = field(default_factory=tuple)
    image_paths: tuple[str, ...] = ()  # file sources: one path per training image
    document: CocoDocument | YoloDocument | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        if n == 0:
            raise DataError(f"{self.name}: no images")
        if not (len(self.boxes) == len(self.labels) == len(self.ids) == n):
            raise DataError(f"{self.name}: {n} images but {len(self.boxes)} box lists and {len(self.ids)} ids")
        if self.groups is not None:
            from adaprune.data.dataset import validate_groups

            validate_groups(self.groups, n, what=self.name)
        if self.x_test is not None and (self.boxes_test is None or len(self.boxes_test) != len(self.x_test)):
            raise DataError(f"{self.name}: the test split needs one box list per image")

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def input_size(self) -> int:
        return int(self.x.shape[-1])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    @property
    def y(self) -> np.ndarray:
        """One stratum for every image: class quotas do not apply to whole images."""
        return np.zeros(self.n, dtype=np.int64)

    def with_test(self, other: DetectionDataset) -> DetectionDataset:
        """This training set with `other`'s training images as its test split (same categories)."""
        if not isinstance(other, DetectionDataset):
            raise ConfigError(f"the test source of detection data {self.name!r} must be a detection source too")
        if other.class_names != self.class_names:
            raise DataError(
                f"test source {other.name!r} has categories {list(other.class_names)} but {self.name!r} has "
                f"{list(self.class_names)}"
            )
        if other.input_size != self.input_size:
            raise DataError(
                f"test source {other.name!r} is {other.input_size} px but {self.name!r} is {self.input_size}"
            )
        return _replace(self, x_test=other.x, boxes_test=other.boxes, labels_test=other.labels,
                        source_paths=self.source_paths + other.source_paths)

    def with_groups(self, groups: np.ndarray | None) -> DetectionDataset:
        return _replace(self, groups=groups)

    @property
    def id_column(self) -> str:
        """The selection column naming each image: "path" for YOLO files, "id" for COCO image ids."""
        return "path" if isinstance(self.document, YoloDocument) else "id"

    def writes_own_format(self, out: str | os.PathLike) -> bool:
        """Whether `out` asks for the source's own format: a .json for COCO, a folder (DIR/) for YOLO.
        Anything else is a selection table (.csv, .parquet)."""
        text = str(out)
        if isinstance(self.document, CocoDocument):
            return text.lower().endswith(".json")
        if isinstance(self.document, YoloDocument):
            return text.endswith(("/", os.sep)) or Path(text).is_dir()
        return False

    def check_output(self, out: str | os.PathLike) -> None:
        """Fail early on an output `write` would refuse (before any pruning work)."""
        if isinstance(self.document, CocoDocument):
            check_coco_output(out, inputs=self.source_paths)
        elif isinstance(self.document, YoloDocument):
            check_yolo_output(out, self.document, inputs=self.source_paths)
        else:
            raise ConfigError(f"{self.name} has no file format to write back; write a selection (.csv/.parquet/.json)")

    def write(self, kept: np.ndarray, out: str | os.PathLike) -> None:
        """Write the kept images in the source's own format: a COCO file (.json), or a YOLO folder."""
        self.check_output(out)
        if isinstance(self.document, CocoDocument):
            self.document.write(kept, out)
        elif isinstance(self.document, YoloDocument):
            self.document.write(kept, self.image_paths, out)


def _replace(data: DetectionDataset, **changes: Any) -> DetectionDataset:
    import dataclasses

    return dataclasses.replace(data, **changes)


def check_coco_output(out: str | os.PathLike, *, inputs: Sequence[str]) -> None:
    path = Path(out)
    refuse_input_paths(path, inputs)
    if path.suffix.lower() != ".json":
        raise ConfigError(f"a pruned COCO file must end in .json, got {str(out)!r}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"output folder {str(folder)!r} does not exist")


def check_yolo_output(out: str | os.PathLike, document: YoloDocument, *, inputs: Sequence[str]) -> None:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"a pruned YOLO set is written to a folder (DIR/), got the file {str(out)!r}")
    if not path.is_dir():
        raise ConfigError(f"output folder {str(out)!r} does not exist; create it first")
    refuse_input_paths(path / Path(document.path).name, inputs)
    refuse_input_paths(path / "train.txt", inputs)


# ---------------------------------------------------------------- COCO
def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _raw_top_level(text: str, what: str) -> list[tuple[str, str, Any]]:
    """(key, raw text, parsed value) for every top-level entry; `images` and `annotations` come back
    as lists of (raw text, parsed) per element, so each object's exact text is kept."""
    decoder = json.JSONDecoder()
    entries: list[tuple[str, str, Any]] = []
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "{":
        raise DataError(f"COCO file {what!r} is not a JSON object")
    pos = _skip_ws(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return entries
    while True:
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError(f"expected ':' at character {pos}")
        pos = _skip_ws(text, pos + 1)
        if key in ("images", "annotations") and text[pos : pos + 1] == "[":
            items: list[tuple[str, Any]] = []
            start = pos
            pos = _skip_ws(text, pos + 1)
            if text[pos : pos + 1] != "]":
                while True:
                    value, end = decoder.raw_decode(text, pos)
                    items.append((text[pos:end], value))
                    pos = _skip_ws(text, end)
                    if text[pos : pos + 1] == ",":
                        pos = _skip_ws(text, pos + 1)
                        continue
                    if text[pos : pos + 1] != "]":
                        raise ValueError(f"expected ',' or ']' at character {pos}")
                    break
            pos += 1
            entries.append((key, text[start:pos], items))
        else:
            value, end = decoder.raw_decode(text, pos)
            entries.append((key, text[pos:end], value))
            pos = end
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if text[pos : pos + 1] != "}":
            raise ValueError(f"expected ',' or '}}' at character {pos}")
        return entries


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_coco(
    annotations: str,
    images_dir: str | None = None,
    *,
    size: int = DEFAULT_INPUT_SIZE,
    group_by: str | None = None,
) -> DetectionDataset:
    """A COCO detection file: one sample per entry of `images` (in file order), its annotations as
    targets. Image files are resolved against `images_dir` (default: the JSON's folder) and must
    all exist; every error names the offending entry."""
    p = Path(annotations)
    if not p.is_file():
        raise DataError(f"COCO file {annotations!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
        entries = _raw_top_level(text, annotations)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise DataError(f"COCO file {annotations!r} is not readable JSON: {exc}") from None
    by_key = {key: (raw, value) for key, raw, value in entries}
    for key in ("images", "annotations", "categories"):
        if key not in by_key:
            raise DataError(f"COCO file {annotations!r} has no {key!r} list; expected images, annotations, categories")
        if not isinstance(by_key[key][1], list):
            raise DataError(f"COCO file {annotations!r}: {key!r} must be a list")
    images: list[tuple[str, Any]] = by_key["images"][1]
    anns: list[tuple[str, Any]] = by_key["annotations"][1]
    categories = by_key["categories"][1]
    if not images:
        raise DataError(f"COCO file {annotations!r} has no images")

    cat_index: dict[int, int] = {}
    names: list[str] = []
    for j, cat in enumerate(categories):
        if not (isinstance(cat, dict) and isinstance(cat.get("id"), int)):
            raise DataError(f"COCO file {annotations!r}: category {j} has no integer 'id'")
        if cat["id"] in cat_index:
            raise DataError(f"COCO file {annotations!r}: category id {cat['id']} appears twice")
        cat_index[cat["id"]] = len(names)
        names.append(str(cat.get("name", cat["id"])))

    image_index: dict[Any, int] = {}
    sizes = np.empty((len(images), 2), dtype=np.float64)
    file_names: list[str] = []
    for i, (_, img) in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise DataError(f"COCO file {annotations!r}: image {i} needs an 'id' and a 'file_name'")
        if img["id"] in image_index:
            raise DataError(f"COCO file {annotations!r}: image id {img['id']!r} appears twice")
        w, h = img.get("width"), img.get("height")
        if not (_number(w) and _number(h) and w > 0 and h > 0):
            raise DataError(f"COCO file {annotations!r}: image id {img['id']!r} needs a positive width and height")
        image_index[img["id"]] = i
        sizes[i] = (w, h)
        file_names.append(img["file_name"])

    boxes: list[list[list[float]]] = [[] for _ in images]
    labels: list[list[int]] = [[] for _ in images]
    owner = np.empty(len(anns), dtype=np.int64)
    for a, (_, ann) in enumerate(anns):
        if not isinstance(ann, dict):
            raise DataError(f"COCO file {annotations!r}: annotation {a} is not an object")
        aid = ann.get("id", f"#{a}")
        if ann.get("image_id") not in image_index:
            raise DataError(
                f"COCO file {annotations!r}: annotation {aid!r} points at unknown image id {ann.get('image_id')!r}"
            )
        if ann.get("category_id") not in cat_index:
            raise DataError(
                f"COCO file {annotations!r}: annotation {aid!r} has unknown category id {ann.get('category_id')!r}; "
                f"categories are {sorted(cat_index)}"
            )
        i = image_index[ann["image_id"]]
        owner[a] = i
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            raise DataError(f"COCO file {annotations!r}: annotation {aid!r} needs a bbox [x, y, width, height]")
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            raise DataError(f"COCO file {annotations!r}: annotation {aid!r} has a box of non-positive size {bbox}")
        iw, ih = sizes[i]
        tol = 1.0  # a pixel of slack for boxes rounded outwards
        if x < -tol or y < -tol or x + w > iw + tol or y + h > ih + tol:
            raise DataError(
                f"COCO file {annotations!r}: annotation {aid!r} box {bbox} lies outside its "
                f"{iw:g}x{ih:g} image (id {ann['image_id']!r})"
            )
        if ann.get("iscrowd", 0):
            continue  # crowd regions are not objects to detect (pycocotools ignores them too)
        boxes[i].append([x, y, x + w, y + h])
        labels[i].append(cat_index[ann["category_id"]])

    root = Path(images_dir) if images_dir else p.parent
    if images_dir and not root.is_dir():
        raise DataError(f"COCO images folder {images_dir!r} does not exist")
    paths = [root / f for f in file_names]
    _check_files_exist(paths, what=f"COCO file {annotations!r}")
    scale = size / sizes  # (N, 2): x and y factors to input pixels
    box_arrays = tuple(_scaled(b, scale[i]) for i, b in enumerate(boxes))
    label_arrays = tuple(np.asarray(lab, dtype=np.int64) for lab in labels)
    ids = np.asarray([img["id"] for _, img in images])
    groups = None
    if group_by is not None:
        groups = _coco_groups([img for _, img in images], group_by, what=annotations)
    document = CocoDocument(
        path=str(p),
        top_level=tuple((key, raw) for key, raw, _ in entries),
        images_raw=tuple(raw for raw, _ in images),
        annotations_raw=tuple(raw for raw, _ in anns),
        image_of_annotation=owner,
    )
    return DetectionDataset(
        name=p.stem,
        x=LazyImages(paths, size=size),
        boxes=box_arrays,
        labels=label_arrays,
        ids=ids,
        class_names=tuple(names),
        category_ids=tuple(cat_index),
        groups=groups,
        source_paths=(str(p),),
        image_paths=tuple(str(q) for q in paths),
        document=document,
    )


def _scaled(boxes: list[list[float]], scale: np.ndarray) -> np.ndarray:
    if not boxes:
        return np.zeros((0, 4), dtype=np.float32)
    arr = np.asarray(boxes, dtype=np.float64) * np.tile(scale, 2)
    return arr.astype(np.float32)


def _check_files_exist(paths: Sequence[Path], *, what: str) -> None:
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        raise DataError(f"{what}: {len(missing)} image file(s) missing: {', '.join(missing)}")


def _coco_groups(images: list[dict], field_name: str, *, what: str) -> np.ndarray:
    values = []
    for img in images:
        if field_name not in img:
            raise DataError(f"--group-by {field_name!r}: image id {img.get('id')!r} in {what!r} has no such field")
        values.append(str(img[field_name]))
    return np.asarray(values)


# ---------------------------------------------------------------- YOLO
def _yolo_images(entry: Any, root: Path, *, what: str) -> list[Path]:
    """A split entry of DATA.yaml: a folder of images, a .txt list of image paths, or a list of either."""
    if entry is None:
        return []
    if isinstance(entry, list):
        return [p for e in entry for p in _yolo_images(e, root, what=what)]
    if not isinstance(entry, str):
        raise DataError(f"{what}: a split must be a path or a list of paths, got {entry!r}")
    from adaprune.data.sources import IMAGE_SUFFIXES

    target = Path(entry) if Path(entry).is_absolute() else root / entry
    if target.is_dir():
        return sorted(f for f in target.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if target.suffix == ".txt" and target.is_file():
        out = []
        for line in target.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                q = Path(line)
                # As Ultralytics reads a list: relative lines ("./images/x.jpg") sit beside the list file.
                out.append(q if q.is_absolute() else target.parent / q)
        return out
    raise DataError(f"{what}: split {entry!r} is neither a folder of images nor a .txt list ({target} not found)")


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for k in range(len(parts) - 1, -1, -1):  # the last `images` folder becomes `labels`
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _read_yolo_labels(image: Path, num_classes: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    lab = _label_path(image)
    if not lab.is_file():
        return np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64)
    boxes, labels = [], []
    for line_no, line in enumerate(lab.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DataError(
                f"YOLO label file {str(lab)!r} line {line_no} has {len(fields)} fields; expected 5: class cx cy w h"
            )
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise DataError(f"YOLO label file {str(lab)!r} line {line_no}: expected an integer class and 4 numbers, "
                            f"got {line.strip()!r}") from None
        if not 0 <= cls < num_classes:
            raise DataError(f"YOLO label file {str(lab)!r} line {line_no}: class {cls} is not in 0..{num_classes - 1}")
        if not (w > 0 and h > 0):
            raise DataError(f"YOLO label file {str(lab)!r} line {line_no}: box of non-positive size w={w:g} h={h:g}")
        tol = 1e-3
        if cx - w / 2 < -tol or cy - h / 2 < -tol or cx + w / 2 > 1 + tol or cy + h / 2 > 1 + tol:
            raise DataError(
                f"YOLO label file {str(lab)!r} line {line_no}: box cx={cx:g} cy={cy:g} w={w:g} h={h:g} lies outside "
                "the image (normalised coordinates must stay in [0, 1])"
            )
        boxes.append([(cx - w / 2) * size, (cy - h / 2) * size, (cx + w / 2) * size, (cy + h / 2) * size])
        labels.append(cls)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


def load_yolo(path: str, *, size: int = DEFAULT_INPUT_SIZE, group_by: str | None = None) -> DetectionDataset:
    """An Ultralytics-layout set: DATA.yaml with `path` (default: the yaml's folder), `train`, optional
    `val` (the test split) and `names`; labels in labels/*.txt beside images/ (normalised cx cy w h;
    an image without a label file has no objects). `group_by` is a regular expression over the file
    name: its first group (or whole match) is the group id."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"YOLO data file {path!r} does not exist")
    yaml = require("yaml", "detection")
    try:
        config = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"YOLO data file {path!r} is not readable YAML: {first}") from None
    if not isinstance(config, dict):
        raise DataError(f"YOLO data file {path!r} must be a mapping with train, val and names")
    names = config.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"YOLO data file {path!r}: names keys must be class indices 0..K-1") from None
        if keys != list(range(len(keys))):
            raise DataError(f"YOLO data file {path!r}: names keys must be 0..K-1, got {keys}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not (isinstance(names, list) and names):
        raise DataError(f"YOLO data file {path!r} needs `names`: a list (or index mapping) of class names")
    if "train" not in config:
        raise DataError(f"YOLO data file {path!r} has no `train` split")
    root_entry = config.get("path")
    root = p.parent
    if root_entry:
        root = Path(root_entry) if Path(root_entry).is_absolute() else p.parent / root_entry
    what = f"YOLO data file {path!r}"
    train = [q.resolve() if q.exists() else q for q in _yolo_images(config["train"], root, what=what)]
    if not train:
        raise DataError(f"{what}: the train split has no images")
    _check_files_exist(train, what=what)
    val = _yolo_images(config.get("val"), root, what=what) if config.get("val") else []
    _check_files_exist(val, what=what)
    k = len(names)
    tr = [_read_yolo_labels(q, k, size) for q in train]
    te = [_read_yolo_labels(q, k, size) for q in val]
    groups = _regex_groups([str(q) for q in train], group_by) if group_by is not None else None
    document = YoloDocument(path=str(p), config=config, root=str(root.resolve()))
    return DetectionDataset(
        name=p.stem,
        x=LazyImages(train, size=size),
        boxes=tuple(b for b, _ in tr),
        labels=tuple(lab for _, lab in tr),
        ids=np.asarray([str(q) for q in train]),
        class_names=tuple(str(n) for n in names),
        category_ids=tuple(range(k)),
        x_test=LazyImages(val, size=size) if val else None,
        boxes_test=tuple(b for b, _ in te) if val else None,
        labels_test=tuple(lab for _, lab in te) if val else None,
        groups=groups,
        source_paths=(str(p),),
        image_paths=tuple(str(q) for q in train),
        document=document,
    )


def _regex_groups(paths: list[str], pattern: str) -> np.ndarray:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--group-by {pattern!r} is not a valid regular expression: {exc}") from None
    out = []
    for q in paths:
        m = rx.search(Path(q).name)
        if m is None:
            raise DataError(f"--group-by {pattern!r} does not match the file name {Path(q).name!r}")
        out.append(m.group(1) if rx.groups else m.group(0))
    return np.asarray(out)


# ---------------------------------------------------------------- dispatch
def load_detection(kind: str, arg: str, *, group_by: str | None = None) -> DetectionDataset:
    """`coco:ANNOTATIONS.json[:IMAGES_DIR]`, `yolo:DATA.yaml` or `synthdet[:N]`."""
    if kind == "coco":
        if not arg:
            raise ConfigError("data source 'coco' needs a path: coco:ANNOTATIONS.json[:IMAGES_DIR]")
        ann, sep, images_dir = arg.partition(".json:")
        ann = ann + ".json" if sep else arg
        return load_coco(ann, images_dir or None, group_by=group_by)
    if kind == "yolo":
        if not arg:
            raise ConfigError("data source 'yolo' needs a path: yolo:DATA.yaml")
        return load_yolo(arg, group_by=group_by)
    if kind == "synthdet":
        from adaprune.data.synthdet import load_synthdet

        if not arg:
            return load_synthdet(group_by=group_by)
        try:
            n = int(arg)
        except ValueError:
            raise ConfigError(f"synthdet size must be a whole number of training images, got {arg!r}") from None
        return load_synthdet(n, group_by=group_by)
    if kind == "synthtraffic":  # synthtraffic[:N[:val]]; `:val`: the validation scenes as the test split
        from adaprune.data.synthtraffic import SYNTHTRAFFIC_DEFAULT_N, load_synthtraffic

        size, _, split = arg.partition(":")
        try:
            n = int(size) if size else SYNTHTRAFFIC_DEFAULT_N
        except ValueError:
            raise ConfigError(f"synthtraffic size must be a whole number of training images, got {size!r}") from None
        if split not in ("", "val"):
            raise ConfigError(f"synthtraffic:N:SPLIT takes the held-out split 'val' (default: test), got {split!r}")
        return load_synthtraffic(n, group_by=group_by, test_split=split or "test")
    raise ConfigError(f"unknown detection source {kind!r}")
