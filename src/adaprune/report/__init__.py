"""Reports to look at: one self-contained HTML file (no network; figures and pictures inlined) from a
benchmark folder or from a selection and its data. Figures are drawn on matplotlib `Figure`s,
never through pyplot, so a report never touches global plotting state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write_text, refuse_input_paths

__all__ = ["render_report", "write_report"]


def render_report(source: str | os.PathLike, *, data: Any | None = None) -> str:
    """The HTML of a report: `source` is a benchmark folder (with results.json) or a selection file
    (.csv/.parquet/.json); `data` (a Dataset or a data spec string) is what the selection was made on."""
    path = Path(source)
    if path.is_dir():
        if data is not None:
            raise ConfigError(f"{str(source)!r} is a benchmark folder; --data is for a selection file")
        if not (path / "results.json").is_file():
            raise DataError(f"benchmark folder {str(source)!r} has no results.json (from `adaprune benchmark`)")
        from adaprune.report.benchmark import render_benchmark_report

        return render_benchmark_report(path)
    if not path.is_file():
        raise DataError(f"report source {str(source)!r} does not exist; "
                        "expected a selection file or a benchmark folder")
    from adaprune.report.selection import render_selection_report

    if isinstance(data, str):
        from adaprune.data import load_data

        data = load_data(data)
    return render_selection_report(path, data)


def write_report(source: str | os.PathLike, out: str | os.PathLike, *, data: Any | None = None) -> Path:
    """Write the report of `source` to `out` (atomically; never over an input)."""
    if not str(out).lower().endswith((".html", ".htm")):
        raise ConfigError(f"report path must end in .html, got {str(out)!r}")
    inputs = [source, *([data] if isinstance(data, str) and os.path.exists(data) else [])]
    refuse_input_paths(out, inputs)
    text = render_report(source, data=data)
    atomic_write_text(out, text)
    return Path(out)
