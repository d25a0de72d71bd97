from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import check_estimator

from adaprune import Pruner, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from tests.conftest import make_blobs

pytest.importorskip("imblearn")
from imblearn.pipeline import Pipeline  # noqa: E402


def string_blobs(n: int = 120):
    x, y = make_blobs(n=n, d=5, classes=3, seed=3)
    return x, np.array(["cat", "dog", "eel"])[y]


def test_clone_and_params():
    pruner = Pruner(method="el2n", keep=0.5, random_state=3, params={"runs": 1}, epochs=2)
    twin = clone(pruner)
    assert twin is not pruner and twin.get_params() == pruner.get_params()
    assert twin.set_params(keep=0.9).keep == 0.9 and pruner.keep == 0.5
    assert not hasattr(twin, "support_")
    with pytest.raises(TypeError):
        Pruner(method="el2n", runs=1)  # no **kwargs sink: method parameters go in `params`


def test_fit_resample_keeps_the_rows_adaprune_prune_keeps():
    x, y = string_blobs()
    pruner = Pruner(method="el2n", keep=0.7, random_state=1, epochs=2, params={"runs": 1})
    xk, yk = pruner.fit_resample(x, y)
    codes = np.unique(y, return_inverse=True)[1]
    expected = prune(Dataset(name="array", x=x, y=codes), "el2n", keep=0.7, seed=1, epochs=2,
                     params={"runs": 1}, progress=False)
    np.testing.assert_array_equal(pruner.get_support(indices=True), expected.kept)
    np.testing.assert_array_equal(pruner.sample_indices_, expected.kept)
    np.testing.assert_array_equal(xk, x[expected.kept])
    np.testing.assert_array_equal(yk, y[expected.kept])  # the user's own labels come back
    assert len(yk) == 84 and pruner.support_.sum() == 84
    np.testing.assert_allclose(pruner.scores_, expected.scores)
    assert list(pruner.classes_) == ["cat", "dog", "eel"]


def test_imblearn_pipeline_fits_the_classifier_on_the_kept_rows_only():
    x, y = string_blobs()
    pipe = Pipeline([("prune", Pruner(method="el2n", keep=0.6, epochs=2, params={"runs": 1})),
                     ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(x, y)
    kept = pipe.named_steps["prune"].support_
    alone = LogisticRegression(max_iter=500).fit(x[kept], y[kept])
    np.testing.assert_allclose(pipe.named_steps["clf"].coef_, alone.coef_)
    assert (pipe.predict(x) == alone.predict(x)).all() and len(pipe.predict(x)) == len(x)  # predict drops nothing


def test_grid_search_over_the_budget():
    x, y = string_blobs(90)
    pipe = Pipeline([("prune", Pruner(method="random")), ("clf", LogisticRegression(max_iter=200))])
    search = GridSearchCV(pipe, {"prune__keep": [0.5, 0.9]}, cv=2).fit(x, y)
    assert search.best_params_["prune__keep"] in (0.5, 0.9)


def test_scikit_learn_estimator_checks_pass():
    """Every check of scikit-learn's check_estimator that applies passes; check_array_api_input
    skips itself without SCIPY_ARRAY_API. (`random` keeps the checks fast; the estimator code is the
    same for every method.)"""
    results = check_estimator(Pruner(method="random", keep=0.7), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [] and len(results) > 30


def test_bad_values_are_refused():
    x, y = string_blobs(30)
    with pytest.raises(ConfigError):
        Pruner(keep=1.5, method="random").fit(x, y)
    with pytest.raises(ConfigError):
        Pruner(method="nope").fit(x, y)
    with pytest.raises(ValueError):
        Pruner(method="random").fit(x, np.linspace(0, 1, 30))  # continuous targets


# imbalanced-learn's sampler checks that apply to a pruner. Not run, and why:
#   check_samplers_one_label        expects a refusal of one-class data ("can't balance"); pruning one class is fine
#   check_samplers_fit              expects `sampling_strategy_`, a class-balancing target Pruner does not have
#   check_samplers_multiclass_ova   one-hot (multilabel-indicator) targets; Pruner takes class labels
#   check_samplers_sample_indices   reads imbalanced-learn's own `sampler_tags`; `sample_indices_` is tested above
#   check_samplers_pandas(_sparse), check_samplers_sparse, check_samplers_string, check_samplers_nan:
#                                   pandas is not installed here; sparse, string and NaN input are refused
IMBLEARN_CHECKS = ["check_target_type", "check_samplers_fit_resample", "check_samplers_sampling_strategy_fit_resample",
                   "check_samplers_list", "check_samplers_preserve_dtype", "check_samplers_2d_target",
                   "check_sampler_get_feature_names_out"]


@pytest.mark.parametrize("name", IMBLEARN_CHECKS)
def test_imbalanced_learn_sampler_checks_that_apply(name):
    import imblearn.utils.estimator_checks as checks

    getattr(checks, name)("Pruner", Pruner(method="random", keep=0.7))
