"""adaprune: adaptive dataset pruning."""

from __future__ import annotations

__version__ = "0.1.0"

from adaprune.api import benchmark, evaluate, load_data, prune, score, select  # noqa: E402
from adaprune.registry import list_methods  # noqa: E402
from adaprune.scores import ScoreSet  # noqa: E402
from adaprune.selection import Budget, Selection  # noqa: E402

__all__ = [
    "Budget",
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
