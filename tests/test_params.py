"""Parameter specs (adaprune.params): the constraint kinds, one message shape, and the contract
that every registered method declares a constraint for every constructor parameter and refuses,
at construction, every out-of-range value in one line naming method, parameter, value and
constraint."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaprune.errors import ConfigError
from adaprune.params import (
    AnyString,
    Boolean,
    CallableValue,
    Interval,
    MappingValue,
    NoneValue,
    ParamSpec,
    StrOptions,
)
from adaprune.registry import build_method, get_method, list_registered_methods, method_parameters


def test_interval_kinds_bounds_and_phrases():
    ints = Interval(int, 1, None)
    assert ints.is_satisfied_by(1) and ints.is_satisfied_by(np.int64(7))
    assert not ints.is_satisfied_by(0) and not ints.is_satisfied_by(2.5) and not ints.is_satisfied_by(2.0)
    assert not ints.is_satisfied_by(True)  # a bool is not an int here
    assert ints.describe() == "an int >= 1"
    unit = Interval(float, 0, 1, closed="right")
    assert unit.is_satisfied_by(1) and unit.is_satisfied_by(0.5) and not unit.is_satisfied_by(0)
    assert not unit.is_satisfied_by(math.nan) and not unit.is_satisfied_by(False)
    assert unit.describe() == "a float in (0, 1]"
    assert Interval(float, None, None).describe() == "a finite float"
    assert not Interval(float, None, None).is_satisfied_by(math.inf)
    assert Interval(float, 0, None, closed="neither").describe() == "a float > 0"
    assert Interval(int, None, 3, closed="neither").describe() == "an int < 3"
    with pytest.raises(ValueError):
        Interval(int, 3, 1)


def test_other_kinds():
    assert StrOptions({"b", "a"}).describe() == "one of 'a', 'b'" and not StrOptions({"a"}).is_satisfied_by("c")
    assert Boolean().is_satisfied_by(np.bool_(True)) and not Boolean().is_satisfied_by(1)
    assert NoneValue().is_satisfied_by(None) and not AnyString().is_satisfied_by("")
    assert CallableValue().is_satisfied_by(len) and not MappingValue().is_satisfied_by({1: 2})


def test_one_message_shape_and_none_alternatives():
    spec = ParamSpec({"epochs": Interval(int, 1, None), "sample": [Interval(int, 1, None), None]})
    with pytest.raises(ConfigError) as info:
        spec.validate("adapruner", {"epochs": 2.5})
    assert str(info.value) == "adapruner: epochs must be an int >= 1, got 2.5"
    with pytest.raises(ConfigError, match=r"^semdedup: sample must be an int >= 1 or None, got -5$"):
        spec.validate("semdedup", {"sample": -5})
    spec.validate("x", {"sample": None, "epochs": 3})
    with pytest.raises(ConfigError, match="no parameter 'epoch'; it takes: epochs, sample"):
        spec.validate("x", {"epoch": 3})


def test_parse_reads_command_line_text_by_the_constraints():
    spec = ParamSpec({"n": [Interval(int, 1, None), None], "x": Interval(float, 0, 1), "flag": Boolean(),
                      "mode": StrOptions({"a", "b"}), "path": [AnyString(), None], "kw": [MappingValue(), None]})
    assert spec.parse("m", "n", "5") == 5 and spec.parse("m", "n", "none") is None
    assert spec.parse("m", "x", "1") == 1.0 and isinstance(spec.parse("m", "x", "1"), float)
    assert spec.parse("m", "flag", "off") is False and spec.parse("m", "mode", "b") == "b"
    assert spec.parse("m", "path", "5") == "5" and spec.parse("m", "kw", '{"runs": 1}') == {"runs": 1}
    with pytest.raises(ConfigError, match=r"^m: n must be an int >= 1 or None, got '2.5'$"):
        spec.parse("m", "n", "2.5")
    with pytest.raises(ConfigError, match=r"^m: flag must be true or false, got 'maybe'$"):
        spec.parse("m", "flag", "maybe")


def test_extend_adds_replaces_and_drops():
    base = ParamSpec({"a": Interval(int, 0, None), "b": Boolean()})
    more = base.extend({"b": StrOptions({"x"}), "c": None}, drop=("a",))
    assert list(more) == ["b", "c"] and more.describe("b") == "one of 'x'" and list(base) == ["a", "b"]


# ---------------------------------------------------------------- the contract over every method
METHODS = [info.name for info in list_registered_methods()]


@pytest.mark.parametrize("name", METHODS)
def test_every_constructor_parameter_has_a_constraint_and_its_default_meets_it(name):
    cls = get_method(name)
    params = method_parameters(cls)
    missing = [p for p in params if p not in cls.param_spec]
    assert not missing, f"{name}: no constraint for {missing}"
    for key, p in params.items():
        cls.param_spec.check(name, key, p.default)


def out_of_range(constraints) -> list:
    """Values no constraint of a numeric parameter accepts."""
    bad = []
    for c in constraints:
        if isinstance(c, Interval):
            bad += c.invalid_values()
    return [v for v in bad if not any(c.is_satisfied_by(v) for c in constraints)]


CASES = [(name, key) for name in METHODS for key in method_parameters(get_method(name))
         if any(isinstance(c, Interval) for c in get_method(name).param_spec[key])]


@pytest.mark.parametrize(("name", "key"), CASES, ids=[f"{n}.{k}" for n, k in CASES])
def test_every_numeric_parameter_refuses_out_of_range_values_in_one_line(name, key):
    cls = get_method(name)
    constraints = cls.param_spec[key]
    bad_values = out_of_range(constraints)
    assert bad_values
    phrase = cls.param_spec.describe(key)
    for value in bad_values:
        with pytest.raises(ConfigError) as info:
            build_method(name, {key: value})
        message = str(info.value)
        assert message == f"{name}: {key} must be {phrase}, got {value!r}", message
        assert "\n" not in message


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("adapruner", {"epochs": 2.5}, "adapruner: epochs must be an int >= 1, got 2.5"),
    ("adapruner", {"mask_momentum": 5}, "adapruner: mask_momentum must be a float in [0, 1), got 5"),
    ("adapruner", {"sel_eps": -1}, "adapruner: sel_eps must be a float > 0, got -1"),
    ("semdedup", {"n_iter": 0}, "semdedup: n_iter must be an int >= 1, got 0"),
    ("semdedup", {"kmeans_sample": -5}, "semdedup: kmeans_sample must be an int >= 1 or None, got -5"),
    ("adadedup", {"folds": 2.5}, "adadedup: folds must be an int >= 2, got 2.5"),
    ("adadedup", {"beta": math.nan}, "adadedup: beta must be a float >= 0, got nan"),
    ("adadedup", {"kmeans_sample": 0}, "adadedup: kmeans_sample must be an int >= 1 or None, got 0"),
    ("el2n", {"epochs": True}, "el2n: epochs must be an int >= 1, got True"),
    ("kcenter", {"start": "middle"}, "kcenter: start must be one of 'mean', 'random', got 'middle'"),
])
def test_the_values_the_issue_found_accepted_are_refused(name, params, expected):
    with pytest.raises(ConfigError) as info:
        build_method(name, params)
    assert str(info.value) == expected


def test_adapruner_mask_shares_the_methods_spec():
    from adaprune.adapruner_mask import ADAPRUNER_SPEC, AdaPrunerMask

    assert get_method("adapruner").param_spec is ADAPRUNER_SPEC
    assert set(ADAPRUNER_SPEC) == set(method_parameters(get_method("adapruner")))
    with pytest.raises(ConfigError, match=r"^AdaPrunerMask: sel_eps must be a float > 0, got -1$"):
        AdaPrunerMask(10, keep=0.5, sel_eps=-1)
    assert AdaPrunerMask(10, keep=0.5).params() == get_method("adapruner")().params()


def test_adadedup_spec_extends_semdedups():
    sem, ada = get_method("semdedup").param_spec, get_method("adadedup").param_spec
    for key in method_parameters(get_method("adadedup")):
        if key in sem:
            assert ada[key] is sem[key]


def test_validation_runs_once_per_construction(monkeypatch):
    """A subclass constructor calling its parent's through super() is checked by its own spec only."""
    calls = []
    real = ParamSpec.validate
    monkeypatch.setattr(ParamSpec, "validate",
                        lambda self, owner, values: calls.append(owner) or real(self, owner, values))
    build_method("adadedup", {})
    build_method("kcenter", {})
    build_method("herding", {})  # no constructor of its own: the inherited one checks herding's spec
    assert calls == ["adadedup", "kcenter", "herding"]


def test_cli_param_coercion_comes_from_the_spec():
    from adaprune.cli.options import parse_method_params, parse_params

    assert parse_params("semdedup", ["kmeans_sample=none", "n_clusters=5", "border_cosine=1"]) == {
        "kmeans_sample": None, "n_clusters": 5, "border_cosine": 1.0}
    assert parse_params("ccs", ['base_params={"runs": 1}'])["base_params"] == {"runs": 1}
    with pytest.raises(ConfigError, match=r"^adapruner: epochs must be an int >= 1, got '2.5'$"):
        parse_params("adapruner", ["epochs=2.5"])
    assert parse_method_params(["el2n", "aum"], ["epochs=3", "aum.runs=2"]) == {
        "el2n": {"epochs": 3}, "aum": {"epochs": 3, "runs": 2}}


def test_methods_verbose_shows_what_each_parameter_accepts(capsys):
    from adaprune.cli.main import main

    assert main(["methods", "-v"]) == 0
    out = capsys.readouterr().out
    assert "epochs=20  [an int >= 1]" in out and "kmeans_sample=None  [an int >= 1 or None]" in out


def test_none_reads_as_none_for_optional_strings():
    from adaprune.cli.options import parse_params

    assert parse_params("semdedup", ["work_dir=none", "embeddings=e.npy"]) == {"work_dir": None, "embeddings": "e.npy"}
