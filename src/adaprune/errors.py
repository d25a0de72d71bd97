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


REPR_LIMIT = 120


def describe_value(value: object) -> str:
    """A value as an error message shows it: a loaded dataset by its name and size and an array by its
    shape (never their repr, which holds the values), anything else by a repr cut to REPR_LIMIT
    characters."""
    describe = getattr(value, "describe", None)
    if callable(describe) and hasattr(value, "task_kind"):
        return str(describe())
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        return f"a {type(value).__name__} of shape {shape} ({dtype})"
    text = repr(value)
    return text if len(text) <= REPR_LIMIT else f"{text[:REPR_LIMIT]}... ({type(value).__name__})"
