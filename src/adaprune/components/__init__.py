"""One registry of typed components: tasks, engines, data sources, encoders and models.

A component is a kind, a name, a lazy entry point ("module:attr", imported only when the component
is built), a torch-free `ParamSpec` and a one-line summary. The built-in ones are declared in the
modules of this package, one per kind (`engines.py`, `sources.py`, ...); every module here is
imported on the first lookup (`_load_all`, like the methods'), so a new component is one new file
in this package that calls `register_component`, pointing at its implementation. A plugin outside
adaprune calls `register_component` too, once imported. Methods keep their own registry
(`adaprune.registry`), whose index `adaprune methods` reads.

Nothing here imports numpy or torch: `adaprune --help` takes its choices from this registry."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adaprune.errors import ConfigError
from adaprune.params import ParamSpec

__all__ = ["KINDS", "Component", "component_names", "get_component", "list_components", "register_component"]

# kind -> the noun messages use ("unknown data source 'x'").
KINDS = {"task": "task kind", "engine": "engine", "source": "data source", "encoder": "encoder", "model": "model"}

_COMPONENTS: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
_LOADED = False


@dataclass(frozen=True)
class Component:
    """One registered component.

    kind: one of KINDS. name: what the user writes (`ray`, `mnist1d`, `pixels`, `cnn`).
    entry: "module:attr", the class or factory built with the spec's parameters as keywords.
    spec: the parameters it takes, with their constraints. summary: one line for listings.
    arg: the parameter the text after the colon of a spec string fills (`pixels:32` -> dim=32;
    None: the component takes no argument). syntax: how it is written (`pixels[:DIM]`).
    tags: free labels (a source's task kind: "classification" or "detection")."""

    kind: str
    name: str
    entry: str
    spec: ParamSpec = field(default_factory=lambda: ParamSpec({}))
    summary: str = ""
    arg: str | None = None
    syntax: str = ""
    tags: tuple[str, ...] = ()

    @property
    def owner(self) -> str:
        """How messages name it: `engine 'ray'`."""
        return f"{KINDS[self.kind]} {self.name!r}"

    def load(self) -> Any:
        """The entry point (imports its module)."""
        module, _, attr = self.entry.partition(":")
        return getattr(importlib.import_module(module), attr)

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` checked against the spec (one line naming parameter, value and constraint)."""
        self.spec.validate(self.owner, values)
        return dict(values)

    def parse_arg(self, text: str) -> dict[str, Any]:
        """The keywords the text after a spec string's colon stands for ({} when there is none)."""
        if not text:
            return {}
        if self.arg is None:
            raise ConfigError(f"{self.owner} takes no argument, got {text!r}")
        return {self.arg: self.spec.parse(self.owner, self.arg, text)}

    def build(self, **params: Any) -> Any:
        """Validate `params`, then call the entry point with them."""
        return self.load()(**self.validate(params))


def register_component(kind: str, name: str, entry: str, *, spec: ParamSpec | Mapping[str, Any] | None = None,
                       summary: str = "", arg: str | None = None, syntax: str = "",
                       tags: tuple[str, ...] = ()) -> Component:
    """Make a component available under (kind, name); a name is registered once per kind."""
    _check_kind(kind)
    if ":" not in entry:
        raise ConfigError(f"{kind} {name!r}: entry must be 'module:attr', got {entry!r}")
    spec = spec if isinstance(spec, ParamSpec) else ParamSpec(spec or {})
    if arg is not None and arg not in spec:
        raise ConfigError(f"{kind} {name!r}: arg {arg!r} is not one of its parameters")
    component = Component(kind=kind, name=name, entry=entry, spec=spec, summary=summary, arg=arg,
                          syntax=syntax or name, tags=tuple(tags))
    known = _COMPONENTS[kind].get(name)
    if known is not None and known != component:
        raise ConfigError(f"{kind} name {name!r} is registered twice")
    _COMPONENTS[kind][name] = component
    return component


def _load_all() -> None:
    """Import every module of this package once (each registers its components)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown component kind {kind!r}; expected one of: {', '.join(KINDS)}")


def list_components(kind: str) -> list[Component]:
    """The components of `kind`, in registration order."""
    _check_kind(kind)
    _load_all()
    return list(_COMPONENTS[kind].values())


def component_names(kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in list_components(kind))


def unknown_name(noun: str, name: Any, known: Sequence[str]) -> ConfigError:
    """The one-liner for a name nothing is registered under (components and methods alike)."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"unknown {noun} {name!r}; {hint}expected one of: {', '.join(known)}")


def unknown_component(kind: str, name: Any) -> ConfigError:
    """The one-liner for a name no component of `kind` has."""
    return unknown_name(KINDS[kind], name, component_names(kind))


def get_component(kind: str, name: Any) -> Component:
    """The component registered as (kind, name); an unknown name lists the valid ones."""
    _check_kind(kind)
    _load_all()
    component = _COMPONENTS[kind].get(name) if isinstance(name, str) else None
    if component is None:
        raise unknown_component(kind, name)
    return component
