"""A scikit-learn face for array data: `Pruner`, an estimator that keeps a fraction of the rows.

A scikit-learn transformer may not drop rows, so `Pruner` follows imbalanced-learn's sampler
convention: `fit_resample(X, y)` returns the kept rows, and it drops into an imbalanced-learn
`Pipeline` (pruning at fit time only) and into searches (`clone`, `get_params`/`set_params`).

    from imblearn.pipeline import Pipeline
    pipe = Pipeline([("prune", Pruner(method="el2n", keep=0.7)), ("clf", LogisticRegression())])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class Pruner(BaseEstimator):
    """Keep `keep` of the rows of (X, y) with an adaprune method (`adaprune.list_methods()`).

    Parameters: `method` (a registered name), `keep` (fraction in (0, 1]; exactly round(keep * N) rows
    are kept), `random_state` (int seed; None means 0: adaprune is deterministic for a seed), `params`
    (the method's own keyword parameters, a dict), `model` (the network methods that train use:
    "auto", "mlp", ... or a zero-argument callable), `epochs` (their training length; None: the
    method's default), `balance` ("class", "none" or None: the method's own rule), `device`.

    After `fit`: `support_` (bool mask of kept rows), `scores_` (one per row, or None),
    `sample_indices_` (their sorted indices), `selection_` (the full `adaprune.Selection`), `classes_`,
    `n_features_in_`."""

    def __init__(
        self,
        method: str = "el2n",
        keep: float = 0.7,
        *,
        random_state: int | None = 0,
        params: Mapping[str, Any] | None = None,
        model: Any = "auto",
        epochs: int | None = None,
        balance: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.method = method
        self.keep = keep
        self.random_state = random_state
        self.params = params
        self.model = model
        self.epochs = epochs
        self.balance = balance
        self.device = device

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_y": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        return tags

    def _validate(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.utils.multiclass import check_classification_targets
        try:
            from sklearn.utils.validation import validate_data
        except ImportError:  # scikit-learn < 1.6
            X_arr, y_arr = self._validate_data(X, y, dtype=np.float32, allow_nd=True, ensure_min_samples=2)
        else:
            X_arr, y_arr = validate_data(self, X, y, dtype=np.float32, allow_nd=True, ensure_min_samples=2)
        check_classification_targets(y_arr)
        return X_arr, y_arr

    def fit(self, X: Any, y: Any) -> Pruner:
        """Score/select the rows of (X, y); labels may be any classification targets."""
        from adaprune.api import prune
        from adaprune.data import Dataset

        X_arr, y_arr = self._validate(X, y)
        self.classes_, y_codes = np.unique(y_arr, return_inverse=True)
        seed = 0 if self.random_state is None else int(self.random_state)
        dataset = Dataset(name="array", x=np.ascontiguousarray(X_arr), y=y_codes.astype(np.int64))
        self.selection_ = prune(
            dataset, self.method, keep=self.keep, seed=seed, model=self.model, epochs=self.epochs,
            device=self.device, params=None if self.params is None else dict(self.params), balance=self.balance,
            progress=False,
        )
        self.support_ = self.selection_.mask
        self.sample_indices_ = self.selection_.kept  # imbalanced-learn's name for the kept rows
        self.scores_ = self.selection_.scores
        return self

    def get_support(self, indices: bool = False) -> np.ndarray:
        """The kept rows: a bool mask, or their sorted indices with `indices=True`."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "support_")
        return np.flatnonzero(self.support_) if indices else self.support_.copy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Rows are dropped, never columns: the input feature names unchanged."""
        from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

        check_is_fitted(self, "support_")
        return _check_feature_names_in(self, input_features)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then return the kept rows of X and y (same container types: arrays, DataFrames)."""
        from sklearn.utils import _safe_indexing

        self.fit(X, y)
        kept = np.flatnonzero(self.support_)
        return _safe_indexing(X, kept), _safe_indexing(y, kept)
