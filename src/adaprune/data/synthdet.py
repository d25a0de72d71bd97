"""`synthdet`: a generated, driving-like detection log in COCO form, deterministic from a seed.

Scenes are sequences of 64x64 RGB frames. Objects move slowly (or not at all), so neighbouring frames
are near-copies; scenes differ in redundancy:

  parked  long stretches (60-140 frames) of 1-3 still objects; only sensor noise changes
  cruise  25-60 frames, 2-4 objects drifting slowly, the road sliding past
  busy    10-30 frames, 4-7 objects moving faster; the rare classes live mostly here

Classes (shape and colour tell them apart, with jitter and look-alike pairs):
  car (common), pedestrian (common), truck (less common, a larger car with a cab),
  cyclist (rare: a green body over two dark wheels), sign (rare: a yellow disk on a pole).

Every image carries `scene_id`, `scene_kind` and `frame` (for `--group-by scene_id`). The test split
is made of separate scenes drawn with another stream of the same seed, in the same proportions of
scene kinds, but without parked scenes' long tails dominating it (capped per scene)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaprune.data.detection import (
    SYNTHDET_DEFAULT_N,
    ArrayImages,
    CocoDocument,
    DetectionDataset,
    Letterbox,
    check_input_size,
)
from adaprune.errors import ConfigError
from adaprune.naming import option

SIZE = 64
CLASSES = ("car", "pedestrian", "truck", "cyclist", "sign")
SCENE_KINDS = ("parked", "cruise", "busy")
SCENE_PROBS = (0.3, 0.45, 0.25)
CLASS_PROBS = {
    "parked": (0.65, 0.35, 0.0, 0.0, 0.0),
    "cruise": (0.55, 0.3, 0.1, 0.02, 0.03),
    "busy": (0.3, 0.25, 0.15, 0.15, 0.15),
}
FRAMES = {"parked": (60, 140), "cruise": (25, 60), "busy": (10, 30)}
N_OBJECTS = {"parked": (1, 3), "cruise": (2, 4), "busy": (4, 7)}
SPEED = {"parked": 0.0, "cruise": 0.35, "busy": 0.9}
TEST_FRAMES_CAP = 30
NOISE = 0.035


@dataclass
class _Object:
    cls: int
    x: float  # top-left, float pixels
    y: float
    w: int
    h: int
    vx: float
    vy: float
    colour: np.ndarray


def _new_object(rng: np.random.Generator, kind: str) -> _Object:
    cls = int(rng.choice(len(CLASSES), p=CLASS_PROBS[kind]))
    return object_of_class(rng, cls, SPEED[kind])


def object_of_class(rng: np.random.Generator, cls: int, speed: float) -> _Object:
    """An object of class index `cls` (its size and colour drawn from `rng`) at a random place below
    the horizon band, drifting with a velocity of scale `speed` (0: still)."""
    name = CLASSES[cls]
    if name == "car":
        w, h = int(rng.integers(8, 13)), int(rng.integers(5, 8))
        colour = np.array([rng.uniform(0.55, 0.95), rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.35)])
    elif name == "truck":
        w, h = int(rng.integers(14, 21)), int(rng.integers(8, 12))
        colour = np.array([rng.uniform(0.55, 0.95), rng.uniform(0.25, 0.5), rng.uniform(0.1, 0.3)])
    elif name == "pedestrian":
        w, h = int(rng.integers(3, 5)), int(rng.integers(7, 11))
        colour = np.array([rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.45), rng.uniform(0.55, 0.95)])
    elif name == "cyclist":
        w, h = int(rng.integers(6, 9)), int(rng.integers(6, 9))
        colour = np.array([rng.uniform(0.1, 0.35), rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.4)])
    else:  # sign
        w = h = int(rng.integers(5, 8))
        colour = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.75, 0.95), rng.uniform(0.0, 0.2)])
    vx = float(rng.normal(0, speed)) if speed else 0.0
    vy = float(rng.normal(0, speed * 0.3)) if speed else 0.0
    x = float(rng.uniform(0, SIZE - w))
    y = float(rng.uniform(SIZE * 0.3, SIZE - h))  # below the horizon band
    return _Object(cls, x, y, w, h, vx, vy, colour)


def _background(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A scene's fixed background (3, H, 2W: wide, so ego motion can slide it) and its brightness."""
    horizon = int(rng.integers(14, 22))
    road = rng.uniform(0.3, 0.55)
    sky = np.array([rng.uniform(0.5, 0.75), rng.uniform(0.55, 0.8), rng.uniform(0.65, 0.9)])
    bg = np.empty((3, SIZE, 2 * SIZE), dtype=np.float32)
    bg[:, :horizon] = sky[:, None, None]
    bg[:, horizon:] = road
    # Clutter: buildings and grey boxes in muted colours, never annotated.
    for _ in range(int(rng.integers(3, 8))):
        w, h = int(rng.integers(4, 16)), int(rng.integers(4, 14))
        x0, y0 = int(rng.integers(0, 2 * SIZE - w)), int(rng.integers(0, horizon + 4))
        bg[:, y0 : y0 + h, x0 : x0 + w] = rng.uniform(0.25, 0.6, size=3)[:, None, None]
    # Dashed lane markings on the road.
    lane_y = int(rng.integers(horizon + 12, SIZE - 6))
    for x0 in range(0, 2 * SIZE, 12):
        bg[:, lane_y : lane_y + 1, x0 : x0 + 6] = 0.9
    # Low-frequency texture.
    bg += rng.normal(0, 0.04, size=(1, SIZE // 8, 2 * SIZE // 8)).repeat(8, 1).repeat(8, 2)
    return bg, float(rng.uniform(0.75, 1.15))


def _draw(img: np.ndarray, obj: _Object) -> None:
    x0, y0 = int(round(obj.x)), int(round(obj.y))
    x1, y1 = x0 + obj.w, y0 + obj.h
    name = CLASSES[obj.cls]
    c = obj.colour[:, None, None]
    dark = np.array([0.08, 0.08, 0.1])[:, None, None]

    def fill(ax0: int, ay0: int, ax1: int, ay1: int, colour: np.ndarray) -> None:
        ax0, ay0, ax1, ay1 = max(ax0, 0), max(ay0, 0), min(ax1, SIZE), min(ay1, SIZE)
        if ax1 > ax0 and ay1 > ay0:
            img[:, ay0:ay1, ax0:ax1] = colour

    if name in ("car", "truck"):
        body_top = y0 + (obj.h // 3 if name == "truck" else 1)
        fill(x0, body_top, x1, y1 - 1, c)
        if name == "truck":
            fill(x1 - obj.w // 3, y0, x1, body_top, c * 0.8)  # the cab
        else:
            fill(x0 + 2, y0, x1 - 2, body_top, c * 0.7)  # the roof
        fill(x0 + 1, y1 - 1, x0 + 3, y1, dark)  # wheels
        fill(x1 - 3, y1 - 1, x1 - 1, y1, dark)
    elif name == "pedestrian":
        fill(x0, y0 + 2, x1, y1, c)
        fill(x0, y0, x1, y0 + 2, np.array([0.85, 0.7, 0.55])[:, None, None])  # the head
    elif name == "cyclist":
        fill(x0 + 1, y0, x1 - 1, y0 + obj.h // 2 + 1, c)
        half = obj.w // 2
        fill(x0, y1 - 3, x0 + half - 1, y1, dark)
        fill(x1 - half + 1, y1 - 3, x1, y1, dark)
    else:  # sign: a disk on a pole; the box covers the disk
        yy, xx = np.mgrid[0 : obj.h, 0 : obj.w]
        r = (obj.w - 1) / 2
        disk = (yy - r) ** 2 + (xx - r) ** 2 <= r * r + 0.5
        for dy, dx in zip(*np.nonzero(disk), strict=True):
            py, px = y0 + dy, x0 + dx
            if 0 <= py < SIZE and 0 <= px < SIZE:
                img[:, py, px] = obj.colour
        fill(x0 + obj.w // 2, y1, x0 + obj.w // 2 + 1, y1 + 4, dark)


def _visible_box(obj: _Object) -> tuple[float, float, float, float] | None:
    """The clipped box (x, y, w, h), or None when less than 60% of the object is in view."""
    x0, y0 = max(round(obj.x), 0), max(round(obj.y), 0)
    x1, y1 = min(round(obj.x) + obj.w, SIZE), min(round(obj.y) + obj.h, SIZE)
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < 0.6 * obj.w * obj.h:
        return None
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def _scene(rng: np.random.Generator, kind: str, n_frames: int) -> tuple[list[np.ndarray], list[list[tuple]]]:
    bg, brightness = _background(rng)
    objects = [_new_object(rng, kind) for _ in range(int(rng.integers(N_OBJECTS[kind][0], N_OBJECTS[kind][1] + 1)))]
    ego = 0.0
    ego_speed = {"parked": 0.0, "cruise": 0.4, "busy": 0.7}[kind]
    frames, boxes = [], []
    for _ in range(n_frames):
        shift = int(ego) % SIZE
        img = bg[:, :, shift : shift + SIZE].copy()
        # Draw far (higher) objects first so nearer ones occlude them.
        frame_boxes = []
        for obj in sorted(objects, key=lambda o: o.y + o.h):
            _draw(img, obj)
        for obj in objects:
            box = _visible_box(obj)
            if box is not None:
                frame_boxes.append((obj.cls, *box))
        img = img * brightness + NOISE * rng.standard_normal(size=img.shape, dtype=np.float32)
        frames.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        boxes.append(frame_boxes)
        ego += ego_speed
        for j, obj in enumerate(objects):
            obj.x += obj.vx - ego_speed * 0.5
            obj.y += obj.vy
            if obj.x < -obj.w or obj.x > SIZE or obj.y < SIZE * 0.2 or obj.y > SIZE:
                objects[j] = _new_object(rng, kind)  # left the view: another one comes in
    return frames, boxes


def generate(n_images: int, *, seed: int, test: bool = False) -> tuple[np.ndarray, dict]:
    """`n_images` frames (uint8 N,3,64,64) and their COCO dict (images carry scene_id, scene_kind, frame)."""
    rng = np.random.default_rng([seed, 1 if test else 0])
    pixels: list[np.ndarray] = []
    images, annotations = [], []
    scene = 0
    while len(pixels) < n_images:
        kind = SCENE_KINDS[int(rng.choice(3, p=SCENE_PROBS))]
        lo, hi = FRAMES[kind]
        n_frames = int(rng.integers(lo, hi + 1))
        if test:
            n_frames = min(n_frames, TEST_FRAMES_CAP)
        n_frames = min(n_frames, n_images - len(pixels))
        frames, boxes = _scene(rng, kind, n_frames)
        add_scene(pixels, images, annotations, frames, boxes, prefix="test" if test else "train", scene=scene,
                  kind=kind)
        scene += 1
    return np.stack(pixels), coco_dict(f"synthdet (adaprune), seed {seed}", images, annotations)


def add_scene(pixels: list, images: list, annotations: list, frames: list, boxes: list, *, prefix: str,
              scene: int, kind: str) -> None:
    """Append one scene's frames, COCO image entries and annotations (ids continue the lists)."""
    for f, (img, frame_boxes) in enumerate(zip(frames, boxes, strict=True)):
        image_id = len(pixels) + 1
        images.append({"id": image_id, "file_name": f"{prefix}/s{scene:04d}_f{f:04d}.png", "width": SIZE,
                       "height": SIZE, "scene_id": f"{prefix}-{scene:04d}", "scene_kind": kind, "frame": f})
        for cls, x, y, w, h in frame_boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        pixels.append(img)


def coco_dict(description: str, images: list, annotations: list) -> dict:
    return {
        "info": {"description": description, "version": "1"},
        "licenses": [],
        "categories": [{"id": k + 1, "name": name, "supercategory": "road"} for k, name in enumerate(CLASSES)],
        "images": images,
        "annotations": annotations,
    }


def _targets(coco: dict, n: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    boxes: list[list[list[float]]] = [[] for _ in range(n)]
    labels: list[list[int]] = [[] for _ in range(n)]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes[ann["image_id"] - 1].append([x, y, x + w, y + h])
        labels[ann["image_id"] - 1].append(ann["category_id"] - 1)
    return (tuple(np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes),
            tuple(np.asarray(lab, dtype=np.int64) for lab in labels))


def _resized(pixels: np.ndarray, boxes: tuple[np.ndarray, ...], size: int) -> tuple[np.ndarray, tuple, Letterbox]:
    """Frames (N, 3, 64, 64) uint8 resized to `size` (bilinear) and their boxes mapped alike."""
    letterbox = Letterbox.fit(np.full((len(pixels), 2), SIZE), size)
    if size == SIZE:
        return pixels, boxes, letterbox
    from adaprune.errors import require

    image_mod = require("PIL.Image", "images")
    out = np.empty((len(pixels), 3, size, size), dtype=np.uint8)
    for i, frame in enumerate(pixels):
        im = image_mod.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0)))
        out[i] = np.asarray(im.resize((size, size), image_mod.BILINEAR)).transpose(2, 0, 1)
    mapped = tuple(letterbox.to_input(i, b).astype(np.float32) if len(b) else b for i, b in enumerate(boxes))
    return out, mapped, letterbox


def load_synthdet(n: int = SYNTHDET_DEFAULT_N, *, seed: int = 0, group_by: str | None = None,
                  size: int = SIZE) -> DetectionDataset:
    """`n` training frames and a test split of separate scenes (max(200, n // 4) frames), drawn at
    64 px and resized to `size` px (boxes mapped alike)."""
    if n < 20:
        raise ConfigError(f"synthdet needs at least 20 training images, got {n}")
    size = check_input_size(size)
    pixels, coco = generate(n, seed=seed)
    test_pixels, test_coco = generate(max(200, n // 4), seed=seed, test=True)
    boxes, labels = _targets(coco, n)
    boxes_test, labels_test = _targets(test_coco, len(test_pixels))
    pixels, boxes, letterbox = _resized(pixels, boxes, size)
    test_pixels, boxes_test, _ = _resized(test_pixels, boxes_test, size)
    groups = None
    if group_by is not None:
        if group_by not in coco["images"][0]:
            given = option("group_by=", "--group-by ")
            raise ConfigError(f"{given}{group_by!r}: synthdet images have fields {', '.join(coco['images'][0])}")
        groups = np.asarray([str(img[group_by]) for img in coco["images"]])
    document = CocoDocument(
        path=f"synthdet:{n}",
        top_level=tuple((k, json.dumps(v)) for k, v in coco.items()),
        images_raw=tuple(json.dumps(img) for img in coco["images"]),
        annotations_raw=tuple(json.dumps(a) for a in coco["annotations"]),
        image_of_annotation=np.asarray([a["image_id"] - 1 for a in coco["annotations"]], dtype=np.int64),
    )
    return DetectionDataset(
        name="synthdet" if n == SYNTHDET_DEFAULT_N else f"synthdet-{n}",
        x=ArrayImages(pixels),
        boxes=boxes,
        labels=labels,
        ids=np.asarray([img["id"] for img in coco["images"]]),
        class_names=CLASSES,
        category_ids=tuple(range(1, len(CLASSES) + 1)),
        x_test=ArrayImages(test_pixels),
        boxes_test=boxes_test,
        labels_test=labels_test,
        groups=groups,
        document=document,
        letterbox=letterbox,
    )


def scene_kinds(n: int = SYNTHDET_DEFAULT_N, *, seed: int = 0) -> np.ndarray:
    """The scene kind (parked, cruise, busy) of every synthdet training image, for reports."""
    _, coco = generate(n, seed=seed)
    return np.asarray([img["scene_kind"] for img in coco["images"]])


def export_coco(folder: str | Path, n: int, *, seed: int = 0, test: bool = False) -> Path:
    """Write synthdet frames as PNG files and an `annotations.json` under `folder` (a real COCO set)."""
    from PIL import Image

    folder = Path(folder)
    pixels, coco = generate(n, seed=seed, test=test)
    for img, meta in zip(pixels, coco["images"], strict=True):
        out = folder / meta["file_name"]
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(out)
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return path
