"""Write embeddings in chunks to a memory-mapped .npy, resumably.

The array is filled in `OUT.partial` (a .npy memory map) while `OUT.partial.json` records which
chunks are finished, each recorded only after its rows are flushed to disk. A rerun with the same
input, encoder, seed, dtype and chunk size skips the finished chunks; anything else starts over.
When every chunk is done the partial file is renamed onto OUT (so OUT is only ever complete)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adaprune.errors import ConfigError
from adaprune.io_utils import atomic_write_text

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16")


def partial_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    out = Path(out)
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def chunk_ranges(n: int, chunk_size: int, bounds: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Row ranges of at most `chunk_size` rows that never cross a container boundary in `bounds`
    (the first row of each container): each chunk reads one container."""
    edges = sorted({0, n, *(b for b in bounds if 0 < b < n)})
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        out += [(s, min(b, s + chunk_size)) for s in range(a, b, chunk_size)]
    return out


def write_chunked(
    out: str | os.PathLike,
    *,
    n: int,
    dim: int,
    encode: Callable[[int, int], np.ndarray],
    fingerprint: dict[str, Any],
    dtype: str = "float32",
    chunk_size: int = 4096,
    progress: bool = True,
    encode_stream: Callable[[list[tuple[int, int]]], Iterator[tuple[int, np.ndarray]]] | None = None,
    bounds: Sequence[int] = (),
) -> tuple[Path, int]:
    """Fill an (n, dim) array chunk by chunk with `encode(start, stop)`; returns (path, chunks
    computed in this call). With `encode_stream`, the chunks still to do are given to it at once (an
    engine spreading them over workers); it yields (position in that list, rows) as each finishes,
    in any order, and each chunk is recorded as soon as its rows are flushed. `bounds` (the first
    row of each container of a container source) splits chunks there, so no chunk reads two
    containers (and an engine gives each container its own tasks)."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"output folder {str(out.parent)!r} does not exist")
    partial, state_path = partial_paths(out)
    all_ranges = chunk_ranges(n, chunk_size, bounds)
    n_chunks = len(all_ranges)
    state = {"n": n, "dim": dim, "dtype": dtype, "chunk_size": chunk_size, "fingerprint": fingerprint, "done": []}
    if bounds:
        state["bounds_sha1"] = hashlib.sha1(np.asarray(bounds, dtype=np.int64).tobytes()).hexdigest()
    done: set[int] = set()
    arr = None
    if partial.is_file() and state_path.is_file():
        try:
            old = json.loads(state_path.read_text(encoding="utf-8"))
            if {k: old.get(k) for k in state if k != "done"} == {k: v for k, v in state.items() if k != "done"}:
                arr = np.lib.format.open_memmap(partial, mode="r+")
                if arr.shape != (n, dim) or arr.dtype != np.dtype(dtype):
                    arr = None
                else:
                    done = {int(c) for c in old.get("done", [])}
        except (OSError, ValueError):
            arr = None
        if arr is not None:
            log.info("resuming %s: %d of %d chunks already written", out, len(done), n_chunks)
        else:
            log.info("found an unfinished %s from other settings; starting over", out)
    if arr is None:
        state_path.unlink(missing_ok=True)
        arr = np.lib.format.open_memmap(partial, mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
    computed = 0
    todo = [c for c in range(n_chunks) if c not in done]
    bar = tqdm(total=len(todo), desc="embed", disable=not progress, unit="chunk")
    ranges = [all_ranges[c] for c in todo]
    finished = encode_stream(ranges) if encode_stream is not None else (
        (j, encode(a, b)) for j, (a, b) in enumerate(ranges)
    )
    for j, rows in finished:
        start, stop = ranges[j]
        rows = np.asarray(rows)
        if rows.shape != (stop - start, dim):
            raise RuntimeError(f"encoder returned {rows.shape} for rows {start}:{stop}, expected {(stop - start, dim)}")
        arr[start:stop] = rows.astype(dtype)
        arr.flush()
        computed += todo[j] not in done
        done.add(todo[j])
        atomic_write_text(state_path, json.dumps({**state, "done": sorted(done)}))
        bar.update()
    if len(done) != n_chunks:
        raise RuntimeError(f"{n_chunks - len(done)} of {len(todo)} chunks came back without rows")
    bar.close()
    arr.flush()
    del arr
    os.replace(partial, out)
    state_path.unlink(missing_ok=True)
    return out, computed
