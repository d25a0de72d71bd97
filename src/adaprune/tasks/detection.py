"""Detection: per-image total detection loss, COCO mAP through pycocotools, the detector a method or
evaluation trains, and pooled backbone features for the `model` encoder.

Every batch carries its image indices, so per-image state (AdaPruner's mask, a score) follows the
image whatever the loader order. The test split is read once, at the end of a training, to report
mAP@[.5:.95] and mAP@.5; it never chooses anything."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from adaprune.data.detection import DetectionDataset
from adaprune.errors import ConfigError, describe_value, require
from adaprune.models.detector import CenterNet, as_detector
from adaprune.tasks.base import Batch, Metric
from adaprune.training.loop import TrainConfig, seeded_model

log = logging.getLogger(__name__)

DetectorSpec = str | Callable[[], nn.Module]
DETECTOR_NAMES = ("auto", "centernet")
EVAL_BATCH = 128
DEFAULT_BATCH = 32


@dataclass(frozen=True)
class DetectionTask:
    """A detection dataset plus how to build and train a detector on it.

    `model` is "auto"/"centernet" (the built-in `CenterNet`) or a zero-argument callable returning a
    module that follows adaprune's detector protocol or torchvision's convention (see
    `adaprune.models.detector`). Training uses batches of 32 images unless `train` sets a batch size."""

    kind: ClassVar[str] = "detection"

    data: DetectionDataset
    model: DetectorSpec = "auto"
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        if self.train.batch_size is None:
            # Detection steps are costlier and fewer images fit a step: classification's 128 would
            # leave a few hundred images a handful of steps per epoch.
            object.__setattr__(self, "train", dataclasses.replace(self.train, batch_size=DEFAULT_BATCH))
        if isinstance(self.model, str):
            if self.model not in DETECTOR_NAMES:
                raise ConfigError(
                    f"detection model must be one of {', '.join(DETECTOR_NAMES)} or a callable returning a "
                    f"torch.nn.Module, got {describe_value(self.model)}"
                )
        elif not callable(self.model):
            raise ConfigError("model must be a name or a callable returning a torch.nn.Module, got "
                              f"{describe_value(self.model)}")

    @property
    def device(self) -> str:
        return self.train.device

    @property
    def n(self) -> int:
        return self.data.n

    @property
    def n_test(self) -> int:
        return 0 if self.data.x_test is None else len(self.data.x_test)

    @property
    def labels(self) -> None:
        """Images have no single class label: class quotas do not apply."""
        return None

    def with_train(self, train: TrainConfig) -> DetectionTask:
        return dataclasses.replace(self, train=train)

    def new_model(self, seed: int, *, indices: np.ndarray | None = None) -> nn.Module:
        """A fresh detector from `seed`; `indices` changes nothing (images are not standardised)."""
        num_classes = self.data.num_classes
        if callable(self.model):
            factory = self.model

            def build() -> nn.Module:
                return as_detector(factory())
        else:
            def build() -> nn.Module:
                return CenterNet(num_classes)
        return seeded_model(build, seed, self.device)

    # ------------------------------------------------------------ batches and losses
    def _targets(self, idx: np.ndarray, *, test: bool = False) -> list[dict[str, Tensor]]:
        boxes = self.data.boxes_test if test else self.data.boxes
        labels = self.data.labels_test if test else self.data.labels
        assert boxes is not None and labels is not None
        return [{"boxes": torch.from_numpy(boxes[i]).to(self.device),
                 "labels": torch.from_numpy(labels[i]).to(self.device)} for i in idx]

    def batch_of(self, idx: Tensor) -> Batch:
        rows = idx.cpu().numpy()
        images = torch.from_numpy(np.ascontiguousarray(self.data.x[rows])).to(self.device)
        return Batch(idx=idx.to(self.device), inputs=images, targets=self._targets(rows))

    def batches(self, indices: Tensor, batch_size: int, *, generator: torch.Generator | None) -> Iterator[Batch]:
        indices = indices.to(torch.int64).cpu()
        order = indices if generator is None else indices[torch.randperm(len(indices), generator=generator)]
        for idx in order.split(batch_size):
            yield self.batch_of(idx)

    def per_sample_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        return model.per_image_loss(batch.inputs, batch.targets)

    # ------------------------------------------------------------ evaluation
    def require_test(self) -> None:
        if not self.data.has_test:
            raise ConfigError(
                f"{self.data.name} has no test split: give a val split in DATA.yaml or a test source "
                "(--test coco:VAL.json[:IMAGES_DIR])"
            )

    def test_metric(self, model: nn.Module) -> Metric:
        self.require_test()
        assert self.data.boxes_test is not None and self.data.labels_test is not None
        detections = detect_all(model, self.data.x_test, device=self.device)
        stats = coco_map(detections, self.data.boxes_test, self.data.labels_test, self.data.num_classes,
                         crowd=self.data.crowd_test)
        return Metric(name="map", value=stats["map"], extras={"map50": stats["map50"]})

    @torch.no_grad()
    def features(self, model: nn.Module, indices: Tensor | None = None) -> np.ndarray:
        if not hasattr(model, "features"):
            raise ConfigError(f"model {type(model).__name__} has no .features(x); use another embedding")
        model.eval()
        rows = np.arange(self.n) if indices is None else indices.cpu().numpy()
        parts = []
        for start in range(0, len(rows), EVAL_BATCH):
            chunk = torch.from_numpy(np.ascontiguousarray(self.data.x[rows[start : start + EVAL_BATCH]]))
            parts.append(model.features(chunk.to(self.device)).float().cpu())
        return torch.cat(parts).reshape(len(rows), -1).numpy()


@torch.no_grad()
def detect_all(model: nn.Module, images, *, device: str = "cpu") -> list[dict[str, np.ndarray]]:
    """The model's detections on every image of an array-like (N, 3, S, S), as numpy."""
    model.eval()
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(images), EVAL_BATCH):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + EVAL_BATCH])).to(device)
        for det in model.detect(chunk):
            out.append({k: v.detach().float().cpu().numpy() if k != "labels" else v.cpu().numpy()
                        for k, v in det.items()})
    return out


def coco_map(
    detections: Sequence[dict[str, np.ndarray]],
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
    *,
    crowd: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """COCO mAP@[.5:.95] and mAP@.5 by pycocotools' own evaluation (boxes xyxy, any common pixel frame).

    `crowd[i]`: image i's crowd regions, (k, 5) xyxy and category index; they go to pycocotools as
    `iscrowd: 1` ground truth, so a detection matched to one is ignored rather than counted false.
    Categories without ground truth in the split are left out of the mean, as pycocotools does.
    No detections at all score 0."""
    coco_mod = require("pycocotools.coco", "detection")
    eval_mod = require("pycocotools.cocoeval", "detection")
    images, annotations = [], []
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        images.append({"id": i + 1})
        for box, c in zip(np.asarray(b, dtype=np.float64), lab, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
    if not annotations:
        raise ConfigError("the test split has no objects; mAP is undefined")
    for i, regions in enumerate(crowd or ()):
        for x0, y0, x1, y1, c in np.asarray(regions, dtype=np.float64).reshape(-1, 5):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 1})
    results = []
    for i, det in enumerate(detections):
        for box, score, c in zip(np.asarray(det["boxes"], dtype=np.float64), det["scores"], det["labels"], strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": float(score)})
    if not results:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        gt = coco_mod.COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": k + 1} for k in range(num_classes)]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = eval_mod.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": max(float(ev.stats[0]), 0.0), "map50": max(float(ev.stats[1]), 0.0)}
