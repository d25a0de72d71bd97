"""A small contrastive encoder learned from the data itself (SimCLR-style, plain torch).

Near-copies in real logs are not pixel-identical: consecutive frames move by a pixel or two, the
light changes, the sensor adds noise. Pixels (and a classifier's features) put many such copies
nearer another sample than their own source. This encoder is trained to map two randomly *moved*
views of one sample together and away from the other samples of the batch (NT-Xent, Chen et al.
2020), with augmentations that mimic frame-to-frame change:

  - a shift of up to `max_shift` pixels and a rotation of up to `max_degrees` (one bilinear warp;
    outside the frame is background 0),
  - contrast x [1 - jitter, 1 + jitter] around the sample's mean and brightness +- jitter/2 of
    the data's scale,
  - Gaussian sensor noise of `noise` x the data's scale.

Before the network sees a sample (a view in training, a sample when encoding) it is *centred*: shifted
so that the centre of mass of its foreground lies in the middle of the frame (`center`). A copy moved
by a pixel or two and its source then start from nearly the same place, and the network learns only
what centring leaves (benchmarks/encoders_moved.py measures the result on moved copies of real
digits). `centering=False` turns it off
(backgrounds with strong structure, where the centre of mass says little about the content).

Training runs `epochs` epochs (30 for the `contrastive` encoder spec) over at most `max_samples`
samples (a seeded random subset; 10,000 by default): the encoder must learn what a move does, not
memorise every sample, and the pixels it trains on are held in memory, so that is the memory limit;
encoding then streams any number of samples.

Samples are images (C, H, W) or signals (C, L) / (L,) (shifted along L, not rotated). Images smaller
than 16 px a side are upsampled to 16 first (bilinear), so that a 1-pixel move of an 8 x 8 digit is
a 2-pixel move the convolutions can follow. The network: three 3 x 3 convolutions (32, 64, 64
channels, the last two with stride 2), a linear map of the flattened feature map (128) and a
projection head (64). Unlike SimCLR, which keeps the layer before the head for classification,
the embedding is the head's output: deduplication asks exactly what the loss trains, whether two
samples are moved views of one another (the head's cosine found twice as many copies' sources as
the layer before it on moved digits). Seeded end to end
(the weights, the batches and every augmentation draw from one torch.Generator), so a rerun gives
the same encoder, and `embed`'s resume stays valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

MIN_SIDE = 16
WIDTHS = (32, 64, 64)
MAX_SAMPLES = 10_000


@dataclass(frozen=True)
class Augment:
    """How far a view may move from its sample."""

    max_shift: float = 2.0  # pixels of the input (before upsampling)
    max_degrees: float = 12.0
    jitter: float = 0.2
    noise: float = 0.05


def as_images(x: Tensor) -> Tensor:
    """(N, L) -> (N, 1, 1, L); (N, C, L) -> (N, C, 1, L); (N, C, H, W) unchanged."""
    if x.dim() == 2:
        return x[:, None, None, :]
    if x.dim() == 3:
        return x[:, :, None, :]
    return x


def augment(x: Tensor, aug: Augment, scale: float, generator: torch.Generator) -> Tensor:
    """A moved view of every sample of `x` ((N, C, H, W), standardised)."""
    n, _, h, w = x.shape
    is_signal = h == 1

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = torch.zeros(n) if is_signal else uniform(-aug.max_degrees, aug.max_degrees) * math.pi / 180
    # In normalised coordinates one input pixel is 2 / size.
    tx = uniform(-aug.max_shift, aug.max_shift) * 2 / w
    ty = torch.zeros(n) if is_signal else uniform(-aug.max_shift, aug.max_shift) * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Outside the frame is the background: the data's minimum (0 for images on black).
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    moved = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    moved = moved + background
    contrast = uniform(1 - aug.jitter, 1 + aug.jitter).view(n, 1, 1, 1)
    brightness = uniform(-aug.jitter / 2, aug.jitter / 2).view(n, 1, 1, 1) * scale
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    moved = (moved - mean) * contrast + mean + brightness
    return moved + aug.noise * scale * torch.randn(moved.shape, generator=generator)


def center(x: Tensor) -> Tensor:
    """Shift every sample ((N, C, H, W)) so that the centre of mass of its foreground (what stands above
    the sample's median) lies in the middle of the frame: a moved copy and its source then start from
    nearly the same position, and the network only has to absorb what is left of the move."""
    n, _, h, w = x.shape
    flat = x.reshape(n, -1)
    weight = (x - flat.median(dim=1).values.view(n, 1, 1, 1)).clamp_min(0).sum(1)  # (N, H, W)
    total = weight.sum(dim=(1, 2)).clamp_min(1e-12)
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device)
    cy = (weight.sum(2) * ys).sum(1) / total
    cx = (weight.sum(1) * xs).sum(1) / total
    if h == 1:
        cy = torch.zeros_like(cy)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    theta = torch.stack([torch.stack([one, zero, cx], 1), torch.stack([zero, one, cy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background


class ContrastiveNet(nn.Module):
    """Three convolutions (the last two with stride 2), then a linear map of the flattened feature
    map (spatial layout kept: instances of one class differ in where their strokes are), a
    projection head; the head's output is the embedding, the space whose cosine the loss trains."""

    def __init__(self, sample_shape: tuple[int, int, int], *, dim: int = 128, proj: int = 64,
                 min_side: int = MIN_SIDE, widths: tuple[int, int, int] = WIDTHS, centering: bool = True) -> None:
        super().__init__()
        self.min_side = min_side
        self.centering = centering
        channels, h, w = sample_shape
        self.is_signal = h == 1
        kernel, pad = ((1, 3), (0, 1)) if self.is_signal else (3, 1)
        stride = (1, 2) if self.is_signal else 2
        w1, w2, w3 = widths
        self.conv = nn.Sequential(
            nn.Conv2d(channels, w1, kernel, padding=pad), nn.BatchNorm2d(w1), nn.ReLU(),
            nn.Conv2d(w1, w2, kernel, stride=stride, padding=pad), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.Conv2d(w2, w3, kernel, stride=stride, padding=pad), nn.BatchNorm2d(w3), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(self.prepare(torch.zeros(2, channels, h, w))).shape[1]
        self.out = nn.Linear(flat, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, proj))

    def resize(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if self.is_signal or min(h, w) >= self.min_side:
            return x
        factor = math.ceil(self.min_side / min(h, w))
        return F.interpolate(x, size=(h * factor, w * factor), mode="bilinear", align_corners=False)

    def prepare(self, x: Tensor) -> Tensor:
        return self.resize(center(x) if self.centering else x)

    def embed(self, x: Tensor) -> Tensor:
        return self.out(self.conv(self.prepare(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's loss: each view must pick its partner out of the 2B - 1 other views of the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    b = len(z1)
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(sim, target)


@dataclass
class TrainedContrastive:
    net: ContrastiveNet
    mean: float
    scale: float
    device: str

    @torch.no_grad()
    def encode(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        self.net.eval()
        outs = []
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.asarray(x[start : start + batch_size], dtype=np.float32))
            batch = as_images((batch - self.mean) / self.scale).to(self.device)
            outs.append(self.net(batch).cpu().numpy())
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, self.dim), dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.net.head[-1].out_features)


def train_contrastive(
    x: np.ndarray,
    *,
    epochs: int,
    seed: int,
    max_samples: int = MAX_SAMPLES,
    centering: bool = True,
    batch_size: int = 256,
    lr: float = 2e-3,
    temperature: float = 0.1,
    aug: Augment = Augment(),
    dim: int = 128,
    min_side: int = MIN_SIDE,
    device: str = "cpu",
    progress: bool = True,
) -> TrainedContrastive:
    """Train the encoder for `epochs` epochs on the samples `x` (an array-like of N samples, read
    lazily), or on a seeded random subset of `max_samples` of them when N is larger."""
    n_all = len(x)
    if n_all > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(n_all, max_samples, replace=False))
        x = x[rows]
    data = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
    mean, scale = float(data.mean()), float(data.std()) or 1.0
    images = as_images((data - mean) / scale)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ContrastiveNet(tuple(images.shape[1:]), dim=dim, min_side=min_side, centering=centering).to(device)  # type: ignore[arg-type]
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-6)
    n = len(images)
    batch_size = min(batch_size, n)
    net.train()
    bar = tqdm(range(epochs), desc="contrastive encoder", disable=not progress, leave=False, unit="epoch")
    for _ in bar:
        order = torch.randperm(n, generator=gen)
        total, steps = 0.0, 0
        # Full batches only: a batch of one or two has no negatives to learn from.
        for start in range(0, n - batch_size + 1, batch_size):
            batch = images[order[start : start + batch_size]]
            v1 = augment(batch, aug, 1.0, gen).to(device)
            v2 = augment(batch, aug, 1.0, gen).to(device)
            loss = nt_xent(net(v1), net(v2), temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        bar.set_postfix(loss=f"{total / max(steps, 1):.3f}")
    bar.close()
    net.eval()
    return TrainedContrastive(net=net, mean=mean, scale=scale, device=device)
