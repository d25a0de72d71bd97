from adaprune.evaluate.benchmark import BenchmarkResult, BenchmarkRun, run_benchmark
from adaprune.evaluate.harness import EvaluationResult, evaluate_selection, train_and_test

__all__ = [
    "BenchmarkResult",
    "BenchmarkRun",
    "EvaluationResult",
    "evaluate_selection",
    "run_benchmark",
    "train_and_test",
]
