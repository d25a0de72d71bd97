"""The method registry: every pruning method registers itself under one name.

`register_method` is the single source of truth. Listing the methods (`adaprune methods`) must not
import torch, so `list_methods()` reads a generated index, `methods/_index.py`, written from the
registered classes by `python -m adaprune.registry --write-index`. The index carries a fingerprint
of the files it was built from; when any of them changed since, `list_methods()` imports the
classes instead (slower, never wrong), and tests/test_startup.py fails until the index is rebuilt."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from adaprune.components import unknown_name
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


def _unknown_method(name: str, known: list[str]) -> ConfigError:
    return unknown_name("method", name, sorted(known))


def get_method(name: str) -> type:
    """The class registered under `name`; an unknown name lists the valid ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown_method(name, list(_REGISTRY)) from None


def check_method_name(name: str) -> None:
    """Refuse an unknown method name, from the index: no method module (no torch) is imported."""
    known = [info.name for info in list_methods()]
    if name not in known:
        raise _unknown_method(name, known)


def build_method(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a registered method; unknown parameters are an error listing the valid ones."""
    cls = get_method(name)
    params = dict(params or {})
    valid = method_parameters(cls)
    unknown = sorted(set(params) - set(valid))  # values are checked by the class's param_spec
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
    # What each parameter accepts, from the method's `param_spec` ("an int >= 1 or None").
    parameter_types: dict[str, str] = field(default_factory=dict)


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
    """Every registered method, sorted by name, with its defaults (from the index when it is fresh)."""
    indexed = _read_index()
    return indexed if indexed is not None else list_registered_methods()


def list_registered_methods() -> list[MethodInfo]:
    """Every registered method, from the classes themselves (imports every method module)."""
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
                parameter_types={n: cls.param_spec.describe(n) for n in params if n in cls.param_spec},
            )
        )
    return infos


# ---- the generated index -------------------------------------------------------------------------

_PACKAGE_DIR = Path(__file__).resolve().parent
_INDEX_PATH = _PACKAGE_DIR / "methods" / "_index.py"
log = logging.getLogger(__name__)


class _Literal(str):
    """A default that is no Python literal, shown as it was written (repr)."""

    def __repr__(self) -> str:
        return str(self)


def index_fingerprint() -> str:
    """sha256 over the files a listing depends on: every method module, the direction text, the
    parameter specs, this file."""
    files = sorted(p for p in (_PACKAGE_DIR / "methods").rglob("*.py") if p != _INDEX_PATH)
    # The direction text, this file, the constraint phrases, and AdaPruner's spec (it lives beside the mask).
    files += [_PACKAGE_DIR / name for name in ("scores.py", "registry.py", "params.py", "adapruner_mask.py")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _info_to_entry(info: MethodInfo) -> dict[str, Any]:
    entry = dataclasses.asdict(info)
    # Defaults are stored as their repr: literal_eval gives the value back for every plain literal.
    entry["parameters"] = {key: repr(value) for key, value in info.parameters.items()}
    return entry


def _entry_to_info(entry: dict[str, Any]) -> MethodInfo:
    params: dict[str, Any] = {}
    for key, text in entry["parameters"].items():
        try:
            params[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[key] = _Literal(text)
    return MethodInfo(**{**entry, "parameters": params})


def _read_index() -> list[MethodInfo] | None:
    """The indexed listing, or None when the index is missing, stale or unreadable."""
    try:
        tree = ast.parse(_INDEX_PATH.read_text(encoding="utf-8"))
        values = {
            node.targets[0].id: ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        }
        if values.get("FINGERPRINT") != index_fingerprint():
            log.debug("method index is stale; importing the method modules")
            return None
        return [_entry_to_info(entry) for entry in values["METHODS"]]
    except (OSError, SyntaxError, ValueError, KeyError, TypeError) as exc:
        log.debug("method index unusable (%s); importing the method modules", exc)
        return None


def render_index() -> str:
    """The text of methods/_index.py for the classes registered now."""
    entries = [_info_to_entry(info) for info in list_registered_methods()]
    lines = [
        '"""Generated by `python -m adaprune.registry --write-index`; do not edit.',
        "",
        "What `adaprune methods` lists, so that listing imports no method module (and no torch).",
        'tests/test_startup.py fails when this drifts from the registered classes."""',
        "# ruff: noqa: E501",
        "",
        f"FINGERPRINT = {index_fingerprint()!r}",
        "",
        "METHODS = [",
    ]
    for entry in entries:
        lines.append("    {")
        for key, value in entry.items():
            lines.append(f"        {key!r}: {value!r},")
        lines.append("    },")
    lines.append("]")
    return "\n".join(lines) + "\n"


def write_index() -> Path:
    from adaprune.io_utils import atomic_write

    text = render_index()
    atomic_write(_INDEX_PATH, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return _INDEX_PATH


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-index"]:
        sys.exit("usage: python -m adaprune.registry --write-index")
    # Run as __main__, this file is a second module object: the methods register with the real one.
    from adaprune.registry import write_index as _write_index

    print(f"wrote {_write_index()}")
