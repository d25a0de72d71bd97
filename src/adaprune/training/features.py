"""Penultimate-layer features of a trained task model: the default embedding for geometric
methods (herding, k-center, Moderate-DS) and the `model` encoder. Works for any task whose model
has `.features(x)` (the built-in classifiers and the detector)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from adaprune.errors import ConfigError
from adaprune.training.loop import fit

if TYPE_CHECKING:
    from adaprune.tasks.base import Task


@torch.no_grad()
def model_features(model: nn.Module, x: torch.Tensor, *, device: str = "cpu", batch_size: int = 1024) -> np.ndarray:
    """`model.features(x)` in batches, as float32 (N, D), for inputs already in memory."""
    if not hasattr(model, "features"):
        raise ConfigError(
            f"model {type(model).__name__} has no .features(x) method; give the method an embedding instead"
        )
    model.eval()
    parts = [model.features(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)]
    return torch.cat(parts).reshape(len(x), -1).numpy()


def train_feature_model(task: Task, *, seed: int, epochs: int, progress: bool) -> nn.Module:
    """A fresh task model (seeded) trained on all samples for `epochs`, ready for `task.features`."""
    model = task.new_model(seed)
    if not hasattr(model, "features"):
        raise ConfigError(f"model {type(model).__name__} has no .features(x) method; use another embedding")
    fit(model, task, seed=seed, epochs=epochs, progress=progress, desc="features")
    return model


def trained_features(task: Task, *, seed: int, epochs: int, progress: bool) -> np.ndarray:
    """Train a fresh model (seeded) on all samples for `epochs`, then embed every training sample."""
    model = train_feature_model(task, seed=seed, epochs=epochs, progress=progress)
    return task.features(model)
