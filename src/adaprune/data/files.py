"""File sources: `folder:DIR` and `files:LIST`, read lazily.

`folder:DIR` holds one subfolder per class (sorted names are classes 0..K-1) or, flat, images with
no labels (every label 0). `files:LIST` is a CSV or Parquet manifest with a `path` column and
optional `label` (integers, or names mapped to 0..K-1 in sorted order) and `group` columns; relative
paths are relative to the manifest's folder.

Nothing is decoded at load time: the training array is an `ImageFiles` over the paths, which decodes
the files a batch asks for in a thread pool and resizes them to one size (the first image's, or
what the consumer asks for with `with_size`), so folders of mixed sizes are accepted. Before that,
every file is checked once, in a thread pool: zero bytes, not an image Pillow can open, or failing
Pillow's `verify()` (a truncated PNG fails its chunk checksums). All bad files are reported
together, with their paths: `on_bad_file="stop"` (the default) raises that error before anything
is written; `"skip"` leaves them out and records them (`Dataset.skipped`, the selection's
`skipped_files` metadata). A file that passes the check but fails to decode later still stops the
run with an error naming it (verify() cannot check every JPEG byte without decoding it)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaprune.data.dataset import Dataset
from adaprune.data.images import IMAGE_SUFFIXES, ImageFiles
from adaprune.errors import ConfigError, DataError, require

log = logging.getLogger(__name__)

ON_BAD_FILE = ("stop", "skip")
MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class FileDataset(Dataset):
    """A Dataset read from files: `ids` are the absolute paths, `id_root` the folder they are laid out
    under, `skipped` the bad files left out (on_bad_file="skip")."""

    id_root: str | None = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileList:
    """The files of a source before any pixel is read."""

    name: str
    paths: tuple[str, ...]  # absolute
    labels: np.ndarray  # int64, one per file (0 when the source has none)
    groups: np.ndarray | None
    class_names: tuple[str, ...] | None
    root: str  # the folder paths are laid out under (export keeps the layout relative to it)
    source: str  # the folder or the manifest file

    def subset(self, keep: np.ndarray) -> FileList:
        return FileList(
            name=self.name,
            paths=tuple(p for p, k in zip(self.paths, keep, strict=True) if k),
            labels=self.labels[keep],
            groups=None if self.groups is None else self.groups[keep],
            class_names=self.class_names,
            root=self.root,
            source=self.source,
        )


def list_folder(path: str) -> FileList:
    """`folder:DIR`: class subfolders, or a flat folder of images (no labels)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {path!r} does not exist")
    root = root.resolve()
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        files += [(f, label) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    class_names: tuple[str, ...] | None = tuple(d.name for d in class_dirs)
    if not class_dirs:
        files = [(f, 0) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        class_names = None
    if not files:
        raise DataError(
            f"image folder {path!r} has no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))} in DIR/<class>/ "
            "or DIR/)"
        )
    return FileList(
        name=root.name, paths=tuple(str(f) for f, _ in files),
        labels=np.array([label for _, label in files], dtype=np.int64), groups=None,
        class_names=class_names, root=str(root), source=str(root),
    )


def read_manifest(path: str) -> FileList:
    """`files:LIST`: a CSV or Parquet table with `path` and optional `label` and `group` columns."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"manifest {path!r} does not exist")
    suffix = p.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataError(f"manifest {path!r}: expected a .csv or .parquet file with a path column")
    try:
        if suffix == ".csv":
            import csv

            with p.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            columns = {name: [r[name] for r in rows] for name in (rows[0].keys() if rows else [])}
        else:
            table = require("pyarrow.parquet", "parquet").read_table(p)
            columns = {name: table.column(name).to_pylist() for name in table.column_names}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"manifest {path!r} is not readable: {exc}") from None
    if "path" not in columns:
        raise DataError(f"manifest {path!r} has no path column; it has: {', '.join(columns) or 'none'}")
    if not columns["path"]:
        raise DataError(f"manifest {path!r} lists no files")
    base = p.resolve().parent
    paths = tuple(str((base / str(v)).resolve()) if not os.path.isabs(str(v)) else str(v) for v in columns["path"])
    class_names = None
    if "label" in columns:
        raw = [str(v) for v in columns["label"]]
        try:
            labels = np.array([int(v) for v in raw], dtype=np.int64)
        except ValueError:
            class_names = tuple(sorted(set(raw)))
            index = {c: i for i, c in enumerate(class_names)}
            labels = np.array([index[v] for v in raw], dtype=np.int64)
        if (labels < 0).any():
            bad = int(np.flatnonzero(labels < 0)[0])
            raise DataError(f"manifest {path!r}: labels must be non-negative integers, got {labels[bad]} at row {bad}")
    else:
        labels = np.zeros(len(paths), dtype=np.int64)
    groups = np.asarray([str(g) for g in columns["group"]]) if "group" in columns else None
    # Relative layout for export: the manifest's folder when every file lies under it.
    try:
        root = os.path.commonpath([str(base), *paths]) if paths else str(base)
    except ValueError:
        root = str(base)
    return FileList(name=p.stem, paths=paths, labels=labels, groups=groups, class_names=class_names,
                    root=root, source=str(p.resolve()))


def check_file(path: str) -> str | None:
    """Why `path` is a bad image (zero bytes, missing, unreadable, corrupt), or None when it is fine."""
    image_mod = require("PIL.Image", "images")
    try:
        if os.path.getsize(path) == 0:
            return "zero bytes"
        with image_mod.open(path) as im:
            im.verify()
    except FileNotFoundError:
        return "does not exist"
    except Exception as exc:  # Pillow raises several unrelated types for a bad file
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def scan_files(paths: Sequence[str], *, workers: int | None = None) -> list[tuple[str, str]]:
    """(path, reason) for every bad file, checked in a thread pool, in input order."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(check_file, paths, chunksize=64))
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def bad_files_error(bad: list[tuple[str, str]], source: str) -> DataError:
    listed = "; ".join(f"{p!r} ({r})" for p, r in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    return DataError(
        f"{len(bad)} bad image files in {source!r}: {listed}{more} (--on-bad-file skip leaves them out)"
    )


def manifest_fingerprint(paths: Sequence[str]) -> dict:
    """A hash of every file's path, size and modification time: a resume over changed inputs is refused."""
    digest = hashlib.sha1()
    for p in paths:
        try:
            st = os.stat(p)
            digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{p}\0missing\n".encode())
    return {"files": len(paths), "files_sha1": digest.hexdigest()}


def image_channels(path: str) -> int:
    """1 when the first image is grey (a grey mode, or RGB with three equal channels), else 3.

    Decided by the first file only: reading every file to decide would defeat lazy loading."""
    image_mod = require("PIL.Image", "images")
    with image_mod.open(path) as im:
        if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
            return 1
        rgb = np.asarray(im.convert("RGB"))
    return 1 if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() else 3


def load_files(spec_kind: str, arg: str, *, on_bad_file: str = "stop", workers: int | None = None) -> FileDataset:
    """`folder:DIR` or `files:LIST` as a Dataset whose `x` is an ImageFiles (nothing decoded yet)."""
    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be one of {', '.join(ON_BAD_FILE)}, got {on_bad_file!r}")
    files = list_folder(arg) if spec_kind == "folder" else read_manifest(arg)
    bad = scan_files(files.paths, workers=workers)
    skipped: tuple[str, ...] = ()
    if bad:
        if on_bad_file == "stop":
            raise bad_files_error(bad, files.source)
        bad_set = {p for p, _ in bad}
        files = files.subset(np.array([p not in bad_set for p in files.paths]))
        skipped = tuple(p for p, _ in bad)
        for p, reason in bad:
            log.warning("skipping bad image %r (%s)", p, reason)
        if not files.paths:
            raise DataError(f"every image in {files.source!r} is bad; nothing left to use")
    first = files.paths[0]
    channels = image_channels(first)
    # One size for all: the first image's; other sizes are resized to it (a consumer may ask for another).
    probe = ImageFiles([first], size=None, channels=channels, workers=workers)
    x = ImageFiles(files.paths, size=probe.size, channels=channels, workers=workers)
    return FileDataset(
        name=files.name, x=x, y=files.labels, class_names=files.class_names, source_paths=(files.source,),
        groups=files.groups, ids=np.asarray(files.paths), id_root=files.root, skipped=skipped,
    )
