"""Evaluation: train fresh models on kept subsets (harness) and over a grid of methods (benchmark).

`adaprune.evaluate` names both this subpackage and the public function `adaprune.api.evaluate`.
Importing a subpackage binds it as an attribute of its parent, so once anything imported it,
`adaprune.evaluate(...)` would call a module. The module is therefore callable: calling it calls
`adaprune.api.evaluate`, and `import adaprune.evaluate.harness` keeps working."""

import sys
import types

from adaprune.evaluate.benchmark import BenchmarkResult, BenchmarkRun, run_benchmark
from adaprune.evaluate.harness import EvaluationResult, evaluate_selection, train_and_test


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from adaprune.api import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "BenchmarkResult",
    "BenchmarkRun",
    "EvaluationResult",
    "evaluate_selection",
    "run_benchmark",
    "train_and_test",
]
