"""`synthtraffic`: a generated traffic log in COCO form where pixel density misleads, deterministic from a seed.

It is built the way AdaDeDup's premise describes a driving log, beside `synthdet` (same 64x64
frames, classes and drawing). Four scene kinds:

  easy      an empty road under changing light: every frame gets its own brightness, tint, shadow
            band and view of the road, so frames are far apart in pixels, yet most hold no object
            and the rest one common object: diverse, and they teach little
  junction  a fixed camera over a crowded junction, sampled every few seconds: the background and
            light never change (frames are near-copies in pixels), but every frame holds 6-10 new
            small objects, and the rare classes (cyclist, sign) live mostly here
  parked    synthdet's parked scenes: long stretches of 1-3 still objects; only sensor noise changes
  cruise    synthdet's cruise scenes: 2-4 objects drifting slowly, the road sliding past

Every image carries `scene_id`, `scene_kind` and `frame`. Three splits come from three streams of
the same seed: `train`, `val` (for choices: epochs, widths) and `test` (reported only); val and
test are separate scenes in the same proportions of kinds, at most `HELD_OUT_FRAMES_CAP` frames
from any one scene."""

from __future__ import annotations

import json

import numpy as np

from adaprune.data.detection import ArrayImages, CocoDocument, DetectionDataset
from adaprune.data.synthdet import (
    CLASSES,
    NOISE,
    SIZE,
    _background,
    _draw,
    _scene,
    _targets,
    _visible_box,
    add_scene,
    coco_dict,
    object_of_class,
)
from adaprune.errors import ConfigError

SYNTHTRAFFIC_DEFAULT_N = 1000
SCENE_KINDS = ("easy", "junction", "parked", "cruise")
# Share of the frames of each kind, in every split.
FRAME_SHARES = {"easy": 0.3, "junction": 0.25, "parked": 0.25, "cruise": 0.2}
FRAMES = {"easy": (20, 40), "junction": (30, 60), "parked": (40, 100), "cruise": (25, 60)}
# car, pedestrian, truck, cyclist, sign
JUNCTION_CLASS_PROBS = (0.3, 0.25, 0.1, 0.2, 0.15)
EASY_CLASS_PROBS = (0.7, 0.3, 0.0, 0.0, 0.0)
JUNCTION_OBJECTS = (6, 10)
JUNCTION_SCALE = 0.7  # a camera high above the junction: objects drawn smaller than on the road
EASY_OBJECT_PROB = 0.3
HELD_OUT_FRAMES_CAP = 20
SPLITS = ("train", "val", "test")


def _smaller(obj, scale: float):
    obj.w, obj.h = max(2, round(obj.w * scale)), max(3, round(obj.h * scale))
    return obj


def _apart(objects: list, rng: np.random.Generator, *, tries: int = 20) -> list:
    """The objects moved (redrawn places) so that no two boxes overlap; one that finds no free place
    in `tries` draws is left out, so every annotated object is fully visible."""
    placed: list = []
    for obj in objects:
        for _ in range(tries):
            if all(obj.x + obj.w <= o.x or o.x + o.w <= obj.x or obj.y + obj.h <= o.y or o.y + o.h <= obj.y
                   for o in placed):
                placed.append(obj)
                break
            obj.x = float(rng.uniform(0, SIZE - obj.w))
            obj.y = float(rng.uniform(SIZE * 0.3, SIZE - obj.h))
    return placed


def _junction(rng: np.random.Generator, n_frames: int) -> tuple[list[np.ndarray], list[list[tuple]]]:
    bg, brightness = _background(rng)
    view = bg[:, :, int(rng.integers(0, SIZE)) :][:, :, :SIZE]
    frames, boxes = [], []
    for _ in range(n_frames):
        img = view.copy()
        count = int(rng.integers(JUNCTION_OBJECTS[0], JUNCTION_OBJECTS[1] + 1))
        drawn = [object_of_class(rng, int(rng.choice(len(CLASSES), p=JUNCTION_CLASS_PROBS)), 0.0) for _ in range(count)]
        objects = _apart([_smaller(obj, JUNCTION_SCALE) for obj in drawn], rng)
        for obj in sorted(objects, key=lambda o: o.y + o.h):
            _draw(img, obj)
        frame_boxes = []
        for obj in objects:
            box = _visible_box(obj)
            if box is not None:
                frame_boxes.append((obj.cls, *box))
        img = img * brightness + NOISE * rng.standard_normal(size=img.shape, dtype=np.float32)
        frames.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        boxes.append(frame_boxes)
    return frames, boxes


def _easy(rng: np.random.Generator, n_frames: int) -> tuple[list[np.ndarray], list[list[tuple]]]:
    bg, _ = _background(rng)
    frames, boxes = [], []
    for _ in range(n_frames):
        shift = int(rng.integers(0, SIZE))
        img = bg[:, :, shift : shift + SIZE].copy()
        frame_boxes = []
        if rng.random() < EASY_OBJECT_PROB:
            obj = object_of_class(rng, int(rng.choice(len(CLASSES), p=EASY_CLASS_PROBS)), 0.0)
            _draw(img, obj)
            box = _visible_box(obj)
            if box is not None:
                frame_boxes.append((obj.cls, *box))
        # The light of this frame: brightness, a colour tint, and a shadow band across the road.
        img *= rng.uniform(0.45, 1.35) * rng.uniform(0.75, 1.25, size=(3, 1, 1)).astype(np.float32)
        y0 = int(rng.integers(0, SIZE - 8))
        img[:, y0 : y0 + int(rng.integers(6, 24))] *= rng.uniform(0.35, 0.8)
        img += NOISE * rng.standard_normal(size=img.shape, dtype=np.float32)
        frames.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        boxes.append(frame_boxes)
    return frames, boxes


def generate(n_images: int, *, seed: int, split: str = "train") -> tuple[np.ndarray, dict]:
    """`n_images` frames (uint8 N,3,64,64) of `split` and their COCO dict (images carry scene_id,
    scene_kind, frame)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = np.random.default_rng([seed, 7, SPLITS.index(split)])
    # Scene lengths come from their own stream, and each next scene is of the kind furthest below
    # its share of the frames so far (ties: a random one), so every split holds each kind in
    # proportion, however few scenes it has.
    plan = np.random.default_rng([seed, 8, SPLITS.index(split)])
    shares = np.asarray([FRAME_SHARES[k] for k in SCENE_KINDS])
    frames_of = np.zeros(len(SCENE_KINDS))
    pixels: list[np.ndarray] = []
    images, annotations = [], []
    scene = 0
    while len(pixels) < n_images:
        deficit = shares * (frames_of.sum() + 1) - frames_of
        ties = np.flatnonzero(deficit >= deficit.max() - 1e-9)
        k = int(ties[plan.integers(len(ties))])
        kind = SCENE_KINDS[k]
        lo, hi = FRAMES[kind]
        n_frames = int(plan.integers(lo, hi + 1))
        if split != "train":
            n_frames = min(n_frames, HELD_OUT_FRAMES_CAP)
        n_frames = min(n_frames, n_images - len(pixels))
        frames_of[k] += n_frames
        if kind == "junction":
            frames, boxes = _junction(rng, n_frames)
        elif kind == "easy":
            frames, boxes = _easy(rng, n_frames)
        else:
            frames, boxes = _scene(rng, kind, n_frames)
        add_scene(pixels, images, annotations, frames, boxes, prefix=split, scene=scene, kind=kind)
        scene += 1
    return np.stack(pixels), coco_dict(f"synthtraffic (adaprune), seed {seed}, {split}", images, annotations)


def held_out_size(n: int) -> int:
    """Frames in the val and in the test split of an `n`-frame training set."""
    return max(300, n // 2)


def load_synthtraffic(n: int = SYNTHTRAFFIC_DEFAULT_N, *, seed: int = 0, group_by: str | None = None,
                      test_split: str = "test") -> DetectionDataset:
    """`n` training frames; the test split is `test_split` ("test", or "val" for choices), of
    `held_out_size(n)` frames from separate scenes."""
    if n < 20:
        raise ConfigError(f"synthtraffic needs at least 20 training images, got {n}")
    if test_split not in ("val", "test"):
        raise ConfigError(f"test_split must be 'val' or 'test', got {test_split!r}")
    pixels, coco = generate(n, seed=seed)
    test_pixels, test_coco = generate(held_out_size(n), seed=seed, split=test_split)
    boxes, labels = _targets(coco, n)
    boxes_test, labels_test = _targets(test_coco, len(test_pixels))
    groups = None
    if group_by is not None:
        if group_by not in coco["images"][0]:
            fields = ", ".join(coco["images"][0])
            raise ConfigError(f"--group-by {group_by!r}: synthtraffic images have fields {fields}")
        groups = np.asarray([str(img[group_by]) for img in coco["images"]])
    suffix = "" if test_split == "test" else f":{test_split}"
    document = CocoDocument(
        path=f"synthtraffic:{n}{suffix}",
        top_level=tuple((k, json.dumps(v)) for k, v in coco.items()),
        images_raw=tuple(json.dumps(img) for img in coco["images"]),
        annotations_raw=tuple(json.dumps(a) for a in coco["annotations"]),
        image_of_annotation=np.asarray([a["image_id"] - 1 for a in coco["annotations"]], dtype=np.int64),
    )
    name = "synthtraffic" if n == SYNTHTRAFFIC_DEFAULT_N else f"synthtraffic-{n}"
    return DetectionDataset(
        name=name + ("" if test_split == "test" else f"-{test_split}"),
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
    )


def scene_kinds(n: int = SYNTHTRAFFIC_DEFAULT_N, *, seed: int = 0, split: str = "train") -> np.ndarray:
    """The scene kind (easy, junction, parked, cruise) of every frame of a synthtraffic split, for reports."""
    _, coco = generate(n, seed=seed, split=split)
    return np.asarray([img["scene_kind"] for img in coco["images"]])
