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


def _new_file_mode() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
