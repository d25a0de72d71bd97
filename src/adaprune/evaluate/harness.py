"""Train fresh models on a kept subset (and on the full set) and measure the task's test metric
(accuracy for classification, COCO mAP for detection).

Models train for a fixed number of epochs and are scored once, at the end, on the test split:
nothing is chosen by looking at the test split."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from adaprune.errors import ConfigError
from adaprune.selection import Selection, check_matches, data_record
from adaprune.tasks.base import Metric, Task
from adaprune.training.loop import fit

log = logging.getLogger(__name__)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def format_mean_std(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> str:
    """`mean ± std` of `values` (times `scale`); one value has no std, so only the mean is shown."""
    mean, std = mean_std(values)
    if len(values) < 2:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


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
    # "epochs": every set trains `epochs` epochs; "steps": the subset trains as many optimisation
    # steps as the full set does in `epochs` epochs (`subset_epochs` epochs, the last one cut short).
    protocol: str = "epochs"
    subset_epochs: int | None = None
    input_size: int | None = None  # detection: the side images were letterboxed to
    # The data trained and tested on (`adaprune.selection.data_record`): its classes' name-to-number map included.
    data: dict | None = None

    def describe_protocol(self) -> str:
        size = "" if self.input_size is None else f"; images letterboxed to {self.input_size} px"
        if self.protocol == "steps":
            return (f"matched steps: the subset trained {self.subset_epochs} epochs, as many optimisation "
                    f"steps as the full set's {self.epochs} epochs{size}")
        return f"same epochs: {self.epochs} epochs for every set{size}"

    @property
    def subset_mean_std(self) -> tuple[float, float]:
        return mean_std(self.subset)

    @property
    def full_mean_std(self) -> tuple[float, float] | None:
        return None if self.full is None else mean_std(self.full)

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(self.subset_extras[0]) if self.subset_extras else ()


def matched_schedule(task: Task, n_subset: int) -> tuple[int, int]:
    """(epochs, steps) that give a subset of `n_subset` samples the optimisation steps the full set
    takes in `task.train.epochs` epochs (with the same batch size)."""
    batch = task.train.batch_size
    steps = task.train.epochs * math.ceil(task.n / batch)
    return math.ceil(steps / math.ceil(n_subset / batch)), steps


def train_and_test(
    task: Task, indices: np.ndarray | None, *, seed: int, progress: bool, match_steps: bool = False
) -> Metric:
    """Train a fresh model (initialised from `seed`) on `indices` of the training set; the test metric,
    read once at the end. `match_steps`: as many optimisation steps as on the full set."""
    task.require_test()  # fail before training when there is no test split
    # Input statistics (standardisation) from the subset it trains on, never from the pruned rows.
    model = task.new_model(seed, indices=None if indices is None else np.asarray(indices, dtype=np.int64))
    idx = None if indices is None else torch.from_numpy(np.asarray(indices, dtype=np.int64))
    epochs = max_steps = None
    if match_steps and idx is not None:
        epochs, max_steps = matched_schedule(task, len(idx))
    fit(model, task, seed=seed, indices=idx, epochs=epochs, max_steps=max_steps, progress=progress,
        desc=f"evaluate seed {seed}")
    return task.test_metric(model)


def evaluate_selection(
    task: Task,
    selection: Selection,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    include_full: bool = True,
    progress: bool = True,
    match_steps: bool = False,
) -> EvaluationResult:
    check_matches(selection, task.data)
    if not seeds:
        raise ConfigError("seeds must name at least one seed")
    subset = tuple(train_and_test(task, selection.kept, seed=s, progress=progress, match_steps=match_steps)
                   for s in seeds)
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
        protocol="steps" if match_steps else "epochs",
        subset_epochs=matched_schedule(task, selection.n_kept)[0] if match_steps else task.train.epochs,
        input_size=getattr(task.data, "input_size", None),
        data=data_record(task.data),
    )
