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

from adaprune.engine.base import ENGINES, Engine, LocalEngine, Shared, get_engine

__all__ = ["ENGINES", "Engine", "LocalEngine", "Shared", "get_engine"]
