"""Classification: per-sample cross-entropy, accuracy, and the model a method or evaluation trains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.models import InputStats, build_model, should_standardize
from adaprune.training.loop import TrainConfig, accuracy, seeded_model

ModelSpec = str | Callable[[], nn.Module]


@dataclass(frozen=True)
class ClassificationTask:
    """A dataset plus how to build and train a model on it.

    `model` is a built-in name (auto, mlp, cnn1d, cnn, resnet18) or any zero-argument callable
    returning a `torch.nn.Module` whose output is (batch, num_classes) logits. With `standardize`,
    a built-in model on vector (N, D) inputs starts with a layer that standardises them by the
    training split's mean and std (the test split never enters the statistics)."""

    data: Dataset
    model: ModelSpec = "auto"
    train: TrainConfig = TrainConfig()
    standardize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            build_model(self.model, self.data.sample_shape, self.data.num_classes)  # fail early on a bad name
        elif not callable(self.model):
            raise ConfigError(f"model must be a name or a callable returning a torch.nn.Module, got {self.model!r}")

    @property
    def device(self) -> str:
        return self.train.device

    @property
    def standardizes(self) -> bool:
        """Whether new models standardise their input (a built-in model, vector inputs, standardize on)."""
        return self.standardize and isinstance(self.model, str) and should_standardize(self.data.sample_shape)

    def new_model(self, seed: int) -> nn.Module:
        stats = InputStats.of(self.data.x) if self.standardizes else None
        factory = self.model if callable(self.model) else (
            lambda: build_model(self.model, self.data.sample_shape, self.data.num_classes,  # type: ignore[arg-type]
                                input_stats=stats)
        )
        return seeded_model(factory, seed, self.device)

    def train_tensors(self) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(self.data.x), torch.from_numpy(self.data.y)

    def test_tensors(self) -> tuple[Tensor, Tensor]:
        if self.data.x_test is None or self.data.y_test is None:
            raise ConfigError(
                f"{self.data.name} has no test split: add x_test/y_test to the npz or pass a test source"
            )
        return torch.from_numpy(self.data.x_test), torch.from_numpy(self.data.y_test)

    @staticmethod
    def per_sample_loss(logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, reduction="none")

    def test_accuracy(self, model: nn.Module) -> float:
        x, y = self.test_tensors()
        return accuracy(model, x, y, device=self.device)
