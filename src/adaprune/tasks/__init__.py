"""Tasks: what a method trains for. `make_task` picks the task class from the data's `task_kind`,
the one place that looks at which task it is."""

from __future__ import annotations

from typing import Any

from adaprune.components import get_component
from adaprune.tasks.base import TASK_KINDS, Batch, Metric, Task


def task_class(kind: str) -> type:
    """The task class registered for `kind` (adaprune/components/tasks.py), imported on first use so
    detection costs nothing to classification users."""
    return get_component("task", kind).load()


def make_task(data: Any, *, model: Any = "auto", train: Any = None) -> Task:
    """The task for `data` (a Dataset, a DetectionDataset, ...), with its model spec and training config."""
    from adaprune.training.loop import TrainConfig

    component = get_component("task", getattr(data, "task_kind", "classification"))
    component.validate({"model": model})
    cls = component.load()
    return cls(data=data, model=model, train=train if train is not None else TrainConfig())


def __getattr__(name: str) -> Any:
    # ClassificationTask imports torch: load it only when asked for.
    if name == "ClassificationTask":
        return task_class("classification")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASK_KINDS", "Batch", "ClassificationTask", "Metric", "Task", "make_task", "task_class"]
