"""The method registry: every pruning method registers itself under one name."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adaprune.errors import ConfigError

_REGISTRY: dict[str, type] = {}
_T = TypeVar("_T", bound=type)

def register_method(name: str) -> Callable[[_T], _T]:
    """Class decorator: make a method available under `name` (CLI and Python API)."""

    def decorate(cls: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"method name {name!r} is registered twice")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_all() -> None:
    """Import every module of adaprune.methods (each registers its method), so a new method
    needs its own file and nothing else."""
    import pkgutil

    import adaprune.methods as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")


def get_method(name: str) -> type:
    """The class registered under `name`; an unknown name lists the valid ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), sorted(_REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown method {name!r}; {hint}expected one of: {', '.join(sorted(_REGISTRY))}"
        ) from None


def build_method(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a registered method; unknown parameters are an error listing the valid ones."""
    cls = get_method(name)
    params = dict(params or {})
    valid = method_parameters(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"method {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(valid) or 'none'}"
        )
    return cls(**params)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    kind: str
    direction: str
    parameters: dict[str, Any]
    # One line per parameter, from the `Parameters:` block of the class docstring (see parameter_docs).
    parameter_help: dict[str, str] = field(default_factory=dict)


def method_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters a method's constructor declares (its whole configuration)."""
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items() if n != "self"}


_ITEM = re.compile(r"^(\s*)(\w+): (.+)$")


def _docstring_parameters(doc: str) -> dict[str, str]:
    """Entries of a `Parameters:` block: `name: text`, continued on deeper-indented lines."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters:")
    except StopIteration:
        return out
    item_indent, current = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            break
        indent = len(line) - len(line.lstrip())
        match = _ITEM.match(line)
        if match and (item_indent is None or indent == item_indent):
            item_indent, current = indent, match.group(2)
            out[current] = match.group(3).strip()
        elif current is not None and item_indent is not None and indent > item_indent:
            out[current] += " " + line.strip()
        else:
            break
    return out


def parameter_docs(cls: type) -> dict[str, str]:
    """A one-line description of each constructor parameter: the `Parameters:` blocks of the class
    docstring and its bases (a subclass's entry wins), then the shared notes in
    `adaprune.methods._parameter_docs` for methods whose docstrings do not have one yet."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_docstring_parameters(klass.__dict__.get("__doc__") or ""))
    from adaprune.methods._parameter_docs import PARAMETER_NOTES

    for key, text in PARAMETER_NOTES.get(getattr(cls, "name", ""), {}).items():
        docs.setdefault(key, text)
    return {n: docs[n] for n in method_parameters(cls) if n in docs}


def list_methods() -> list[MethodInfo]:
    """Every registered method, sorted by name, with its defaults."""
    _load_all()
    infos = []
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        params = {n: p.default for n, p in method_parameters(cls).items()}
        infos.append(
            MethodInfo(
                name=name,
                summary=doc[0] if doc else "",
                kind=cls.kind,
                direction=cls.describe_direction(),
                parameters=params,
                parameter_help=parameter_docs(cls),
            )
        )
    return infos
