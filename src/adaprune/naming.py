"""Whether the library is running under the `adaprune` command, so a message names what the user
typed: the CLI flag (`--balance class`) from the command line, the API argument
(`balance='class'`) from Python. The CLI's entry point sets it for the duration of a command."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_FROM_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("adaprune_from_cli", default=False)


def from_cli() -> bool:
    return _FROM_CLI.get()


@contextmanager
def cli_context() -> Iterator[None]:
    """Messages raised inside name CLI flags."""
    token = _FROM_CLI.set(True)
    try:
        yield
    finally:
        _FROM_CLI.reset(token)


def option(api: str, flag: str) -> str:
    """`flag` under the CLI, `api` from Python: option("balance='class'", "--balance class")."""
    return flag if from_cli() else api
