"""The Python API the CLI mirrors: load_data, prune, evaluate, benchmark."""

from __future__ import annotations

import dataclasses
import logging
import math
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


def train_config(
    *,
    device: str = "cpu",
    epochs: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
) -> TrainConfig:
    """The training we do, from the API's keywords; None keeps TrainConfig's default."""
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if weight_decay is not None and not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay!r}")
    given = {"epochs": epochs, "optimizer": optimizer, "lr": lr, "batch_size": batch_size,
             "weight_decay": weight_decay}
    return TrainConfig(device=device, **{k: v for k, v in given.items() if v is not None})


def training_record(config: TrainConfig) -> dict[str, Any]:
    """How a method's models were trained, as recorded in score and selection metadata (a method's
    own epochs are among its parameters)."""
    return {"optimizer": config.optimizer, "lr": config.lr, "batch_size": config.batch_size,
            "weight_decay": config.weight_decay}


def _method_and_task(
    data: str | Dataset,
    method: str | Method,
    *,
    model: ModelSpec,
    epochs: int | None,
    device: str,
    params: Mapping[str, Any] | None,
    train: TrainConfig | None = None,
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
    task = make_task(dataset, model=model, train=train or TrainConfig(device=device))
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
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
) -> Selection:
    """Choose which samples of `data` to keep. Give exactly one of `keep` or `prune` (fractions).

    `epochs` sets the training length of methods that train a model (their `epochs` parameter);
    `params` are the method's own keyword parameters; `balance="class"` keeps class shares,
    "none" ranks globally, None follows the method's own rule (scoring methods). For a scoring
    method this is exactly `score` followed by `select`.
    `encoder` (an encoder spec, see `adaprune.embed`) and `embeddings` (a .npy of one row per
    sample, e.g. from `adaprune embed`) go to methods that work on embeddings (semdedup, adadedup; `encoder`
    is the `embedding` of herding, k-center, Moderate-DS and prototypes).
    `optimizer` ("adam" or "sgd"), `lr`, `batch_size` and `weight_decay` set how methods that train
    a model train it (None: the defaults of `TrainConfig`); they are recorded in the selection's
    metadata (`details.training`)."""
    budget = Budget.from_args(keep=keep, prune=prune)
    train = train_config(device=device, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay)
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
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params,
                                        train=train)
    n_keep = budget.count(task.n)
    start = time.perf_counter()
    if isinstance(method_obj, Scorer):
        score_set = _with_training(method_obj.score_set(task, seed=seed, progress=progress), method_obj, train)
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
            details={**result.details, **_training_details(method_obj, train)},
        )
    log.info("%s kept %d of %d samples in %.1f s", method_obj.name, selection.n_kept, task.n,
             time.perf_counter() - start)
    return selection


def _training_details(method: Method, train: TrainConfig) -> dict[str, Any]:
    return {"training": training_record(train)} if method.trains_model else {}


def _with_training(score_set: ScoreSet, method: Method, train: TrainConfig) -> ScoreSet:
    extra = _training_details(method, train)
    return dataclasses.replace(score_set, details={**score_set.details, **extra}) if extra else score_set


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
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
) -> ScoreSet:
    """Per-sample scores of a scoring method, to select from at any budget with `select`.
    `optimizer`, `lr`, `batch_size`, `weight_decay`: as for `prune`."""
    train = train_config(device=device, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay)
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params,
                                        train=train)
    if not isinstance(method_obj, Scorer):
        raise ConfigError(
            f"method {method_obj.name!r} decides its kept set for a given budget and has no reusable score; "
            "use prune"
        )
    return _with_training(method_obj.score_set(task, seed=seed, progress=progress), method_obj, train)


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
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    match_steps: bool = False,
) -> EvaluationResult:
    """Train fresh models on the kept subset and on the full set; the test metric per seed
    (accuracy for classification, COCO mAP for detection). `optimizer`, `lr`, `batch_size` and
    `weight_decay` set that training. With `match_steps`, the subset trains for as many optimisation
    steps as the full set does in `epochs` epochs (more epochs on a smaller subset) instead of the
    same number of epochs."""
    dataset = _as_dataset(data, test)
    sel = Selection.load(selection) if isinstance(selection, str) else selection
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds}")
    train = train_config(device=device, epochs=epochs, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay)
    task = make_task(dataset, model=model, train=train)
    return evaluate_selection(task, sel, seeds=seed_list, include_full=include_full, progress=progress,
                              match_steps=match_steps)


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
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    match_steps: bool = False,
) -> BenchmarkResult:
    """Prune with every method at every fraction and seed, then train and test a fresh model on each
    kept subset (and on the full set once per seed). `epochs` is the evaluation training length;
    `optimizer`, `lr`, `batch_size`, `weight_decay` set every training (methods' and evaluation's);
    `match_steps`: each subset trains for the full set's number of optimisation steps."""
    dataset = _as_dataset(data, test)
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    options = {"optimizer": optimizer, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay}
    eval_task = make_task(dataset, model=model, train=train_config(device=device, epochs=epochs, **options))
    method_task = make_task(dataset, model=model, train=train_config(device=device, **options))
    eval_task.require_test()  # no test split: fail now, not after the first method has run
    return run_benchmark(
        eval_task, methods, prunes, seed_list, method_task=method_task,
        method_params=method_params, progress=progress, command=command, match_steps=match_steps,
    )
