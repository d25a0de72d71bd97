"""`parquet:GLOB[:COLUMN]`: Parquet files with an encoded-image column, read in place by row group.

The image column (COLUMN; by default `image`, else the only binary or image-struct column) holds
encoded bytes (PNG, JPEG, ...): raw binary, or the Hugging Face datasets Image struct
`{"bytes": ..., "path": ...}` (a row with only a `path` and no bytes is a bad sample: the file it
names is not read). Optional columns: `label` (integers, or names mapped to 0..K-1 in sorted order;
a null label is a bad sample) and `group` (samples kept or removed together). Every row is
checked once at load, one row group at a time; undecodable images follow `on_bad_file`. Rows are
named by `file` (the absolute path) and `row` (0-based, within the file). Needs pyarrow
(`pip install 'adaprune[parquet]'`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.data.members import (
    MemberDataset,
    MemberImages,
    check_image_bytes,
    common_root,
    compound_ids,
    expand_glob,
    image_layout,
    labels_from_values,
    report_bad,
)
from adaprune.errors import ConfigError, DataError, require

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet",)
DEFAULT_COLUMN = "image"


def _pq():
    return require("pyarrow.parquet", "parquet")


def split_spec(arg: str) -> tuple[str, str | None]:
    """`GLOB[:COLUMN]` -> (glob, column or None). A last `:NAME` without `/` that is not itself a
    .parquet file names the column."""
    head, sep, tail = arg.rpartition(":")
    if sep and head and tail and "/" not in tail and "*" not in tail and not tail.lower().endswith(".parquet"):
        return head, tail
    return arg, None


def _image_column(schema: Any, column: str | None, *, what: str) -> str:
    pa = require("pyarrow", "parquet")
    names = list(schema.names)
    if column is not None:
        if column not in names:
            raise DataError(f"{what} has no column {column!r}; it has: {', '.join(names)}")
        return column
    if DEFAULT_COLUMN in names:
        return DEFAULT_COLUMN

    def is_image(t: Any) -> bool:
        return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or
                (pa.types.is_struct(t) and t.get_field_index("bytes") >= 0))

    found = [f.name for f in schema if is_image(f.type)]
    if len(found) != 1:
        raise DataError(f"{what}: name the image column (parquet:GLOB:COLUMN); binary columns: "
                        f"{', '.join(found) or 'none'}; all columns: {', '.join(names)}")
    return found[0]


def _image_values(column: Any) -> list[bytes | None]:
    """The encoded bytes of every row of an image column (raw binary or the {"bytes", "path"} struct)."""
    pa = require("pyarrow", "parquet")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        column = column.field("bytes")
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise DataError(f"the image column must hold encoded bytes (binary, or a struct with a bytes field), "
                        f"got type {column.type}")
    return column.to_pylist()


@dataclass
class ParquetStore:
    """Image bytes at (file, row group, row in group) for every row. A fetch reads each row group
    it needs once (just the image column); the last row group read is kept for the next fetch, so
    consecutive chunks of one row group read it once."""

    files: tuple[str, ...]
    column: str
    file_of: np.ndarray  # int32 per row
    group_of: np.ndarray  # int32 per row
    row_in_group: np.ndarray  # int64 per row
    _last: tuple[tuple[int, int], list] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.file_of)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_last": None}

    def _row_group(self, f: int, g: int) -> list:
        last = self._last  # read once: another thread may replace it
        if last is not None and last[0] == (f, g):
            return last[1]
        values = _image_values(_pq().ParquetFile(self.files[f]).read_row_group(g, columns=[self.column])
                               .column(0))
        self._last = ((f, g), values)
        return values

    def fetch(self, rows: np.ndarray) -> list[bytes | DataError]:
        rows = np.asarray(rows, dtype=np.int64)
        out: list[bytes | DataError] = [b""] * len(rows)
        units = self.file_of[rows].astype(np.int64) << 32 | self.group_of[rows].astype(np.int64)
        for unit in np.unique(units):
            f, g = int(unit >> 32), int(unit & 0xFFFFFFFF)
            mine = np.flatnonzero(units == unit)
            try:
                values = self._row_group(f, g)
            except (OSError, ValueError) as exc:
                err = DataError(f"parquet file {self.files[f]!r} row group {g} is not readable: {exc}")
                for j in mine:
                    out[j] = err
                continue
            for j in mine:
                v = values[int(self.row_in_group[rows[j]])]
                out[j] = v if v else DataError(f"{self.files[f]} has no image bytes in a row it had them at load")
        return out

    def subset(self, start: int, stop: int) -> ParquetStore:
        return ParquetStore(self.files, self.column, self.file_of[start:stop], self.group_of[start:stop],
                            self.row_in_group[start:stop])

    def containers(self) -> tuple[str, ...]:
        return self.files


def load_parquet_images(arg: str, *, on_bad_file: str = "stop", workers: int | None = None) -> MemberDataset:
    """`parquet:GLOB[:COLUMN]` as a Dataset whose `x` is a MemberImages (nothing decoded yet)."""
    if not arg:
        raise ConfigError("data source 'parquet' needs a glob of Parquet files: parquet:DIR/*.parquet[:COLUMN]")
    pattern, column = split_spec(arg)
    files = expand_glob(pattern, what="parquet glob", suffixes=PARQUET_SUFFIXES)
    pq = _pq()
    bad: list[tuple[str, str]] = []
    keep_file, keep_group, keep_in_group, keep_row = [], [], [], []
    labels: list[Any] = []
    groups: list[Any] = []
    has_label = has_group = None
    image_col = None
    first: bytes | None = None
    for k, path in enumerate(files):
        what = f"parquet file {str(path)!r}"
        try:
            pf = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{what} is not readable: {exc}") from None
        schema = pf.schema_arrow
        col = _image_column(schema, column, what=what)
        if image_col is not None and col != image_col:
            raise DataError(f"{what}: image column {col!r}, but the first file's is {image_col!r}; "
                            "name it (parquet:GLOB:COLUMN)")
        image_col = col
        file_label, file_group = "label" in schema.names, "group" in schema.names
        if has_label is None:
            has_label, has_group = file_label, file_group
        elif (file_label, file_group) != (has_label, has_group):
            raise DataError(f"{what}: every file needs the same label and group columns as the first")
        wanted = [col] + ["label"] * has_label + ["group"] * bool(has_group)
        row = 0
        for g in range(pf.num_row_groups):
            table = pf.read_row_group(g, columns=wanted)
            values = _image_values(table.column(col))
            lab = table.column("label").to_pylist() if has_label else [0] * len(values)
            grp = table.column("group").to_pylist() if has_group else [None] * len(values)
            for j, (v, lv, gv) in enumerate(zip(values, lab, grp, strict=True)):
                why = check_image_bytes(v) or ("missing label" if lv is None else None) or (
                    "missing group" if has_group and gv is None else None)
                if why:
                    bad.append((f"{path}:{row + j}", why))
                    continue
                if first is None:
                    first = v
                keep_file.append(k)
                keep_group.append(g)
                keep_in_group.append(j)
                keep_row.append(row + j)
                labels.append(lv)
                groups.append(gv)
            row += len(values)
    n_found = len(keep_row) + len(bad)
    if n_found == 0:
        raise DataError(f"parquet glob {pattern!r}: the files hold no rows")
    report_bad(bad, source=pattern, on_bad_file=on_bad_file, n_total=n_found)
    assert image_col is not None and first is not None
    file_of = np.array(keep_file, dtype=np.int32)
    store = ParquetStore(tuple(str(q) for q in files), image_col, file_of, np.array(keep_group, dtype=np.int32),
                         np.array(keep_in_group, dtype=np.int64))
    if has_label:
        y, class_names = labels_from_values(labels, what=f"parquet {pattern!r}")
    else:
        y, class_names = np.zeros(len(keep_row), dtype=np.int64), None
    channels, size = image_layout(first)
    bounds = tuple(int(b) for b in np.flatnonzero(np.diff(file_of)) + 1)
    log.info("parquet %s: %d rows in %d files (%d bad)", pattern, len(keep_row), len(files), len(bad))
    names = [f"{files[k]}:{r}" for k, r in zip(keep_file, keep_row, strict=True)]
    return MemberDataset(
        name=Path(common_root(files)).name or "parquet",
        x=MemberImages(store, names, size=size, channels=channels, workers=workers),
        y=y, class_names=class_names, source_paths=tuple(str(q) for q in files),
        groups=np.asarray([str(g) for g in groups]) if has_group else None,
        ids=compound_ids("file+row", [str(files[k]) for k in keep_file], keep_row),
        id_root=common_root(files), skipped=tuple(name for name, _ in bad), id_column="file+row",
        chunk_bounds=bounds,
    )


def write_kept_rows(kept: dict[str, set[int]], *, root: str, target: Path) -> tuple[int, int]:
    """For every file in `kept` (file path -> kept rows), a new Parquet file of the same relative
    name under `target`: the same schema (its metadata included) and every column of the kept rows,
    one row group per input row group that keeps any. Returns (files written, rows written)."""
    from adaprune.data.webdataset import relative_to_root

    pq = _pq()
    n_files = n_rows = 0
    for path in sorted(kept):
        rows = np.array(sorted(kept[path]), dtype=np.int64)
        dst = target / relative_to_root(Path(path), Path(root))
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            pf = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"parquet file {path!r} is not readable: {exc}") from None
        total = pf.metadata.num_rows
        if len(rows) and rows[-1] >= total:
            raise DataError(f"parquet file {path!r} has {total} rows but the selection keeps row {int(rows[-1])}; "
                            "it changed since the selection was made")
        with pq.ParquetWriter(dst, pf.schema_arrow) as writer:
            start = 0
            for g in range(pf.num_row_groups):
                stop = start + pf.metadata.row_group(g).num_rows
                local = rows[(rows >= start) & (rows < stop)] - start
                if len(local):
                    writer.write_table(pf.read_row_group(g).take(local))
                start = stop
        n_files += 1
        n_rows += len(rows)
    return n_files, n_rows
