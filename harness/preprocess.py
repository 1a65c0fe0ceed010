"""Fold-local preprocessing chosen by an estimator's tags.

Everything here is a transformer fitted on the training part of a fold only (it is a
step of the fold's Pipeline), so imputation values, scaling statistics and category
vocabularies never see the test rows. Native-categorical learners (LightGBM, XGBoost,
HistGradientBoosting) receive pandas Categorical columns whose categories come from
the training part; a category first seen at test time becomes missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.pipeline import make_pipeline as sk_make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

CATEGORICAL_MODES = ("onehot", "ordinal", "native", "none")


@dataclass(frozen=True)
class Tags:
    """What an estimator needs: scaled numerics, no NaN, and how categoricals are encoded."""

    scale: bool = False
    impute: bool = True
    categorical: str = "onehot"  # onehot | ordinal | native | none (members bring their own)

    def override(self, spec: Any) -> Tags:
        """Apply a suite's `preprocess:` overrides (None keeps the tag)."""
        if spec is None:
            return self
        changes = {k: v for k, v in spec.model_dump().items() if v is not None}
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Columns:
    """The dataset's column roles, fixed before any split (schema, not statistics)."""

    numeric: list[str]
    categorical: list[str]
    has_missing: bool


class CategoricalDtypeEncoder(TransformerMixin, BaseEstimator):
    """Cast columns to pandas Categorical with the categories seen in `fit`.

    Native-categorical learners read the dtype; fixing the categories on the training
    part keeps codes identical between train and test and turns unseen values into NaN.
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> CategoricalDtypeEncoder:
        X = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.categories_ = {c: sorted(X[c].dropna().unique().tolist(), key=str) for c in X.columns}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "categories_")
        X = pd.DataFrame(X)
        out = {}
        for c in self.feature_names_in_:
            known = X[c].where(X[c].isin(self.categories_[c]))  # unseen values become missing
            out[c] = pd.Categorical(known, categories=self.categories_[c])
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_.copy()

    def set_output(self, *, transform: Any = None) -> CategoricalDtypeEncoder:
        return self  # always returns a DataFrame: the dtype is the point


def _numeric_steps(tags: Tags, has_missing: bool) -> list[Any]:
    steps: list[Any] = []
    if tags.impute and has_missing:
        steps.append(SimpleImputer(strategy="median"))
    if tags.scale:
        steps.append(StandardScaler())
    return steps


def _categorical_step(tags: Tags) -> Any:
    if tags.categorical == "native":
        return CategoricalDtypeEncoder()
    if tags.categorical == "ordinal":
        missing = -1 if tags.impute else np.nan
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=missing)
    # One-hot keeps missing as a category of its own; unseen categories get all zeros.
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def make_preprocessor(tags: Tags, columns: Columns) -> ColumnTransformer | None:
    """The fold-local transformer for these tags, or None when the raw columns will do."""
    if tags.categorical == "none":
        return None
    num_steps = _numeric_steps(tags, columns.has_missing)
    parts = []
    if columns.numeric:
        num = sk_make_pipeline(*num_steps) if num_steps else "passthrough"
        parts.append(("num", num, columns.numeric))
    if columns.categorical:
        parts.append(("cat", _categorical_step(tags), columns.categorical))
    if not num_steps and not columns.categorical:
        return None
    ct = ColumnTransformer(parts, verbose_feature_names_out=False, sparse_threshold=0.0)
    return ct.set_output(transform="pandas")


def make_pipeline(model: Any, tags: Tags, columns: Columns) -> Any:
    """`model` behind its fold-local preprocessing (the bare model when none is needed)."""
    prep = make_preprocessor(tags, columns)
    return model if prep is None else Pipeline([("prep", prep), ("model", model)])
