"""Samples stored inside container files (tar shards, Parquet files), read in place.

A large image set often ships as a few thousand containers rather than 10^7 files. Each sample is
named by its container and its place in it (a tar shard and a webdataset key, a Parquet file and
a row), which is what every output carries: a selection's `shard`+`key` (or `file`+`row`) columns,
an embedding's OUT.paths.txt (one `CONTAINER<TAB>NAME` line per row).

A *store* knows where every sample's encoded image lies and fetches the bytes of a batch of rows
in one go (a tar member by its offset, a Parquet row by its row group); `MemberImages` decodes them
lazily, like `ImageFiles` decodes files. The format modules (`webdataset.py`, `parquet_images.py`)
index their containers, check every member once at load (undecodable images and missing labels
follow `on_bad_file`), and write the kept samples back as new containers with the exact bytes."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from adaprune.data.files import FileDataset
from adaprune.data.images import ImageFiles
from adaprune.errors import ConfigError, DataError, require
from adaprune.selection import COMPOUND_IDS

log = logging.getLogger(__name__)


class MemberStore(Protocol):
    """Where the encoded bytes of every sample lie; picklable (a Ray task carries its chunk's store)."""

    def __len__(self) -> int: ...

    def fetch(self, rows: np.ndarray) -> list[bytes | DataError]:
        """The encoded bytes of each row (or the error reading it), in the order asked."""
        ...

    def subset(self, start: int, stop: int) -> MemberStore: ...

    def containers(self) -> tuple[str, ...]:
        """The container files this store reads (for the resume fingerprint)."""
        ...


class MemberImages(ImageFiles):
    """A lazy (N, C, H, W) float32 array over images stored inside containers: a batch's bytes are
    fetched from the store at once (each container opened once, a Parquet row group read once),
    then decoded in the thread pool. `paths` holds each row's printable name (`SHARD:KEY`)."""

    def __init__(self, store: MemberStore, names: Sequence[str], *, size: tuple[int, int], channels: int,
                 workers: int | None = None) -> None:
        if len(store) != len(names):
            raise DataError(f"{len(names)} member names for a store of {len(store)} rows")
        self.store = store
        super().__init__(names, size=size, channels=channels, workers=workers)

    def _sources(self, rows: np.ndarray) -> list[str | bytes | DataError]:
        return list(self.store.fetch(rows))

    def subset(self, start: int, stop: int) -> MemberImages:
        return MemberImages(self.store.subset(start, stop), self.paths[start:stop], size=self.size,
                            channels=self.channels, workers=self.workers)

    def with_size(self, size: tuple[int, int]) -> MemberImages:
        return MemberImages(self.store, self.paths, size=size, channels=self.channels, workers=self.workers)


@dataclass(frozen=True)
class MemberDataset(FileDataset):
    """A Dataset whose samples lie inside containers. `ids` is a structured array with the two
    fields of `id_column` (`shard`, `key` or `file`, `row`); `id_root` the folder the containers lie
    under (export keeps their relative names); `chunk_bounds` the row where each container starts
    (so an engine can give every container to its own task)."""

    id_column: str = "shard+key"
    chunk_bounds: tuple[int, ...] = ()

    def row_names(self) -> list[str]:
        """One `CONTAINER<TAB>NAME` line per row (what `embed` writes to OUT.paths.txt)."""
        a, b = COMPOUND_IDS[self.id_column]
        return [f"{c}\t{n}" for c, n in zip(self.ids[a].tolist(), self.ids[b].tolist(), strict=True)]

    def fingerprint(self) -> dict:
        """Every container's path, size and modification time, and every row's name: a resume over
        changed inputs is refused."""
        from adaprune.data.files import manifest_fingerprint

        fp = manifest_fingerprint(self.x.store.containers())
        digest = hashlib.sha1(fp["files_sha1"].encode())
        for line in self.row_names():
            digest.update(line.encode() + b"\n")
        return {"files": len(self.ids), "files_sha1": digest.hexdigest()}


def compound_ids(id_column: str, first: Sequence[str], second: Sequence[Any]) -> np.ndarray:
    """The structured id array of `id_column` ("shard+key": two strings; "file+row": a string, an int)."""
    a, b = COMPOUND_IDS[id_column]
    first_arr = np.asarray(list(first), dtype=str)
    second_arr = np.asarray(list(second), dtype=np.int64 if b == "row" else str)
    out = np.empty(len(first_arr), dtype=[(a, first_arr.dtype), (b, second_arr.dtype)])
    out[a], out[b] = first_arr, second_arr
    return out


def expand_glob(pattern: str, *, what: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files a glob names (sorted; a plain path or a folder of such files is accepted too)."""
    import glob

    p = Path(pattern)
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.name.lower().endswith(suffixes) and q.is_file())
    else:
        found = sorted(Path(q) for q in glob.glob(pattern, recursive=True) if Path(q).is_file())
    if not found:
        raise DataError(f"{what} {pattern!r} matches no files (expected {' or '.join(suffixes)} files)")
    return [q.resolve() for q in found]


def common_root(paths: Sequence[Path]) -> str:
    """The folder every container lies under (its relative names are kept on export)."""
    return os.path.commonpath([str(q.parent) for q in paths])


def check_image_bytes(data: bytes | None) -> str | None:
    """Why encoded image bytes are bad (none, zero bytes, not an image Pillow can verify), or None."""
    if data is None:
        return "no image bytes"
    if len(data) == 0:
        return "zero bytes"
    image_mod = require("PIL.Image", "images")
    try:
        with image_mod.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as exc:  # Pillow raises several unrelated types for bad bytes
        detail = "" if "BytesIO" in str(exc) else f": {exc}"  # not the buffer's memory address
        return f"not a readable image ({type(exc).__name__}{detail})"
    return None


def labels_from_values(raw: Sequence[str | None], *, what: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Integer labels from their text (integers as they are; names mapped to 0..K-1 in sorted order)."""
    values = [str(v).strip() for v in raw]
    try:
        labels = np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        names = tuple(sorted(set(values)))
        index = {c: i for i, c in enumerate(names)}
        return np.array([index[v] for v in values], dtype=np.int64), names
    if (labels < 0).any():
        bad = int(np.flatnonzero(labels < 0)[0])
        raise DataError(f"{what}: labels must be non-negative integers, got {labels[bad]} at row {bad}")
    return labels, None


def image_layout(first: bytes) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) of the first image: every image is resized to its size, in its channels."""
    from adaprune.data.files import image_channels
    from adaprune.data.images import decode_image

    channels = image_channels(io.BytesIO(first))
    arr = decode_image(first, size=None, channels=channels)
    return channels, (int(arr.shape[1]), int(arr.shape[2]))


def report_bad(bad: list[tuple[str, str]], *, source: str, on_bad_file: str, n_total: int) -> None:
    """`on_bad_file`: "stop" raises one error naming every bad sample; "skip" logs each one."""
    from adaprune.data.files import ON_BAD_FILE

    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be one of {', '.join(ON_BAD_FILE)}, got {on_bad_file!r}")
    if not bad:
        return
    if on_bad_file == "stop":
        listed = "; ".join(f"{name} ({why})" for name, why in bad[:20])
        more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DataError(f"{len(bad)} bad samples in {source!r}: {listed}{more} (--on-bad-file skip leaves them out)")
    for name, why in bad:
        log.warning("skipping bad sample %s (%s)", name, why)
    if len(bad) == n_total:
        raise DataError(f"every sample in {source!r} is bad; nothing left to use")
