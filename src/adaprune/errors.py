"""Errors the library raises on bad input; the CLI turns each into one line and exit code 2."""

from __future__ import annotations


class AdapruneError(Exception):
    """Base class: the message says what was wrong, what came and what is allowed."""


class DataError(AdapruneError):
    """A data source could not be read or failed validation."""


class ConfigError(AdapruneError):
    """A parameter, method name, budget or path is not acceptable."""


class MissingDependencyError(AdapruneError):
    """An optional dependency is needed; the message carries the install hint."""


def require(module: str, extra: str):
    """Import an optional dependency lazily, or fail with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed for this; install it with: pip install 'adaprune[{extra}]'"
        ) from exc
