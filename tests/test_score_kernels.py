"""The public kernels of adaprune.scores: numpy in, numpy out, hand-computed values."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from adaprune import scores
from adaprune.errors import ConfigError


def test_softmax_and_el2n():
    probs = scores.softmax([[0.0, math.log(3.0)], [5.0, 5.0]])
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(scores.el2n(probs, np.array([0, 1])), [0.75 * math.sqrt(2), 0.5 * math.sqrt(2)])
    assert scores.el2n([[1.0, 0.0]], np.array([0]))[0] == 0.0  # exact at a learned sample
    assert scores.softmax([[1000.0, 0.0]])[0, 0] == 1.0  # stable for large logits


def test_logit_margins_and_aum():
    z = np.array([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
    np.testing.assert_allclose(scores.logit_margins(z, np.array([0, 1])), [-2.0, 1.0])
    np.testing.assert_allclose(scores.aum([[1.0, -2.0], [3.0, 0.0], [2.0, -4.0]]), [2.0, -2.0])


def test_forgetting_events():
    correct = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 0]], dtype=bool)
    # column 0: R W R W -> 2; column 1 never correct -> T = 4; column 2: W R W R -> 1; column 3: R R R W -> 1
    got = scores.forgetting_events(correct)
    assert got.tolist() == [2, 4, 1, 1] and got.dtype == np.int64


def test_uncertainty_measures():
    p = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(scores.uncertainty(p, "least_confidence"), [0.5, 0.0])
    np.testing.assert_allclose(scores.uncertainty(p, "margin"), [0.8, 0.0])
    np.testing.assert_allclose(scores.uncertainty(p), [-(0.5 * math.log(0.5) + 0.3 * math.log(0.3)
                                                         + 0.2 * math.log(0.2)), 0.0])


@pytest.mark.parametrize("call", [
    lambda: scores.el2n([0.5, 0.5], np.array([0])),
    lambda: scores.el2n([[0.5, 0.5]], np.array([2])),
    lambda: scores.el2n([[0.5, 0.5]], np.array([0.0])),
    lambda: scores.logit_margins([[1.0, 2.0]], np.array([0, 1])),
    lambda: scores.forgetting_events(np.array([True, False])),
    lambda: scores.aum(np.array([1.0, 2.0])),
    lambda: scores.uncertainty([[0.5, 0.5]], "max"),
])
def test_bad_inputs(call):
    with pytest.raises(ConfigError):
        call()


def test_scores_module_never_imports_torch():
    tree = ast.parse((Path(scores.__file__)).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "torch" not in imported
