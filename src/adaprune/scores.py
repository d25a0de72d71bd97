"""Scores as a file: compute a method's per-sample scores once, select at many budgets.

`adaprune score` writes a ScoreSet; `adaprune select` turns it into a Selection with the shared
selection module. `prune` with a scoring method is exactly score + select. Never imports torch."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaprune.errors import ConfigError, DataError
from adaprune.selection import Budget, Selection, select_top_k
from adaprune.tables import read_table, write_table

BALANCE_CHOICES = ("none", "class")


@dataclass(frozen=True)
class Direction:
    """Which end of the score is kept. With `switch_keep` set, the direction flips for kept
    fractions below it (self-supervised prototypes: hard examples at large budgets, easy at small)."""

    higher_is_keep: bool
    switch_keep: float | None = None

    def at(self, keep: float) -> bool:
        if self.switch_keep is not None and keep < self.switch_keep:
            return not self.higher_is_keep
        return self.higher_is_keep

    def describe(self) -> str:
        base = "higher score = keep" if self.higher_is_keep else "lower score = keep"
        if self.switch_keep is None:
            return base
        return f"{base} (flips when keep < {self.switch_keep:g})"


@dataclass(frozen=True)
class ScoreSet:
    """One score per sample with its declared direction, and how it was computed."""

    scores: np.ndarray
    direction: Direction
    method: str
    params: dict[str, Any]
    seed: int | None
    labels: np.ndarray | None = None
    # The method's own selection rule: "class" for methods that keep class quotas by default.
    balance: str = "none"
    library_version: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.ndim != 1 or len(scores) == 0:
            raise DataError(f"scores must be one value per sample, got shape {scores.shape}")
        object.__setattr__(self, "scores", scores)
        if self.labels is not None and len(self.labels) != len(scores):
            raise DataError(f"{len(self.labels)} labels for {len(scores)} scores")
        if not self.library_version:
            from adaprune import __version__

            object.__setattr__(self, "library_version", __version__)

    @property
    def n(self) -> int:
        return len(self.scores)

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": "scores",
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "higher_is_keep": self.direction.higher_is_keep,
            "switch_keep": self.direction.switch_keep,
            "balance": self.balance,
            "n_total": self.n,
            "library_version": self.library_version,
            "details": self.details,
        }

    def save(self, path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        columns = {"index": np.arange(self.n, dtype=np.int64), "score": self.scores, "label": self.labels}
        write_table(path, columns, self.metadata(), inputs=inputs, what="scores")

    @staticmethod
    def load(path: str | os.PathLike) -> ScoreSet:
        columns, meta = read_table(path, what="scores")
        if meta.get("kind") != "scores" or columns.get("score") is None:
            raise DataError(f"{str(path)!r} is not a score file written by `adaprune score`")
        index = columns.get("index")
        if index is None or not np.array_equal(index, np.arange(len(index))):
            raise DataError(f"score file {str(path)!r}: index column must be 0..N-1 in order")
        labels = columns.get("label")
        return ScoreSet(
            scores=columns["score"].astype(np.float64),
            direction=Direction(bool(meta["higher_is_keep"]), meta.get("switch_keep")),
            method=meta.get("method", "unknown"),
            params=meta.get("params", {}),
            seed=meta.get("seed"),
            labels=None if labels is None else labels.astype(np.int64),
            balance=meta.get("balance", "none"),
            library_version=meta.get("library_version", "unknown"),
            details=meta.get("details", {}),
        )


def keep_from_scores(scores: ScoreSet, n_keep: int, *, balance: str | None = None) -> tuple[np.ndarray, bool]:
    """The one rule from scores to a kept set (`select_scores` and `Scorer.run` both call it): the
    direction at the realised kept fraction n_keep / N (so a switch such as the prototypes' is
    decided by what is actually kept), then exactly `n_keep` by that direction, globally or with
    class quotas (`balance="class"`; None follows the method's own rule). Returns (sorted kept
    indices, the direction used: higher is keep)."""
    balance = scores.balance if balance is None else balance
    if balance not in BALANCE_CHOICES:
        raise ConfigError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, got {balance!r}")
    strata = None
    if balance == "class":
        if scores.labels is None:
            raise ConfigError("balance 'class' needs labels, and this score file has none")
        strata = scores.labels
    higher = scores.direction.at(n_keep / scores.n)
    return select_top_k(scores.scores, n_keep, higher_is_keep=higher, strata=strata), higher


def select_scores(
    scores: ScoreSet,
    *,
    keep: float | None = None,
    prune: float | None = None,
    balance: str | None = None,
) -> Selection:
    """Keep exactly keep * N samples (rounded half up) by the declared direction; `balance="class"`
    gives each class a quota in proportion to its size, never emptying a class the budget can cover.
    `balance=None` follows the method's own rule, recorded in the score file."""
    budget = Budget.from_args(keep=keep, prune=prune)
    balance = scores.balance if balance is None else balance
    kept, higher = keep_from_scores(scores, budget.count(scores.n), balance=balance)
    return Selection(
        kept=kept,
        n_total=scores.n,
        method=scores.method,
        params=scores.params,
        seed=scores.seed,
        requested_keep=budget.keep,
        scores=scores.scores,
        higher_is_keep=higher,
        library_version=scores.library_version,
        details={**scores.details, "selection_balance": balance},
    )
