"""Small torch networks, chosen from the input shape. No torchvision.

Every built-in model is a `FeatureClassifier`: `features(x)` gives the penultimate layer (used
as an embedding) and `classifier` maps it to logits. A model built with `input_stats` starts
with a `Standardize` layer holding the training split's per-feature mean and std as buffers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from adaprune.components import component_names, get_component
from adaprune.errors import ConfigError

# From the registry (adaprune/components/models.py), like the CLI's --model choices.
MODEL_NAMES = component_names("model")
# Features whose training-split std is below this are centred but not scaled (constant columns).
MIN_STD = 1e-6
STATS_CHUNK_BYTES = 4 * 2**20  # float64 rows converted at a time by InputStats.of


@dataclass(frozen=True)
class InputStats:
    """Per-feature mean and std of the training split, for vector (N, D) inputs."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def of(x: np.ndarray, indices: np.ndarray | None = None) -> InputStats:
        """Mean and (population) std of the rows `indices` of `x` (all rows when None): the rows a
        model trains on. Float64 running moments over chunks of rows (Chan et al.'s pairwise merge),
        so a memory-mapped `x` is read chunk by chunk and never copied whole."""
        n_rows = len(x)
        rows = None if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
        count = n_rows if rows is None else len(rows)
        if count == 0:
            raise ConfigError("cannot take input statistics of zero rows")
        width = int(np.prod(x.shape[1:], dtype=np.int64)) if len(x.shape) > 1 else 1
        step = max(1, STATS_CHUNK_BYTES // (8 * max(1, width)))
        n, mean, m2 = 0, np.zeros(width), np.zeros(width)
        for start in range(0, count, step):
            part = x[start : start + step] if rows is None else x[rows[start : start + step]]
            chunk = np.array(part, dtype=np.float64).reshape(len(part), width)  # a copy, worked in place
            k = len(chunk)
            chunk_mean = chunk.mean(axis=0)
            chunk -= chunk_mean
            np.square(chunk, out=chunk)
            chunk_m2 = chunk.sum(axis=0)
            delta = chunk_mean - mean
            total = n + k
            mean = mean + delta * (k / total)
            m2 = m2 + chunk_m2 + delta**2 * (n * k / total)
            n = total
        std = np.sqrt(m2 / n)
        return InputStats(mean=mean.astype(np.float32), std=np.where(std < MIN_STD, 1.0, std).astype(np.float32))


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, stored as buffers (saved with the model)."""

    def __init__(self, stats: InputStats) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(stats.mean, dtype=np.float32).copy()))
        self.register_buffer("std", torch.from_numpy(np.asarray(stats.std, dtype=np.float32).copy()))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def should_standardize(input_shape: Sequence[int]) -> bool:
    """The default rule: vector (N, D) inputs are standardised; sequences and images are not
    (pixels and signals share one scale, which per-feature scaling would distort)."""
    return len(input_shape) == 1


class FeatureClassifier(nn.Module):
    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.standardize: Standardize | None = None

    def features(self, x: Tensor) -> Tensor:
        if self.standardize is not None:
            x = self.standardize(x)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def mlp(input_shape: Sequence[int], num_classes: int, hidden: int = 256) -> FeatureClassifier:
    d = 1
    for s in input_shape:
        d *= s
    body = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    return FeatureClassifier(body, hidden, num_classes)


def cnn1d(input_shape: Sequence[int], num_classes: int, width: int = 32) -> FeatureClassifier:
    channels, length = input_shape
    body = nn.Sequential(
        nn.Conv1d(channels, width, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(min(8, length)),
        nn.Flatten(),
    )
    return FeatureClassifier(body, width * min(8, length), num_classes)


def cnn_small(input_shape: Sequence[int], num_classes: int, width: int = 16) -> FeatureClassifier:
    """Two conv layers (16, 32 channels), each followed by 2x2 max-pooling, then a linear classifier
    on the (at most 7x7) pooled maps: a fraction of `cnn`'s cost (benchmarks/results/auto_model.md)."""
    channels, height, width_px = input_shape
    pooled = max(1, min(7, height // 4, width_px // 4))
    body = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(pooled),
        nn.Flatten(),
    )
    return FeatureClassifier(body, 2 * width * pooled * pooled, num_classes)


def cnn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> FeatureClassifier:
    channels = input_shape[0]
    body = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    )
    return FeatureClassifier(body, 2 * width * 4, num_classes)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


def resnet18(input_shape: Sequence[int], num_classes: int) -> FeatureClassifier:
    """The CIFAR variant: a 3x3 stem and no max-pool, four stages of two basic blocks."""
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return FeatureClassifier(nn.Sequential(*layers), 512, num_classes)


def auto_model_name(input_shape: Sequence[int]) -> str:
    """vectors -> mlp, sequences -> cnn1d, images -> cnn_small: on digits-, MNIST- and CIFAR-sized
    inputs it trains to the accuracy of `cnn` at a fraction of its cost (benchmarks/results/auto_model.md)."""
    return {1: "mlp", 2: "cnn1d", 3: "cnn_small"}.get(len(input_shape), "mlp")


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, *, input_stats: InputStats | None = None
) -> FeatureClassifier:
    """A built-in model; with `input_stats` its first layer standardises the input by them."""
    if name == "auto":
        name = auto_model_name(input_shape)
    component = get_component("model", name)
    need = {"any": None, "sequences": 2, "images": 3}[component.tags[0]]
    if need is not None and len(input_shape) != need:
        layout = {2: "(C, L) sequences", 3: "(C, H, W) images"}[need]
        raise ConfigError(f"model {name!r} needs {layout}, but samples have shape {tuple(input_shape)}")
    model = component.load()(input_shape, num_classes)
    if input_stats is not None:
        size = int(np.prod(input_shape))
        if input_stats.mean.size != size or input_stats.std.size != size:
            raise ConfigError(f"input_stats have {input_stats.mean.size} features but samples have {size}")
        shape = tuple(input_shape)
        model.standardize = Standardize(
            InputStats(mean=input_stats.mean.reshape(shape), std=input_stats.std.reshape(shape))
        )
    return model
