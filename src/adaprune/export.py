"""Give the user their kept files back: links, copies or a plain list (`adaprune export`).

A selection of a file source names every sample by path (its `path` column) and records the
folder the paths are laid out under (`id_root`: the `folder:` root or the manifest's folder). The
kept files are written under the target with the same relative layout. The target is built in a
temporary folder beside it and renamed into place, so it appears complete or not at all; it must
not exist yet (or be an empty folder), and the inputs are never touched."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write_text, new_folder_mode
from adaprune.selection import Selection, check_matches

log = logging.getLogger(__name__)

EXPORT_MODES = ("link", "copy", "list")


@dataclass(frozen=True)
class ExportResult:
    target: Path
    mode: str
    n_files: int
    hard_links: int  # link mode: files hard-linked
    symlinks: int  # link mode: files symlinked because the target is on another device


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
    layout = kept_layout(sel)
    target = Path(to)
    sources = {p.resolve() for p, _ in layout}
    if target.resolve() in sources or (sel.id_root is not None and target.resolve() == Path(sel.id_root).resolve()):
        raise ConfigError(f"export target {str(target)!r} is an input; choose another path")
    if mode == "list":
        if target.is_dir():
            raise ConfigError(f"export --mode list writes a file, but {str(target)!r} is a folder")
        atomic_write_text(target, "".join(f"{p}\n" for p, _ in layout))
        return ExportResult(target, mode, len(layout), 0, 0)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise ConfigError(f"export target {str(target)!r} already exists; give a new (or empty) folder")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"output folder {str(parent)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    hard = soft = 0
    try:
        os.chmod(tmp, new_folder_mode())  # mkdtemp's folder is private (0700); the target follows the umask
        for src, rel in layout:
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if mode == "copy":
                shutil.copy2(src, dst)
                continue
            try:
                os.link(src, dst)
                hard += 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                os.symlink(src.resolve(), dst)
                soft += 1
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if soft:
        log.info("%d files symlinked: the target is on another device than the sources", soft)
    return ExportResult(target, mode, len(layout), hard, soft)
