"""Object-detection sources: `coco:ANNOTATIONS.json[:IMAGES_DIR]`, `yolo:DATA.yaml`, `synthdet[:N]`,
`synthtraffic[:N[:val]]`,
and the writers that give the user their own format back (a pruned COCO file, a YOLO list).

One sample per image (images without objects included). Pixels are decoded only when a batch asks
for them (`LazyImages`), letterboxed to a square input of `size` pixels: scaled so the longer side
fits, aspect ratio kept, the rest padded grey (114, as Ultralytics pads). Boxes are mapped with them
(`Letterbox`), so every target is in input pixels (xyxy); `DetectionDataset.source_boxes` maps them
back to the image's own pixels. Each image keeps a stable id (a COCO image id, a YOLO file path)
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
from adaprune.naming import option

log = logging.getLogger(__name__)

# The default input side. benchmarks/results/detection_input_size.md measures CenterNet on one CPU
# thread: a training image costs 3.9x at 128 px and 22x at 256 px what it costs at 64 px (the per-image
# loss pass 3.5x and 29x). AdaPruner and AdaDeDup train and score several detectors, so on a CPU 64 px
# stays the default; a source whose images are over 4x larger gets a warning naming --input-size.
DEFAULT_INPUT_SIZE = 64
# Letterboxing to less than this share of the images' median longer side logs a warning.
SMALL_INPUT_SHARE = 0.25
PAD_VALUE = 114
MIN_INPUT_SIZE = 16
YOLO_PROVENANCE = "adaprune.json"  # beside train.txt in a pruned YOLO folder
SYNTHDET_DEFAULT_N = 1500
CACHE_BYTES = 2 << 30  # decoded (resized, uint8) images kept in memory, at most
_WS = re.compile(r"\s*")


# ---------------------------------------------------------------- lazy pixels
@dataclass(frozen=True)
class Letterbox:
    """How images of their own sizes are fitted into `size` x `size`: each is resized to
    `resized[i]` = (w, h) (its longer side becomes `size`, the aspect ratio kept), then placed at
    `pad[i]` = (x, y) on a grey canvas. A point (x, y) of the image's own pixels lands at
    (x * sx + pad_x, y * sy + pad_y) with sx = w / width and sy = h / height."""

    size: int
    source: np.ndarray  # (N, 2) float64: every image's own (width, height)
    resized: np.ndarray  # (N, 2) int64
    pad: np.ndarray  # (N, 2) int64

    @staticmethod
    def fit(source_sizes: np.ndarray, size: int) -> Letterbox:
        src = np.asarray(source_sizes, dtype=np.float64).reshape(-1, 2)
        scale = size / src.max(axis=1, keepdims=True)
        resized = np.clip(np.floor(src * scale + 0.5), 1, size).astype(np.int64)
        pad = (size - resized) // 2
        return Letterbox(size=int(size), source=src, resized=resized, pad=pad)

    def factors(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(sx, sy) and (pad_x, pad_y) of image i, float64."""
        return self.resized[i] / self.source[i], self.pad[i].astype(np.float64)

    def to_input(self, i: int, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes of image i in its own pixels -> input pixels (float64)."""
        scale, pad = self.factors(i)
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.tile(scale, 2) + np.tile(pad, 2)

    def to_source(self, i: int, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes of image i in input pixels -> its own pixels (float64): the inverse of `to_input`."""
        scale, pad = self.factors(i)
        return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - np.tile(pad, 2)) / np.tile(scale, 2)


def warn_if_small(letterbox: Letterbox, *, what: str) -> None:
    """Log a warning when `size` is far below the images' own longer side (objects may vanish)."""
    median = float(np.median(letterbox.source.max(axis=1)))
    if letterbox.size < SMALL_INPUT_SHARE * median:
        log.warning(
            "%s: images are a median %.0f px on their longer side, letterboxed to %d px (%.0f%% of it): small "
            "objects may vanish; a larger --input-size keeps them (CenterNet's cost grows with its square, "
            "benchmarks/results/detection_input_size.md)", what, median, letterbox.size,
            100 * letterbox.size / median,
        )


class LazyImages:
    """Array-like (N, 3, S, S) float32 in [0, 1] over image files, decoded when indexed.

    Each image is read with Pillow, converted to RGB and letterboxed to S x S by `letterbox` (its
    resized size and offset per image). Decoded images are cached as uint8 while the cache stays
    under `CACHE_BYTES`, so later epochs do not decode again; beyond that, every access decodes."""

    dtype = np.float32
    ndim = 4

    def __init__(self, paths: Sequence[str | os.PathLike], *, letterbox: Letterbox) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.letterbox = letterbox
        size = letterbox.size
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
        w, h = (int(v) for v in self.letterbox.resized[i])
        px, py = (int(v) for v in self.letterbox.pad[i])
        try:
            with image_mod.open(self.paths[i]) as im:
                small = np.asarray(im.convert("RGB").resize((w, h), image_mod.BILINEAR))
        except Exception as exc:  # Pillow raises several unrelated types for a bad file
            raise DataError(f"image {self.paths[i]!r} is not readable: {exc}") from None
        arr = np.full((3, self.size, self.size), PAD_VALUE, dtype=np.uint8)
        arr[:, py : py + h, px : px + w] = small.transpose(2, 0, 1)
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

    def write(self, kept: np.ndarray, out: str | os.PathLike, *, provenance: dict[str, Any] | None = None) -> None:
        """Write a COCO file with exactly the images `kept` (sample indices) and all their annotations;
        `provenance` is added to `info` as `info.adaprune` (every original field of `info` kept)."""
        keep = np.zeros(len(self.images_raw), dtype=bool)
        keep[np.asarray(kept, dtype=np.int64)] = True
        images = [self.images_raw[i] for i in np.flatnonzero(keep)]
        anns = [a for a, img in zip(self.annotations_raw, self.image_of_annotation, strict=True) if keep[img]]
        top_level = list(self.top_level)
        if provenance is not None:
            top_level = _with_provenance(top_level, provenance, what=self.path)
        parts = []
        for key, raw in top_level:
            if key == "images":
                raw = _json_list(images)
            elif key == "annotations":
                raw = _json_list(anns)
            parts.append(f"{json.dumps(key)}: {raw}")
        atomic_write_text(out, "{\n" + ",\n".join(parts) + "\n}\n")


def _with_provenance(top_level: list[tuple[str, str]], provenance: dict[str, Any], *,
                     what: str) -> list[tuple[str, str]]:
    """The top-level entries with `info.adaprune` set: the original `info` text is kept and the record
    appended to it (a file pruned twice has its earlier record replaced)."""
    record = json.dumps(provenance, sort_keys=True)
    keys = [key for key, _ in top_level]
    if "info" not in keys:
        return [("info", f'{{"adaprune": {record}}}'), *top_level]
    at = keys.index("info")
    raw = top_level[at][1]
    info = json.loads(raw)
    if not isinstance(info, dict):
        log.warning("COCO file %r: `info` is not an object; the pruned file records no provenance", what)
        return top_level
    if "adaprune" in info:
        text = json.dumps({**info, "adaprune": provenance})
    else:
        body = raw.rstrip()[:-1].rstrip()  # the object's text without its closing brace
        text = body + (", " if info else "") + f'"adaprune": {record}' + "}"
    return [*top_level[:at], ("info", text), *top_level[at + 1 :]]


def provenance_of(selection: Any, data: DetectionDataset) -> dict[str, Any]:
    """What a pruned COCO file or YOLO folder records of the selection that made it."""
    from adaprune.tables import jsonable

    return jsonable({
        "method": selection.method,
        "params": selection.params,
        "seed": selection.seed,
        "requested_keep": selection.requested_keep,
        "n_total": selection.n_total,
        "n_kept": selection.n_kept,
        "input_size": data.input_size,
        "source": data.source_paths[0] if data.source_paths else data.name,
        "version": selection.library_version,
    })


def _json_list(items: Sequence[str]) -> str:
    return "[\n" + ",\n".join(items) + "\n]" if items else "[]"


@dataclass(frozen=True)
class YoloDocument:
    """A YOLO DATA.yaml and the image files of its training split (one per sample)."""

    path: str
    config: dict[str, Any]
    root: str  # the dataset root the yaml's relative paths resolve against

    def write(self, kept: np.ndarray, image_paths: Sequence[str], out_dir: str | os.PathLike, *,
              provenance: dict[str, Any] | None = None) -> None:
        """`out_dir/train.txt` (the kept images' absolute paths), `out_dir/<name>.yaml` pointing at it
        and, with `provenance`, `out_dir/adaprune.json` recording it."""
        out = Path(out_dir)
        yaml = require("yaml", "detection")
        train_txt = out / "train.txt"
        text = "".join(f"{image_paths[i]}\n" for i in np.sort(np.asarray(kept, dtype=np.int64)))
        config = dict(self.config)
        config["path"] = self.root
        config["train"] = str(train_txt.resolve())
        atomic_write_text(train_txt, text)
        atomic_write_text(out / Path(self.path).name, yaml.safe_dump(config, sort_keys=False))
        if provenance is not None:
            atomic_write_text(out / YOLO_PROVENANCE, json.dumps(provenance, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class DetectionDataset:
    """Images with boxes: a training split and an optional test split.

    `x` is an array-like (N, 3, S, S) float32 in [0, 1], decoded lazily; `boxes[i]` is a (k, 4)
    float32 array of xyxy boxes in input pixels and `labels[i]` the (k,) int64 category indices
    0..K-1 (`class_names` in order; `category_ids` the source's own ids). `ids` names every image
    (COCO image ids, YOLO file paths, synthdet ids); `groups` ties images kept or dropped together.
    `crowd[i]` (COCO `iscrowd: 1`) is a (k, 5) float32 array of crowd regions, xyxy in input
    pixels and the category index: never trained on, but kept for evaluation, where pycocotools
    ignores a detection matched to a crowd region (`crowd_test` for the test split).
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
    document: Any = None  # CocoDocument, YoloDocument, or a document that writes itself (VocDocument)
    letterbox: Letterbox | None = None  # how each training image was fitted to the input (None: as it came)
    crowd: tuple[np.ndarray, ...] | None = None
    crowd_test: tuple[np.ndarray, ...] | None = None

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
        return _replace(self, x_test=other.x, boxes_test=other.boxes, labels_test=other.labels, crowd_test=other.crowd,
                        source_paths=self.source_paths + other.source_paths)

    def with_groups(self, groups: np.ndarray | None) -> DetectionDataset:
        return _replace(self, groups=groups)

    def describe(self) -> str:
        return f"detection data {self.name!r} ({self.n} images, {self.input_size} px)"

    def category_counts(self, kept: np.ndarray) -> tuple[dict[str, Any], ...]:
        """Per category: images holding it and objects of it, in total and among the `kept` images."""
        keep = np.zeros(self.n, dtype=bool)
        keep[np.asarray(kept, dtype=np.int64)] = True
        k = self.num_classes
        objects, objects_kept = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
        images, images_kept = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
        for i, lab in enumerate(self.labels):
            lab = np.asarray(lab, dtype=np.int64)
            per = np.bincount(lab, minlength=k)
            objects += per
            images += per > 0
            if keep[i]:
                objects_kept += per
                images_kept += per > 0
        return tuple({"category": self.class_names[c], "images": int(images[c]), "images_kept": int(images_kept[c]),
                      "objects": int(objects[c]), "objects_kept": int(objects_kept[c])} for c in range(k))

    def source_boxes(self, i: int) -> np.ndarray:
        """The boxes of training image i in the image's own pixels (xyxy, float64): the targets mapped
        back through the letterbox."""
        boxes = np.asarray(self.boxes[i], dtype=np.float64).reshape(-1, 4)
        return boxes if self.letterbox is None else self.letterbox.to_source(i, boxes)

    def image_field(self, name: str) -> np.ndarray | None:
        """A field of every COCO image entry (a scene id) as strings, or None when some image lacks it."""
        if not isinstance(self.document, CocoDocument):
            return None
        values = []
        for raw in self.document.images_raw:
            entry = json.loads(raw)
            if name not in entry:
                return None
            values.append(str(entry[name]))
        return np.asarray(values)

    @property
    def id_column(self) -> str:
        """The selection column naming each image: "path" for YOLO files, "id" for COCO image ids."""
        return "path" if isinstance(self.document, YoloDocument) else "id"

    def writes_own_format(self, out: str | os.PathLike) -> bool:
        """Whether `out` asks for the source's own format: a .json for COCO, a folder (DIR/) for YOLO.
        Anything else is a selection table (.csv, .parquet)."""
        text = str(out)
        if hasattr(self.document, "writes_own_format"):
            return self.document.writes_own_format(out)
        if isinstance(self.document, CocoDocument):
            return text.lower().endswith(".json")
        if isinstance(self.document, YoloDocument):
            return text.endswith(("/", os.sep)) or Path(text).is_dir()
        return False

    def check_output(self, out: str | os.PathLike) -> None:
        """Fail early on an output `write` would refuse (before any pruning work)."""
        if hasattr(self.document, "check_output"):
            self.document.check_output(out, inputs=self.source_paths)
        elif isinstance(self.document, CocoDocument):
            check_coco_output(out, inputs=self.source_paths)
        elif isinstance(self.document, YoloDocument):
            check_yolo_output(out, self.document, inputs=self.source_paths)
        else:
            raise ConfigError(f"{self.name} has no file format to write back; write a selection (.csv/.parquet/.json)")

    def write(self, kept: np.ndarray, out: str | os.PathLike, *, provenance: dict[str, Any] | None = None) -> None:
        """Write the kept images in the source's own format: a COCO file (.json), or a YOLO folder.
        `provenance` (method, budget, seed, version) goes under the COCO file's `info.adaprune`, or
        to `adaprune.json` in the YOLO folder."""
        self.check_output(out)
        if hasattr(self.document, "writes_own_format"):
            self.document.write(kept, self.image_paths, out, provenance=provenance)
        elif isinstance(self.document, CocoDocument):
            self.document.write(kept, out, provenance=provenance)
        elif isinstance(self.document, YoloDocument):
            self.document.write(kept, self.image_paths, out, provenance=provenance)

    def selection_from(self, path: str | os.PathLike) -> Any:
        """The `Selection` a pruned COCO file or YOLO folder written from this source stands for:
        its images matched to this source's by COCO image id or by file path."""
        return read_own_format(path, self)


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


def is_own_format(path: str | os.PathLike) -> bool:
    """Whether `path` is a pruned COCO file (a .json with `images`, not a selection table) or a
    pruned YOLO folder (with train.txt), rather than a selection file."""
    p = Path(path)
    if p.is_dir():
        return (p / "train.txt").is_file()
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and "images" in doc and "metadata" not in doc


def own_format_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The record adaprune wrote into a pruned COCO file (`info.adaprune`) or YOLO folder
    (`adaprune.json`); empty where there is none."""
    p = Path(path)
    try:
        if p.is_dir():
            meta = p / YOLO_PROVENANCE
            record = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
        else:
            info = json.loads(p.read_text(encoding="utf-8")).get("info")
            record = info.get("adaprune", {}) if isinstance(info, dict) else {}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise DataError(f"pruned output {str(path)!r} is not readable: {exc}") from None
    return record if isinstance(record, dict) else {}


def read_own_format(path: str | os.PathLike, data: DetectionDataset) -> Any:
    """The Selection a pruned COCO file (images matched by id) or YOLO folder (train.txt matched by
    file path) stands for on `data`; method, budget and seed from its provenance record."""
    from adaprune.selection import Selection

    p = Path(path)
    if p.is_dir():
        train_txt = p / "train.txt"
        if not train_txt.is_file():
            raise DataError(f"pruned YOLO folder {str(path)!r} has no train.txt")
        names = [line.strip() for line in train_txt.read_text(encoding="utf-8").splitlines() if line.strip()]
        wanted = [str(Path(q) if Path(q).is_absolute() else train_txt.parent / q) for q in names]
        index = {str(Path(q).resolve()): i for i, q in enumerate(data.image_paths)}
        keys = [str(Path(q).resolve()) for q in wanted]
        provenance = own_format_provenance(p)
        what, unit = f"pruned YOLO folder {str(path)!r}", "file"
    else:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            keys = [img["id"] for img in doc["images"]]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"pruned COCO file {str(path)!r} is not readable: {exc}") from None
        index = {v: i for i, v in enumerate(data.ids.tolist())}
        info = doc.get("info") if isinstance(doc, dict) else None
        provenance = info.get("adaprune", {}) if isinstance(info, dict) else {}
        what, unit = f"pruned COCO file {str(path)!r}", "image id"
    missing = [k for k in keys if k not in index]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{what} names {len(missing)} {unit}(s) that {data.name!r} does not have ({shown}); "
                        "give the data it was pruned from")
    kept = np.unique(np.asarray([index[k] for k in keys], dtype=np.int64))
    if len(kept) != len(keys):
        raise DataError(f"{what} lists {len(keys) - len(kept)} image(s) twice")
    if provenance.get("n_total") not in (None, data.n):
        raise DataError(f"{what} was pruned from {provenance['n_total']} images but {data.name!r} has {data.n}")
    return Selection(
        kept=kept, n_total=data.n, method=str(provenance.get("method", "unknown")),
        params=provenance.get("params", {}), seed=provenance.get("seed"),
        requested_keep=float(provenance.get("requested_keep", len(kept) / data.n)),
        library_version=str(provenance.get("version", "unknown")),
        details={"read_from": str(path), "input_size": provenance.get("input_size")},
        ids=data.ids, id_column=data.id_column,
    )


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
    all exist; every error names the offending entry. Images are letterboxed to `size` px by the
    width and height their entries give."""
    size = check_input_size(size)
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
            raise DataError(f"COCO file {annotations!r}: image #{i} (its place in the images list) needs an 'id' "
                            "and a 'file_name'")
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
    crowd: list[list[list[float]]] = [[] for _ in images]
    owner = np.empty(len(anns), dtype=np.int64)
    for a, (_, ann) in enumerate(anns):
        if not isinstance(ann, dict):
            raise DataError(f"COCO file {annotations!r}: annotation #{a} (its place in the annotations list) "
                            "is not an object")
        # Name it by its id where it has one, else by its place in the list.
        aid = f"annotation id {ann['id']!r}" if "id" in ann else f"annotation #{a} (no id)"
        if ann.get("image_id") not in image_index:
            raise DataError(
                f"COCO file {annotations!r}: {aid} points at unknown image id {ann.get('image_id')!r}"
            )
        if ann.get("category_id") not in cat_index:
            raise DataError(
                f"COCO file {annotations!r}: {aid} has unknown category id {ann.get('category_id')!r}; "
                f"categories are {sorted(cat_index)}"
            )
        i = image_index[ann["image_id"]]
        owner[a] = i
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            raise DataError(f"COCO file {annotations!r}: {aid} needs a bbox [x, y, width, height]")
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            raise DataError(f"COCO file {annotations!r}: {aid} has a box of non-positive size {bbox}")
        iw, ih = sizes[i]
        tol = 1.0  # a pixel of slack for boxes rounded outwards
        if x < -tol or y < -tol or x + w > iw + tol or y + h > ih + tol:
            raise DataError(
                f"COCO file {annotations!r}: {aid} box {bbox} lies outside its "
                f"{iw:g}x{ih:g} image (image id {ann['image_id']!r})"
            )
        if ann.get("iscrowd", 0):
            # Not an object to train on; kept for evaluation, where pycocotools ignores what matches it.
            crowd[i].append([x, y, x + w, y + h, cat_index[ann["category_id"]]])
            continue
        boxes[i].append([x, y, x + w, y + h])
        labels[i].append(cat_index[ann["category_id"]])

    root = Path(images_dir) if images_dir else p.parent
    if images_dir and not root.is_dir():
        raise DataError(f"COCO images folder {images_dir!r} does not exist")
    paths = [root / f for f in file_names]
    _check_files_exist(paths, what=f"COCO file {annotations!r}")
    letterbox = Letterbox.fit(sizes, size)
    warn_if_small(letterbox, what=f"COCO file {p.name!r}")
    box_arrays = tuple(_to_input(letterbox, i, b) for i, b in enumerate(boxes))
    label_arrays = tuple(np.asarray(lab, dtype=np.int64) for lab in labels)
    crowd_arrays = None
    if any(crowd):
        crowd_arrays = tuple(np.concatenate([_to_input(letterbox, i, [r[:4] for r in c]), np.asarray(
            [r[4] for r in c], dtype=np.float32).reshape(-1, 1)], axis=1) for i, c in enumerate(crowd))
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
        x=LazyImages(paths, letterbox=letterbox),
        boxes=box_arrays,
        labels=label_arrays,
        ids=ids,
        class_names=tuple(names),
        category_ids=tuple(cat_index),
        groups=groups,
        source_paths=(str(p),),
        image_paths=tuple(str(q) for q in paths),
        document=document,
        letterbox=letterbox,
        crowd=crowd_arrays,
    )


def check_input_size(size: Any) -> int:
    """An input side in pixels: a whole number from MIN_INPUT_SIZE, a multiple of the detector's stride."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_INPUT_SIZE or size % 4:
        raise ConfigError(f"input size must be a whole number of pixels >= {MIN_INPUT_SIZE} and a multiple of 4, "
                          f"got {size!r}")
    return int(size)


def _to_input(letterbox: Letterbox, i: int, boxes: list[list[float]] | np.ndarray) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.float32)
    return letterbox.to_input(i, np.asarray(boxes, dtype=np.float64)).astype(np.float32)


def _image_sizes(paths: Sequence[Path], *, what: str) -> np.ndarray:
    """(N, 2) width and height of every image, from its header (Pillow reads no pixels for it)."""
    image_mod = require("PIL.Image", "images")
    out = np.empty((len(paths), 2), dtype=np.float64)
    for i, q in enumerate(paths):
        try:
            with image_mod.open(q) as im:
                out[i] = im.size
        except Exception as exc:  # Pillow raises several unrelated types for a bad file
            raise DataError(f"{what}: image {str(q)!r} is not readable: {exc}") from None
    return out


def _check_files_exist(paths: Sequence[Path], *, what: str) -> None:
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        raise DataError(f"{what}: {len(missing)} image file(s) missing: {', '.join(missing)}")


def _coco_groups(images: list[dict], field_name: str, *, what: str) -> np.ndarray:
    values = []
    for img in images:
        if field_name not in img:
            given = option("group_by=", "--group-by ")
            raise DataError(f"{given}{field_name!r}: image id {img.get('id')!r} in {what!r} has no such field")
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
    from adaprune.data.images import IMAGE_SUFFIXES

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


def _read_yolo_labels(image: Path, num_classes: int, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of one image in its own pixels (xyxy, float64) and their classes."""
    lab = _label_path(image)
    if not lab.is_file():
        return np.zeros((0, 4), dtype=np.float64), np.zeros(0, dtype=np.int64)
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
        boxes.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
        labels.append(cls)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


def load_yolo(path: str, *, size: int = DEFAULT_INPUT_SIZE, group_by: str | None = None) -> DetectionDataset:
    """An Ultralytics-layout set: DATA.yaml with `path` (default: the yaml's folder), `train`, optional
    `val` (the test split) and `names`; labels in labels/*.txt beside images/ (normalised cx cy w h;
    an image without a label file has no objects). `group_by` is a regular expression over the file
    name: its first group (or whole match) is the group id. Images are letterboxed to `size` px by the
    sizes their headers give (read at load time; no pixels are decoded)."""
    size = check_input_size(size)
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
    # As given (made absolute), never resolved: the label path is derived from the path the yaml names,
    # as Ultralytics does, so an images/ folder that is a symlink still finds labels/ beside it.
    train = [q.absolute() for q in _yolo_images(config["train"], root, what=what)]
    if not train:
        raise DataError(f"{what}: the train split has no images")
    _check_files_exist(train, what=what)
    val = _yolo_images(config.get("val"), root, what=what) if config.get("val") else []
    _check_files_exist(val, what=what)
    k = len(names)
    box_train = Letterbox.fit(_image_sizes(train, what=what), size)
    box_val = Letterbox.fit(_image_sizes(val, what=what), size) if val else None
    warn_if_small(box_train, what=what)
    tr = [_read_yolo_labels(q, k, *box_train.source[i]) for i, q in enumerate(train)]
    te = [_read_yolo_labels(q, k, *box_val.source[i]) for i, q in enumerate(val)] if box_val else []
    tr = [(_to_input(box_train, i, b), lab) for i, (b, lab) in enumerate(tr)]
    te = [(_to_input(box_val, i, b), lab) for i, (b, lab) in enumerate(te)] if box_val else []
    groups = _regex_groups([str(q) for q in train], group_by) if group_by is not None else None
    document = YoloDocument(path=str(p), config=config, root=str(root.resolve()))
    return DetectionDataset(
        name=p.stem,
        x=LazyImages(train, letterbox=box_train),
        boxes=tuple(b for b, _ in tr),
        labels=tuple(lab for _, lab in tr),
        ids=np.asarray([str(q) for q in train]),
        class_names=tuple(str(n) for n in names),
        category_ids=tuple(range(k)),
        x_test=LazyImages(val, letterbox=box_val) if box_val else None,
        boxes_test=tuple(b for b, _ in te) if val else None,
        labels_test=tuple(lab for _, lab in te) if val else None,
        groups=groups,
        source_paths=(str(p),),
        image_paths=tuple(str(q) for q in train),
        document=document,
        letterbox=box_train,
    )


def _regex_groups(paths: list[str], pattern: str) -> np.ndarray:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        given = option("group_by=", "--group-by ")
        raise ConfigError(f"{given}{pattern!r} is not a valid regular expression: {exc}") from None
    out = []
    for q in paths:
        m = rx.search(Path(q).name)
        if m is None:
            given = option("group_by=", "--group-by ")
            raise DataError(f"{given}{pattern!r} does not match the file name {Path(q).name!r}")
        out.append(m.group(1) if rx.groups else m.group(0))
    return np.asarray(out)
