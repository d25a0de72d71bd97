"""Prune and evaluate over a grid of methods x prune fractions x seeds; tables and a plot."""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.defaults import METRIC_LABELS
from adaprune.errors import ConfigError
from adaprune.evaluate.harness import format_mean_std, mean_std, train_and_test
from adaprune.io_utils import atomic_write, atomic_write_text
from adaprune.methods.base import Scorer
from adaprune.registry import build_method
from adaprune.scores import select_scores
from adaprune.selection import Budget, Selection
from adaprune.tasks.base import Task

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class BenchmarkRun:
    """One cell of the grid at one seed."""

    method: str
    prune: float
    seed: int
    n_kept: int
    value: float  # the task's primary test metric (accuracy, mAP)
    prune_seconds: float  # for a scorer: its scoring time (shared by all fractions) plus selection
    extras: dict[str, float] = field(default_factory=dict)  # secondary metrics (detection: map50)


@dataclass(frozen=True)
class BenchmarkResult:
    dataset: str
    n_train: int
    n_test: int
    model: str
    epochs: int
    methods: tuple[str, ...]
    prunes: tuple[float, ...]
    seeds: tuple[int, ...]
    metric: str  # what `value` and `full_values` hold: "accuracy", "map"
    full_values: tuple[float, ...]
    runs: tuple[BenchmarkRun, ...]
    machine: dict[str, Any]
    command: str
    full_extras: tuple[dict[str, float], ...] = ()
    # "epochs": every model trains `epochs` epochs; "steps": every subset trains the optimisation steps
    # the full set takes in `epochs` epochs (more epochs on a smaller subset).
    protocol: str = "epochs"
    training: dict[str, Any] = field(default_factory=dict)  # optimizer, lr, batch_size, weight_decay
    input_size: int | None = None  # detection: the side images were letterboxed to
    data: dict[str, Any] | None = None  # `adaprune.selection.data_record`: the classes' name-to-number map too

    def describe_protocol(self) -> str:
        size = "" if self.input_size is None else f", images letterboxed to {self.input_size} px"
        if self.protocol == "steps":
            return f"matched steps (every subset trains the full set's steps of {self.epochs} epochs){size}"
        return f"{self.epochs} epochs for every set{size}"

    def cell(self, method: str, prune: float) -> tuple[float, float]:
        values = [r.value for r in self.runs if r.method == method and r.prune == prune]
        return mean_std(values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        one_seed = len(self.seeds) < 2  # no spread to report: std is null
        d["summary"] = [
            {"method": m, "prune": p, "mean": self.cell(m, p)[0], "std": None if one_seed else self.cell(m, p)[1]}
            for m in self.methods
            for p in self.prunes
        ]
        full_mean, full_std = mean_std(self.full_values)
        d["full_data"] = {"mean": full_mean, "std": None if one_seed else full_std}
        return d

    def to_markdown(self) -> str:
        """A table like the AdaPruner paper's Table 1: the test metric (%) by fraction pruned."""
        head = ["method", *[f"{p:.0%} pruned" for p in self.prunes]]
        lines = [
            f"Test {METRIC_LABELS.get(self.metric, self.metric)} (%) on {self.dataset} "
            f"({self.n_train} train / {self.n_test} test), model "
            f"{self.model}, {self.describe_protocol()}, "
            + (f"mean ± std over seeds {list(self.seeds)}." if len(self.seeds) > 1 else f"seed {self.seeds[0]}."),
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        full_cell = format_mean_std(self.full_values, scale=100)
        lines.append("| full data (0% pruned) | " + " | ".join([full_cell] * len(self.prunes)) + " |")
        for m in self.methods:
            cells = []
            for p in self.prunes:
                cells.append(format_mean_std([r.value for r in self.runs if r.method == m and r.prune == p],
                                             scale=100))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        for extra in self.extra_names:
            # A secondary metric (detection: mAP@.5) gets its own table of the same shape.
            lines += ["", f"Test {METRIC_LABELS.get(extra, extra)} (%), same runs.", "",
                      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            full_extra = format_mean_std([e[extra] for e in self.full_extras], scale=100)
            lines.append("| full data (0% pruned) | " + " | ".join([full_extra] * len(self.prunes)) + " |")
            for m in self.methods:
                cells = []
                for p in self.prunes:
                    cells.append(format_mean_std([r.extras[extra] for r in self.runs
                                                  if r.method == m and r.prune == p], scale=100))
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += ["", f"Command: `{self.command}`", f"Machine: {self.machine.get('summary', '')}"]
        return "\n".join(lines) + "\n"

    @property
    def extra_names(self) -> tuple[str, ...]:
        """Secondary metrics every run reports (detection: map50)."""
        if not self.runs or not self.full_extras:
            return ()
        return tuple(name for name in self.runs[0].extras if all(name in r.extras for r in self.runs))

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "markdown": out / "results.md", "plot": out / "results.png"}
        atomic_write_text(paths["json"], json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write_text(paths["markdown"], self.to_markdown())
        atomic_write(paths["plot"], lambda tmp: self._plot(tmp))
        return paths

    def _plot(self, path: Path) -> None:
        # A Figure without pyplot: the library never switches matplotlib's backend (see evaluate/plots.py).
        from adaprune.evaluate.plots import accuracy_figure, save_png

        fig = accuracy_figure(dataset=self.dataset, methods=self.methods, prunes=self.prunes, cell=self.cell,
                              full_values=self.full_values, n_seeds=len(self.seeds),
                              metric_label=METRIC_LABELS.get(self.metric, self.metric))
        save_png(fig, path)


def machine_info() -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }
    info["summary"] = (
        f"{info['cpu_count']} CPUs, {info['platform']}, torch {info['torch']} ({info['torch_threads']} threads)"
    )
    return info


def run_benchmark(
    task: Task,
    methods: Sequence[str],
    prunes: Sequence[float],
    seeds: Sequence[int],
    *,
    method_task: Task | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
    command: str | None = None,
    match_steps: bool = False,
) -> BenchmarkResult:
    """For each seed: full-data accuracy once, then for every method and fraction, prune with that
    seed and train a fresh model with that seed. `task` sets the evaluation training;
    `method_task` (default: `task` with default training) is what methods train on."""
    if not methods or not prunes or not seeds:
        raise ConfigError("benchmark needs at least one method, one prune fraction and one seed")
    budgets = [Budget.from_args(prune=p) for p in prunes]
    built = {m: build_method(m, (method_params or {}).get(m)) for m in methods}
    method_task = method_task or task
    for method in built.values():
        method.check_task(method_task)  # before any training
    full = []
    runs = []
    for seed in seeds:
        full.append(train_and_test(task, None, seed=seed, progress=progress))
        log.info("seed %d: full data %s %.4f", seed, full[-1].name, full[-1].value)
        for name, method in built.items():
            # A scorer is scored once per seed and selected at every fraction, as `score` + `select` do.
            score_set, score_seconds = None, 0.0
            if isinstance(method, Scorer):
                start = time.perf_counter()
                score_set = method.score_set(method_task, seed=seed, progress=progress)
                score_seconds = time.perf_counter() - start
            for p, budget in zip(prunes, budgets, strict=True):
                start = time.perf_counter()
                if score_set is not None:
                    kept = select_scores(score_set, keep=budget.keep).kept
                else:
                    kept = method.run(method_task, budget.count(task.n), seed=seed, progress=progress).kept
                seconds = time.perf_counter() - start + score_seconds
                metric = train_and_test(task, kept, seed=seed, progress=progress, match_steps=match_steps)
                log.info("seed %d %s prune %.2f: %s %.4f (pruning took %.1f s)", seed, name, p, metric.name,
                         metric.value, seconds)
                runs.append(BenchmarkRun(name, float(p), int(seed), len(kept), metric.value, seconds,
                                         dict(metric.extras)))
    model = task.model if isinstance(task.model, str) else type(task.model).__name__
    from adaprune.selection import data_record

    return BenchmarkResult(
        data=data_record(task.data),
        dataset=task.data.name,
        n_train=task.n,
        n_test=task.n_test,
        model=model,
        epochs=task.train.epochs,
        methods=tuple(methods),
        prunes=tuple(float(p) for p in prunes),
        seeds=tuple(int(s) for s in seeds),
        metric=full[0].name,
        full_values=tuple(m.value for m in full),
        full_extras=tuple(m.extras for m in full),
        runs=tuple(runs),
        machine=machine_info(),
        command=command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        protocol="steps" if match_steps else "epochs",
        training={"optimizer": task.train.optimizer, "lr": task.train.lr, "batch_size": task.train.batch_size,
                  "weight_decay": task.train.weight_decay},
        input_size=getattr(task.data, "input_size", None),
    )


__all__ = ["BenchmarkResult", "BenchmarkRun", "Selection", "run_benchmark"]
