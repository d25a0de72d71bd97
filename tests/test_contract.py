"""The contract every registered method keeps: exact budget, same seed -> same selection, finite
scores where it has them, a declared direction, and (scorers) prune == score + select."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune, score, select
from adaprune.data import Dataset
from adaprune.registry import get_method, list_methods
from tests.conftest import blobs_dataset, make_blobs

METHODS = [m.name for m in list_methods()]


@pytest.fixture(scope="module")
def data() -> Dataset:
    x, y = make_blobs(n=96, d=6, classes=3, seed=5)
    return Dataset(name="blobs", x=x, y=y)


def quick(name: str) -> dict:
    return {"epochs": 2} if get_method(name).trains_model else {}


def test_the_registry_has_every_method_the_issues_name():
    expected = {"random", "adapruner", "semdedup", "adadedup", "el2n", "grand", "forgetting", "uncertainty",
                "herding", "kcenter", "prototypes", "moderate", "ccs", "cgscore", "glister"}
    assert expected <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name, data):
    cls = get_method(name)
    info = next(m for m in list_methods() if m.name == name)
    assert info.summary and info.direction and cls.kind in ("scorer", "selector")
    if cls.kind == "scorer":
        assert cls.higher_is_keep in (True, False)
    a = prune(data, name, prune=0.3, seed=3, progress=False, **quick(name))
    b = prune(data, name, prune=0.3, seed=3, progress=False, **quick(name))
    assert a.n_kept == round(0.7 * data.n)
    np.testing.assert_array_equal(a.kept, b.kept)
    if a.scores is not None:
        assert np.isfinite(a.scores).all()
        np.testing.assert_array_equal(a.scores, b.scores)
    if cls.kind == "scorer":
        scores = score(data, name, seed=3, progress=False, **quick(name))
        for frac in (0.3, 0.6):
            direct = prune(data, name, prune=frac, seed=3, progress=False, **quick(name))
            np.testing.assert_array_equal(select(scores, prune=frac).kept, direct.kept)


@pytest.mark.parametrize("name", ["herding", "kcenter", "moderate"])
def test_prune_end_to_end_exact_budget_balanced_and_deterministic(name):
    data = blobs_dataset()
    a = prune(data, name, prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(data, name, prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == 84
    np.testing.assert_array_equal(a.kept, b.kept)
    assert np.bincount(data.y[a.kept]).tolist() == [28, 28, 28]
