"""What a method is: a Scorer (one number per sample, a declared direction; the shared selection
module turns scores into a kept set) or a Selector (owns its keep decision)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from adaprune.registry import method_parameters
from adaprune.selection import select_top_k
from adaprune.tasks import ClassificationTask


@dataclass(frozen=True)
class MethodResult:
    """What a method hands back: kept indices, optional per-sample scores, diagnostics."""

    kept: np.ndarray
    scores: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]
    # True: a higher score is more worth keeping; False: lower; None: the method has no score.
    higher_is_keep: ClassVar[bool | None] = None
    # Whether the method trains a model (then it honours --epochs and --model).
    trains_model: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        """The constructor's keyword parameters and their values (each is stored under its name)."""
        return {n: getattr(self, n) for n in method_parameters(type(self))}

    @classmethod
    def direction(cls) -> str:
        if cls.higher_is_keep is None:
            return "owns its keep decision"
        return "higher score = keep" if cls.higher_is_keep else "lower score = keep"

    @abstractmethod
    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult: ...


class Scorer(Method):
    kind = "scorer"
    # When True, keep per-class quotas in proportion to class sizes.
    balance_classes: bool = False

    @abstractmethod
    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray: ...

    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        scores = np.asarray(self.score(task, seed=seed, progress=progress), dtype=np.float64)
        assert self.higher_is_keep is not None, "a scorer must declare its direction"
        strata = task.data.y if self.balance_classes else None
        kept = select_top_k(scores, n_keep, higher_is_keep=self.higher_is_keep, strata=strata)
        return MethodResult(kept=kept, scores=scores)


class Selector(Method):
    kind = "selector"
