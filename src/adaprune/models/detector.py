"""Detectors in plain torch: a small CenterNet and an adapter for torchvision-style detectors.

The detector protocol adaprune trains and scores (`DetectorProtocol`):

  per_image_loss(images, targets) -> (B,) tensor   the total detection loss of every image,
                                                    differentiable; images (B, 3, S, S) in [0, 1],
                                                    targets one dict per image: "boxes" (k, 4) xyxy
                                                    in input pixels, "labels" (k,) int64 in 0..K-1
  detect(images) -> list of dicts                   "boxes" (m, 4) xyxy, "scores" (m,), "labels" (m,)
  features(images) -> (B, D) tensor                 optional: a pooled backbone embedding

`CenterNet` implements it. `TorchvisionStyleDetector` wraps any module that follows torchvision's
detection convention: in training mode `model(list_of_images, list_of_targets)` returns a dict of
scalar losses (batch means), in eval mode `model(list_of_images)` returns one dict per image with
"boxes", "scores", "labels" (label 0 is the background, so labels are shifted by `label_offset`).
When the losses come back as batch means, per-image losses are taken by one forward pass per image;
a module whose loss values are already per image ((B,) tensors) is used batched."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDE = 4
SIZE_WEIGHT = 0.1
OFFSET_WEIGHT = 1.0
MAX_DETECTIONS = 50


@runtime_checkable
class DetectorProtocol(Protocol):
    def per_image_loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> Tensor: ...

    def detect(self, images: Tensor) -> list[dict[str, Tensor]]: ...


def _block(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    # GroupNorm, not BatchNorm: an image's loss must not depend on which images share its batch.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.GroupNorm(min(8, cout // 4), cout),
        nn.ReLU(inplace=True),
    )


def gaussian_radius(h: Tensor, w: Tensor, min_overlap: float = 0.7) -> Tensor:
    """CenterNet's radius: the largest centre shift keeping IoU >= min_overlap (three cases, the minimum)."""
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


class CenterNet(nn.Module):
    """Anchor-free detector (Zhou et al. 2019, "Objects as Points") sized for 64-128 px on a CPU.

    A 4-layer conv backbone to stride 4 (the last layer dilated for a wider view), then a shared
    3x3 layer and three 1x1 outputs: a per-class centre heatmap, box size and the sub-cell offset. Loss per image: the
    penalty-reduced focal loss on the heatmap plus L1 on size (weight 0.1) and offset, each
    normalised by the image's object count."""

    def __init__(self, num_classes: int, *, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        w = width
        out_channels = 3 * w // 2
        self.backbone = nn.Sequential(
            _block(in_channels, w // 2, stride=2),
            _block(w // 2, w),
            _block(w, w, stride=2),
            _block(w, out_channels, dilation=2),
        )
        self.feature_dim = 2 * out_channels  # average and max pooled backbone output
        # One shared 3x3 layer, then 1x1 outputs: heatmap (one channel per class), size (2), offset (2).
        self.neck = nn.Sequential(nn.Conv2d(out_channels, w, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w, num_classes + 4, 1)
        # Start every centre at probability ~0.1, as CenterNet does, so the focal loss starts small.
        with torch.no_grad():
            self.head.bias[:num_classes].fill_(-2.19)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        out = self.head(self.neck(self.backbone(images - 0.5)))
        c = self.num_classes
        return {"heatmap": out[:, :c], "size": out[:, c : c + 2], "offset": out[:, c + 2 :]}

    def features(self, images: Tensor) -> Tensor:
        f = self.backbone(images - 0.5)
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    # ------------------------------------------------------------ training targets and loss
    def _encode(self, targets: list[dict[str, Tensor]], shape: tuple[int, int, int, int], device) -> dict[str, Tensor]:
        b, c, h, w = shape
        boxes = [t["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4) for t in targets]
        labels = [t["labels"].to(device=device, dtype=torch.int64).reshape(-1) for t in targets]
        counts = torch.tensor([len(x) for x in boxes], dtype=torch.int64, device=device)
        image = torch.repeat_interleave(torch.arange(b, device=device), counts)
        box = torch.cat(boxes) / STRIDE if len(image) else torch.zeros((0, 4), device=device)
        cls = torch.cat(labels) if len(image) else torch.zeros(0, dtype=torch.int64, device=device)
        centre = (box[:, :2] + box[:, 2:]) / 2
        cell = centre.floor().clamp(min=0).long()
        cell[:, 0].clamp_(max=w - 1)
        cell[:, 1].clamp_(max=h - 1)
        size = box[:, 2:] - box[:, :2]
        radius = gaussian_radius(size[:, 1], size[:, 0]).clamp(min=0).floor()
        sigma = (2 * radius + 1) / 6
        ys = torch.arange(h, device=device, dtype=torch.float32)
        xs = torch.arange(w, device=device, dtype=torch.float32)
        dx2 = (xs[None, :] - cell[:, 0:1].float()) ** 2  # (M, W)
        dy2 = (ys[None, :] - cell[:, 1:2].float()) ** 2  # (M, H)
        gauss = torch.exp(-(dy2[:, :, None] + dx2[:, None, :]) / (2 * sigma[:, None, None] ** 2))
        heat = torch.zeros(b * c, h * w, device=device)
        if len(image):
            rows = (image * c + cls)[:, None].expand(-1, h * w)
            heat.scatter_reduce_(0, rows, gauss.reshape(len(image), -1), reduce="amax")
        return {"heat": heat.reshape(b, c, h, w), "image": image, "cell": cell, "size": size,
                "offset": centre - cell.float(), "counts": counts}

    def per_image_loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        out = self(images)
        enc = self._encode(targets, tuple(out["heatmap"].shape), images.device)
        p = torch.sigmoid(out["heatmap"]).clamp(1e-4, 1 - 1e-4)
        gt = enc["heat"]
        pos = gt.eq(1).float()
        pos_term = torch.log(p) * (1 - p) ** 2 * pos
        neg_term = torch.log(1 - p) * p**2 * (1 - gt) ** 4 * (1 - pos)
        n_obj = enc["counts"].clamp(min=1).float()
        focal = -(pos_term + neg_term).sum(dim=(1, 2, 3)) / n_obj
        image, cell = enc["image"], enc["cell"]
        if len(image):
            size_pred = out["size"][image, :, cell[:, 1], cell[:, 0]]
            off_pred = out["offset"][image, :, cell[:, 1], cell[:, 0]]
            per_obj = (SIZE_WEIGHT * (size_pred - enc["size"]).abs().sum(1)
                       + OFFSET_WEIGHT * (off_pred - enc["offset"]).abs().sum(1))
            reg = torch.zeros(len(images), device=images.device).index_add(0, image, per_obj) / n_obj
        else:
            reg = torch.zeros(len(images), device=images.device)
        return focal + reg

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(self, images: Tensor, *, max_detections: int = MAX_DETECTIONS) -> list[dict[str, Tensor]]:
        out = self(images)
        heat = torch.sigmoid(out["heatmap"])
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        b, c, h, w = heat.shape
        k = min(max_detections, c * h * w)
        scores, flat = peaks.reshape(b, -1).topk(k, dim=1)
        cls = flat // (h * w)
        ys, xs = (flat % (h * w)) // w, flat % w
        results = []
        for i in range(b):
            size = out["size"][i, :, ys[i], xs[i]].T.clamp(min=0)
            off = out["offset"][i, :, ys[i], xs[i]].T
            cx, cy = xs[i].float() + off[:, 0], ys[i].float() + off[:, 1]
            boxes = torch.stack([cx - size[:, 0] / 2, cy - size[:, 1] / 2,
                                 cx + size[:, 0] / 2, cy + size[:, 1] / 2], dim=1) * STRIDE
            keep = scores[i] > 0.01
            results.append({"boxes": boxes[keep], "scores": scores[i][keep], "labels": cls[i][keep]})
        return results


def centernet(num_classes: int, *, width: int = 32) -> CenterNet:
    return CenterNet(num_classes, width=width)


class TorchvisionStyleDetector(nn.Module):
    """Makes a torchvision-style detector follow adaprune's detector protocol (module docstring)."""

    def __init__(self, model: nn.Module, *, label_offset: int = 1) -> None:
        super().__init__()
        self.model = model
        self.label_offset = label_offset
        self._per_image_native: bool | None = None  # learnt on the first batch

    def _shifted(self, targets: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        return [{**t, "labels": t["labels"] + self.label_offset} for t in targets]

    def _losses(self, images: list[Tensor], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        was_training = self.model.training
        self.model.train()  # the convention: losses only in training mode
        try:
            losses = self.model(images, self._shifted(targets))
        finally:
            self.model.train(was_training)
        if not isinstance(losses, dict) or not losses:
            raise TypeError(f"{type(self.model).__name__} returned {type(losses).__name__} in training mode; "
                            "a torchvision-style detector returns a dict of losses")
        return losses

    def per_image_loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        batch = list(images)
        if self._per_image_native is not False:
            losses = self._losses(batch, targets)
            if all(v.ndim == 1 and len(v) == len(batch) for v in losses.values()):
                self._per_image_native = True
                return torch.stack(list(losses.values())).sum(0)
            self._per_image_native = False
            if len(batch) == 1:
                return torch.stack([v.reshape(()) for v in losses.values()]).sum().reshape(1)
        # Batch means only: one forward pass per image gives each image its own total loss.
        per = [torch.stack([v.reshape(()) for v in self._losses([img], [t]).values()]).sum()
               for img, t in zip(batch, targets, strict=True)]
        return torch.stack(per)

    @torch.no_grad()
    def detect(self, images: Tensor) -> list[dict[str, Tensor]]:
        was_training = self.model.training
        self.model.eval()
        try:
            outs = self.model(list(images))
        finally:
            self.model.train(was_training)
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - self.label_offset} for o in outs]

    def features(self, images: Tensor) -> Tensor:
        backbone: Any = getattr(self.model, "backbone", None)
        if backbone is None:
            raise AttributeError(f"{type(self.model).__name__} has no .backbone to take features from")
        out = backbone(images)
        maps = list(out.values()) if isinstance(out, dict) else [out]
        return torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1)


def as_detector(module: nn.Module) -> nn.Module:
    """`module` itself when it follows adaprune's detector protocol, else wrapped as torchvision-style."""
    if isinstance(module, DetectorProtocol):
        return module
    return TorchvisionStyleDetector(module)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
