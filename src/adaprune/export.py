"""Give the user their kept files back: links, copies or a plain list (`adaprune export`).

A selection of a file source names every sample by path (its `path` column) and records the
folder the paths are laid out under (`id_root`: the `folder:` root or the manifest's folder). The
kept files are written under the target with the same relative layout. The target is built in a
temporary folder beside it and renamed into place, so it appears complete or not at all; it must
not exist yet (or be an empty folder), and the inputs are never touched.

A selection of a container source (`shard`+`key` or `file`+`row` columns) is written as new
containers of the same relative names: each new tar shard holds the kept samples' members (tar
headers and bytes exactly as they were, in shard order), each new Parquet file the kept rows with
every column and the same schema. Links cannot point into a container, so link and copy both
write new containers; list writes one `CONTAINER<TAB>KEY` (or `FILE<TAB>ROW`) line per kept sample."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write_text, new_folder_mode
from adaprune.selection import COMPOUND_IDS, Selection, check_matches

log = logging.getLogger(__name__)

EXPORT_MODES = ("link", "copy", "list")
T = TypeVar("T")


@dataclass(frozen=True)
class ExportResult:
    target: Path
    mode: str
    n_files: int  # kept samples written (files, or samples inside containers)
    hard_links: int  # link mode: files hard-linked
    symlinks: int  # link mode: files symlinked because the target is on another device
    containers: int = 0  # container sources: new shards or Parquet files written


def kept_layout(selection: Selection) -> list[tuple[Path, Path]]:
    """(source file, path relative to the target) for every kept sample."""
    if selection.ids is None or selection.id_column != "path":
        raise DataError(
            f"selection of {selection.method!r} has no path column: export needs a file source "
            "(folder:DIR or files:LIST)"
        )
    paths = [Path(p) for p in selection.kept_ids.tolist()]
    if selection.id_root is not None:
        root = Path(selection.id_root)
    else:
        root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    layout = []
    for p in paths:
        try:
            rel = p.relative_to(root)
        except ValueError:
            raise DataError(f"kept file {str(p)!r} is not under the source folder {str(root)!r}") from None
        layout.append((p, rel))
    missing = [str(p) for p, _ in layout if not p.is_file()]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise DataError(f"{len(missing)} kept files do not exist (first: {shown})")
    return layout


def build_in_place(target: Path, fill: Callable[[Path], T]) -> T:
    """`fill(folder)` writes into a temporary folder beside `target`, which is then renamed onto it:
    the target appears complete or not at all. It must not exist yet, or be an empty folder. The
    folder follows the umask like files do (mkdtemp's own mode is private, 0700)."""
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise ConfigError(f"export target {str(target)!r} already exists; give a new (or empty) folder")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"output folder {str(parent)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        os.chmod(tmp, new_folder_mode())
        result = fill(tmp)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def export_selection(selection: Selection | str, to: str | os.PathLike, *, mode: str = "link",
                     data: Any = None) -> ExportResult:
    """Write the kept files of `selection` under the folder `to` (mode link or copy, keeping the
    relative layout), or the list of kept paths to the file `to` (mode list, one path a line).

    link makes hard links (same bytes, no extra space); where the target is on another device,
    where hard links are impossible, it makes symbolic links to the absolute source path instead.
    `data` (a data spec or Dataset, optional): the source the selection should have been made on;
    a selection whose paths, size or labels differ from it is refused before anything is written
    (`adaprune.selection.check_matches`)."""
    if mode not in EXPORT_MODES:
        raise ConfigError(f"export mode must be one of {', '.join(EXPORT_MODES)}, got {mode!r}")
    sel = Selection.load(selection) if isinstance(selection, (str, os.PathLike)) else selection
    if data is not None:
        from adaprune.data import load_data

        dataset = load_data(data) if isinstance(data, str) else data
        check_matches(sel, dataset, what=f"selection {str(selection)!r}" if isinstance(selection, (str, os.PathLike))
                      else "selection")
    target = Path(to)
    if sel.ids is not None and sel.id_column in COMPOUND_IDS:
        return _export_containers(sel, target, mode=mode)
    layout = kept_layout(sel)
    sources = {p.resolve() for p, _ in layout}
    if target.resolve() in sources or (sel.id_root is not None and target.resolve() == Path(sel.id_root).resolve()):
        raise ConfigError(f"export target {str(target)!r} is an input; choose another path")
    if mode == "list":
        if target.is_dir():
            raise ConfigError(f"export --mode list writes a file, but {str(target)!r} is a folder")
        atomic_write_text(target, "".join(f"{p}\n" for p, _ in layout))
        return ExportResult(target, mode, len(layout), 0, 0)
    counts = {"hard": 0, "soft": 0}

    def fill(tmp: Path) -> None:
        for src, rel in layout:
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if mode == "copy":
                shutil.copy2(src, dst)
                continue
            try:
                os.link(src, dst)
                counts["hard"] += 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                os.symlink(src.resolve(), dst)
                counts["soft"] += 1

    build_in_place(target, fill)
    hard, soft = counts["hard"], counts["soft"]
    if soft:
        log.info("%d files symlinked: the target is on another device than the sources", soft)
    return ExportResult(target, mode, len(layout), hard, soft)


def _export_containers(selection: Selection, target: Path, *, mode: str) -> ExportResult:
    """Write the kept rows of a `shard`+`key` or `file`+`row` selection as new containers under
    `target` (built in a temporary folder beside it, then renamed into place), or their names to
    the file `target` (mode list)."""
    from adaprune.data.members import common_root
    from adaprune.data.webdataset import relative_to_root, write_kept_shards

    a, b = COMPOUND_IDS[selection.id_column]
    kept = selection.kept_ids
    if mode == "list":
        atomic_write_text(target, "".join(f"{c}\t{n}\n" for c, n in zip(kept[a].tolist(), kept[b].tolist(),
                                                                        strict=True)))
        return ExportResult(target, mode, len(kept), 0, 0, len({str(c) for c in kept[a].tolist()}))
    by_container: dict[str, set] = {}
    for c, n in zip(kept[a].tolist(), kept[b].tolist(), strict=True):
        by_container.setdefault(str(c), set()).add(n)
    root = selection.id_root or common_root([Path(c) for c in by_container])
    for c in by_container:
        if (target.resolve() / relative_to_root(Path(c), Path(root))).resolve() == Path(c).resolve():
            raise ConfigError(f"export target {str(target)!r} would overwrite the input {c!r}; choose another path")
    if selection.id_column == "shard+key":
        counts = build_in_place(target, lambda tmp: write_kept_shards(by_container, root=root, target=tmp))
    else:
        from adaprune.data.parquet_images import write_kept_rows

        counts = build_in_place(target, lambda tmp: write_kept_rows(by_container, root=root, target=tmp))
    log.info("wrote %d kept samples into %d new containers under %s", counts[1], counts[0], target)
    return ExportResult(target, mode, counts[1], 0, 0, counts[0])
