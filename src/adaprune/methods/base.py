"""What a method is: a Scorer (one number per sample, a declared direction; the shared selection
module turns scores into a kept set) or a Selector (owns its keep decision)."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from adaprune.errors import ConfigError
from adaprune.params import ParamSpec
from adaprune.registry import method_parameters
from adaprune.scores import Direction, ScoreSet, keep_from_scores
from adaprune.tasks import Task


@dataclass(frozen=True)
class MethodResult:
    """What a method hands back: kept indices, optional per-sample scores, diagnostics, and for
    dedup methods the audit trail: `twin` (the kept sample a removed one is nearest to, -1 for none)
    and `similarity` (their cosine, NaN for none); and where the method knows it, `cause` (the
    sample whose similarity removed it, -1 for none) and `cause_similarity` (that cosine)."""

    kept: np.ndarray
    scores: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)
    twin: np.ndarray | None = None
    similarity: np.ndarray | None = None
    cause: np.ndarray | None = None
    cause_similarity: np.ndarray | None = None


def check_finite_scores(method: str, scores: np.ndarray | None) -> None:
    """Refuse a method's scores when any is NaN or infinite: ranking them would keep an arbitrary
    set (NaN ties break by index) without saying so."""
    if scores is None:
        return
    bad = ~np.isfinite(np.asarray(scores, dtype=np.float64))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"{method}: {int(bad.sum())} of {bad.size} scores are not finite (sample {first}: "
            f"{float(np.asarray(scores, dtype=np.float64)[first])}); refusing to select by them"
        )


def _validated_init(init: Any) -> Any:
    """`init` preceded by the check of its arguments (defaults included) against the spec of the
    object's class, once: when a subclass's constructor calls this one through super(), the
    subclass's own constructor has checked them already."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        klass = type(self)
        if klass.__init__ is __init__:  # the constructor the caller called, not one reached by super()
            owner = getattr(klass, "name", klass.__name__)
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"{owner}: {exc}") from None
            bound.apply_defaults()
            klass.param_spec.validate(owner, {k: v for k, v in bound.arguments.items() if k != "self"})
        init(self, *args, **kwargs)

    return __init__


class Method(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]
    # The constraints of every constructor parameter (adaprune.params); checked once, at construction,
    # before the constructor runs. tests/test_params.py requires one entry per parameter.
    param_spec: ClassVar[ParamSpec] = ParamSpec({})
    # True: a higher score is more worth keeping; False: lower; None: the method has no score.
    higher_is_keep: ClassVar[bool | None] = None
    # Whether the method trains a model (then it honours --epochs and --model).
    trains_model: ClassVar[bool] = False
    # For scorers whose direction flips below a kept fraction (see scores.Direction).
    switch_keep: float | None = None
    # The task kinds the method makes sense for (see adaprune.tasks); others are refused in one line.
    # Methods that need only a per-sample loss or an embedding take both.
    supported_tasks: ClassVar[tuple[str, ...]] = ("classification",)
    # Whether the method can remove by a similarity threshold instead of a budget (`run_threshold`).
    has_threshold: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _validated_init(cls.__dict__["__init__"])  # type: ignore[method-assign]

    @classmethod
    def check_task(cls, task: Task) -> None:
        """Refuse, in one line, a task this method does not make sense for."""
        if task.kind not in cls.supported_tasks:
            raise ConfigError(
                f"method {cls.name!r} supports {' and '.join(cls.supported_tasks)} tasks, "
                f"but {task.data.name} is a {task.kind} source"
            )

    def params(self) -> dict[str, Any]:
        """The constructor's keyword parameters and their values (each is stored under its name)."""
        return {n: getattr(self, n) for n in method_parameters(type(self))}

    @classmethod
    def describe_direction(cls) -> str:
        if cls.kind == "selector":
            return "owns its keep decision"
        return Direction(bool(cls.higher_is_keep), cls.switch_keep).describe()

    @abstractmethod
    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult: ...

    def run_threshold(self, task: Task, threshold: float, *, seed: int,
                      progress: bool) -> MethodResult:
        """Remove every sample more similar than `threshold` to one it keeps (methods with `has_threshold`)."""
        raise ConfigError(f"method {self.name!r} has no similarity threshold; give keep or prune instead")


class Scorer(Method):
    """One number per sample and a declared direction; the shared selection module keeps the top."""

    kind = "scorer"
    # When True, keep per-class quotas in proportion to class sizes.
    balance_classes: bool = False

    @abstractmethod
    def score(self, task: Task, *, seed: int, progress: bool) -> np.ndarray: ...

    def direction(self) -> Direction:
        assert self.higher_is_keep is not None, "a scorer must declare its direction"
        return Direction(self.higher_is_keep, self.switch_keep)

    def score_set(self, task: Task, *, seed: int, progress: bool) -> ScoreSet:
        self.check_task(task)
        scores = np.asarray(self.score(task, seed=seed, progress=progress), dtype=np.float64)
        if scores.shape != (task.n,):
            raise AssertionError(f"{self.name} returned {scores.shape} scores for {task.n} samples")
        check_finite_scores(self.name, scores)
        balance = "class" if self.balance_classes and task.labels is not None else "none"
        return ScoreSet(scores=scores, direction=self.direction(), method=self.name, params=self.params(),
                        seed=seed, labels=task.labels, balance=balance)

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        score_set = self.score_set(task, seed=seed, progress=progress)
        kept, _ = keep_from_scores(score_set, n_keep)  # the same rule as select_scores
        return MethodResult(kept=kept, scores=score_set.scores)


class Selector(Method):
    kind = "selector"
