"""Completion records for resumable stages (`--work-dir`).

A stage's arrays are written to `<name>.npz` in the work folder, then `<name>.done.json` records
that it finished, with the key of everything it depends on (the input's fingerprint, seed and
parameters). A rerun with the same key loads finished stages instead of recomputing them; a record
with another key is ignored and overwritten. Every file is written atomically, so a killed run
leaves either a finished stage or none."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from adaprune.engine.base import npy_file_of
from adaprune.errors import ConfigError
from adaprune.io_utils import atomic_write, atomic_write_text

log = logging.getLogger(__name__)


def input_identity(array: Any) -> dict:
    """Identity of an input array: a memory-mapped .npy by path, size and modification time (hashing
    10 GB on every run would cost more than some stages); an in-memory array by a hash of its bytes."""
    ref = npy_file_of(array)
    if ref is not None:
        st = os.stat(ref.path)
        return {"npy": str(Path(ref.path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    arr = np.ascontiguousarray(array)
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha1": hashlib.sha1(arr.tobytes()).hexdigest()}


class StageStore:
    """Finished stages of one run, keyed by everything they depend on."""

    def __init__(self, folder: str | os.PathLike, key: dict) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"work dir {str(folder)!r} is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.folder / f"{name}.npz", self.folder / f"{name}.done.json"

    def _key(self, part: dict | None) -> dict:
        """The run's key, with the share of the work a stage covers (`part`) when it has one."""
        return self.key if part is None else {**self.key, "part": json.loads(json.dumps(part, sort_keys=True))}

    def load(self, name: str, *, part: dict | None = None) -> dict[str, np.ndarray] | None:
        """A finished stage's arrays, or None when it is missing or was computed for another key
        (other inputs, settings, or another `part` of the work)."""
        data, record = self._paths(name)
        if not (data.is_file() and record.is_file()):
            return None
        try:
            if json.loads(record.read_text(encoding="utf-8")).get("key") != self._key(part):
                log.info("work dir: stage %s was computed for other inputs or settings; recomputing", name)
                return None
            with np.load(data, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError):
            return None
        log.info("work dir: stage %s already finished; reusing it", name)
        return arrays

    def save(self, name: str, arrays: dict[str, np.ndarray], *, part: dict | None = None) -> None:
        data, record = self._paths(name)
        record.unlink(missing_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(data, write)
        atomic_write_text(record, json.dumps({"key": self._key(part)}, sort_keys=True) + "\n")
