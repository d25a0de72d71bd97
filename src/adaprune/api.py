"""The Python API the CLI mirrors: load_data, prune, evaluate, benchmark."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaprune.data import Dataset, load_data
from adaprune.data.selected import selection_and_data
from adaprune.defaults import DEFAULT_EVAL_EPOCHS
from adaprune.errors import ConfigError
from adaprune.evaluate.benchmark import BenchmarkResult, run_benchmark
from adaprune.evaluate.harness import EvaluationResult, evaluate_selection
from adaprune.groups import whole_groups
from adaprune.methods._labels import refuse_missing_labels
from adaprune.methods.base import Method, MethodResult, Scorer, check_finite_scores
from adaprune.naming import option
from adaprune.registry import build_method, get_method, method_parameters
from adaprune.scores import BALANCE_CHOICES, ScoreSet, select_scores
from adaprune.selection import (
    STARVED_SHARE,
    Budget,
    Selection,
    check_seed,
    check_threshold,
    count_classes,
    data_record,
    describe_class_counts,
    starved_classes,
)
from adaprune.tasks import Task, make_task
from adaprune.tasks.classification import ModelSpec
from adaprune.threads import resolve_threads, torch_threads
from adaprune.training.loop import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["benchmark", "build_method", "evaluate", "load_data", "name_samples", "prune", "score", "select"]


def _as_dataset(data: str | Dataset, test: str | Dataset | None = None, input_size: int | None = None) -> Dataset:
    return load_data(data, test=test, size=input_size)


def input_record(data: Any) -> dict[str, Any]:
    """What every selection, score file and result records of how detection images were fed: the
    letterboxed input side (nothing for other data)."""
    size = getattr(data, "input_size", None)
    return {} if size is None else {"input_size": int(size)}


def with_category_counts(selection: Selection, data: Any) -> Selection:
    """Detection: the selection with per-category kept counts (images holding the category and its
    objects); logs them, and warns for a category that keeps less than STARVED_SHARE of its share of objects."""
    counts_of = getattr(data, "category_counts", None)
    if counts_of is None or data.n != selection.n_total:
        return selection
    counts = counts_of(selection.kept)
    log.info("kept per category (images with it; objects): %s", ", ".join(
        f"{c['category']}: {c['images_kept']}/{c['images']} images, {c['objects_kept']}/{c['objects']} objects"
        for c in counts))
    keep = selection.realised_keep
    for c in counts:
        if c["objects"] and c["objects_kept"] < STARVED_SHARE * keep * c["objects"]:
            log.warning("category %s keeps %d of %d objects (%.0f%%, against %.0f%% of images overall)",
                        c["category"], c["objects_kept"], c["objects"], 100 * c["objects_kept"] / c["objects"],
                        100 * keep)
    return dataclasses.replace(selection, details={**selection.details, "category_counts": list(counts)})


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
    standardize: bool,
    train: TrainConfig | None = None,
    input_size: int | None = None,
) -> tuple[Method, Task]:
    dataset = _as_dataset(data, input_size=input_size)
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
    refuse_missing_labels(method_obj, dataset)
    task = _make_task(dataset, model=model, train=train or TrainConfig(device=device), standardize=standardize)
    method_obj.check_task(task)
    return method_obj, task


def _make_task(dataset: Any, *, model: ModelSpec, train: TrainConfig, standardize: bool) -> Task:
    task = make_task(dataset, model=model, train=train)
    if not standardize and hasattr(task, "standardize"):
        task = dataclasses.replace(task, standardize=False)
    return task


def with_class_counts(selection: Selection, labels: np.ndarray | None) -> Selection:
    """The selection with its per-class kept counts; logs them, and warns for a class that keeps less
    than STARVED_SHARE of its proportional share (a kept set without it may train to chance)."""
    if labels is None or len(labels) != selection.n_total:
        return selection
    counts = count_classes(selection.kept, labels)
    log.info("%s", describe_class_counts(counts))
    for c in starved_classes(counts, selection.realised_keep):
        log.warning(
            "class %s keeps %d of %d samples (%.0f%%, against %.0f%% overall: under %.0f%% of its share); "
            "%s keeps every class's share",
            c.label, c.kept, c.total, 100 * c.kept / c.total, 100 * selection.realised_keep, 100 * STARVED_SHARE,
            option("balance='class'", "--balance class"),
        )
    return dataclasses.replace(selection, class_counts=counts)


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
    threads: int | None = None,
    standardize: bool = True,
    threshold: float | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    input_size: int | None = None,
) -> Selection:
    """Choose which samples of `data` to keep. Give exactly one of `keep` or `prune` (fractions),
    or, for a method that has one (semdedup), a similarity `threshold` instead: every sample whose
    redundancy M (largest cosine to an earlier sample it is compared with) is above it is removed,
    and the realised fraction is whatever that gives (`Selection.realised_keep`).

    `epochs` sets the training length of methods that train a model (their `epochs` parameter);
    `params` are the method's own keyword parameters; `balance="class"` keeps class shares,
    "none" ranks globally, None follows the method's own rule (scoring methods). For a scoring
    method this is exactly `score` followed by `select`.
    `encoder` (an encoder spec, see `adaprune.embed`) and `embeddings` (a .npy of one row per
    sample, e.g. from `adaprune embed`) go to methods that work on embeddings (semdedup, adadedup; `encoder`
    is the `embedding` of herding, k-center, Moderate-DS and prototypes). `balance` also applies to
    selectors whose decision is a ranking (adapruner's budget binarisation); others refuse it.
    `threads`: torch CPU threads (default: $ADAPRUNE_THREADS, else 1 for the built-in models).
    `standardize`: built-in models standardise vector (N, D) inputs with the training split's mean
    and std (False: as given).
    `optimizer` ("adam" or "sgd"), `lr`, `batch_size` and `weight_decay` set how methods that train
    a model train it (None: the defaults of `TrainConfig`); they are recorded in the selection's
    metadata (`details.training`).
    `input_size` (detection sources given by spec): the side images are letterboxed to, recorded in
    `details.input_size`.
    The selection records per-class kept counts (detection: per category, `details.category_counts`)
    and warns when a class loses most of its share."""
    if threshold is not None:
        if keep is not None or prune is not None:
            raise ConfigError("give either threshold or keep/prune, not both")
        check_threshold(threshold)
        cls = get_method(method) if isinstance(method, str) else type(method)
        if not cls.has_threshold:
            raise ConfigError(f"method {cls.name!r} has no similarity threshold; give keep or prune instead")
        budget = None
    else:
        budget = Budget.from_args(keep=keep, prune=prune)
    seed = check_seed(seed)
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
    if balance is not None and isinstance(method, str) and get_method(method).kind == "selector":
        # A selector whose keep decision is a ranking under the budget takes `balance` as its own parameter.
        if "balance" not in method_parameters(get_method(method)):
            raise ConfigError(
                f"method {method!r} owns its keep decision and has no ranking to split by class; "
                "balance applies to scoring methods and adapruner"
            )
        params = {**(params or {}), "balance": balance}
        balance = None
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params,
                                        standardize=standardize, train=train, input_size=input_size)
    n_threads = resolve_threads(threads, model=model, device=device)
    n_keep = None if budget is None else budget.count(task.n)
    start = time.perf_counter()
    if budget is None:
        assert threshold is not None
        if balance is not None:
            raise ConfigError("balance applies to scoring methods, not to a threshold")
        with torch_threads(n_threads):
            result = method_obj.run_threshold(task, threshold, seed=seed, progress=progress)
        selection = _selection_of(result, method_obj, task.n, seed=seed,
                                  requested_keep=len(result.kept) / task.n, train=task.train)
        log.info("%s: threshold %g removed %d of %d samples (realised prune fraction %.4f)", method_obj.name,
                 threshold, task.n - selection.n_kept, task.n, 1 - selection.realised_keep)
    elif isinstance(method_obj, Scorer):
        with torch_threads(n_threads):
            score_set = _with_training(method_obj.score_set(task, seed=seed, progress=progress), method_obj, task.train)
        selection = select_scores(score_set, keep=budget.keep, balance=balance)
    else:
        if balance is not None:
            raise ConfigError(
                f"method {method_obj.name!r} owns its keep decision; balance applies to scoring methods "
                "(and to adapruner as its `balance` parameter)"
            )
        with torch_threads(n_threads):
            result = method_obj.run(task, n_keep, seed=seed, progress=progress)
        selection = _selection_of(result, method_obj, task.n, seed=seed, requested_keep=budget.keep,
                                  train=task.train)
    selection = _bind_to_source(selection, task.data, selection.n_kept if n_keep is None else n_keep)
    log.info("%s kept %d of %d samples in %.1f s (%d torch thread%s)", method_obj.name, selection.n_kept,
             task.n, time.perf_counter() - start, n_threads, "" if n_threads == 1 else "s")
    selection = dataclasses.replace(selection, details={
        **selection.details, "threads": n_threads, "standardize": getattr(task, "standardizes", False),
        **input_record(task.data),
    })
    selection = with_class_counts(selection, getattr(task, "labels", None))
    selection = with_category_counts(selection, task.data)
    return dataclasses.replace(name_samples(selection, task.data), data=data_record(task.data))


def name_samples(selection: Selection, data: Dataset) -> Selection:
    """The selection with the source's sample names (a `path` column for file sources, `id` for
    other ids) and the files it skipped as unreadable."""
    ids = getattr(data, "ids", None)
    if ids is None:
        return selection
    root = getattr(data, "id_root", None)
    column = getattr(data, "id_column", None) if root is not None else None  # container sources name two columns
    return selection.with_ids(ids, id_column=column or ("path" if root is not None else "id"), id_root=root,
                              skipped=tuple(getattr(data, "skipped", ())))


def _bind_to_source(selection: Selection, data: Any, n_keep: int) -> Selection:
    """Whole groups only (no method splits a group), and the source's own id of every sample."""
    changes: dict[str, Any] = {}
    groups = getattr(data, "groups", None)
    if groups is not None:
        kept = whole_groups(selection.kept, n_keep, groups, scores=selection.scores,
                            higher_is_keep=selection.higher_is_keep)
        if not np.array_equal(kept, selection.kept):
            log.info("%s: kept whole groups, %d samples for a budget of %d", selection.method, len(kept), n_keep)
            changes["kept"] = kept
            changes["details"] = {**selection.details, "whole_groups": {"n_before": selection.n_kept,
                                                                        "n_after": len(kept)}}
            if selection.twin is not None and selection.similarity is not None:
                changes["twin"], changes["similarity"] = _twins_within(kept, selection.twin, selection.similarity)
            if selection.cause is not None and selection.cause_similarity is not None:
                # A sample kept now has no cause of removal; a removed one keeps its cause.
                now_kept = np.zeros(selection.n_total, dtype=bool)
                now_kept[kept] = True
                changes["cause"] = np.where(now_kept, -1, selection.cause)
                changes["cause_similarity"] = np.where(now_kept, np.nan, selection.cause_similarity)
    ids = getattr(data, "ids", None)
    if ids is not None:
        changes["ids"] = ids
        # A source says which column names its samples; otherwise strings are file paths, numbers ids.
        default = "path" if np.asarray(ids).dtype.kind in "US" else "id"
        changes["id_column"] = getattr(data, "id_column", default)
    return dataclasses.replace(selection, **changes) if changes else selection


def _twins_within(kept: np.ndarray, twin: np.ndarray, similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The audit trail after whole groups moved samples: a twin that is no longer kept, and the
    twin of a sample that is now kept, become none (-1, NaN)."""
    mask = np.zeros(len(twin), dtype=bool)
    mask[kept] = True
    valid = (twin >= 0) & ~mask
    valid[valid] = mask[twin[valid]]
    return np.where(valid, twin, -1), np.where(valid, similarity, np.nan)


def _selection_of(result: MethodResult, method: Method, n_total: int, *, seed: int,
                  requested_keep: float, train: TrainConfig) -> Selection:
    check_finite_scores(method.name, result.scores)
    return Selection(
        kept=result.kept,
        n_total=n_total,
        method=method.name,
        params=method.params(),
        seed=seed,
        requested_keep=requested_keep,
        scores=result.scores,
        higher_is_keep=method.higher_is_keep,
        details={**result.details, **_training_details(method, train)},
        twin=result.twin,
        similarity=result.similarity,
        cause=result.cause,
        cause_similarity=result.cause_similarity,
    )


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
    threads: int | None = None,
    standardize: bool = True,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    input_size: int | None = None,
) -> ScoreSet:
    """Per-sample scores of a scoring method, to select from at any budget with `select`.
    `threads`, `standardize`, `optimizer`, `lr`, `batch_size`, `weight_decay`, `input_size`: as for `prune`."""
    seed = check_seed(seed)
    train = train_config(device=device, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay)
    method_obj, task = _method_and_task(data, method, model=model, epochs=epochs, device=device, params=params,
                                        standardize=standardize, train=train, input_size=input_size)
    if not isinstance(method_obj, Scorer):
        raise ConfigError(
            f"method {method_obj.name!r} decides its kept set for a given budget and has no reusable score; "
            "use prune"
        )
    n_threads = resolve_threads(threads, model=model, device=device)
    with torch_threads(n_threads):
        score_set = _with_training(method_obj.score_set(task, seed=seed, progress=progress), method_obj, task.train)
    ids = getattr(task.data, "ids", None)
    root = getattr(task.data, "id_root", None)
    return dataclasses.replace(score_set, details={
        **score_set.details, "threads": n_threads, "standardize": getattr(task, "standardizes", False),
        **input_record(task.data),
    }, data=data_record(task.data), ids=ids, id_column="path" if root is not None else "id", id_root=root)


def select(
    scores: ScoreSet | str,
    *,
    keep: float | None = None,
    prune: float | None = None,
    balance: str | None = None,
) -> Selection:
    """Keep exactly keep * N samples (rounded half up) of a score file by its declared direction."""
    score_set = ScoreSet.load(scores) if isinstance(scores, str) else scores
    return with_class_counts(select_scores(score_set, keep=keep, prune=prune, balance=balance), score_set.labels)


def _seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """Seeds 0..N-1 for a count (at least 1), or the given seeds, each checked."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}")
        return tuple(range(seeds))
    return tuple(check_seed(s) for s in seeds)


def evaluate(
    data: str | Dataset,
    selection: Selection | str,
    *,
    seeds: int | Sequence[int] = 3,
    epochs: int = DEFAULT_EVAL_EPOCHS,
    model: ModelSpec = "auto",
    device: str = "cpu",
    include_full: bool = True,
    test: str | Dataset | None = None,
    progress: bool = True,
    threads: int | None = None,
    standardize: bool = True,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    match_steps: bool = False,
    input_size: int | None = None,
) -> EvaluationResult:
    """Train fresh models on the kept subset and on the full set; the test metric per seed
    (accuracy for classification, COCO mAP for detection). `optimizer`, `lr`, `batch_size` and
    `weight_decay` set that training. With `match_steps`, the subset trains for as many optimisation
    steps as the full set does in `epochs` epochs (more epochs on a smaller subset) instead of the
    same number of epochs.
    `selection` is a Selection, a selection file, or (detection) the pruned COCO file or YOLO folder
    `prune` wrote; `test` a spec or a loaded dataset. `input_size` (detection data given by spec):
    None trains at the size the selection recorded, else the default."""
    seed_list = _seed_list(seeds)
    sel, dataset = selection_and_data(selection, data, test=test, input_size=input_size)
    train = train_config(device=device, epochs=epochs, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay)
    task = _make_task(dataset, model=model, train=train, standardize=standardize)
    with torch_threads(resolve_threads(threads, model=model, device=device)):
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
    threads: int | None = None,
    standardize: bool = True,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    match_steps: bool = False,
    input_size: int | None = None,
) -> BenchmarkResult:
    """Prune with every method at every fraction and seed, then train and test a fresh model on each
    kept subset (and on the full set once per seed). `epochs` is the evaluation training length;
    `optimizer`, `lr`, `batch_size`, `weight_decay` set every training (methods' and evaluation's);
    `match_steps`: each subset trains for the full set's number of optimisation steps; `input_size`: as
    for `prune`."""
    dataset = _as_dataset(data, test, input_size)
    seed_list = _seed_list(seeds)
    options = {"optimizer": optimizer, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay}
    eval_task = _make_task(dataset, model=model, train=train_config(device=device, epochs=epochs, **options),
                           standardize=standardize)
    method_task = _make_task(dataset, model=model, train=train_config(device=device, **options),
                             standardize=standardize)
    eval_task.require_test()  # no test split: fail now, not after the first method has run
    with torch_threads(resolve_threads(threads, model=model, device=device)):
        return run_benchmark(
            eval_task, methods, prunes, seed_list, method_task=method_task,
            method_params=method_params, progress=progress, command=command, match_steps=match_steps,
        )

