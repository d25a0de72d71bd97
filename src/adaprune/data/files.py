"""File sources: `folder:DIR` and `files:LIST`, read lazily.

`folder:DIR` holds one subfolder per class (sorted names are classes 0..K-1) or, flat, images with
no labels (every label 0). `files:LIST` is a CSV or Parquet manifest with a `path` column and
optional `label` (all integers, or all names mapped to 0..K-1 in sorted order; a row with an empty
label, or an integer among names, is refused in one line naming the row, or left out with
`on_bad_file="skip"`) and `group` columns; relative paths are relative to the manifest's folder.
Class names are part of the data: a test source's classes are matched to the training source's by
name (`Dataset.with_test`).

Channels: one pass over the files' headers (the bad-file check) reads every file's mode. Every
file grey: one channel; grey and colour files mixed: every image is read as RGB, said in one log
line (colour is never dropped); every file in a colour mode: the first image decides (grey pixels
saved as RGB read as one channel). Files of several sizes: one log line names the sizes and the
size they are resized to.

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

import dataclasses
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
from adaprune.naming import option

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
    left_out: tuple[str, ...] = ()  # manifest rows without a usable label, left out (on_bad_file="skip")

    def subset(self, keep: np.ndarray) -> FileList:
        return FileList(
            name=self.name,
            paths=tuple(p for p, k in zip(self.paths, keep, strict=True) if k),
            labels=self.labels[keep],
            groups=None if self.groups is None else self.groups[keep],
            class_names=self.class_names,
            root=self.root,
            source=self.source,
            left_out=self.left_out,
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


def read_manifest(path: str, *, on_bad_label: str = "stop") -> FileList:
    """`files:LIST`: a CSV or Parquet table with `path` and optional `label` and `group` columns
    (labels: `manifest_labels`; on_bad_label="skip" leaves rows without a usable label out)."""
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
    unlabelled: tuple[int, ...] = ()
    if "label" in columns:
        labels, class_names, unlabelled = manifest_labels(columns["label"], columns["path"], path,
                                                          on_bad_label=on_bad_label)
    else:
        labels = np.zeros(len(paths), dtype=np.int64)
    groups = np.asarray([str(g) for g in columns["group"]]) if "group" in columns else None
    # Relative layout for export: the manifest's folder when every file lies under it.
    try:
        root = os.path.commonpath([str(base), *paths]) if paths else str(base)
    except ValueError:
        root = str(base)
    files = FileList(name=p.stem, paths=paths, labels=labels, groups=groups, class_names=class_names,
                     root=root, source=str(p.resolve()))
    if unlabelled:
        for i in unlabelled:
            log.warning("manifest %s row %d (path %r) has no usable label; left out (%s)",
                        p.name, i, str(columns["path"][i]), option("on_bad_file='skip'", "--on-bad-file skip"))
        keep = np.ones(len(paths), dtype=bool)
        keep[list(unlabelled)] = False
        if not keep.any():
            raise DataError(f"manifest {path!r}: no row has a label")
        files = dataclasses.replace(files.subset(keep), left_out=tuple(paths[i] for i in unlabelled))
    return files


# Label cells that mean "no label": an empty CSV cell, or a Parquet null.
EMPTY_LABELS = ("", "none", "null", "nan", "na", "n/a")


def manifest_labels(
    raw: Sequence[object], raw_paths: Sequence[object], path: str, *, on_bad_label: str = "stop"
) -> tuple[np.ndarray, tuple[str, ...] | None, tuple[int, ...]]:
    """(labels, class names or None, rows left unlabelled) of a manifest's `label` column.

    Labels are all integers (used as they are) or all class names (numbered 0..K-1 in sorted
    order: the same rule as class folders, so a `folder:` and a `files:` source of the same classes
    agree). An empty cell, or an integer among class names (or a name among integers), is refused
    in one line naming the row; with on_bad_label="skip" such rows are left out instead."""
    cells = ["" if v is None else str(v).strip() for v in raw]

    def as_int(v: str) -> int | None:
        try:
            return int(v)
        except ValueError:
            return None

    numbers = [as_int(v) for v in cells]
    filled = [i for i, v in enumerate(cells) if v.lower() not in EMPTY_LABELS]
    n_int = sum(numbers[i] is not None for i in filled)
    integer = n_int * 2 > len(filled)  # the column's kind: what most of its labels are
    bad: list[tuple[int, str]] = []
    for i, v in enumerate(cells):
        if v.lower() in EMPTY_LABELS:
            bad.append((i, f"an empty label ({str(raw[i])!r})" if raw[i] not in (None, "") else "an empty label"))
        elif integer and numbers[i] is None:
            bad.append((i, f"label {v!r}, a name where the other labels are integers"))
        elif not integer and numbers[i] is not None:
            bad.append((i, f"label {v!r}, an integer where the other labels are class names"))
        elif integer and numbers[i] is not None and numbers[i] < 0:  # type: ignore[operator]
            bad.append((i, f"label {v!r}; labels must be non-negative integers or class names"))
    if bad and on_bad_label != "skip":
        i, why = bad[0]
        more = f" ({len(bad) - 1} more rows like it)" if len(bad) > 1 else ""
        raise DataError(
            f"manifest {path!r} row {i} (path {str(raw_paths[i])!r}) has {why}{more}; give every row a label "
            f"({option('on_bad_file=' + repr('skip'), '--on-bad-file skip')} leaves such rows out)"
        )
    bad_rows = {i for i, _ in bad}
    if integer:
        labels = np.array([0 if i in bad_rows else numbers[i] for i in range(len(cells))], dtype=np.int64)
        return labels, None, tuple(sorted(bad_rows))
    class_names = tuple(sorted({v for i, v in enumerate(cells) if i not in bad_rows}))
    index = {c: k for k, c in enumerate(class_names)}
    labels = np.array([0 if i in bad_rows else index[v] for i, v in enumerate(cells)], dtype=np.int64)
    return labels, class_names, tuple(sorted(bad_rows))


def check_file(path: str) -> str | None:
    """Why `path` is a bad image (zero bytes, missing, unreadable, corrupt), or None when it is fine."""
    return probe_file(path)[0]


def probe_file(path: str) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(why it is bad or None, Pillow mode, (height, width)) from one open of the file's header."""
    image_mod = require("PIL.Image", "images")
    try:
        if os.path.getsize(path) == 0:
            return "zero bytes", None, None
        with image_mod.open(path) as im:
            mode, size = im.mode, (int(im.height), int(im.width))
            im.verify()
    except FileNotFoundError:
        return "does not exist", None, None
    except Exception as exc:  # Pillow raises several unrelated types for a bad file
        return f"not a readable image ({type(exc).__name__}: {exc})", None, None
    return None, mode, size


@dataclass(frozen=True)
class Scan:
    """What one pass over the files' headers found: the bad files, and every good file's mode and size."""

    bad: list[tuple[str, str]]
    modes: dict[str, str]  # path -> Pillow mode
    sizes: dict[str, tuple[int, int]]  # path -> (height, width)


def scan_images(paths: Sequence[str], *, workers: int | None = None) -> Scan:
    """Every file checked (`probe_file`) in a thread pool; bad files in input order."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        probes = list(pool.map(probe_file, paths, chunksize=64))
    bad = [(p, r) for p, (r, _, _) in zip(paths, probes, strict=True) if r is not None]
    modes = {p: m for p, (r, m, _) in zip(paths, probes, strict=True) if r is None and m is not None}
    sizes = {p: sz for p, (r, _, sz) in zip(paths, probes, strict=True) if r is None and sz is not None}
    return Scan(bad=bad, modes=modes, sizes=sizes)


def scan_files(paths: Sequence[str], *, workers: int | None = None) -> list[tuple[str, str]]:
    """(path, reason) for every bad file, checked in a thread pool, in input order."""
    return scan_images(paths, workers=workers).bad


def bad_files_error(bad: list[tuple[str, str]], source: str) -> DataError:
    listed = "; ".join(f"{p!r} ({r})" for p, r in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    return DataError(
        f"{len(bad)} bad image files in {source!r}: {listed}{more} "
        f"({option('on_bad_file=' + repr('skip'), '--on-bad-file skip')} leaves them out)"
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


GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_channels(path: str) -> int:
    """1 when the image is grey (a grey mode, or RGB with three equal channels), else 3."""
    image_mod = require("PIL.Image", "images")
    with image_mod.open(path) as im:
        if im.mode in GREY_MODES:
            return 1
        rgb = np.asarray(im.convert("RGB"))
    return 1 if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() else 3


def source_channels(paths: Sequence[str], modes: dict[str, str], *, source: str) -> int:
    """One channel count for every file, from the modes the scan read (no pixel decoded): 1 when
    every file is stored grey; 3 when some are grey and some colour (the grey ones are promoted to
    RGB, said in one log line: colour is never dropped); when every file is stored in a colour mode,
    the first image decides (grey pixels saved as RGB read as one channel, as before)."""
    grey = sum(modes.get(p) in GREY_MODES for p in paths)
    colour = len(paths) - grey
    if colour == 0:
        return 1
    if grey:
        log.info("%s holds %d grey and %d colour images: reading every image as RGB (3 channels)",
                 source, grey, colour)
        return 3
    channels = image_channels(paths[0])
    if channels == 1 and len(paths) > 1:
        log.info("%s: the first image holds grey pixels in mode %s; reading every image as one channel "
                 "(the others are not decoded to check)", source, modes.get(paths[0]))
    return channels


def describe_sizes(paths: Sequence[str], sizes: dict[str, tuple[int, int]], target: tuple[int, int], *,
                   source: str) -> None:
    """One log line when the files come in more than one size: which sizes, and what they are resized to."""
    counts: dict[tuple[int, int], int] = {}
    for p in paths:
        if p in sizes:
            counts[sizes[p]] = counts.get(sizes[p], 0) + 1
    if len(counts) <= 1:
        return
    common = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{w}x{h} ({n})" for (h, w), n in common[:5])
    more = f" and {len(common) - 5} more sizes" if len(common) > 5 else ""
    log.info("%s holds images of %d sizes (width x height: %s%s); every image is resized to %dx%d "
             "(the first image's size)", source, len(counts), shown, more, target[1], target[0])


def load_files(spec_kind: str, arg: str, *, on_bad_file: str = "stop", workers: int | None = None) -> FileDataset:
    """`folder:DIR` or `files:LIST` as a Dataset whose `x` is an ImageFiles (nothing decoded yet)."""
    if on_bad_file not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be one of {', '.join(ON_BAD_FILE)}, got {on_bad_file!r}")
    files = list_folder(arg) if spec_kind == "folder" else read_manifest(arg, on_bad_label=on_bad_file)
    skipped: tuple[str, ...] = files.left_out
    scan = scan_images(files.paths, workers=workers)
    bad = scan.bad
    if bad:
        if on_bad_file == "stop":
            raise bad_files_error(bad, files.source)
        bad_set = {p for p, _ in bad}
        files = files.subset(np.array([p not in bad_set for p in files.paths]))
        skipped += tuple(p for p, _ in bad)
        for p, reason in bad:
            log.warning("skipping bad image %r (%s)", p, reason)
        if not files.paths:
            raise DataError(f"every image in {files.source!r} is bad; nothing left to use")
    first = files.paths[0]
    channels = source_channels(files.paths, scan.modes, source=files.source)
    # One size for all: the first image's; other sizes are resized to it (a consumer may ask for another).
    probe = ImageFiles([first], size=None, channels=channels, workers=workers)
    describe_sizes(files.paths, scan.sizes, probe.size, source=files.source)
    x = ImageFiles(files.paths, size=probe.size, channels=channels, workers=workers)
    return FileDataset(
        name=files.name, x=x, y=files.labels, class_names=files.class_names, source_paths=(files.source,),
        groups=files.groups, ids=np.asarray(files.paths), id_root=files.root, skipped=skipped,
    )
