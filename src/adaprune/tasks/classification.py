"""Classification: per-sample cross-entropy, accuracy, and the model a method or evaluation trains."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaprune.data import Dataset
from adaprune.data.images import is_lazy
from adaprune.errors import ConfigError, describe_value
from adaprune.models import InputStats, build_model, should_standardize
from adaprune.tasks.base import Batch, Metric
from adaprune.training.loop import TrainConfig, accuracy, batch_indices, predict_logits, seeded_model

ModelSpec = str | Callable[[], nn.Module]
DEFAULT_BATCH = 128


@dataclass(frozen=True)
class ClassificationTask:
    """A dataset plus how to build and train a model on it.

    `model` is a built-in name (auto, mlp, cnn1d, cnn, resnet18) or any zero-argument callable
    returning a `torch.nn.Module` whose output is (batch, num_classes) logits. In-memory arrays are
    moved to the device once; a lazy source (image files) is decoded batch by batch. With
    `standardize`, a built-in model on vector (N, D) inputs starts with a layer that standardises
    them by the mean and std of the rows it trains on (`new_model(seed, indices=...)`: a pruned
    subset's own statistics, as a user training on that subset alone would have; the test split
    and the pruned rows never enter them)."""

    kind: ClassVar[str] = "classification"

    data: Dataset
    model: ModelSpec = "auto"
    train: TrainConfig = TrainConfig()
    standardize: bool = True
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.train.batch_size is None:
            object.__setattr__(self, "train", dataclasses.replace(self.train, batch_size=DEFAULT_BATCH))
        if isinstance(self.model, str):
            build_model(self.model, self.data.sample_shape, self.data.num_classes)  # fail early on a bad name
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
        return 0 if self.data.y_test is None else len(self.data.y_test)

    @property
    def labels(self) -> np.ndarray:
        return self.data.y

    def with_train(self, train: TrainConfig) -> ClassificationTask:
        return dataclasses.replace(self, train=train)

    @property
    def standardizes(self) -> bool:
        """Whether new models standardise their input (a built-in model, vector inputs, standardize on)."""
        return self.standardize and isinstance(self.model, str) and should_standardize(self.data.sample_shape)

    def new_model(self, seed: int, *, indices: np.ndarray | None = None) -> nn.Module:
        """A fresh model from `seed`, standardising (see `standardizes`) by the statistics of the
        training rows `indices` it will train on (None: every training row; computed once)."""
        stats = None
        if self.standardizes:
            if indices is None:
                if "stats" not in self._tensors:
                    self._tensors["stats"] = InputStats.of(self.data.x)
                stats = self._tensors["stats"]
            else:
                stats = InputStats.of(self.data.x, indices)
        factory = self.model if callable(self.model) else (
            lambda: build_model(self.model, self.data.sample_shape, self.data.num_classes,  # type: ignore[arg-type]
                                input_stats=stats)
        )
        return seeded_model(factory, seed, self.device)

    # ------------------------------------------------------------------ data
    def train_tensors(self) -> tuple[Tensor, Tensor]:
        """All training samples as CPU tensors (a lazy source is decoded: small sets only)."""
        return torch.from_numpy(np.ascontiguousarray(np.asarray(self.data.x), dtype=np.float32)), \
            torch.from_numpy(self.data.y)

    def test_tensors(self) -> tuple[Tensor, Tensor]:
        if self.data.x_test is None or self.data.y_test is None:
            raise ConfigError(
                f"{self.data.name} has no test split: add x_test/y_test to the npz or pass a test source"
            )
        return torch.from_numpy(np.ascontiguousarray(np.asarray(self.data.x_test), dtype=np.float32)), \
            torch.from_numpy(self.data.y_test)

    def _device_arrays(self) -> tuple[Tensor, Tensor] | None:
        """In-memory training arrays, moved to the device once (None for a lazy source)."""
        if is_lazy(self.data.x):
            return None
        if "train" not in self._tensors:
            x, y = self.train_tensors()
            self._tensors["train"] = (x.to(self.device), y.to(self.device))
        return self._tensors["train"]

    def batches(self, indices: Tensor, batch_size: int, *, generator: torch.Generator | None) -> Iterator[Batch]:
        arrays = self._device_arrays()
        y_all = torch.from_numpy(self.data.y)
        for idx in batch_indices(indices, batch_size, generator):
            idx_dev = idx.to(self.device)
            if arrays is not None:
                yield Batch(idx=idx_dev, inputs=arrays[0][idx_dev], targets=arrays[1][idx_dev])
            else:
                xb = torch.from_numpy(np.asarray(self.data.x[idx.numpy()], dtype=np.float32))
                yield Batch(idx=idx_dev, inputs=xb.to(self.device), targets=y_all[idx].to(self.device))

    # ------------------------------------------------------------------ losses and outputs
    def per_sample_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        return F.cross_entropy(model(batch.inputs), batch.targets, reduction="none")

    @torch.no_grad()
    def logits(self, model: nn.Module, indices: Tensor | None = None, *, batch_size: int = 1024) -> Tensor:
        """Logits of the training samples `indices` (all by default), float32 on the CPU."""
        if indices is None:
            indices = torch.arange(self.n)
        model.eval()
        parts = [model(b.inputs).float().cpu() for b in self.batches(indices, batch_size, generator=None)]
        return torch.cat(parts) if parts else torch.empty(0)

    @torch.no_grad()
    def features(self, model: nn.Module, indices: Tensor | None = None, *, batch_size: int = 1024) -> np.ndarray:
        if not hasattr(model, "features"):
            raise ConfigError(
                f"model {type(model).__name__} has no .features(x) method; give the method an embedding instead"
            )
        if indices is None:
            indices = torch.arange(self.n)
        model.eval()
        parts = [model.features(b.inputs).float().cpu().reshape(len(b.idx), -1)
                 for b in self.batches(indices, batch_size, generator=None)]
        return torch.cat(parts).numpy()

    @staticmethod
    def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
        """Per-sample cross-entropy of precomputed logits."""
        return F.cross_entropy(logits, y, reduction="none")

    def require_test(self) -> None:
        self.test_tensors()

    def test_accuracy(self, model: nn.Module) -> float:
        x, y = self.test_tensors()
        return accuracy(model, x, y, device=self.device)

    def test_metric(self, model: nn.Module) -> Metric:
        return Metric(name="accuracy", value=self.test_accuracy(model))

    def test_logits(self, model: nn.Module) -> Tensor:
        return predict_logits(model, self.test_tensors()[0], device=self.device)
