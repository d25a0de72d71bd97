"""The CenterNet detector (targets, per-image loss, decoding) and the adapter for torchvision-style
detectors, tested with a tiny module that follows that convention (no torchvision)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from adaprune.models.detector import CenterNet, DetectorProtocol, TorchvisionStyleDetector, as_detector


def targets(*boxes_labels) -> list[dict[str, Tensor]]:
    return [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(lab)}
            for b, lab in boxes_labels]


def test_centernet_targets_put_a_peak_at_the_box_centre_cell():
    model = CenterNet(3)
    enc = model._encode(targets(([[8, 8, 16, 16]], [2]), ([], [])), (2, 3, 8, 8), "cpu")
    heat = enc["heat"]
    assert heat[0, 2, 3, 3] == 1.0 and heat[0, :2].max() == 0 and heat[1].max() == 0
    assert list(enc["cell"][0]) == [3, 3] and list(enc["size"][0]) == [2.0, 2.0]
    assert torch.allclose(enc["offset"][0], torch.zeros(2))
    assert list(enc["counts"]) == [1, 0]


def test_centernet_per_image_loss_is_one_differentiable_value_per_image_independent_of_the_batch():
    torch.manual_seed(0)
    model = CenterNet(2, width=16)
    images = torch.rand(3, 3, 32, 32)
    tg = targets(([[4, 4, 12, 14]], [0]), ([], []), ([[1, 1, 9, 5], [20, 20, 30, 31]], [1, 0]))
    loss = model.per_image_loss(images, tg)
    assert loss.shape == (3,) and loss.requires_grad and (loss > 0).all()
    alone = model.per_image_loss(images[2:], tg[2:])
    assert torch.allclose(loss[2:], alone, atol=1e-5)  # GroupNorm: no batch statistics
    loss.sum().backward()
    assert model.head.weight.grad is not None


@pytest.mark.slow
def test_centernet_learns_to_find_a_planted_box():
    torch.manual_seed(0)
    images = torch.zeros(4, 3, 32, 32)
    boxes = [[4, 4, 12, 12], [16, 8, 28, 16], [8, 20, 16, 28], [20, 20, 28, 28]]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        images[i, 0, y0:y1, x0:x1] = 1.0
    tg = targets(*[([b], [0]) for b in boxes])
    model = CenterNet(1, width=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.per_image_loss(images, tg).mean().item()
    for _ in range(50):
        loss = model.per_image_loss(images, tg).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 4
    dets = model.eval().detect(images)
    for det, box in zip(dets, boxes, strict=True):
        best = det["boxes"][det["scores"].argmax()]
        assert torch.allclose(best, torch.tensor(box, dtype=torch.float32), atol=2.5)
        assert int(det["labels"][det["scores"].argmax()]) == 0


class TinyTorchvisionStyle(nn.Module):
    """Follows torchvision's detection convention: training mode returns a dict of batch-mean losses
    (or per-image (B,) losses when `per_image`), eval mode one dict of detections per image, labels
    shifted by one (0 is the background)."""

    def __init__(self, *, per_image: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, padding=1)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.per_image = per_image
        self.calls = 0
        self.seen_labels: list[Tensor] = []

    def image_losses(self, images: list[Tensor], targets: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        pairs = zip(images, targets, strict=True)
        a = torch.stack([self.scale * img.mean() * (1 + len(t["boxes"])) for img, t in pairs])
        b = torch.stack([self.scale**2 * t["labels"].float().sum() for t in targets])
        return a, b

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        self.calls += 1
        if self.training:
            assert targets is not None
            self.seen_labels += [t["labels"] for t in targets]
            a, b = self.image_losses(images, targets)
            return {"loss_a": a, "loss_b": b} if self.per_image else {"loss_a": a.mean(), "loss_b": b.mean()}
        return [{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([2])} for _ in images]


def test_adapter_takes_per_image_losses_by_per_image_passes_when_the_model_returns_batch_means():
    torch.manual_seed(0)
    inner = TinyTorchvisionStyle()
    det = as_detector(inner)
    assert isinstance(det, TorchvisionStyleDetector) and isinstance(det, DetectorProtocol)
    assert as_detector(CenterNet(2)).__class__ is CenterNet  # already follows the protocol
    images = torch.rand(3, 3, 8, 8)
    tg = targets(([[1, 1, 4, 4]], [0]), ([], []), ([[1, 1, 4, 4], [2, 2, 6, 6]], [1, 0]))
    det.eval()  # scoring mode: the adapter still asks for losses in training mode, then restores eval
    loss = det.per_image_loss(images, tg)
    assert not inner.training
    shifted = [{**t, "labels": t["labels"] + 1} for t in tg]
    a, b = inner.image_losses(list(images), shifted)
    assert torch.allclose(loss, a + b)  # each image's own total, not the batch mean
    assert inner.calls == 1 + 3  # one batched call to learn the convention, then one per image
    assert [int(x) for x in inner.seen_labels[0]] == [1]  # labels shifted past the background
    loss.sum().backward()
    assert inner.scale.grad is not None
    out = det.detect(images)
    assert len(out) == 3 and int(out[0]["labels"][0]) == 1  # shifted back
    feats = det.features(images)
    assert feats.shape == (3, 4)


def test_adapter_uses_per_image_loss_values_batched_when_the_model_gives_them():
    inner = TinyTorchvisionStyle(per_image=True)
    det = TorchvisionStyleDetector(inner)
    images = torch.rand(4, 3, 8, 8)
    tg = targets(*[([[1, 1, 4, 4]], [k % 2]) for k in range(4)])
    loss = det.per_image_loss(images, tg)
    det.per_image_loss(images, tg)
    assert loss.shape == (4,) and inner.calls == 2  # one call per batch, never per image
