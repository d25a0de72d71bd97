"""Random pruning: the baseline every method must beat."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.methods.base import Scorer
from adaprune.params import Boolean, ParamSpec
from adaprune.registry import register_method
from adaprune.tasks import Task


@register_method("random")
class RandomPruning(Scorer):
    """Uniform random subset; `stratified=True` keeps each class's share. Score = random priority.

    The score is a uniform draw from the seed, so a kept set at a smaller budget is nested in the
    kept set at a larger one (same seed).

    Parameters:
        stratified: keep each class's share of the kept set"""

    supported_tasks = ("classification", "detection")

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): a random score has no hard end.
    higher_is_hard: ClassVar[bool | None] = None

    param_spec = ParamSpec({"stratified": Boolean()})

    def __init__(self, *, stratified: bool = False) -> None:
        self.stratified = stratified
        self.balance_classes = stratified

    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray:
        return np.random.default_rng(seed).random(task.n)
