"""The Ray engine: one Ray task per item on a local or remote Ray cluster (`adaprune[ray]`), or
Ray Data with an actor pool for work that needs a heavy object built once per worker (an encoder).

Connecting: `address=None` starts a local Ray instance in this process (or joins one already
started by `ray.init`); "auto" joins the cluster this machine belongs to; "ray://HOST:10001" goes
through Ray Client. Stage functions and their items are pickled (cloudpickle) to the workers; a
memory-mapped .npy is shared by path (every node must see the same file: a shared file system),
an in-memory array through the object store. Results come back to the driver, which writes every
output file itself: outputs land where the command was run, never on the workers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from adaprune.engine.base import Engine, Shared, npy_file_of
from adaprune.errors import require

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _ray():
    return require("ray", "ray")


def _call(fn: Callable[[T], R], item: T) -> R:
    from adaprune.engine.base import single_threaded_blas

    with single_threaded_blas():
        return fn(item)


@dataclass(frozen=True)
class ObjectStoreArray(Shared):
    """An in-memory array put in Ray's object store once; workers read it zero-copy."""

    ref: Any

    def get(self) -> np.ndarray:
        return _ray().get(self.ref)


class _PoolWorker:
    """One actor of a Ray Data actor pool: builds its worker once (`make_worker()`, e.g. unpickling a
    fitted encoder), then runs it on every item of every batch the pool sends it."""

    def __init__(self, make_worker: Callable[[], Callable[[Any], np.ndarray]]) -> None:
        self.worker = make_worker()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ray import cloudpickle

        from adaprune.engine.base import single_threaded_blas

        results = np.empty(len(batch["item"]), dtype=object)
        failed = np.zeros(len(batch["item"]), dtype=bool)
        with single_threaded_blas():
            for j, blob in enumerate(batch["item"]):
                # Results travel as pickled arrays: chunks differ in length (the last one), and a
                # binary column carries any shape and dtype unchanged.
                try:
                    results[j] = cloudpickle.dumps(np.asarray(self.worker(cloudpickle.loads(blob))), protocol=5)
                except Exception as exc:  # noqa: BLE001 (sent back whole: Ray Data would wrap it)
                    results[j], failed[j] = cloudpickle.dumps(exc), True
        return {"index": batch["index"], "result": results, "failed": failed}


class RayEngine(Engine):
    """Ray tasks, at most `max_in_flight` at once (so the driver never holds every result pending)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_in_flight: int = 64) -> None:
        ray = _ray()
        self.started_here = False
        if not ray.is_initialized():
            if address is None:
                # A local instance: no dashboard, bound to the loopback interface.
                ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            self.started_here = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight
        self._remote = ray.remote(_call)
        log.info("ray engine: %d CPUs in the cluster", self.workers)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "", progress: bool = False) -> list[R]:
        ray = _ray()
        fn_ref = ray.put(fn)
        results: list[Any] = [None] * len(items)
        pending: dict[Any, int] = {}
        bar = tqdm(total=len(items), desc=desc or "map", disable=not progress, leave=False)
        try:
            next_item = 0
            while next_item < len(items) or pending:
                while next_item < len(items) and len(pending) < self.max_in_flight:
                    pending[self._remote.remote(fn_ref, items[next_item])] = next_item
                    next_item += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    results[pending.pop(ref)] = ray.get(ref)
                    bar.update()
        finally:
            bar.close()
        return results

    def stream_with_actor_pool(
        self, make_worker: Callable[[], Callable[[T], np.ndarray]], items: Sequence[T], *, pool_size: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Ray Data over `items` (one row each), mapped by an actor pool of `pool_size` actors (one per
        CPU of the cluster by default), each calling `make_worker()` once and its result on every item
        it is sent. Yields (item index, result) as results arrive, in any order, so the caller can
        record each one as soon as it is safe; an exception the worker raised is raised here."""
        _ray()  # the install hint when Ray is missing
        import ray.data
        from ray import cloudpickle

        # Ray Data logs a few INFO lines per dataset (set up on import), and a notice that its own
        # progress bars are off; keep its other warnings.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)

        if not items:
            return
        pool = max(1, min(pool_size or self.workers, len(items)))
        rows = [{"index": i, "item": cloudpickle.dumps(item)} for i, item in enumerate(items)]
        context = ray.data.DataContext.get_current()
        shown = context.enable_progress_bars
        context.enable_progress_bars = False  # the caller draws its own bar; a dataset keeps the context it was made in
        try:
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            mapped = dataset.map_batches(_PoolWorker, fn_constructor_args=(make_worker,), batch_size=1,
                                         batch_format="numpy", num_cpus=1,
                                         compute=ray.data.ActorPoolStrategy(size=pool))
        finally:
            context.enable_progress_bars = shown
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            for index, blob, failed in zip(batch["index"], batch["result"], batch["failed"], strict=True):
                if failed:  # the worker's own exception (a DataError stays a DataError, as on the local engine)
                    raise cloudpickle.loads(blob)
                yield int(index), cloudpickle.loads(blob)

    def share(self, array: Any) -> Shared:
        by_path = npy_file_of(array)
        if by_path is not None:
            return by_path
        return ObjectStoreArray(_ray().put(np.ascontiguousarray(array)))

    def close(self) -> None:
        if self.started_here:
            _ray().shutdown()
            self.started_here = False
