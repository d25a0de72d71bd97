"""The Engine interface, the local engine, shared-array handles, and `get_engine`."""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from adaprune.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
T = TypeVar("T")
R = TypeVar("R")


class Shared(ABC):
    """A handle on a read-only array that a stage reads with `.get()`."""

    @abstractmethod
    def get(self) -> np.ndarray: ...


@dataclass(frozen=True)
class InProcess(Shared):
    """The array itself (the local engine shares memory directly)."""

    array: Any

    def get(self) -> np.ndarray:
        return self.array


@dataclass(frozen=True)
class NpyFile(Shared):
    """A .npy file re-opened read-only as a memory map wherever the stage runs."""

    path: str
    shape: tuple[int, ...]

    def get(self) -> np.ndarray:
        arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if arr.shape != self.shape:
            raise RuntimeError(f"{self.path!r} changed while the stage ran: shape {arr.shape}, expected {self.shape}")
        return arr


def npy_file_of(array: Any) -> NpyFile | None:
    """The .npy file behind a whole-file memory map (np.load(mmap_mode=...)), else None."""
    if not isinstance(array, np.memmap) or getattr(array, "filename", None) is None:
        return None
    path = Path(array.filename)
    if path.suffix != ".npy" or not path.is_file():
        return None
    try:
        whole = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    # Only a view of the whole file (not a slice of it) can be re-opened by path.
    if whole.shape != array.shape or whole.dtype != array.dtype or array.offset != whole.offset:
        return None
    return NpyFile(str(path), tuple(array.shape))


def single_threaded_blas():
    """A context in which BLAS (and OpenMP) use one thread. Every mapped stage runs in it: OpenBLAS
    gives bitwise different products with 1 and 2 threads, so a stage's result must not depend on
    how many threads the process it lands in would use (a Ray worker runs with one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


# Set while a local map is being abandoned (Ctrl-C, or an error in one item): the stages running
# in its threads check it between their blocks (`check_cancelled`) and stop, so the map returns
# within a block's time instead of finishing every queued item first.
_CANCEL = threading.Event()


class Cancelled(Exception):
    """A stage stopped because its map was abandoned; never seen by the user (the map re-raises
    the original KeyboardInterrupt or error)."""


def check_cancelled() -> None:
    """Call between blocks of a long stage: raises `Cancelled` once the map running it is abandoned
    (a no-op in a Ray worker or a plain loop, where nothing sets it). In the main thread it is also
    where a pending Ctrl-C is delivered, at the latest."""
    if _CANCEL.is_set() and threading.current_thread() is not threading.main_thread():
        raise Cancelled


def default_workers() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cgroup cpusets), at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


class Engine(ABC):
    """Maps a pure function over items; results come back in item order. Each call of the function
    runs with single-threaded BLAS, so every engine computes bitwise the same results."""

    name: str
    workers: int

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "", progress: bool = False) -> list[R]: ...

    @abstractmethod
    def share(self, array: Any) -> Shared: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the engine holds (default: nothing)."""


class LocalEngine(Engine):
    """A loop in this process, or a thread pool of `workers` threads (numpy releases the GIL in
    matrix products, so threads overlap on a multi-core machine; `get_engine("local")` uses one
    thread per core, at most 8)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "", progress: bool = False) -> list[R]:
        bar = tqdm(total=len(items), desc=desc or "map", disable=not progress, leave=False)
        try:
            with single_threaded_blas():
                return self._map(fn, items, bar)
        finally:
            bar.close()

    def _map(self, fn: Callable[[T], R], items: Sequence[T], bar) -> list[R]:
        if self.workers == 1 or len(items) < 2:
            out = []
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        pool = ThreadPoolExecutor(self.workers)
        try:
            futures = [pool.submit(fn, item) for item in items]
            results = []
            for f in futures:
                results.append(f.result())
                bar.update()
            return results
        except BaseException:
            # Ctrl-C (or a failed item): drop the queued items and tell the running ones to stop at
            # their next block, instead of waiting for every item (`with` would wait for all).
            _CANCEL.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            _CANCEL.clear()

    def share(self, array: Any) -> Shared:
        return InProcess(array)
