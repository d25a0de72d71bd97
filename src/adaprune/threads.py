"""How many CPU threads torch uses, chosen by the work.

The built-in models are small: their per-batch kernels are too short for a second thread to pay off,
and on a machine shared with other jobs two threads contend and run many times slower than one
(benchmarks/results/threads.md). So on CPU a built-in model trains with one thread; a larger model
(resnet18) or the user's own module keeps torch's default. An explicit count wins: the `threads`
argument, then the ADAPRUNE_THREADS environment variable."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from adaprune.errors import ConfigError

log = logging.getLogger(__name__)

THREADS_ENV = "ADAPRUNE_THREADS"
# Built-in models that one thread trains fastest (measured); "auto" resolves to one of them.
SINGLE_THREAD_MODELS = frozenset({"auto", "mlp", "cnn1d", "cnn_small", "cnn"})


def check_threads(value: object, *, what: str = "threads") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}")
    return value


def resolve_threads(threads: int | None, *, model: object, device: str) -> int:
    """The thread count for training `model` on `device`: `threads`, else $ADAPRUNE_THREADS, else by the work."""
    if threads is not None:
        return check_threads(threads)
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return check_threads(int(env), what=THREADS_ENV)
        except ValueError:
            raise ConfigError(f"{THREADS_ENV} must be a whole number >= 1, got {env!r}") from None
    if device == "cpu" and isinstance(model, str) and model in SINGLE_THREAD_MODELS:
        return 1
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with torch using `n` intra-op threads; the previous count is restored after."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
        log.debug("torch threads: %d (was %d)", n, before)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
