"""Budgets, turning scores into a kept set, and the Selection result with its file formats.

This module never imports torch: selecting from a score file must not need it."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write, refuse_input_paths

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SELECTION_FORMATS = (".csv", ".parquet", ".json")


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
            if not (isinstance(keep, (int, float)) and 0.0 < keep <= 1.0 and math.isfinite(keep)):
                raise ConfigError(f"keep must be in (0, 1], got {keep}")
            return Budget(keep=float(keep))
        assert prune is not None
        if not (isinstance(prune, (int, float)) and 0.0 <= prune < 1.0 and math.isfinite(prune)):
            raise ConfigError(f"prune must be in [0, 1), got {prune}")
        return Budget(keep=1.0 - float(prune))

    @property
    def prune(self) -> float:
        return 1.0 - self.keep

    def count(self, n_total: int) -> int:
        """Exactly how many samples to keep: round(keep * N), at least one."""
        k = int(round(self.keep * n_total))
        if k < 1:
            raise ConfigError(f"keep={self.keep:g} of {n_total} samples keeps none; keep a larger fraction")
        return min(k, n_total)


# ---------------------------------------------------------------- scores -> kept set
def rank_for_keep(scores: np.ndarray, *, higher_is_keep: bool) -> np.ndarray:
    """Sample indices ordered from most to least worth keeping.

    Ties keep the lower index first (stable); NaN scores rank last, so they are pruned first."""
    s = np.asarray(scores, dtype=np.float64)
    key = s if higher_is_keep else -s
    key = np.where(np.isnan(key), -np.inf, key)
    # lexsort sorts by the last key first: primary = -key ascending (best first), then index.
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


# ---------------------------------------------------------------- the result
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Selection:
    """Which samples a method kept, and how it decided.

    `kept` holds sorted 0-based row indices into the input; `scores` has one value per sample
    where the method produces one (higher = more worth keeping is *not* assumed: see
    `higher_is_keep`); `details` holds method-specific diagnostics as written to the metadata."""

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

    def __post_init__(self) -> None:
        kept = np.asarray(self.kept, dtype=np.int64)
        if kept.ndim != 1 or (len(kept) and (kept.min() < 0 or kept.max() >= self.n_total)):
            raise DataError(f"kept indices must lie in [0, {self.n_total})")
        if len(np.unique(kept)) != len(kept):
            raise DataError("kept indices contain duplicates")
        object.__setattr__(self, "kept", np.sort(kept))
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64)
            if scores.shape != (self.n_total,):
                raise DataError(f"scores must have one value per sample ({self.n_total}), got {scores.shape}")
            object.__setattr__(self, "scores", scores)
        if not self.library_version:
            from adaprune import __version__

            object.__setattr__(self, "library_version", __version__)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def realised_keep(self) -> float:
        return self.n_kept / self.n_total

    @property
    def mask(self) -> np.ndarray:
        m = np.zeros(self.n_total, dtype=bool)
        m[self.kept] = True
        return m

    def metadata(self) -> dict[str, Any]:
        return _jsonable(
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
            }
        )

    # ------------------------------------------------------------ writing
    @staticmethod
    def check_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        """Fail early on an output path `save` would refuse (before any pruning work)."""
        path = Path(path)
        refuse_input_paths(path, inputs)
        suffix = path.suffix.lower()
        if suffix not in SELECTION_FORMATS:
            raise ConfigError(
                f"selection file {str(path)!r} has extension {suffix or '(none)'!r}; "
                f"expected one of {', '.join(SELECTION_FORMATS)}"
            )
        if suffix == ".csv":
            refuse_input_paths(_sidecar(path), inputs)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"output folder {str(folder)!r} does not exist")

    def save(self, path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> None:
        """Write by extension (.csv + .csv.meta.json sidecar, .parquet, .json), atomically."""
        path = Path(path)
        self.check_path(path, inputs=inputs)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            meta_text = json.dumps(self.metadata(), indent=2, sort_keys=True) + "\n"
            atomic_write(_sidecar(path), lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
            atomic_write(path, lambda tmp: tmp.write_text(self._csv_text(), encoding="utf-8"))
        elif suffix == ".json":
            atomic_write(path, lambda tmp: tmp.write_text(self._json_text(), encoding="utf-8"))
        else:
            atomic_write(path, self._write_parquet)

    def _rows(self) -> Iterable[tuple[int, int, float | None]]:
        mask = self.mask
        for i in range(self.n_total):
            score = None if self.scores is None else float(self.scores[i])
            yield i, int(mask[i]), score

    def _csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "kept", "score"])
        for i, kept, score in self._rows():
            w.writerow([i, kept, "" if score is None or math.isnan(score) else repr(score)])
        return buf.getvalue()

    def _json_text(self) -> str:
        rows = [
            {"index": i, "kept": k, "score": None if s is None or math.isnan(s) else s}
            for i, k, s in self._rows()
        ]
        return json.dumps({"metadata": self.metadata(), "rows": rows}, sort_keys=True) + "\n"

    def _write_parquet(self, tmp: Path) -> None:
        from adaprune.errors import require

        pa = require("pyarrow", "parquet")
        pq = require("pyarrow.parquet", "parquet")
        scores = (
            pa.nulls(self.n_total, pa.float64())
            if self.scores is None
            else pa.array(self.scores, type=pa.float64(), from_pandas=True)
        )
        table = pa.table(
            {
                "index": pa.array(np.arange(self.n_total, dtype=np.int64)),
                "kept": pa.array(self.mask.astype(np.int8)),
                "score": scores,
            }
        )
        meta = {b"adaprune": json.dumps(self.metadata(), sort_keys=True).encode()}
        pq.write_table(table.replace_schema_metadata(meta), tmp)

    # ------------------------------------------------------------ reading
    @staticmethod
    def load(path: str | os.PathLike) -> Selection:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SELECTION_FORMATS:
            raise ConfigError(f"selection file {str(path)!r}: expected one of {', '.join(SELECTION_FORMATS)}")
        if not path.is_file():
            raise DataError(f"selection file {str(path)!r} does not exist")
        try:
            if suffix == ".csv":
                meta = json.loads(_sidecar(path).read_text()) if _sidecar(path).is_file() else {}
                with path.open(newline="") as fh:
                    reader = csv.DictReader(fh)
                    if reader.fieldnames is None or list(reader.fieldnames)[:3] != ["index", "kept", "score"]:
                        raise DataError(f"{path}: expected columns index,kept,score")
                    rows = [(int(r["index"]), int(r["kept"]), r["score"]) for r in reader]
                index = np.array([r[0] for r in rows], dtype=np.int64)
                kept = np.array([r[1] for r in rows], dtype=np.int64)
                raw = [r[2] for r in rows]
                scores = None if all(s == "" for s in raw) else np.array(
                    [float(s) if s != "" else np.nan for s in raw]
                )
            elif suffix == ".json":
                doc = json.loads(path.read_text())
                meta = doc["metadata"]
                index = np.array([r["index"] for r in doc["rows"]], dtype=np.int64)
                kept = np.array([r["kept"] for r in doc["rows"]], dtype=np.int64)
                raw_s = [r["score"] for r in doc["rows"]]
                scores = None if all(s is None for s in raw_s) else np.array(
                    [np.nan if s is None else s for s in raw_s], dtype=np.float64
                )
            else:
                from adaprune.errors import require

                pq = require("pyarrow.parquet", "parquet")
                table = pq.read_table(path)
                raw_meta = (table.schema.metadata or {}).get(b"adaprune", b"{}")
                meta = json.loads(raw_meta)
                index = table.column("index").to_numpy()
                kept = table.column("kept").to_numpy().astype(np.int64)
                col = table.column("score")
                scores = None if col.null_count == len(col) else col.to_numpy(zero_copy_only=False)
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            raise DataError(f"selection file {str(path)!r} is not readable: {exc}") from None
        if not np.array_equal(index, np.arange(len(index))):
            raise DataError(f"selection file {str(path)!r}: index column must be 0..N-1 in order")
        if not np.isin(kept, (0, 1)).all():
            raise DataError(f"selection file {str(path)!r}: kept column must be 0 or 1")
        return Selection(
            kept=np.flatnonzero(kept),
            n_total=len(index),
            method=meta.get("method", "unknown"),
            params=meta.get("params", {}),
            seed=meta.get("seed"),
            requested_keep=meta.get("requested_keep", float(kept.mean()) if len(kept) else 0.0),
            scores=scores,
            higher_is_keep=meta.get("higher_is_keep"),
            library_version=meta.get("library_version", "unknown"),
            details=meta.get("details", {}),
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")
