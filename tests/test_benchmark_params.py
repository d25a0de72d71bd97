"""`adaprune benchmark --param`: per-method METHOD.KEY=VALUE and plain KEY=VALUE for every method with KEY."""

from __future__ import annotations

import pytest

from adaprune.cli.main import main
from adaprune.cli.options import parse_method_params
from adaprune.errors import ConfigError


def test_scoped_and_plain_params_are_typed_and_routed():
    got = parse_method_params(
        ["random", "el2n", "aum", "adapruner"],
        ["epochs=3", "adapruner.epochs=2", "adapruner.binarize=threshold", "el2n.runs=1", "stratified=true"],
    )
    # epochs=3 reaches every method that declares epochs; adapruner.epochs wins over it.
    assert got == {
        "random": {"stratified": True},
        "el2n": {"epochs": 3, "runs": 1},
        "aum": {"epochs": 3},
        "adapruner": {"epochs": 2, "binarize": "threshold"},
    }
    assert parse_method_params(["random"], []) == {}


@pytest.mark.parametrize(("items", "message"), [
    (["nokey"], "KEY=VALUE"),
    (["el2n.epochs=2"], "names method 'el2n', which is not in --methods"),
    (["adapruner.nope=1"], "method 'adapruner' has no parameter 'nope'"),
    (["nope=1"], "no method in --methods (random, adapruner) has a parameter 'nope'"),
    (["adapruner.epochs=two"], "epochs must be an int >= 1, got 'two'"),
])
def test_param_errors_name_the_value(items, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_method_params(["random", "adapruner"], items)


def test_benchmark_cli_refuses_a_param_no_method_takes(tmp_path, capsys):
    code = main(["benchmark", "digits", "--methods", "random", "--prune", "0.5", "--out", str(tmp_path / "b"),
                 "--param", "epochs=2", "--quiet"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "adaprune: error: no method in --methods (random) has a parameter 'epochs'; `adaprune methods -v` lists them")
    assert not (tmp_path / "b").exists()
