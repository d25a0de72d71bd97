"""The benchmark's accuracy plot, drawn on a `matplotlib.figure.Figure` without pyplot.

Nothing here calls `matplotlib.use` or imports pyplot: a library that switches the backend turns
off inline figures in a notebook for the rest of the session. A `Figure` renders to PNG through
its own canvas, and in a notebook it displays like any other figure.

Every method gets its own colour and marker (no two methods share both), and the legend sits
outside the axes so it never covers a curve. With a single pruning fraction a line plot would
stack every method at one x, so it becomes a dot plot: one labelled row per method.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def method_styles(methods: Sequence[str]) -> dict[str, tuple[tuple[float, float, float, float], str]]:
    """(colour, marker) per method, all colours distinct: tab10 up to 10 methods, tab20 up to 20
    (its dark shades first), evenly spaced on a continuous map beyond that."""
    from matplotlib import colormaps

    n = len(methods)
    if n <= 10:
        colours = [colormaps["tab10"](i) for i in range(n)]
    elif n <= 20:
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        colours = [colormaps["tab20"](i) for i in order[:n]]
    else:
        colours = [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]
    return {m: (tuple(colours[i]), MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def accuracy_figure(
    *,
    dataset: str,
    methods: Sequence[str],
    prunes: Sequence[float],
    cell: Callable[[str, float], tuple[float, float]],
    full_values: Sequence[float],
    n_seeds: int,
    metric_label: str = "accuracy",
) -> Figure:
    """The test metric (%) against the fraction pruned, one curve per method, full data dashed (the
    AdaPruner paper's Fig. 2); a labelled dot plot when there is one fraction. `cell(method, prune)`
    gives (mean, std) as fractions; `full_values` the full-data metric per seed."""
    from matplotlib.figure import Figure

    styles = method_styles(methods)
    full_mean, full_std = _mean_std(full_values)
    if len(prunes) == 1:
        return _dot_plot(dataset, methods, prunes[0], cell, full_mean, full_std, n_seeds, styles, metric_label)
    fig = Figure(figsize=(7.5, 4.2), dpi=120)
    ax = fig.add_subplot()
    xs = [100 * p for p in prunes]
    for m in methods:
        stats = [cell(m, p) for p in prunes]
        colour, marker = styles[m]
        ax.errorbar(xs, [100 * s[0] for s in stats], yerr=[100 * s[1] for s in stats], color=colour,
                    marker=marker, markersize=5, capsize=3, linewidth=1.2, label=m)
    ax.axhline(100 * full_mean, linestyle="--", color="gray", label="full data")
    ax.set_xlabel("fraction of training set pruned (%)")
    ax.set_ylabel(f"test {metric_label} (%)")
    ax.set_xticks(xs)
    ax.set_title(f"{dataset}: {metric_label} after pruning ({n_seeds} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def _dot_plot(dataset, methods, prune, cell, full_mean, full_std, n_seeds, styles, metric_label) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 1.2 + 0.45 * len(methods)), dpi=120)
    ax = fig.add_subplot()
    rows = np.arange(len(methods))[::-1]  # first method on top
    for row, m in zip(rows, methods, strict=True):
        mean, std = cell(m, prune)
        colour, marker = styles[m]
        ax.errorbar([100 * mean], [row], xerr=[100 * std], color=colour, marker=marker, markersize=7, capsize=4)
        ax.annotate(f"{100 * mean:.2f} ± {100 * std:.2f}", (100 * mean, row), xytext=(0, 7),
                    textcoords="offset points", ha="center", fontsize="small")
    ax.axvline(100 * full_mean, linestyle="--", color="gray")
    ax.annotate(f"full data {100 * full_mean:.2f} ± {100 * full_std:.2f}", (100 * full_mean, rows.max() + 0.5),
                xytext=(-4, 0), textcoords="offset points", ha="right", va="center", fontsize="small", color="gray")
    ax.set_yticks(rows, list(methods))
    ax.set_ylim(-0.7, len(methods) - 0.1)
    ax.set_xlabel(f"test {metric_label} (%)")
    ax.set_title(f"{dataset}: {100 * prune:.0f}% pruned ({n_seeds} seeds)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> None:
    """Write `fig` as PNG (to an open path; callers wrap this in `atomic_write`)."""
    fig.savefig(path, format="png", bbox_inches="tight")
