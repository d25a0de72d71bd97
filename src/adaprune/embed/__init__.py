"""Embeddings for clustering and deduplication: encoders, a resumable chunked writer, and the
embedding a method works on (`task_embeddings`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaprune.data import Dataset, load_data
from adaprune.embed.encoders import (
    ENCODER_HELP,
    ClipEncoder,
    Encoder,
    IdentityEncoder,
    MiniLMEncoder,
    ModelEncoder,
    PixelsEncoder,
    get_encoder,
    resolve_encoder_spec,
)
from adaprune.embed.writer import DTYPES, partial_paths, write_chunked
from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write, refuse_input_paths

log = logging.getLogger(__name__)

__all__ = [
    "DTYPES",
    "ENCODER_HELP",
    "ClipEncoder",
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


def _fingerprint(spec: str, seed: int, shape: tuple[int, ...], name: str, head: bytes, tail: bytes) -> dict:
    digest = hashlib.sha1(head + b"|" + tail).hexdigest()
    return {"encoder": spec, "seed": seed, "shape": list(shape), "data": name, "rows_sha1": digest}


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
) -> EmbedResult:
    """Embed every training sample of `data` into `out` (.npy, (N, D), memory-mapped while written).

    Resumable: rerunning after a crash skips the finished chunks. `data` may also be `text:PATH`
    (one text per line) for the `minilm` encoder. The labels (and groups) of a dataset are written
    beside it as OUT.labels.npy (and OUT.groups.npy), so `embeddings:OUT` carries them."""
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
        fp = _fingerprint(enc.spec, seed, (len(texts),), data, texts[0].encode(), texts[-1].encode())
        path, computed = write_chunked(out, n=len(texts), dim=dim, encode=lambda a, b: enc.encode(texts[a:b]),
                                       fingerprint=fp, dtype=dtype, chunk_size=chunk_size, progress=progress)
        return EmbedResult(path, len(texts), dim, enc.spec, computed, None)

    dataset = load_data(data) if isinstance(data, str) else data
    refuse_input_paths(out, dataset.source_paths)
    enc = get_encoder(encoder, dataset)
    task = None
    if isinstance(enc, ModelEncoder):
        from adaprune.tasks import make_task
        from adaprune.training.loop import TrainConfig

        task = make_task(dataset, model=model, train=TrainConfig(device=device))
    enc.fit(dataset, seed=seed, progress=progress, task=task)
    dim = enc.encode(dataset.x[:1]).shape[1]
    x = dataset.x
    fp = _fingerprint(enc.spec, seed, tuple(x.shape), dataset.name, np.asarray(x[:1]).tobytes(),
                      np.asarray(x[-1:]).tobytes())
    fp["model"] = model if isinstance(enc, ModelEncoder) else None
    path, computed = write_chunked(out, n=dataset.n, dim=dim, encode=lambda a, b: enc.encode(x[a:b]),
                                   fingerprint=fp, dtype=dtype, chunk_size=chunk_size, progress=progress)
    labels_path = sidecar(out, "labels")
    _save_npy(labels_path, dataset.y.astype(np.int64))
    if dataset.groups is not None:
        _save_npy(sidecar(out, "groups"), dataset.groups)
    log.info("wrote %d x %d %s embeddings (%s) -> %s", dataset.n, dim, dtype, enc.spec, path)
    return EmbedResult(path, dataset.n, dim, enc.spec, computed, labels_path)


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
