"""Atomic output: write to a temporary file beside the target, then rename into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from adaprune.errors import ConfigError


def refuse_input_paths(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output path that is one of the inputs: inputs are never modified."""
    out_path = Path(out).resolve()
    for inp in inputs:
        if Path(inp).resolve() == out_path:
            raise ConfigError(f"output path {str(out)!r} is an input; choose another output path")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path in the same folder, then rename it onto `path`.

    A failure leaves no file at `path` (and no temporary behind). The file gets the mode a plain
    `open` would give it (0666 minus the umask), not the temporary file's private 0600, so
    colleagues on a shared cluster can read a selection when the umask lets them."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"output folder {str(folder)!r} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """The mode `mkdir` gives a new folder (0777 minus the umask: 0755 under umask 022), for a
    folder made private by `tempfile.mkdtemp` (0700) and renamed into place."""
    return 0o777 & ~_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# Bytes the writability probe writes and syncs: enough for a full disk to refuse it.
PROBE_BYTES = 4096


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Fail now, in one line, if files cannot be written into `folder`: it is missing, a file is in the
    way, it is read-only or the disk is full. Probes by writing and syncing a small temporary file (permission
    bits alone do not tell: root ignores them, and a read-only mount or a full disk does not show in them)."""
    path = Path(folder) if str(folder) else Path(".")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output folder {str(path)!r} is a file, not a folder")
    if not path.is_dir():
        raise ConfigError(f"output folder {str(path)!r} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=".adaprune-probe.", suffix=".tmp", dir=path)
    except OSError as exc:
        raise ConfigError(f"output folder {str(path)!r} is not writable: {exc.strerror or exc}") from None
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        raise ConfigError(f"output folder {str(path)!r} is not writable: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
        os.unlink(name)


def check_output_folder(folder: str | os.PathLike) -> None:
    """For an output folder that will be created if missing: the folder itself if it exists, else its
    nearest existing ancestor, must be a writable folder."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output folder {str(path)!r} is a file, not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    check_writable_folder(probe)


def release_pages(array: object) -> bool:
    """Tell the OS this process no longer needs the pages of a memory-mapped array (`np.memmap`):
    they leave the process's resident set but stay in the page cache, and are read again on demand
    if the array is used after all (nothing is lost: the maps adaprune opens are read-only or
    copy-on-write and never written). Returns whether anything was released; a no-op for an
    in-memory array or where madvise is not available."""
    import mmap

    base = getattr(array, "_mmap", None)
    if base is None or not hasattr(base, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    try:
        base.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):
        return False
    return True
