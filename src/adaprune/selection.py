"""Budgets, turning scores into a kept set, and the Selection result with its file formats.

This module never imports torch: selecting from a score file must not need it."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaprune.errors import ConfigError, DataError
from adaprune.tables import check_output_path, jsonable, read_table, write_table

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ID_COLUMNS = ("path", "id")  # how a selection file names its samples, besides the row index
# Samples inside containers are named by two columns: a tar shard and a webdataset key, a Parquet
# file and a row. `ids` is then a structured array with those two fields.
COMPOUND_IDS = {"shard+key": ("shard", "key"), "file+row": ("file", "row")}


# ---------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """The fraction of samples to keep. Build it with `Budget.from_args(keep=..., prune=...)`."""

    keep: float

    @staticmethod
    def from_args(*, keep: float | None = None, prune: float | None = None) -> Budget:
        if (keep is None) == (prune is None):
            raise ConfigError("give exactly one of keep or prune")
        if keep is not None:
            if not (_is_fraction(keep) and 0.0 < keep <= 1.0):
                raise ConfigError(f"keep must be a fraction in (0, 1], got {keep!r}")
            return Budget(keep=float(keep))
        assert prune is not None
        if not (_is_fraction(prune) and 0.0 <= prune < 1.0):
            raise ConfigError(f"prune must be a fraction in [0, 1), got {prune!r}")
        return Budget(keep=1.0 - float(prune))

    @property
    def prune(self) -> float:
        return 1.0 - self.keep

    def count(self, n_total: int) -> int:
        """Exactly how many samples to keep: keep * N rounded half up (keep 0.5 of 5 keeps 3, not
        Python's round-half-to-even 2), at least one. A tolerance of 1e-9 absorbs float error, so
        prune 0.55 of 10 (keep 0.44999...) keeps 5 like keep 0.45."""
        k = math.floor(self.keep * n_total + 0.5 + 1e-9)
        if k < 1:
            raise ConfigError(f"keep={self.keep:g} of {n_total} samples keeps none; keep a larger fraction")
        return min(k, n_total)


def _is_fraction(value: object) -> bool:
    # bool is an int to Python; keep=True is a mistake, not 1.0.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_seed(seed: object) -> int:
    """The seed every method is run with: a non-negative integer (None would make a run unrepeatable)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def check_threshold(threshold: float) -> float:
    """A similarity threshold (a cosine): samples more similar than it to one kept are removed."""
    if not (_is_fraction(threshold) and -1.0 <= threshold < 1.0):
        raise ConfigError(f"threshold must be a cosine in [-1, 1), got {threshold}")
    return float(threshold)


# ---------------------------------------------------------------- scores -> kept set
def rank_for_keep(scores: np.ndarray, *, higher_is_keep: bool) -> np.ndarray:
    """Sample indices ordered from most to least worth keeping.

    Ties keep the lower index first (stable); NaN scores rank last, so they are pruned first."""
    s = np.asarray(scores, dtype=np.float64)
    key = s if higher_is_keep else -s
    # lexsort sorts by the last key first: primary = -key ascending (best first), then index. NaN
    # sorts after every number, +inf included, so a NaN ranks behind even the worst infinite score
    # (mapping NaN to -inf, as before, tied it with a -inf score and let the lower index win).
    return np.lexsort((np.arange(len(s)), -key))


def stratified_quotas(sizes: Sequence[int], k: int, *, min_per_stratum: int = 1) -> np.ndarray:
    """Split a budget of `k` over strata in proportion to their sizes, summing to exactly `k`.

    Largest-remainder rounding; each non-empty stratum keeps at least `min_per_stratum`
    when the budget allows it (a class is never emptied unless asked with 0)."""
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    total = int(sizes_arr.sum())
    if not 0 <= k <= total:
        raise ConfigError(f"budget {k} is outside [0, {total}]")
    floor_min = np.minimum(sizes_arr, min_per_stratum)
    if floor_min.sum() > k:
        floor_min = np.zeros_like(sizes_arr)
    exact = sizes_arr * (k / total) if total else np.zeros(len(sizes_arr))
    quotas = np.maximum(np.floor(exact).astype(np.int64), floor_min)
    quotas = np.minimum(quotas, sizes_arr)
    # Hand out (or take back) the remainder one at a time, largest fractional part first.
    remainder = exact - np.floor(exact)
    order = np.lexsort((np.arange(len(sizes_arr)), -remainder))
    while quotas.sum() < k:
        for i in order:
            if quotas.sum() == k:
                break
            if quotas[i] < sizes_arr[i]:
                quotas[i] += 1
    while quotas.sum() > k:
        for i in order[::-1]:
            if quotas.sum() == k:
                break
            if quotas[i] > floor_min[i]:
                quotas[i] -= 1
    return quotas


def select_top_k(
    scores: np.ndarray,
    k: int,
    *,
    higher_is_keep: bool,
    strata: np.ndarray | None = None,
    min_per_stratum: int = 1,
) -> np.ndarray:
    """Keep exactly `k` samples by score, globally or with per-stratum quotas; sorted indices."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if not 0 < k <= n:
        raise ConfigError(f"cannot keep {k} of {n} samples")
    if np.isnan(scores).any():
        log.warning("%d scores are NaN; those samples are pruned first", int(np.isnan(scores).sum()))
    if strata is None:
        return np.sort(rank_for_keep(scores, higher_is_keep=higher_is_keep)[:k]).astype(np.int64)
    strata = np.asarray(strata)
    labels, inverse = np.unique(strata, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(labels))
    quotas = stratified_quotas(sizes, k, min_per_stratum=min_per_stratum)
    kept = []
    for j in range(len(labels)):
        members = np.flatnonzero(inverse == j)
        order = rank_for_keep(scores[members], higher_is_keep=higher_is_keep)
        kept.append(members[order[: quotas[j]]])
    return np.sort(np.concatenate(kept)).astype(np.int64)



# ---------------------------------------------------------------- weighted sampling
def sample_by_weight(weights: np.ndarray, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """`k` distinct indices drawn one after another, each with probability proportional to its
    weight among those not drawn yet (Efraimidis and Spirakis' keys log(u) / w, the k largest);
    zero-weight items come only after every positive one, in random order. Sorted int64."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or (~np.isfinite(w)).any() or (w < 0).any():
        raise ConfigError("weights must be one finite, non-negative number per sample")
    if not 0 <= k <= len(w):
        raise ConfigError(f"cannot draw {k} of {len(w)} samples")
    u = rng.random(len(w))
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, np.log(np.maximum(u, 1e-300)) / np.where(w > 0, w, 1.0), -np.inf)
    # Primary: key descending; among zero weights (all -inf): the random u.
    order = np.lexsort((-u, -keys))
    return np.sort(order[:k]).astype(np.int64)


def normalised_ranks(scores: np.ndarray) -> np.ndarray:
    """(rank + 0.5) / n of every score, rank 0 the lowest (ties: lower index first; NaN lowest)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), np.where(np.isnan(s), -np.inf, s)))
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(len(s))
    return (ranks + 0.5) / max(len(s), 1)


def beta_shape(mode: float, concentration: float) -> tuple[float, float]:
    """(a, b) of the Beta density with this mode in [0, 1] and a + b = concentration (> 2)."""
    if not 0.0 <= mode <= 1.0:
        raise ConfigError(f"mode must be in [0, 1], got {mode}")
    if not concentration > 2.0:
        raise ConfigError(f"concentration must be > 2, got {concentration}")
    return 1.0 + mode * (concentration - 2.0), 1.0 + (1.0 - mode) * (concentration - 2.0)


def beta_density(u: np.ndarray, a: float, b: float) -> np.ndarray:
    """The Beta(a, b) density at u in (0, 1), up to its constant (only ratios are used)."""
    u = np.asarray(u, dtype=np.float64)
    return np.exp((a - 1.0) * np.log(u) + (b - 1.0) * np.log1p(-u))


def select_beta_rank(
    scores: np.ndarray,
    k: int,
    *,
    mode: float,
    concentration: float,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Keep exactly `k` samples drawn without replacement with weights given by a Beta density over
    each sample's normalised score rank (0 = lowest score, 1 = highest), the density's mode at
    `mode`: 1 favours the top of the ranking as top-k does, lower values move the draw down the
    ranking and leave out the very top. With `strata` (class labels), ranks are taken and quotas
    (in proportion to sizes, each non-empty stratum at least one) drawn within every stratum.
    Sorted int64 indices."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if not 0 < k <= n:
        raise ConfigError(f"cannot keep {k} of {n} samples")
    a, b = beta_shape(mode, concentration)
    if strata is None:
        return sample_by_weight(beta_density(normalised_ranks(scores), a, b), k, rng=rng)
    labels, inverse = np.unique(np.asarray(strata), return_inverse=True)
    quotas = stratified_quotas(np.bincount(inverse, minlength=len(labels)), k)
    kept = []
    for j in range(len(labels)):
        members = np.flatnonzero(inverse == j)
        weights = beta_density(normalised_ranks(scores[members]), a, b)
        kept.append(members[sample_by_weight(weights, int(quotas[j]), rng=rng)])
    return np.sort(np.concatenate(kept)).astype(np.int64)


# ---------------------------------------------------------------- per-class counts
# A class is reported as losing most of its samples when it keeps less than this fraction of its
# proportional share (kept_c < STARVED_SHARE * keep * n_c). LFW faces at 30% pruned (a class kept
# 40 of 100 against a share of 70: 0.57) trained to chance, so the line sits above 0.57. Measured
# alongside (benchmarks/results/ablation_adapruner.md, column "min share"): AdaPruner's smallest class
# share is 0.3-0.5 on digits (which still trains well: a warning there is information, not an error)
# and 0.02-0.12 on MNIST-1D at 70% pruned (which trains far below random).
STARVED_SHARE = 0.6


@dataclass(frozen=True)
class ClassCount:
    """How many samples of one class there are and how many were kept."""

    label: int | str
    total: int
    kept: int

    def share(self, keep: float) -> float:
        """Kept samples over the class's proportional share of the budget (1.0: exactly its share)."""
        return self.kept / (keep * self.total) if keep > 0 and self.total else 1.0


def count_classes(kept: np.ndarray, labels: np.ndarray) -> tuple[ClassCount, ...]:
    """Per-class totals and kept counts, classes in sorted order."""
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    classes, inverse = np.unique(labels, return_inverse=True)
    totals = np.bincount(inverse, minlength=len(classes))
    kept_counts = np.bincount(inverse[mask], minlength=len(classes))
    return tuple(
        ClassCount(label=c.item() if isinstance(c, np.generic) else c, total=int(t), kept=int(k))
        for c, t, k in zip(classes, totals, kept_counts, strict=True)
    )


def starved_classes(counts: Sequence[ClassCount], keep: float) -> tuple[ClassCount, ...]:
    """The classes keeping less than STARVED_SHARE of their proportional share of the budget."""
    return tuple(c for c in counts if c.share(keep) < STARVED_SHARE)


def describe_class_counts(counts: Sequence[ClassCount], *, limit: int = 20) -> str:
    """One line, e.g. `kept per class: 0: 70/100, 1: 40/100`; past `limit` classes, the extremes."""
    shown = list(counts)
    if len(shown) > limit:
        shown = sorted(shown, key=lambda c: c.kept / max(c.total, 1))
        shown = shown[: limit // 2] + shown[-(limit // 2):]
        head = f"kept per class ({len(counts)} classes; the {limit // 2} least and most kept): "
    else:
        head = "kept per class: "
    return head + ", ".join(f"{c.label}: {c.kept}/{c.total}" for c in shown)


# ---------------------------------------------------------------- the result
@dataclass(frozen=True)
class Selection:
    """Which samples a method kept, and how it decided.

    `kept` holds sorted 0-based row indices into the input; `scores` has one value per sample
    where the method produces one (higher = more worth keeping is *not* assumed: see
    `higher_is_keep`); `details` holds method-specific diagnostics as written to the metadata.

    `ids` (optional) names every sample: file paths for file sources (written as a `path` column),
    other ids (COCO image ids, ...) as an `id` column; `id_column` says which. Samples inside
    containers are named by two columns (`id_column` "shard+key": a tar shard and a webdataset key;
    "file+row": a Parquet file and a row), `ids` then a structured array of those fields. `id_root` is the
    folder the paths are laid out under (a folder source's root, a manifest's folder), so `export`
    can keep the relative layout. `skipped` lists input files left out as unreadable.

    Dedup methods add the audit trail: `twin[i]`, the kept sample a removed sample i is nearest to
    (-1 where none: every kept sample), and `similarity[i]`, their cosine (NaN where none). Where
    the method knows it (SemDeDup), `cause[i]` is the sample whose similarity removed sample i:
    the earlier sample it was compared with that it is most similar to (that similarity is its
    score M_i, at or above the threshold in threshold mode; the cause may itself have been removed,
    which is why `twin` and `cause` differ), and `cause_similarity[i]` that cosine (-1 / NaN for
    kept samples). A file written by `save` names both by row (`twin`, `cause`) and, when the
    source names its samples, by path or id too (`twin_path`/`twin_id`, `cause_path`/`cause_id`).

    `kept` is the array of kept row indices (also `kept_indices`), not a 0/1 flag per row: the
    file's `kept` column is the flag, which is `mask` here (`sel.mask.sum() == sel.n_kept`).

    `data` records what the selection was made on (`data_record`): the source's name, its size,
    a fingerprint of its labels, and its classes' name-to-number map; `evaluate`, `export --data`
    and `report --data` compare it (and the ids) with the data they are given (`check_matches`)."""

    kept: np.ndarray
    n_total: int
    method: str
    params: dict[str, Any]
    seed: int | None
    requested_keep: float
    scores: np.ndarray | None = None
    higher_is_keep: bool | None = None
    library_version: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ids: np.ndarray | None = None
    id_column: str = "id"
    id_root: str | None = None
    skipped: tuple[str, ...] = ()
    class_counts: tuple[ClassCount, ...] | None = None
    twin: np.ndarray | None = None
    similarity: np.ndarray | None = None
    data: dict[str, Any] | None = None
    cause: np.ndarray | None = None
    cause_similarity: np.ndarray | None = None

    def __post_init__(self) -> None:
        kept = np.asarray(self.kept, dtype=np.int64)
        if kept.ndim != 1 or (len(kept) and (kept.min() < 0 or kept.max() >= self.n_total)):
            raise DataError(f"kept indices must lie in [0, {self.n_total})")
        # Sorted input (every method's) is checked in one pass; np.unique on 10^7 indices takes seconds.
        if len(kept) > 1 and not (kept[1:] > kept[:-1]).all():
            kept = np.sort(kept)
            if (kept[1:] == kept[:-1]).any():
                raise DataError("kept indices contain duplicates")
        object.__setattr__(self, "kept", kept)
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64)
            if scores.shape != (self.n_total,):
                raise DataError(f"scores must have one value per sample ({self.n_total}), got {scores.shape}")
            object.__setattr__(self, "scores", scores)
        if self.id_column not in ID_COLUMNS and self.id_column not in COMPOUND_IDS:
            raise DataError(f"id_column must be one of {', '.join((*ID_COLUMNS, *COMPOUND_IDS))}, "
                            f"got {self.id_column!r}")
        if self.ids is not None:
            ids = np.asarray(self.ids)
            if ids.shape != (self.n_total,):
                raise DataError(f"ids must name every sample ({self.n_total}), got shape {ids.shape}")
            if self.id_column == "path":
                ids = ids.astype(str)
            if self.id_column in COMPOUND_IDS and set(ids.dtype.names or ()) != set(COMPOUND_IDS[self.id_column]):
                raise DataError(f"ids of id_column {self.id_column!r} must be a structured array with fields "
                                f"{' and '.join(COMPOUND_IDS[self.id_column])}, got dtype {ids.dtype}")
            object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "skipped", tuple(str(p) for p in self.skipped))
        self._check_twins()
        self._check_causes()
        if not self.library_version:
            from adaprune import __version__

            object.__setattr__(self, "library_version", __version__)

    def _check_twins(self) -> None:
        twin, similarity = self._links("twin", "similarity")
        if twin is None or similarity is None:
            return
        mask = self.mask
        if (twin[mask] >= 0).any() or not mask[twin[twin >= 0]].all():
            raise DataError("twin must name a kept sample for removed samples only (-1 for kept samples)")
        object.__setattr__(self, "twin", twin)
        object.__setattr__(self, "similarity", similarity)

    def _check_causes(self) -> None:
        cause, similarity = self._links("cause", "cause_similarity")
        if cause is None or similarity is None:
            return
        if (cause[self.mask] >= 0).any():
            raise DataError("cause must be -1 for kept samples: only a removed sample has a cause")
        object.__setattr__(self, "cause", cause)
        object.__setattr__(self, "cause_similarity", similarity)

    def _links(self, rows_name: str, sim_name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """A per-sample link to another row (twin, cause) and its cosine, checked: both or neither,
        one value per sample, whole indices in [0, N) or -1, the cosine given exactly where a link is."""
        raw_rows, raw_sim = getattr(self, rows_name), getattr(self, sim_name)
        if (raw_rows is None) != (raw_sim is None):
            raise DataError(f"{rows_name} and {sim_name} come together: give both or neither")
        if raw_rows is None or raw_sim is None:
            return None, None
        rows = np.asarray(raw_rows)
        sim = np.asarray(raw_sim, dtype=np.float64)
        if rows.shape != (self.n_total,) or sim.shape != (self.n_total,):
            raise DataError(f"{rows_name} and {sim_name} must have one value per sample ({self.n_total}), "
                            f"got {rows.shape} and {sim.shape}")
        if len(rows) and not np.array_equal(rows, np.round(rows)):
            raise DataError(f"{rows_name} must hold whole sample indices (-1 for none)")
        rows = rows.astype(np.int64)
        if len(rows) and (rows.min() < -1 or rows.max() >= self.n_total):
            raise DataError(f"{rows_name} must hold sample indices in [0, {self.n_total}) or -1 for none")
        if (np.isnan(sim) != (rows < 0)).any():
            raise DataError(f"{sim_name} must be given exactly where {rows_name} names a sample")
        return rows, sim

    @property
    def kept_indices(self) -> np.ndarray:
        """Sorted row indices of the kept samples (the same array as `kept`)."""
        return self.kept

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def realised_keep(self) -> float:
        return self.n_kept / self.n_total

    @property
    def kept_ids(self) -> np.ndarray:
        """The ids (paths) of the kept samples, in index order."""
        if self.ids is None:
            raise DataError(f"this selection ({self.method}) names samples by row only; its source had no ids")
        return self.ids[self.kept]

    def with_ids(self, ids: np.ndarray | None, *, id_column: str = "id", id_root: str | None = None,
                 skipped: tuple[str, ...] = ()) -> Selection:
        """This selection naming its samples (the source's paths or ids)."""
        return dataclasses.replace(self, ids=ids, id_column=id_column, id_root=id_root, skipped=skipped)

    @property
    def mask(self) -> np.ndarray:
        """One flag per row: True where kept (the file's 0/1 `kept` column)."""
        m = np.zeros(self.n_total, dtype=bool)
        m[self.kept] = True
        return m

    def metadata(self) -> dict[str, Any]:
        return jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "method": self.method,
                "params": self.params,
                "seed": self.seed,
                "n_total": self.n_total,
                "n_kept": self.n_kept,
                "requested_keep": self.requested_keep,
                "realised_keep": self.realised_keep,
                "higher_is_keep": self.higher_is_keep,
                "library_version": self.library_version,
                "details": self.details,
                **({"ids": {"column": self.id_column, "root": self.id_root}} if self.ids is not None else {}),
                **({"skipped_files": list(self.skipped)} if self.skipped else {}),
                "class_counts": None if self.class_counts is None else [
                    {"label": c.label, "total": c.total, "kept": c.kept} for c in self.class_counts
                ],
                **({"data": self.data} if self.data is not None else {}),
            }
        )

    # ------------------------------------------------------------ files
    @staticmethod
    def check_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        """Fail early on an output path `save` would refuse (before any pruning work)."""
        check_output_path(path, inputs=inputs, what="selection")

    def save(self, path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        """One row per sample (index, kept, score; `path` or `id` when the source names its samples;
        twin, similarity for dedup methods, empty where none) by extension: .csv (+ .csv.meta.json
        sidecar), .parquet or .json; metadata alongside; written atomically."""
        columns: dict[str, np.ndarray | None] = {
            "index": np.arange(self.n_total, dtype=np.int64),
            "kept": self.mask.astype(np.int64),
            "score": self.scores,
        }
        if self.ids is not None and self.id_column in COMPOUND_IDS:
            for name in COMPOUND_IDS[self.id_column]:
                columns[name] = self.ids[name]
        elif self.ids is not None:
            columns[self.id_column] = self.ids
        if self.twin is not None:
            # An object column of ints and None: written as empty cells, JSON null, Parquet null.
            twin = self.twin.astype(object)
            twin[self.twin < 0] = None
            columns["twin"] = twin
            columns["similarity"] = self.similarity
            columns.update(self._named_links("twin", self.twin))
        if self.cause is not None:
            cause = self.cause.astype(object)
            cause[self.cause < 0] = None
            columns["cause"] = cause
            columns["cause_similarity"] = self.cause_similarity
            columns.update(self._named_links("cause", self.cause))
        write_table(path, columns, self.metadata(), inputs=inputs, what="selection")

    def _named_links(self, prefix: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        """`twin_path` (or `twin_id`; `twin_shard` and `twin_key` for compound ids): the linked row's name."""
        if self.ids is None:
            return {}
        if self.id_column in COMPOUND_IDS:
            return {f"{prefix}_{part}": _named(self.ids[part], rows) for part in COMPOUND_IDS[self.id_column]}
        return {f"{prefix}_{self.id_column}": _named(self.ids, rows)}

    @staticmethod
    def load(path: str | os.PathLike) -> Selection:
        columns, meta = read_table(path, what="selection")
        index, kept = columns.get("index"), columns.get("kept")
        if index is None or kept is None or "score" not in columns:
            raise DataError(f"selection file {str(path)!r}: expected columns index, kept, score")
        if not np.array_equal(index, np.arange(len(index))):
            raise DataError(f"selection file {str(path)!r}: index column must be 0..N-1 in order")
        if not np.isin(kept, (0, 1)).all():
            raise DataError(f"selection file {str(path)!r}: kept column must be 0 or 1")
        scores = columns["score"]
        id_meta = meta.get("ids") or {}
        compound = next((c for c, parts in COMPOUND_IDS.items() if all(p in columns for p in parts)), None)
        id_column = compound or next((c for c in ID_COLUMNS if c in columns), id_meta.get("column", "id"))
        ids = columns.get(id_column) if compound is None else _compound_ids(compound, columns)
        twin = similarity = cause = cause_similarity = None
        if "twin" in columns:
            twin, similarity = _read_links(columns["twin"], columns.get("similarity"), len(index))
        if "cause" in columns:
            cause, cause_similarity = _read_links(columns["cause"], columns.get("cause_similarity"), len(index))
        return Selection(
            kept=np.flatnonzero(kept),
            n_total=len(index),
            method=meta.get("method", "unknown"),
            params=meta.get("params", {}),
            seed=meta.get("seed"),
            requested_keep=meta.get("requested_keep", float(np.mean(kept)) if len(kept) else 0.0),
            scores=None if scores is None else scores.astype(np.float64),
            higher_is_keep=meta.get("higher_is_keep"),
            library_version=meta.get("library_version", "unknown"),
            details=meta.get("details", {}),
            ids=ids,
            id_column=id_column,
            id_root=id_meta.get("root"),
            skipped=tuple(meta.get("skipped_files", ())),
            class_counts=None if meta.get("class_counts") is None else tuple(
                ClassCount(label=c["label"], total=int(c["total"]), kept=int(c["kept"]))
                for c in meta["class_counts"]
            ),
            twin=twin,
            similarity=similarity,
            data=meta.get("data"),
            cause=cause,
            cause_similarity=cause_similarity,
        )


def _compound_ids(id_column: str, columns: dict[str, np.ndarray | None]) -> np.ndarray:
    """The structured id array of a `shard`+`key` or `file`+`row` selection, from its two columns."""
    a, b = COMPOUND_IDS[id_column]
    first, second = columns[a], columns[b]
    if first is None or second is None:
        raise DataError(f"selection columns {a} and {b} must name every sample")
    first = np.asarray(first).astype(str)
    second = np.asarray(second).astype(np.int64 if b == "row" else str)
    out = np.empty(len(first), dtype=[(a, first.dtype), (b, second.dtype)])
    out[a], out[b] = first, second
    return out
def _named(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The id of each linked row (None where the link is -1): a twin or a cause by path or id."""
    out = np.empty(len(rows), dtype=object)
    present = rows >= 0
    out[present] = ids[rows[present]]
    out[~present] = None
    return out


def _read_links(raw: np.ndarray | None, raw_sim: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A row-link column (twin, cause) and its cosine as written: empty cells come back as NaN (an
    all-empty column as None), read as -1 and NaN."""
    rows = np.full(n, -1, dtype=np.int64)
    if raw is not None:
        values = raw.astype(np.float64)
        present = ~np.isnan(values)
        rows[present] = values[present].astype(np.int64)
    return rows, np.full(n, np.nan) if raw_sim is None else raw_sim.astype(np.float64)


# ---------------------------------------------------------------- what a selection was made on
def labels_fingerprint(labels: np.ndarray) -> str:
    """A digest of the labels in row order: two sources of one size with other labels differ."""
    import hashlib

    arr = np.ascontiguousarray(np.asarray(labels).astype(np.int64))
    return hashlib.blake2b(arr.tobytes(), digest_size=16).hexdigest()


def data_record(data: Any) -> dict[str, Any]:
    """What a selection (or score file, or result) was made on: the source's name, its number of
    samples, a fingerprint of its labels (absent for a source without labels: an `embeddings:`
    file without PATH.labels.npy) and its classes' name-to-number map (`classes`, absent when the
    source has no class names). The pixels are not hashed: the same files embedded first
    (`embeddings:`) and read as images later are the same data."""
    labels = getattr(data, "y", None)
    if labels is None:
        labels = getattr(data, "labels", None)
    record: dict[str, Any] = {"name": str(getattr(data, "name", "")), "n": int(getattr(data, "n", 0))}
    if labels is not None and getattr(data, "has_labels", True) and getattr(data, "task_kind", "") == "classification":
        record["labels_fingerprint"] = labels_fingerprint(labels)
    names = getattr(data, "class_names", None)
    if names is not None:
        record["classes"] = {str(c): i for i, c in enumerate(names)}
    return record


def _relative(path: str, root: str | None) -> str:
    if root:
        try:
            return os.path.relpath(path, root)
        except ValueError:
            return path
    return path


def _id_strings(ids: np.ndarray) -> np.ndarray:
    """Ids as text to compare: a compound id (shard+key, file+row) as its two parts joined by a tab."""
    if ids.dtype.names:
        a, b = ids.dtype.names
        return np.asarray([f"{x}\t{y}" for x, y in zip(ids[a].tolist(), ids[b].tolist(), strict=True)])
    return ids.astype(str)


def check_matches(selection: Selection, data: Any, *, what: str = "selection") -> None:
    """Refuse, in one line, a selection made on other data than `data`: the row count; the
    `path`/`id` column against the data's ids row by row (paths compared relative to their
    roots, so a moved folder still matches), naming the first row that differs; and the
    recorded label fingerprint. A different name alone (a renamed file) is only logged."""
    n = int(getattr(data, "n", len(getattr(data, "y", ()))))
    name = getattr(data, "name", "the data")
    if selection.n_total != n:
        raise DataError(f"{what} covers {selection.n_total} samples but the data {name!r} has {n}; "
                        "was it made on another dataset? (give the data it was made on)")
    ids = getattr(data, "ids", None)
    if selection.ids is not None and ids is not None:
        mine, theirs = _id_strings(selection.ids), _id_strings(np.asarray(ids))
        if selection.id_column == "path":
            root = getattr(data, "id_root", None)
            same = mine == theirs
            if not same.all() and selection.id_root and root:
                mine = np.array([_relative(p, selection.id_root) for p in mine])
                theirs = np.array([_relative(p, root) for p in theirs])
                same = mine == theirs
        else:
            same = mine == theirs
        if not same.all():
            row = int(np.flatnonzero(~same)[0])
            raise DataError(
                f"{what} row {row} names {selection.id_column} {str(mine[row])!r} but row {row} of {name} is "
                f"{str(theirs[row])!r}; it was made on other data (make it again on this data)"
            )
    record = selection.data or {}
    if record:
        here = data_record(data)
        mine_fp, theirs_fp = record.get("labels_fingerprint"), here.get("labels_fingerprint")
        if mine_fp and theirs_fp and mine_fp != theirs_fp:
            raise DataError(
                f"{what} was made on {record.get('name')!r}, whose labels differ from those of {name} "
                f"(same size, {n} samples, other labels in row order); it was made on other data"
            )
        mine_cls, theirs_cls = record.get("classes"), here.get("classes")
        if mine_cls and theirs_cls and mine_cls != theirs_cls:
            raise DataError(
                f"{what} was made on classes {', '.join(mine_cls)} but {name} has {', '.join(theirs_cls)}; "
                "it was made on other data"
            )
        if record.get("name") and record["name"] != here["name"]:
            log.info("%s was made on data named %r; checking it against %r (same samples)", what,
                     record["name"], here["name"])
