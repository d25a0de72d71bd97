"""Typed parameter specs: the constraints a component's parameters must meet, checked once.

In the style of scikit-learn's `_parameter_constraints` (`sklearn/utils/_param_validation.py`):
a component declares, for each constructor parameter, the kinds of value it accepts, and one
validator checks them at construction with one message shape::

    adapruner: epochs must be an int >= 1, got 2.5

    SPEC = ParamSpec({
        "epochs": Interval(int, 1, None),                       # an int >= 1 (bool is refused)
        "epsilon": Interval(float, 0, 1, closed="left"),        # a finite float in [0, 1)
        "kmeans_sample": [Interval(int, 1, None), None],        # ... or None
        "binarize": StrOptions({"budget", "threshold"}),
        "feedback": Boolean(),
    })
    SPEC.validate("adapruner", {"epochs": 2.5})                # raises ConfigError

A spec extends another (`SPEC.extend({...})`, later entries win), so a parameter list is written
once. The same constraints turn `--param KEY=VALUE` text into a value (`parse`) and describe each
parameter for `adaprune methods -v` (`describe`). This module imports neither numpy nor torch."""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from adaprune.errors import ConfigError

__all__ = [
    "AnyString",
    "Boolean",
    "CallableValue",
    "Constraint",
    "Interval",
    "MappingValue",
    "NoneValue",
    "ParamSpec",
    "StrOptions",
]

_CLOSED = ("both", "left", "right", "neither")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class _NoParse:
    """Returned by `Constraint.parse` when the text is not a value of that kind."""


NO_PARSE = _NoParse()


def _is_bool(value: Any) -> bool:
    kind = type(value)  # numpy's bool, recognised without importing numpy
    return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


class Constraint(ABC):
    """One kind of accepted value."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool: ...

    @abstractmethod
    def describe(self) -> str:
        """The accepted values as a phrase: `an int >= 1`, `one of 'a', 'b'`."""

    def parse(self, text: str) -> Any:
        """The value `text` (from the command line) stands for under this constraint, or NO_PARSE."""
        return NO_PARSE

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class Interval(Constraint):
    """A number of `type` (int or float) between `low` and `high` (None: unbounded), `closed`
    "both", "left", "right" or "neither". An int interval takes Python and numpy integers, never
    a bool; a float interval takes any finite real (ints included), never a bool, NaN or inf."""

    def __init__(self, type: type, low: float | None, high: float | None, *, closed: str = "both") -> None:
        if type not in (int, float):
            raise TypeError(f"Interval type must be int or float, got {type!r}")
        if closed not in _CLOSED:
            raise ValueError(f"closed must be one of {', '.join(_CLOSED)}, got {closed!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"Interval low {low} is above high {high}")
        self.type = type
        self.low = low
        self.high = high
        self.closed = closed

    def _kind_ok(self, value: Any) -> bool:
        if _is_bool(value):
            return False
        if self.type is int:
            return isinstance(value, numbers.Integral)
        return isinstance(value, numbers.Real) and math.isfinite(float(value))

    def is_satisfied_by(self, value: Any) -> bool:
        if not self._kind_ok(value):
            return False
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not low_in)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not high_in)))

    def describe(self) -> str:
        noun = "an int" if self.type is int else "a float"
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return noun if self.type is int else "a finite float"
        if self.high is None:
            return f"{noun} {'>=' if low_in else '>'} {self.low:g}"
        if self.low is None:
            return f"{noun} {'<=' if high_in else '<'} {self.high:g}"
        return f"{noun} in {'[' if low_in else '('}{self.low:g}, {self.high:g}{']' if high_in else ')'}"

    def parse(self, text: str) -> Any:
        try:
            return int(text) if self.type is int else float(text)
        except ValueError:
            return NO_PARSE

    def invalid_values(self) -> list[Any]:
        """Values this interval refuses: outside each bound, the wrong kind, non-finite (for tests)."""
        out: list[Any] = [True, "1"]
        step = 1 if self.type is int else 0.5
        if self.low is not None:
            out.append(self.low - step if self.closed in ("both", "left") else self.low)
        if self.high is not None:
            out.append(self.high + step if self.closed in ("both", "right") else self.high)
        if self.type is int:
            out.append((self.low if self.low is not None else 0) + 1.5)
        out += [math.nan, math.inf]
        return out


class StrOptions(Constraint):
    """One of a fixed set of strings."""

    def __init__(self, options: Iterable[str]) -> None:
        self.options = tuple(sorted(options))
        if not self.options or not all(isinstance(o, str) for o in self.options):
            raise ValueError("StrOptions needs at least one string")

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def parse(self, text: str) -> Any:
        return text if text in self.options else NO_PARSE


class Boolean(Constraint):
    """True or False (a Python or numpy bool; 0 and 1 are ints, not bools)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return _is_bool(value)

    def describe(self) -> str:
        return "true or false"

    def parse(self, text: str) -> Any:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else NO_PARSE


class NoneValue(Constraint):
    """None (written `none` or `null` on the command line). In a spec, plain `None` means this."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"

    def parse(self, text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else NO_PARSE


class AnyString(Constraint):
    """Any non-empty string (a spec a later stage parses: an encoder, a path, an address)."""

    def __init__(self, what: str = "a string") -> None:
        self.what = what

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    def describe(self) -> str:
        return self.what

    def parse(self, text: str) -> Any:
        return text if text else NO_PARSE


class CallableValue(Constraint):
    """A callable (Python API only; nothing on the command line parses to one)."""

    def __init__(self, what: str = "a callable") -> None:
        self.what = what

    def is_satisfied_by(self, value: Any) -> bool:
        return callable(value)

    def describe(self) -> str:
        return self.what


class MappingValue(Constraint):
    """A mapping with string keys (on the command line: a JSON object)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)

    def describe(self) -> str:
        return "a mapping of names to values"

    def parse(self, text: str) -> Any:
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return NO_PARSE
        return value if isinstance(value, dict) else NO_PARSE


def _as_constraint(item: Any) -> Constraint:
    if item is None:
        return NoneValue()
    if isinstance(item, Constraint):
        return item
    raise TypeError(f"not a parameter constraint: {item!r}")


def _describe_all(constraints: tuple[Constraint, ...]) -> str:
    parts = [c.describe() for c in constraints]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


class ParamSpec(Mapping[str, tuple[Constraint, ...]]):
    """Parameter name -> the constraints it accepts (any one of them). Immutable."""

    def __init__(self, constraints: Mapping[str, Constraint | None | Iterable[Constraint | None]]) -> None:
        table: dict[str, tuple[Constraint, ...]] = {}
        for name, entry in constraints.items():
            items = list(entry) if isinstance(entry, (list, tuple)) else [entry]
            if not items:
                raise ValueError(f"parameter {name!r} has no constraint")
            table[name] = tuple(_as_constraint(c) for c in items)
        self._table = table

    def __getitem__(self, name: str) -> tuple[Constraint, ...]:
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"ParamSpec({ {k: self.describe(k) for k in self._table} })"

    def extend(self, more: Mapping[str, Any] | None = None, *, drop: Iterable[str] = ()) -> ParamSpec:
        """This spec with `more` added (or replacing entries of the same name), `drop` removed."""
        dropped = set(drop)
        unknown = dropped - set(self._table)
        if unknown:
            raise KeyError(f"cannot drop parameters the spec does not have: {sorted(unknown)}")
        out = ParamSpec(more or {})
        out._table = {**{k: v for k, v in self._table.items() if k not in dropped}, **out._table}
        return out

    def describe(self, name: str) -> str:
        """What `name` accepts, as a phrase: `an int >= 1 or None`."""
        return _describe_all(self._table[name])

    def check(self, owner: str, name: str, value: Any) -> None:
        """Refuse a value no constraint of `name` accepts: `owner: name must be ..., got value`."""
        constraints = self._table.get(name)
        if constraints is None:
            raise ConfigError(f"{owner}: no parameter {name!r}; it takes: {', '.join(self._table) or 'none'}")
        if not any(c.is_satisfied_by(value) for c in constraints):
            raise ConfigError(f"{owner}: {name} must be {_describe_all(constraints)}, got {value!r}")

    def validate(self, owner: str, values: Mapping[str, Any]) -> None:
        """Check every value (an unknown name is an error listing the known ones)."""
        for name, value in values.items():
            self.check(owner, name, value)

    def parse(self, owner: str, name: str, text: str) -> Any:
        """The value of `--param name=text`: the first constraint whose kind reads `text`, checked."""
        constraints = self._table.get(name)
        if constraints is None:
            raise ConfigError(f"{owner}: no parameter {name!r}; it takes: {', '.join(self._table) or 'none'}")
        for constraint in constraints:
            value = constraint.parse(text)
            if value is not NO_PARSE and constraint.is_satisfied_by(value):
                return value
        raise ConfigError(f"{owner}: {name} must be {_describe_all(constraints)}, got {text!r}")
