"""Engines: where the stages that grow with N run.

A stage is a pure function of one item (a chunk of rows, a block of clusters); an engine maps it
over the items and returns the results in item order. The local engine is a loop (or a thread
pool); the Ray engine (`adaprune[ray]`) runs one Ray task per item on a local or remote cluster
(and, for embedding, streams chunks through a Ray Data actor pool that holds the encoder).
Both call the same functions on the same items, so they produce the same selection.

Large read-only arrays reach the stage through `engine.share(array)`, which returns a small handle
whose `.get()` gives the array back inside the stage: the array itself locally, a re-opened memory
map of the same .npy file (on a cluster the file must be on storage every node sees), or an object
in Ray's object store for an in-memory array."""

from __future__ import annotations

from adaprune.engine import base
from adaprune.engine.base import ENGINES, Engine, LocalEngine, Shared
from adaprune.errors import ConfigError
from adaprune.naming import option

__all__ = ["ENGINES", "Engine", "LocalEngine", "Shared", "get_engine"]


# Dispatch by name lives here, above both engines: engine/ray.py builds on engine/base.py, and
# base.py never needs to know about ray.py.
def get_engine(engine: str | Engine | None = None, *, address: str | None = None, workers: int | None = None) -> Engine:
    """An engine by name: "local" (the default; `workers` threads) or "ray" (`address` of a running
    cluster, or a local one started here when None; needs `pip install 'adaprune[ray]'`)."""
    if isinstance(engine, Engine):
        return engine
    from adaprune.components import get_component

    component = get_component("engine", "local" if engine is None else engine)  # adaprune/components/engines.py
    if address is not None and "address" not in component.spec:
        engine_ray = option("engine='ray'", "--engine ray")
        raise ConfigError(f"{option('address', '--ray-address')} applies to {engine_ray}")
    params = {"workers": workers, **({"address": address} if "address" in component.spec else {})}
    return component.build(**params)


def _local_engine(*, workers: int | None = None) -> Engine:
    return LocalEngine(workers or base.default_workers())


def _ray_engine(*, workers: int | None = None, address: str | None = None) -> Engine:
    from adaprune.engine.ray import RayEngine

    return RayEngine(address=address, num_cpus=workers)
