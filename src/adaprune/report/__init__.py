"""Reports to look at: one self-contained HTML file (no network; figures and pictures inlined) from a
benchmark folder or from a selection and its data. Figures are drawn on matplotlib `Figure`s,
never through pyplot, so a report never touches global plotting state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adaprune.errors import ConfigError, DataError, describe_value
from adaprune.io_utils import atomic_write_text, refuse_input_paths

__all__ = ["render_report", "write_report"]


def render_report(source: str | os.PathLike, *, data: Any | None = None, group_by: str | None = None,
                  input_size: int | None = None) -> str:
    """The HTML of a report: `source` is a benchmark folder (with results.json) or a selection file
    (.csv/.parquet/.json; for detection data also the pruned COCO file or YOLO folder `prune` wrote);
    `data` (a dataset or a data spec string) is what the selection was made on. Detection data:
    `group_by` names the groups whose removed share is shown; `input_size` the side frames are drawn
    at (default: the size the selection was made at)."""
    path = Path(source)
    from adaprune.data.detection import is_own_format

    own = data is not None and is_own_format(path)
    if path.is_dir() and not own:
        if data is not None:
            raise ConfigError(f"{str(source)!r} is a benchmark folder; --data is for a selection file")
        if not (path / "results.json").is_file():
            raise DataError(f"benchmark folder {str(source)!r} has no results.json (from `adaprune benchmark`)")
        from adaprune.report.benchmark import render_benchmark_report

        return render_benchmark_report(path)
    if not path.exists():
        raise DataError(f"report source {str(source)!r} does not exist; "
                        "expected a selection file or a benchmark folder")
    if data is not None and (own or _is_detection(data)):
        return _detection_report(path, data, group_by=group_by, input_size=input_size)
    if group_by is not None or input_size is not None:
        raise ConfigError("--group-by and --input-size apply to a report on detection data (coco:, yolo:, synthdet)")
    from adaprune.report.selection import render_selection_report

    if isinstance(data, str):
        from adaprune.data import load_data

        data = load_data(data)
    return render_selection_report(path, data)


def _is_detection(data: Any) -> bool:
    if isinstance(data, str):
        from adaprune.data.sources import DETECTION_KINDS

        return data.partition(":")[0] in DETECTION_KINDS
    return getattr(data, "task_kind", None) == "detection"


def _detection_report(path: Path, data: Any, *, group_by: str | None, input_size: int | None) -> str:
    import numpy as np

    from adaprune.data.detection import is_own_format
    from adaprune.data.selected import selection_and_data
    from adaprune.report.detection import render_detection_report
    from adaprune.tables import read_table

    selection, data = selection_and_data(str(path), data, input_size=input_size,
                                         group_by=group_by if isinstance(data, str) else None)
    if data.task_kind != "detection":
        raise ConfigError(f"a pruned COCO file or YOLO folder is reported with the detection data it came from, "
                          f"got {describe_value(data)}")
    if data.n != selection.n_total:
        raise DataError(f"selection {str(path)!r} has {selection.n_total} samples but the data {data.name!r} has "
                        f"{data.n}; give the data it was made on")
    twin = similarity = None
    if not is_own_format(path):
        columns, _ = read_table(path, what="selection")
        twin, similarity = columns.get("twin"), columns.get("similarity")
    return render_detection_report(selection, data, source=str(path),
                                   twin=None if twin is None else np.asarray(twin),
                                   similarity=None if similarity is None else np.asarray(similarity),
                                   group_by=group_by)


def write_report(source: str | os.PathLike, out: str | os.PathLike, *, data: Any | None = None,
                 group_by: str | None = None, input_size: int | None = None) -> Path:
    """Write the report of `source` to `out` (atomically; never over an input)."""
    if not str(out).lower().endswith((".html", ".htm")):
        raise ConfigError(f"report path must end in .html, got {str(out)!r}")
    inputs = [source, *([data] if isinstance(data, str) and os.path.exists(data) else [])]
    refuse_input_paths(out, inputs)
    text = render_report(source, data=data, group_by=group_by, input_size=input_size)
    atomic_write_text(out, text)
    return Path(out)
