"""A selection together with the data it indexes: a selection file, or a detection source's own
pruned format (a pruned COCO file, a pruned YOLO folder), and the data loaded at the input size the
selection was made at. Used by `evaluate` and `report`; never imports torch."""

from __future__ import annotations

import logging
import os
from typing import Any

from adaprune.data.detection import is_own_format, own_format_provenance, read_own_format
from adaprune.data.sources import load_data
from adaprune.errors import ConfigError, describe_value
from adaprune.selection import Selection

log = logging.getLogger(__name__)


def selection_and_data(selection: Selection | str | os.PathLike, data: Any, *, test: Any = None,
                       input_size: int | None = None, group_by: str | None = None) -> tuple[Selection, Any]:
    """The selection and the data it indexes. A detection source given by spec is loaded at the
    size the selection recorded unless `input_size` says otherwise (a warning when they differ)."""
    is_path = isinstance(selection, (str, os.PathLike))
    own = is_path and is_own_format(selection)
    sel: Selection | None = None
    if own:
        recorded = own_format_provenance(selection).get("input_size")
    else:
        sel = Selection.load(selection) if is_path else selection
        recorded = sel.details.get("input_size")
    if input_size is None and recorded is not None and isinstance(data, str):
        log.info("images letterboxed to %s px, the size the selection was made at", recorded)
        input_size = int(recorded)
    dataset = load_data(data, test=test, size=input_size, group_by=group_by)
    if own:
        if getattr(dataset, "task_kind", None) != "detection":
            raise ConfigError(f"{str(selection)!r} is a pruned COCO file or YOLO folder; the data must be the "
                              f"detection source it was pruned from, got {describe_value(dataset)}")
        sel = read_own_format(selection, dataset)
    assert sel is not None
    size = getattr(dataset, "input_size", None)
    if recorded is not None and size is not None and int(recorded) != size:
        log.warning("the selection was made on images letterboxed to %s px; using %d px", recorded, size)
    return sel, dataset
