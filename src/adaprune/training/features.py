"""Penultimate-layer features of a trained task model: the default embedding for geometric
methods (herding, k-center, Moderate-DS) and the `model` encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adaprune.errors import ConfigError
from adaprune.tasks import ClassificationTask
from adaprune.training.loop import fit


@torch.no_grad()
def model_features(model: nn.Module, x: torch.Tensor, *, device: str = "cpu", batch_size: int = 1024) -> np.ndarray:
    """`model.features(x)` in batches, as float32 (N, D). Built-in models have `.features`."""
    if not hasattr(model, "features"):
        raise ConfigError(
            f"model {type(model).__name__} has no .features(x) method; give the method an embedding instead"
        )
    model.eval()
    parts = [model.features(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)]
    return torch.cat(parts).reshape(len(x), -1).numpy()


def train_feature_model(task: ClassificationTask, *, seed: int, epochs: int, progress: bool) -> nn.Module:
    """A fresh task model (seeded) trained on all samples for `epochs`, ready for `model_features`."""
    x, y = task.train_tensors()
    model = task.new_model(seed)
    if not hasattr(model, "features"):
        raise ConfigError(f"model {type(model).__name__} has no .features(x) method; use another embedding")
    fit(model, x, y, task.train, seed=seed, epochs=epochs, progress=progress, desc="features")
    return model


def trained_features(task: ClassificationTask, *, seed: int, epochs: int, progress: bool) -> np.ndarray:
    """Train a fresh model (seeded) on all samples for `epochs`, then embed every training sample."""
    model = train_feature_model(task, seed=seed, epochs=epochs, progress=progress)
    return model_features(model, task.train_tensors()[0], device=task.device)
