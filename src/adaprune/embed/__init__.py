"""Embeddings for clustering and deduplication: encoders, a resumable chunked writer, and the
embedding a method works on (`task_embeddings`)."""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.data import Dataset, load_data
from adaprune.embed.encoders import (
    ENCODER_HELP,
    ClipEncoder,
    ContrastiveEncoder,
    Encoder,
    IdentityEncoder,
    MiniLMEncoder,
    ModelEncoder,
    PixelsEncoder,
    get_encoder,
    resolve_encoder_spec,
)
from adaprune.embed.fingerprint import array_digest, texts_fingerprint
from adaprune.embed.writer import DTYPES, partial_paths, write_chunked
from adaprune.engine import Engine, LocalEngine, Shared, get_engine
from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write, refuse_input_paths

log = logging.getLogger(__name__)

__all__ = [
    "DTYPES",
    "ENCODER_HELP",
    "ClipEncoder",
    "ContrastiveEncoder",
    "EmbedResult",
    "Encoder",
    "IdentityEncoder",
    "MiniLMEncoder",
    "ModelEncoder",
    "PixelsEncoder",
    "embed",
    "get_encoder",
    "load_texts",
    "partial_paths",
    "task_embeddings",
]


@dataclass(frozen=True)
class EmbedResult:
    path: Path
    n: int
    dim: int
    encoder: str
    chunks_computed: int
    labels_path: Path | None


def load_texts(path: str) -> list[str]:
    """`text:PATH`: one text per line (UTF-8), empty lines included as empty texts."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"text file {path!r} does not exist")
    texts = p.read_text(encoding="utf-8").splitlines()
    if not texts:
        raise DataError(f"text file {path!r} is empty")
    return texts


def _fingerprint(spec: str, seed: int, shape: tuple[int, ...], name: str, rows_digest: str) -> dict:
    # rows_digest covers every row (embed.fingerprint), so a changed middle row is not resumed over.
    return {"encoder": spec, "seed": seed, "shape": list(shape), "data": name, "rows_blake2b": rows_digest}


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def embed(
    data: str | Dataset,
    encoder: str = "auto",
    out: str | os.PathLike = "emb.npy",
    *,
    seed: int = 0,
    dtype: str = "float32",
    chunk_size: int = 4096,
    model: str = "auto",
    device: str = "cpu",
    progress: bool = True,
    on_bad_file: str = "stop",
    engine: str | Engine | None = None,
    ray_address: str | None = None,
) -> EmbedResult:
    """Embed every training sample of `data` into `out` (.npy, (N, D), memory-mapped while written).

    Resumable: rerunning after a crash skips the finished chunks. File sources (`folder:DIR`,
    `files:LIST`) stream: each chunk's images are decoded when it is encoded, so memory is bounded
    by the chunk, not the data set; resuming over changed files (a path, size or modification time
    differs) is refused. Their paths go to OUT.paths.txt and OUT.source.json beside the array, so
    `embeddings:OUT` names every row by its file. Container sources (`webdataset:GLOB`,
    `parquet:GLOB`) stream the same way, each chunk within one container, and write the container
    and name of every row (`SHARD<TAB>KEY` or `FILE<TAB>ROW`) to OUT.paths.txt; under Ray each
    container's chunks are their own tasks. `engine="ray"` encodes through Ray Data: a
    dataset of the chunks still to do (each with its chunk's file paths, or its row range of a
    shared array), mapped by an actor pool of one actor per cluster CPU, each holding the fitted
    encoder (built once per actor); the driver writes each chunk into the memory map and records it
    as it arrives.
    `data` may also be `text:PATH` (one text per line) for the `minilm` encoder. The labels (and
    groups) of a dataset are written beside it as OUT.labels.npy (and OUT.groups.npy), so
    `embeddings:OUT` carries them."""
    from adaprune.data.embeddings import sidecar

    out = Path(out)
    if out.suffix != ".npy":
        raise ConfigError(f"embedding output must be a .npy file, got {str(out)!r}")
    if isinstance(data, str) and data.startswith("text:"):
        texts = load_texts(data.partition(":")[2])
        if resolve_encoder_spec(encoder, None) != "minilm":
            raise ConfigError(f"text sources need a text encoder (minilm), got {encoder!r}")
        enc = MiniLMEncoder()
        refuse_input_paths(out, [data.partition(":")[2]])
        dim = enc.encode(texts[:1]).shape[1]
        fp = _fingerprint(enc.spec, seed, (len(texts),), data, texts_fingerprint(texts))
        path, computed = write_chunked(out, n=len(texts), dim=dim, encode=lambda a, b: enc.encode(texts[a:b]),
                                       fingerprint=fp, dtype=dtype, chunk_size=chunk_size, progress=progress)
        return EmbedResult(path, len(texts), dim, enc.spec, computed, None)

    dataset = load_data(data, on_bad_file=on_bad_file) if isinstance(data, str) else data
    refuse_input_paths(out, dataset.source_paths)
    enc = get_encoder(encoder, dataset)
    task = None
    if isinstance(enc, ModelEncoder):
        from adaprune.tasks import make_task
        from adaprune.training.loop import TrainConfig

        task = make_task(dataset, model=model, train=TrainConfig(device=device))
    enc.fit(dataset, seed=seed, progress=progress, task=task)
    x = dataset.x
    wanted = getattr(enc, "input_size", None)
    if wanted is not None and hasattr(x, "with_size"):
        x = x.with_size(wanted)  # decode each image straight to the encoder's input size
    dim = enc.encode(x[:1]).shape[1]
    members = getattr(dataset, "row_names", None)  # a container source (tar shards, Parquet files)
    file_paths = getattr(x, "paths", None) if getattr(dataset, "id_root", None) is not None else None
    if members is not None:
        file_paths = members()
        fp = {"encoder": enc.spec, "seed": seed, "shape": list(x.shape), "data": dataset.name,
              **dataset.fingerprint()}
        refuse_changed_inputs(out, fp)
    elif file_paths is not None:
        from adaprune.data.files import manifest_fingerprint

        fp = {"encoder": enc.spec, "seed": seed, "shape": list(x.shape), "data": dataset.name,
              **manifest_fingerprint(file_paths)}
        refuse_changed_inputs(out, fp)
    else:
        fp = _fingerprint(enc.spec, seed, tuple(x.shape), dataset.name, array_digest(x))
    fp["model"] = model if isinstance(enc, ModelEncoder) else None
    runner = get_engine(engine, address=ray_address)
    try:
        encode_stream = None
        if not isinstance(runner, LocalEngine):
            # File sources: each chunk carries its own files. Arrays: every actor gets the shared handle.
            shared = None if hasattr(x, "subset") else runner.share(x)

            def encode_stream(ranges: list[tuple[int, int]]):
                items = [EncodeChunk(x.subset(a, b), 0, b - a) if shared is None else EncodeChunk(None, a, b)
                         for a, b in ranges]
                return runner.stream_with_actor_pool(functools.partial(ChunkEncoder, enc, shared), items)

        path, computed = write_chunked(out, n=dataset.n, dim=dim, encode=lambda a, b: enc.encode(x[a:b]),
                                       fingerprint=fp, dtype=dtype, chunk_size=chunk_size, progress=progress,
                                       encode_stream=encode_stream, bounds=getattr(dataset, "chunk_bounds", ()))
    finally:
        runner.close()
    labels_path = sidecar(out, "labels")
    _save_npy(labels_path, dataset.y.astype(np.int64))
    if dataset.groups is not None:
        _save_npy(sidecar(out, "groups"), dataset.groups)
    if file_paths is not None:
        write_file_names(out, file_paths, root=dataset.id_root, skipped=dataset.skipped,
                         id_column=getattr(dataset, "id_column", "path"))
    log.info("wrote %d x %d %s embeddings (%s) -> %s", dataset.n, dim, dtype, enc.spec, path)
    return EmbedResult(path, dataset.n, dim, enc.spec, computed, labels_path)


@dataclass(frozen=True)
class EncodeChunk:
    """Rows start:stop of `x` (a lazy ImageFiles of just the chunk's files, a shared array, or None
    for the array a `ChunkEncoder` holds)."""

    x: Any
    start: int
    stop: int


def encode_chunk(encoder: Encoder, item: EncodeChunk) -> np.ndarray:
    """One chunk through a fitted encoder: the unit of work an engine maps."""
    x = item.x.get() if isinstance(item.x, Shared) else item.x
    return encoder.encode(x[item.start : item.stop])


class ChunkEncoder:
    """What one worker of an actor pool holds: the fitted encoder (unpickled once per worker, not
    once per chunk) and, for array data, the shared array; called on each chunk it is sent."""

    def __init__(self, encoder: Encoder, shared: Shared | None = None) -> None:
        self.encoder = encoder
        self.x = None if shared is None else shared.get()

    def __call__(self, item: EncodeChunk) -> np.ndarray:
        x = self.x if item.x is None else item.x
        return encode_chunk(self.encoder, EncodeChunk(x, item.start, item.stop))


def refuse_changed_inputs(out: Path, fingerprint: dict) -> None:
    """An unfinished embed to `out` over files whose manifest fingerprint differs is not resumed."""
    state = describe_state(out)
    old = (state or {}).get("fingerprint", {})
    if "files_sha1" not in old:
        return
    same_settings = all(old.get(k) == fingerprint.get(k) for k in ("encoder", "seed", "data"))
    if same_settings and old["files_sha1"] != fingerprint["files_sha1"]:
        partial, state_path = partial_paths(out)
        raise DataError(
            f"the input files changed since the unfinished embed to {str(out)!r} (paths, sizes or modification "
            f"times differ: {old.get('files')} files then, {fingerprint['files']} now); refusing to resume. "
            f"Delete {str(partial)!r} and {str(state_path)!r} to start over"
        )


def write_file_names(out: Path, paths, *, root: str | None, skipped=(), id_column: str = "path") -> None:
    """OUT.paths.txt (one path a line, row order; for a container source `CONTAINER<TAB>NAME`: the
    shard and key, or the Parquet file and row) and OUT.source.json (id column, root, skipped)."""
    from adaprune.io_utils import atomic_write_text

    base = out.with_suffix("")
    atomic_write_text(base.with_name(base.name + ".paths.txt"), "".join(f"{p}\n" for p in paths))
    atomic_write_text(base.with_name(base.name + ".source.json"),
                      json.dumps({"id_column": id_column, "root": root, "skipped_files": list(skipped)},
                                 indent=2) + "\n")


def task_embeddings(task, *, encoder: str = "auto", embeddings: str | None = None, seed: int = 0,
                    progress: bool = False) -> np.ndarray:
    """The (N, D) embedding a method works on: the .npy at `embeddings` (memory-mapped, read-only),
    or `encoder` run on the task's training samples (in memory)."""
    data: Dataset = task.data
    if embeddings is not None:
        path = Path(embeddings)
        if not path.is_file():
            raise DataError(f"embeddings file {embeddings!r} does not exist")
        try:
            emb = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"embeddings file {embeddings!r} is not a readable .npy: {exc}") from None
        if emb.ndim != 2 or emb.shape[0] != data.n:
            raise DataError(
                f"embeddings file {embeddings!r} has shape {emb.shape}; expected ({data.n}, D), one row per sample"
            )
        return emb
    spec = resolve_encoder_spec(encoder, data)
    if spec == "identity":
        return data.x.reshape(data.n, -1) if data.x.ndim > 2 else data.x
    enc = get_encoder(spec, data)
    enc.fit(data, seed=seed, progress=progress, task=task)
    parts = [enc.encode(data.x[s : s + enc.batch_size]) for s in range(0, data.n, enc.batch_size)]
    log.info("embedded %d samples with %s", data.n, enc.spec)
    return np.concatenate(parts).astype(np.float32)


def describe_state(out: str | os.PathLike) -> dict | None:
    """The resume state of an unfinished `embed` to OUT, or None."""
    _, state = partial_paths(out)
    return json.loads(state.read_text(encoding="utf-8")) if state.is_file() else None
