"""adaprune: adaptive dataset pruning."""

from __future__ import annotations

__version__ = "0.1.0"

from adaprune.api import benchmark, evaluate, load_data, prune, score, select  # noqa: E402
from adaprune.registry import list_methods  # noqa: E402
from adaprune.scores import ScoreSet  # noqa: E402
from adaprune.selection import Budget, Selection  # noqa: E402

# Names for users' own training loops and scikit-learn; imported on first use (torch, scikit-learn).
_LAZY = {
    "AdaPrunerMask": "adaprune.adapruner_mask",
    "with_indices": "adaprune.adapruner_mask",
    "TrainingRecorder": "adaprune.recorder",
    "Pruner": "adaprune.sklearn_api",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adaprune' has no attribute {name!r}")


__all__ = [
    "AdaPrunerMask",
    "Budget",
    "Pruner",
    "TrainingRecorder",
    "with_indices",
    "ScoreSet",
    "Selection",
    "__version__",
    "benchmark",
    "evaluate",
    "list_methods",
    "load_data",
    "prune",
    "score",
    "select",
]
