"""The Python API the CLI mirrors: load_data, prune, evaluate, benchmark."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from adaprune.data import Dataset, load_data
from adaprune.errors import ConfigError
from adaprune.evaluate.benchmark import BenchmarkResult, run_benchmark
from adaprune.evaluate.harness import EvaluationResult, evaluate_selection
from adaprune.methods.base import Method, Scorer
from adaprune.registry import build_method, get_method, method_parameters
from adaprune.scores import BALANCE_CHOICES, ScoreSet, select_scores
from adaprune.selection import Budget, Selection
from adaprune.tasks import Task, make_task
from adaprune.tasks.classification import ModelSpec
from adaprune.training.loop import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["benchmark", "build_method", "evaluate", "load_data", "prune", "score", "select"]

DEFAULT_EVAL_EPOCHS = 30


def _as_dataset(data: str | Dataset, test: str | None = None) -> Dataset:
    return load_data(data, test=test)


def _method_and_task(
    data: str | Dataset,
    method: str | Method,
    *,
    model: ModelSpec,
    epochs: int | None,
    device: str,
    params: Mapping[str, Any] | None,
) -> tuple[Method, Task]:
    dataset = _as_dataset(data)
    params = dict(params or {})
    if isinstance(method, str):
        cls = get_method(method)
        if epochs is not None:
            if cls.trains_model and "epochs" in method_parameters(cls):
                params["epochs"] = epochs
            else:
                log.warning("method %r trains no model; epochs=%s is not used", method, epochs)
        method_obj = build_method(method, params)
    else:
        if params:
            raise ConfigError("params are for a method given by name; configure a Method object directly")
        method_obj = method
    task = make_task(dataset, model=model, train=TrainConfig(device=device))
    method_obj.check_task(task)
    return method_obj, task


def prune(
    data: str | Dataset,
    method: str | Method = "adapruner",
    *,
    keep: float | None = None,
    prune: float | None = None,
    seed: int = 0,
    model: ModelSpec = "auto",
    epochs: int | None = None,
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
    balance: str | None = None,
    progress: bool = True,
    encoder: str | None = None,
    embeddings: str | None = None,
) -> Selection:
    """Choose which samples of `data` to keep. Give exactly one of `keep` or `prune` (fractions).

    `epochs` sets the training length of methods that train a model (their `epochs` parameter);
    `params` are the method's own keyword parameters; `balance="class"` keeps class shares,
    "none" ranks globally, None follows the method's own rule (scoring methods). For a scoring
    method this is exactly `score` followed by `select`.
    `encoder` (an encoder spec, see `adaprune.embed`) and `embeddings` (a .npy of one row per
    sample, e.g. from `adaprune embed`) go to methods that work on embeddings (semdedup, adadedup; `encoder`
    is the `embedding` of herding, k-center, Moderate-DS and prototypes)."""
    budget = Budget.from_args(keep=keep, prune=prune)
    if balance is not None and balance not in BALANCE_CHOICES:
        raise ConfigError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, got {balance!r}")
    for key, value in (("encoder", encoder), ("embeddings", embeddings)):
        if value is None:
            continue
        if not isinstance(method, str):
            raise ConfigError(f"{key} is for a method given by name; configure a Method object directly")
        declared = method_parameters(get_method(method))
        # The geometric baselines call their encoder spec `embedding`.
        target = "embedding" if key == "encoder" and "embedding" in declared else key
        if target not in declared:
            raise ConfigError(f"method {method!r} takes no {key}; it applies to methods that work on embeddings")
        params = {**(params or {}), target: value}
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params)
    n_keep = budget.count(task.n)
    start = time.perf_counter()
    if isinstance(method_obj, Scorer):
        score_set = method_obj.score_set(task, seed=seed, progress=progress)
        selection = select_scores(score_set, keep=budget.keep, balance=balance)
    else:
        if balance is not None:
            raise ConfigError(f"method {method_obj.name!r} owns its keep decision; balance applies to scoring methods")
        result = method_obj.run(task, n_keep, seed=seed, progress=progress)
        selection = Selection(
            kept=result.kept,
            n_total=task.n,
            method=method_obj.name,
            params=method_obj.params(),
            seed=seed,
            requested_keep=budget.keep,
            scores=result.scores,
            higher_is_keep=method_obj.higher_is_keep,
            details=result.details,
        )
    log.info("%s kept %d of %d samples in %.1f s", method_obj.name, selection.n_kept, task.n,
             time.perf_counter() - start)
    return selection


def score(
    data: str | Dataset,
    method: str | Scorer,
    *,
    seed: int = 0,
    model: ModelSpec = "auto",
    epochs: int | None = None,
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> ScoreSet:
    """Per-sample scores of a scoring method, to select from at any budget with `select`."""
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params)
    if not isinstance(method_obj, Scorer):
        raise ConfigError(
            f"method {method_obj.name!r} decides its kept set for a given budget and has no reusable score; "
            "use prune"
        )
    return method_obj.score_set(task, seed=seed, progress=progress)


def select(
    scores: ScoreSet | str,
    *,
    keep: float | None = None,
    prune: float | None = None,
    balance: str | None = None,
) -> Selection:
    """Keep exactly round(keep * N) samples of a score file by its declared direction."""
    score_set = ScoreSet.load(scores) if isinstance(scores, str) else scores
    return select_scores(score_set, keep=keep, prune=prune, balance=balance)


def evaluate(
    data: str | Dataset,
    selection: Selection | str,
    *,
    seeds: int | Sequence[int] = 3,
    epochs: int = DEFAULT_EVAL_EPOCHS,
    model: ModelSpec = "auto",
    device: str = "cpu",
    include_full: bool = True,
    test: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Train fresh models on the kept subset and on the full set; the test metric per seed
    (accuracy for classification, COCO mAP for detection)."""
    dataset = _as_dataset(data, test)
    sel = Selection.load(selection) if isinstance(selection, str) else selection
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds}")
    task = make_task(dataset, model=model, train=TrainConfig(epochs=epochs, device=device))
    return evaluate_selection(task, sel, seeds=seed_list, include_full=include_full, progress=progress)


def benchmark(
    data: str | Dataset,
    methods: Sequence[str],
    prunes: Sequence[float],
    *,
    seeds: int | Sequence[int] = 3,
    epochs: int = DEFAULT_EVAL_EPOCHS,
    model: ModelSpec = "auto",
    device: str = "cpu",
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    test: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> BenchmarkResult:
    """Prune with every method at every fraction and seed, then train and test a fresh model on each
    kept subset (and on the full set once per seed). `epochs` is the evaluation training length."""
    dataset = _as_dataset(data, test)
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    eval_task = make_task(dataset, model=model, train=TrainConfig(epochs=epochs, device=device))
    method_task = make_task(dataset, model=model, train=TrainConfig(device=device))
    eval_task.require_test()  # no test split: fail now, not after the first method has run
    return run_benchmark(
        eval_task, methods, prunes, seed_list, method_task=method_task,
        method_params=method_params, progress=progress, command=command,
    )
