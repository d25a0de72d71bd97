"""`embeddings:PATH.npy`: a (N, D) embedding array a user brings (or `adaprune embed` wrote).

The array is memory-mapped, not read into memory (copy-on-write, so the file is never modified).
Labels are optional: `PATH.labels.npy` beside it (as `adaprune embed` writes) gives one integer
label per row; without it every row gets label 0, which methods that need no labels (SemDeDup)
ignore and methods that train a classifier refuse. `PATH.groups.npy`, when present, gives group ids.
`PATH.paths.txt` and `PATH.source.json` (written by `adaprune embed` on a file source) name every
row by its file, so a selection of these rows carries a `path` column.
A float16 array stays float16 on disk and in the map (10^8 x 64 is 12.8 GB instead of 25.6): the
dedup stages read it cluster by cluster into float32 rows (float32 accumulation), and models get
float32 batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaprune.data.dataset import Dataset, validate_arrays
from adaprune.errors import DataError
from adaprune.selection import COMPOUND_IDS


@dataclass(frozen=True)
class EmbeddingsDataset(Dataset):
    """A Dataset read from `embeddings:PATH`: its rows are vectors to use as given (the geometric
    methods do not train a model on them). `has_labels` is False when no PATH.labels.npy was found
    (every label is then 0, and methods that train a classifier refuse the source)."""

    embeddings_path: str = ""
    has_labels: bool = True

    @property
    def labels_path(self) -> Path:
        return sidecar(self.embeddings_path, "labels")


def sidecar(path: str | Path, what: str) -> Path:
    """`emb.npy` -> `emb.labels.npy` / `emb.groups.npy`."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{what}.npy")


def load_embeddings(path: str) -> EmbeddingsDataset:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"embeddings file {path!r} does not exist")
    if p.suffix != ".npy":
        raise DataError(f"embeddings file {path!r}: expected a .npy array of shape (N, D)")
    try:
        x = np.load(p, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"embeddings file {path!r} is not readable as a .npy array: {exc}") from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"embeddings file {path!r}: expected a float (N, D) array, got {x.dtype} {x.shape}")
    if x.dtype not in (np.float32, np.float16):
        x = np.asarray(x, dtype=np.float32)
    paths = [str(p)]
    labels_path = sidecar(p, "labels")
    if labels_path.is_file():
        y = np.load(labels_path, allow_pickle=False)
        # Label checks (dtype, integer values, sign) without touching x; the length is checked below.
        validate_arrays(np.zeros((len(y), 1), dtype=np.float32), y, what=str(labels_path))
        if y.shape != (len(x),):
            raise DataError(f"{str(labels_path)!r} has shape {y.shape}; expected one label per row ({len(x)})")
        y = y.astype(np.int64)
        paths.append(str(labels_path))
    else:
        y = np.zeros(len(x), dtype=np.int64)
    groups = None
    groups_path = sidecar(p, "groups")
    if groups_path.is_file():
        groups = np.load(groups_path, allow_pickle=False)
        paths.append(str(groups_path))
    names_path, source_path = p.with_name(f"{p.stem}.paths.txt"), p.with_name(f"{p.stem}.source.json")
    if names_path.is_file():
        # Rows embedded from files (`adaprune embed folder:...`): every row keeps its file's path.
        from adaprune.data.files import FileDataset

        lines = names_path.read_text(encoding="utf-8").splitlines()
        if len(lines) != len(x):
            raise DataError(f"{str(names_path)!r} names {len(lines)} files; expected one per row ({len(x)})")
        source = json.loads(source_path.read_text(encoding="utf-8")) if source_path.is_file() else {}
        kw = {"id_root": source.get("root"), "skipped": tuple(source.get("skipped_files", ()))}
        if source.get("id_column") in COMPOUND_IDS:
            # Rows of a container source: `CONTAINER<TAB>NAME` (a shard and key, a Parquet file and row).
            from adaprune.data.members import MemberDataset, compound_ids

            parts = [line.split("\t", 1) for line in lines]
            if any(len(q) != 2 for q in parts):
                raise DataError(f"{str(names_path)!r}: expected CONTAINER<TAB>NAME on every line")
            ids = compound_ids(source["id_column"], [q[0] for q in parts], [q[1] for q in parts])
            return MemberDataset(name=p.stem, x=x, y=y, source_paths=tuple(paths), groups=groups, ids=ids,
                                 id_column=source["id_column"], **kw)
        return FileDataset(name=p.stem, x=x, y=y, source_paths=tuple(paths), groups=groups,
                           ids=np.asarray(lines), **kw)
    return EmbeddingsDataset(name=p.stem, x=x, y=y, source_paths=tuple(paths), groups=groups,
                             embeddings_path=str(p), has_labels=labels_path.is_file())
