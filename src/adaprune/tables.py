"""Per-sample tables with metadata, written as .csv (+ .csv.meta.json sidecar), .parquet or .json.

One writer and one reader for every per-sample file the library produces (selections, scores).
Writes are atomic; an output equal to an input is refused. Never imports torch."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.errors import ConfigError, DataError, require
from adaprune.io_utils import atomic_write, check_writable_folder, refuse_input_paths

TABLE_FORMATS = (".csv", ".parquet", ".json")
# Columns that name samples: always read back as text (a webdataset key "000123" stays "000123").
TEXT_COLUMNS = ("path", "shard", "key", "file")


def jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), what: str) -> Path:
    """Fail early on an output path a write would refuse (before any work is done)."""
    path = Path(path)
    inputs = list(inputs)
    refuse_input_paths(path, inputs)
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise ConfigError(
            f"{what} file {str(path)!r} has extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join(TABLE_FORMATS)}"
        )
    if suffix == ".csv":
        refuse_input_paths(sidecar(path), inputs)
    if path.is_dir():
        raise ConfigError(f"{what} file {str(path)!r} is a folder; give a file name")
    check_writable_folder(path.parent if str(path.parent) else Path("."))
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_table(
    path: str | os.PathLike,
    columns: Mapping[str, np.ndarray | None],
    metadata: Mapping[str, Any],
    *,
    inputs: Iterable[str | os.PathLike] = (),
    what: str = "output",
) -> None:
    """Columns of equal length (None: an all-empty float column), metadata as JSON alongside."""
    path = check_output_path(path, inputs=inputs, what=what)
    meta = jsonable(metadata)
    suffix = path.suffix.lower()
    n = next(len(c) for c in columns.values() if c is not None)
    cols = {k: (None if v is None else np.asarray(v)) for k, v in columns.items()}

    def values(name: str) -> list[Any]:
        col = cols[name]
        if col is None:
            return [None] * n
        return [None if isinstance(v, float) and math.isnan(v) else v for v in col.tolist()]

    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(cols))
        lists = [values(c) for c in cols]
        for row in zip(*lists, strict=True):
            writer.writerow([_cell(v) for v in row])
        text = buf.getvalue()
        meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        atomic_write(sidecar(path), lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    elif suffix == ".json":
        lists = {c: values(c) for c in cols}
        rows = [dict(zip(lists, vals, strict=True)) for vals in zip(*lists.values(), strict=True)]
        text = json.dumps({"metadata": meta, "rows": rows}, sort_keys=True) + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    else:
        pa = require("pyarrow", "parquet")
        pq = require("pyarrow.parquet", "parquet")
        arrays = {
            k: pa.nulls(n, pa.float64()) if v is None else pa.array(v, from_pandas=True) for k, v in cols.items()
        }
        table = pa.table(arrays).replace_schema_metadata({b"adaprune": json.dumps(meta, sort_keys=True).encode()})
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_table(path: str | os.PathLike, *, what: str = "input") -> tuple[dict[str, np.ndarray | None], dict]:
    """The columns (an all-empty column comes back as None) and the metadata of a written table."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise ConfigError(f"{what} file {str(path)!r}: expected one of {', '.join(TABLE_FORMATS)}")
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    try:
        if suffix == ".csv":
            meta = json.loads(sidecar(path).read_text()) if sidecar(path).is_file() else {}
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            if not rows:
                raise ValueError("empty file")
            header, body = rows[0], rows[1:]
            raw = {name: [r[i] for r in body] for i, name in enumerate(header)}
            columns = {name: np.asarray(vals, dtype=str) if name in TEXT_COLUMNS and any(vals) else _parse_column(vals)
                       for name, vals in raw.items()}
        elif suffix == ".json":
            doc = json.loads(path.read_text())
            meta = doc["metadata"]
            names = list(doc["rows"][0]) if doc["rows"] else []
            columns = {
                name: _none_column([r[name] for r in doc["rows"]]) for name in names
            }
        else:
            pq = require("pyarrow.parquet", "parquet")
            table = pq.read_table(path)
            meta = json.loads((table.schema.metadata or {}).get(b"adaprune", b"{}"))
            columns = {}
            for name in table.column_names:
                col = table.column(name)
                values = None if col.null_count == len(col) else col.to_numpy(zero_copy_only=False)
                if values is not None and values.dtype == object:  # a path or id column
                    values = values.astype(str)
                columns[name] = values
    except (KeyError, ValueError, IndexError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} file {str(path)!r} is not readable: {exc}") from None
    return columns, meta


def _none_column(values: list[Any]) -> np.ndarray | None:
    if all(v is None for v in values):
        return None
    if all(isinstance(v, int) or v is None for v in values) and None not in values:
        return np.asarray(values, dtype=np.int64)
    if any(isinstance(v, str) for v in values):  # a path or id column
        return np.asarray(["" if v is None else str(v) for v in values], dtype=str)
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _parse_column(values: list[str]) -> np.ndarray | None:
    if all(v == "" for v in values):
        return None
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.asarray([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
    except ValueError:  # a path or id column
        return np.asarray(values, dtype=str)
