"""adaprune: adaptive dataset pruning.

The public names are imported on first use (a module `__getattr__`), so `import adaprune` and the
CLI's `--help`, `--version` and `methods` never import torch."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "benchmark": "adaprune.api",
    "evaluate": "adaprune.api",
    "load_data": "adaprune.api",
    "prune": "adaprune.api",
    "score": "adaprune.api",
    "select": "adaprune.api",
    "list_methods": "adaprune.registry",
    "ScoreSet": "adaprune.scores",
    "Budget": "adaprune.selection",
    "Selection": "adaprune.selection",
    # For users' own training loops and scikit-learn (torch, scikit-learn).
    "AdaPrunerMask": "adaprune.adapruner_mask",
    "with_indices": "adaprune.adapruner_mask",
    "TrainingRecorder": "adaprune.recorder",
    "Pruner": "adaprune.sklearn_api",
}

if TYPE_CHECKING:
    from adaprune.adapruner_mask import AdaPrunerMask, with_indices
    from adaprune.api import benchmark, evaluate, load_data, prune, score, select
    from adaprune.recorder import TrainingRecorder
    from adaprune.registry import list_methods
    from adaprune.scores import ScoreSet
    from adaprune.selection import Budget, Selection
    from adaprune.sklearn_api import Pruner


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """The package's module type. Importing a subpackage binds it as an attribute of its parent,
    and `adaprune.evaluate` is both the public function and the name of the subpackage the
    function lives beside: once anything imported `adaprune.evaluate.harness` (load_data does),
    `adaprune.evaluate(...)` would be the module. A subpackage never replaces a public function:
    `from adaprune.evaluate.harness import ...` and `from adaprune.evaluate import harness` still
    work (through sys.modules); only `import adaprune.evaluate.harness as h`, which walks the
    attributes, finds the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
