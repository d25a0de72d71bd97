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
    # What the scores were computed on (`adaprune.selection.data_record`): name, size, label
    # fingerprint, classes' name-to-number map; `select` carries it into the selection.
    data: dict[str, Any] | None = None
    # The source's sample names (paths of a file source as a `path` column, other ids as `id`),
    # carried into the selection by `select`, so it can be checked against the data later.
    ids: np.ndarray | None = None
    id_column: str = "id"
    id_root: str | None = None

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
            **({"data": self.data} if self.data is not None else {}),
            **({"ids": {"column": self.id_column, "root": self.id_root}} if self.ids is not None else {}),
        }

    def save(self, path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        columns = {"index": np.arange(self.n, dtype=np.int64), "score": self.scores, "label": self.labels}
        if self.ids is not None:
            columns[self.id_column] = self.ids
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
        id_meta = meta.get("ids") or {}
        id_column = next((c for c in ("path", "id") if c in columns), id_meta.get("column", "id"))
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
            data=meta.get("data"),
            ids=columns.get(id_column),
            id_column=id_column,
            id_root=id_meta.get("root"),
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
        data=scores.data,
        ids=scores.ids,
        id_column=scores.id_column,
        id_root=scores.id_root,
    )


# ---------------------------------------------------------------- kernels for saved logits
# Numpy in, numpy out (float64), one value per sample: what the training-dynamics scorers compute,
# for users who have logits or probabilities from their own model. Validated once here.
UNCERTAINTY_MEASURES = ("least_confidence", "margin", "entropy")


def _matrix(values: Any, *, what: str) -> np.ndarray:
    m = np.asarray(values, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ConfigError(f"{what} must be an (N, K) array, got shape {m.shape}")
    return m


def _labels_for(labels: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"labels must be {n} integers, got shape {y.shape} and dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ConfigError(f"labels must lie in [0, {k}) for {k} classes, got {y.min()}..{y.max()}")
    return y.astype(np.int64)


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably in float64."""
    z = _matrix(logits, what="logits")
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def el2n(probs: Any, labels: Any) -> np.ndarray:
    """EL2N (Paul et al. 2021): ||probs_i - onehot(y_i)||_2 per sample, from (N, K) probabilities
    (e.g. `softmax(logits)` after a few epochs). 0 = learned, up to sqrt(2). Higher = keep."""
    p = _matrix(probs, what="probs")
    y = _labels_for(labels, *p.shape)
    err = p.copy()
    err[np.arange(len(y)), y] -= 1.0
    return np.linalg.norm(err, axis=1)


def logit_margins(logits: Any, labels: Any) -> np.ndarray:
    """z_y - max_{k != y} z_k per sample (AUM's margin) from (N, K) logits; with one class, z_y."""
    z = _matrix(logits, what="logits")
    y = _labels_for(labels, *z.shape)
    rows = np.arange(len(y))
    true = z[rows, y]
    if z.shape[1] == 1:
        return true.copy()
    other = z.copy()
    other[rows, y] = -np.inf
    return true - other.max(axis=1)


def forgetting_events(correct_history: Any) -> np.ndarray:
    """Forgetting events (Toneva et al. 2019) per sample from a (T, N) bool correctness history
    (row t = observation t): count_i = #{t : correct[t-1, i] and not correct[t, i]}; a sample never
    correct gets T, more than any possible count (at most floor(T / 2)). Higher = keep. int64 (N,)."""
    c = np.asarray(correct_history)
    if c.ndim != 2 or c.shape[0] < 1:
        raise ConfigError(f"need a (T, N) correctness history with T >= 1, got shape {c.shape}")
    c = c.astype(bool)
    counts = (c[:-1] & ~c[1:]).sum(axis=0).astype(np.int64)
    counts[~c.any(axis=0)] = c.shape[0]
    return counts


def aum(margins: Any) -> np.ndarray:
    """Area under the margin (Pleiss et al. 2020) per sample from a (T, N) array of logit margins
    (`logit_margins` at T moments of training): the mean over T. Low = likely mislabelled; higher = keep."""
    m = np.asarray(margins, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1:
        raise ConfigError(f"need a (T, N) margin history with T >= 1, got shape {m.shape}")
    return m.mean(axis=0)


def check_uncertainty_measure(measure: str) -> None:
    if measure not in UNCERTAINTY_MEASURES:
        raise ConfigError(f"measure must be one of {', '.join(UNCERTAINTY_MEASURES)}, got {measure!r}")


def uncertainty_from_top2(p_max: Any, p_second: Any, entropy: Any, *, measure: str) -> np.ndarray:
    """Uncertainty from per-sample summaries of the probabilities (the largest, the second largest,
    the entropy): least_confidence = 1 - p_max, margin = 1 - (p_max - p_second), entropy."""
    check_uncertainty_measure(measure)
    if measure == "least_confidence":
        return 1.0 - np.asarray(p_max, dtype=np.float64)
    if measure == "margin":
        return 1.0 - (np.asarray(p_max, dtype=np.float64) - np.asarray(p_second, dtype=np.float64))
    return np.asarray(entropy, dtype=np.float64)


def uncertainty(probs: Any, measure: str = "entropy") -> np.ndarray:
    """Uncertainty sampling (Coleman et al. 2020) per sample from (N, K) probabilities; labels are not
    used. Higher = more uncertain = keep, for every measure: "least_confidence" (1 - p_max), "margin"
    (1 - (p_max - p_second)), "entropy" (-sum p log p, with 0 log 0 = 0)."""
    check_uncertainty_measure(measure)
    p = _matrix(probs, what="probs")
    top2 = -np.sort(-p, axis=1)[:, :2]
    p_second = top2[:, 1] if p.shape[1] > 1 else np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return uncertainty_from_top2(top2[:, 0], p_second, entropy, measure=measure)
