"""adaprune: adaptive dataset pruning."""

from __future__ import annotations

__version__ = "0.1.0"

from adaprune.api import benchmark, evaluate, load_data, prune  # noqa: E402
from adaprune.registry import list_methods  # noqa: E402
from adaprune.selection import Budget, Selection  # noqa: E402

__all__ = ["Budget", "benchmark", "Selection", "__version__", "evaluate", "list_methods", "load_data", "prune"]
