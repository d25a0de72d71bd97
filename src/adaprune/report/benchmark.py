"""The report of a benchmark folder (results.json from `adaprune benchmark`): the metric against the
fraction pruned with its spread over seeds, and the table behind it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.defaults import METRIC_LABELS
from adaprune.errors import DataError
from adaprune.report._html import esc, figure_img, meta_list, new_figure, page, section, table


@dataclass(frozen=True)
class BenchmarkRuns:
    """What the report reads from results.json: one metric value per (method, prune, seed)."""

    dataset: str
    metric: str
    methods: tuple[str, ...]
    prunes: tuple[float, ...]
    seeds: tuple[int, ...]
    values: dict[tuple[str, float], list[float]]  # (method, prune) -> one value per seed
    seconds: dict[str, list[float]]  # method -> pruning seconds of each run
    full: tuple[float, ...]
    about: dict[str, Any]

    @staticmethod
    def load(folder: str | Path) -> BenchmarkRuns:
        path = Path(folder) / "results.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            metric = str(doc.get("metric", "accuracy"))
            values: dict[tuple[str, float], list[float]] = {}
            seconds: dict[str, list[float]] = {}
            for run in doc["runs"]:
                # `value` holds the task's metric; files written before it was named hold "accuracy".
                value = next(run[k] for k in ("value", metric, "accuracy") if k in run)
                values.setdefault((run["method"], float(run["prune"])), []).append(float(value))
                seconds.setdefault(run["method"], []).append(float(run.get("prune_seconds", np.nan)))
            return BenchmarkRuns(
                dataset=str(doc.get("dataset", "?")), metric=metric, methods=tuple(doc["methods"]),
                prunes=tuple(float(p) for p in doc["prunes"]), seeds=tuple(doc["seeds"]), values=values,
                seconds=seconds, full=tuple(float(v) for v in doc.get("full_values", doc.get("full_accuracy", ()))),
                about={k: doc.get(k) for k in ("n_train", "n_test", "model", "epochs", "input_size", "command")}
                | {"machine": (doc.get("machine") or {}).get("summary", "")},
            )
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
            raise DataError(f"benchmark folder {str(folder)!r}: cannot read results.json ({exc})") from None

    @property
    def label(self) -> str:
        """The metric as tables name it (detection: mAP@[.5:.95])."""
        return METRIC_LABELS.get(self.metric, self.metric)

    def stats(self, method: str, prune: float) -> tuple[float, float]:
        vals = np.asarray(self.values.get((method, prune), []), dtype=np.float64)
        if vals.size == 0:
            return float("nan"), float("nan")
        return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0


def _plot(runs: BenchmarkRuns) -> str:
    fig = new_figure(7.5, 4.2)
    ax = fig.subplots()
    xs = np.array([100 * p for p in runs.prunes])
    for i, method in enumerate(runs.methods):
        colour = f"C{i % 10}"
        stats = np.array([runs.stats(method, p) for p in runs.prunes])
        ax.fill_between(xs, 100 * (stats[:, 0] - stats[:, 1]), 100 * (stats[:, 0] + stats[:, 1]), color=colour,
                        alpha=0.15, linewidth=0)
        ax.plot(xs, 100 * stats[:, 0], marker="o", color=colour, label=method)
        for x, p in zip(xs, runs.prunes, strict=True):  # every seed, faint
            vals = runs.values.get((method, p), [])
            ax.scatter([x] * len(vals), [100 * v for v in vals], s=9, color=colour, alpha=0.45, linewidths=0)
    if runs.full:
        mean, std = float(np.mean(runs.full)), float(np.std(runs.full, ddof=1)) if len(runs.full) > 1 else 0.0
        ax.axhline(100 * mean, linestyle="--", color="0.35", linewidth=1, label="full data")
        ax.axhspan(100 * (mean - std), 100 * (mean + std), color="0.5", alpha=0.12, linewidth=0)
    ax.set_xlabel("fraction of the training set pruned (%)")
    ax.set_ylabel(f"test {runs.label} (%)")
    ax.set_title(f"{runs.dataset}: mean ± std over {len(runs.seeds)} seed(s); dots are single seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return figure_img(fig, f"{runs.label} against fraction pruned")


def _cell(mean: float, std: float, n_values: int) -> str:
    """`mean ± std` in %; a single seed has no std to show."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n_values > 1 else f"{100 * mean:.2f}"


def _summary_table(runs: BenchmarkRuns) -> str:
    head = ["method", *[f"{p:.0%} pruned" for p in runs.prunes], "pruning time (s, mean)"]
    rows, marks = [], []
    baseline = "random" if "random" in runs.methods else None
    for method in runs.methods:
        row: list[Any] = [method]
        mark = [""]
        for p in runs.prunes:
            mean, std = runs.stats(method, p)
            row.append(_cell(mean, std, len(runs.values.get((method, p), []))))
            if baseline and method != baseline:
                base = runs.stats(baseline, p)[0]
                mark.append("worse" if mean < base else "better" if mean > base else "")
            else:
                mark.append("")
        secs = np.asarray(runs.seconds.get(method, []), dtype=np.float64)
        row.append(f"{np.nanmean(secs):.1f}" if secs.size and not np.isnan(secs).all() else "")
        mark.append("")
        rows.append(row)
        marks.append(mark)
    if runs.full:
        mean = float(np.mean(runs.full))
        std = float(np.std(runs.full, ddof=1)) if len(runs.full) > 1 else 0.0
        rows.append(["full data (0% pruned)", *[_cell(mean, std, len(runs.full))] * len(runs.prunes), ""])
        marks.append([""] * len(head))
    note = ""
    if baseline:
        spread = f"mean ± std over seeds {list(runs.seeds)}" if len(runs.seeds) > 1 else f"seed {runs.seeds[0]}"
        note = (f"<p class=\"note\">Test {esc(runs.label)} (%), {spread}. "
                "Green: above random at that fraction; red: below random (the method loses to the baseline).</p>")
    return table(head, rows, marks) + note


def render_benchmark_report(folder: str | Path) -> str:
    runs = BenchmarkRuns.load(folder)
    about = [(k, v) for k, v in runs.about.items() if v not in (None, "")]
    subtitle = (f"Benchmark of {len(runs.methods)} method(s) on <b>{esc(runs.dataset)}</b> at "
                f"{len(runs.prunes)} fraction(s), {len(runs.seeds)} seed(s) &middot; from {esc(Path(folder))}")
    return page(
        f"adaprune benchmark: {runs.dataset}", subtitle,
        [
            section(f"Test {runs.label} against fraction pruned", _plot(runs)),
            section("Table", _summary_table(runs)),
            section("How it was run", meta_list(about)),
        ],
    )
