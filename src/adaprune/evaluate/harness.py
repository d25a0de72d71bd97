"""Train fresh models on a kept subset (and on the full set) and measure the task's test metric
(accuracy for classification, COCO mAP for detection).

Models train for a fixed number of epochs and are scored once, at the end, on the test split:
nothing is chosen by looking at the test split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from adaprune.errors import ConfigError
from adaprune.selection import Selection
from adaprune.tasks.base import Metric, Task
from adaprune.training.loop import fit

log = logging.getLogger(__name__)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


@dataclass(frozen=True)
class EvaluationResult:
    """Test metric per seed of models trained on the kept subset and on the full set.

    `metric` names the primary value ("accuracy", "map"); `subset`/`full` hold it per seed and
    `subset_extras`/`full_extras` the task's secondary values (detection: "map50") per seed."""

    dataset: str
    method: str
    n_total: int
    n_kept: int
    epochs: int
    seeds: tuple[int, ...]
    metric: str
    subset: tuple[float, ...]
    full: tuple[float, ...] | None
    subset_extras: tuple[dict[str, float], ...] = ()
    full_extras: tuple[dict[str, float], ...] | None = None

    @property
    def subset_mean_std(self) -> tuple[float, float]:
        return mean_std(self.subset)

    @property
    def full_mean_std(self) -> tuple[float, float] | None:
        return None if self.full is None else mean_std(self.full)

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(self.subset_extras[0]) if self.subset_extras else ()


def train_and_test(task: Task, indices: np.ndarray | None, *, seed: int, progress: bool) -> Metric:
    """Train a fresh model (initialised from `seed`) on `indices` of the training set; the test metric,
    read once at the end."""
    task.require_test()  # fail before training when there is no test split
    model = task.new_model(seed)
    idx = None if indices is None else torch.from_numpy(np.asarray(indices, dtype=np.int64))
    fit(model, task, seed=seed, indices=idx, progress=progress, desc=f"evaluate seed {seed}")
    return task.test_metric(model)


def evaluate_selection(
    task: Task,
    selection: Selection,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    include_full: bool = True,
    progress: bool = True,
) -> EvaluationResult:
    if selection.n_total != task.n:
        raise ConfigError(
            f"selection covers {selection.n_total} samples but {task.data.name} has {task.n}; "
            "was it made on another dataset?"
        )
    if not seeds:
        raise ConfigError("seeds must name at least one seed")
    subset = tuple(train_and_test(task, selection.kept, seed=s, progress=progress) for s in seeds)
    full = tuple(train_and_test(task, None, seed=s, progress=progress) for s in seeds) if include_full else None
    return EvaluationResult(
        dataset=task.data.name,
        method=selection.method,
        n_total=selection.n_total,
        n_kept=selection.n_kept,
        epochs=task.train.epochs,
        seeds=tuple(seeds),
        metric=subset[0].name,
        subset=tuple(m.value for m in subset),
        full=None if full is None else tuple(m.value for m in full),
        subset_extras=tuple(m.extras for m in subset),
        full_extras=None if full is None else tuple(m.extras for m in full),
    )
