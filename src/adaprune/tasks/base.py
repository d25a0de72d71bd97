"""The task protocol: what a method may ask of the learning problem it prunes for.

A method asks its task for a model (from a seed), batches that carry sample indices, per-sample
losses and the task's own metric on its test split; it never asks which task it is. Classification
and detection implement the same protocol, so AdaPruner's mask and AdaDeDup's proxy read the same
number (a per-sample loss) for an image with boxes as for a digit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor, nn

    from adaprune.training.loop import TrainConfig

TASK_KINDS = ("classification", "detection")


@dataclass(frozen=True)
class Batch:
    """One batch of training samples. `idx` are the samples' indices in the training set (on the
    task's device): anything kept per sample (a mask, a score, a trace) is indexed by them, never
    by position in the loader."""

    idx: Tensor
    inputs: Any  # what the model takes, on the task's device
    targets: Any  # classification: int64 labels; detection: one {"boxes", "labels"} dict per image


@dataclass(frozen=True)
class Metric:
    """A task's score on its test split: the primary value and any secondary ones."""

    name: str  # "accuracy", "map"
    value: float
    extras: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """What every task offers the methods, the training loop and the evaluation harness."""

    kind: ClassVar[str]
    data: Any
    train: TrainConfig  # batch_size resolved to an int by the task when it is built

    @property
    def device(self) -> str: ...

    @property
    def n(self) -> int:
        """Number of training samples."""
        ...

    @property
    def n_test(self) -> int:
        """Number of test samples (0 without a test split)."""
        ...

    @property
    def labels(self) -> np.ndarray | None:
        """One class label per training sample where the task has them (for class quotas), else None."""
        ...

    def new_model(self, seed: int, *, indices: np.ndarray | None = None) -> nn.Module:
        """A fresh model from `seed`; `indices`: the training rows it will train on (None: all)."""
        ...

    def batches(
        self, indices: Tensor, batch_size: int, *, generator: torch.Generator | None
    ) -> Iterator[Batch]:
        """Batches over the training samples `indices`: shuffled by `generator`, in order when it is None."""
        ...

    def per_sample_loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The loss of every sample of `batch`, shape (B,), differentiable."""
        ...

    def require_test(self) -> None:
        """Raise ConfigError (one line) when the task has no test split."""
        ...

    def test_metric(self, model: nn.Module) -> Metric:
        """The task's metric on its test split (read once, after training; never used to choose)."""
        ...

    def features(self, model: nn.Module, indices: Tensor | None = None) -> np.ndarray:
        """(N, D) penultimate-layer features of the training samples `indices` (all by default)."""
        ...

    def with_train(self, train: TrainConfig) -> Task:
        """The same task trained with another configuration."""
        ...
