"""The model as the explainer sees it: fitted preprocessing split from the final estimator, and frames as floats.

Explain what the model sees, report what the user knows. The explainer works on the preprocessed features
(one-hot children, ordinal codes, scaled numerics); the values of the children of one original column are
then summed (`fold._group`). The child -> column map comes from the fitted ColumnTransformer (its
transformers' input columns and fitted one-hot categories), never from parsing feature names, which may
collide. shap's maskers mix rows of a float matrix, so `_FrameCodec` maps mixed-dtype frames to floats and back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.explain.result import ExplainError

# ---------------------------------------------------------------- frames <-> float matrices


@dataclass
class _FrameCodec:
    """Maps a DataFrame with mixed dtypes to a float matrix and back.

    shap's maskers mix rows of a float matrix; models (a stack, a native-categorical learner) want their
    original dtypes back. Categories get codes: a Categorical keeps its own codes (the model's), other
    non-numeric columns are coded by sorted training values, then values first seen in other frames.
    """

    columns: list[str]
    dtypes: list[Any]
    categories: list[np.ndarray | None]

    @classmethod
    def fit(cls, train: pd.DataFrame, *others: pd.DataFrame) -> _FrameCodec:
        cats: list[np.ndarray | None] = []
        for c in train.columns:
            col = train[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats.append(np.asarray(col.cat.categories, dtype=object))
            elif pd.api.types.is_numeric_dtype(col.dtype):
                cats.append(None)
            else:
                seen = sorted(col.dropna().unique().tolist(), key=str)
                new = {v for o in others for v in o[c].dropna().unique().tolist()} - set(seen)
                cats.append(np.asarray(seen + sorted(new, key=str), dtype=object))
        return cls(list(train.columns), list(train.dtypes), cats)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.columns)), dtype=np.float64)
        for j, (c, cats) in enumerate(zip(self.columns, self.categories, strict=True)):
            col = X[c]
            if cats is None:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            elif isinstance(col.dtype, pd.CategoricalDtype):
                codes = col.cat.codes.to_numpy().astype(np.float64)
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                lookup = {v: i for i, v in enumerate(cats)}
                out[:, j] = [lookup.get(v, np.nan) if not pd.isna(v) else np.nan for v in col.tolist()]
        return out

    def decode(self, A: np.ndarray, index: Any = None) -> pd.DataFrame:
        cols = {}
        for j, (c, dtype, cats) in enumerate(zip(self.columns, self.dtypes, self.categories, strict=True)):
            a = A[:, j]
            if cats is None:
                cols[c] = _as_dtype(a, dtype)
            elif isinstance(dtype, pd.CategoricalDtype):
                codes = np.where(np.isnan(a), -1, a).astype(int)
                cols[c] = pd.Categorical.from_codes(codes, dtype=dtype)
            else:
                obj = np.full(len(a), np.nan, dtype=object)
                ok = ~np.isnan(a)
                obj[ok] = cats[a[ok].astype(int)]
                cols[c] = _as_dtype(obj, dtype)
        return pd.DataFrame(cols, index=index)

    def category_names(self) -> dict[str, list[str]]:
        return {
            c: [str(v) for v in cats] for c, cats in zip(self.columns, self.categories, strict=True) if cats is not None
        }


def _as_dtype(values: np.ndarray, dtype: Any) -> Any:
    try:
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return values  # e.g. NaN into a plain int column: keep floats rather than fail


# ---------------------------------------------------------------- model anatomy


@dataclass
class _Parts:
    """The estimator to explain, the function from raw rows to its inputs, and each input's original column."""

    estimator: Any
    transform: Callable[[pd.DataFrame], pd.DataFrame]
    owner: np.ndarray  # owner[m] = index of the original column that model input m comes from
    note: str = ""


def _split_model(model: Any, raw_columns: list[str]) -> _Parts:
    """Separate fitted preprocessing from the final estimator.

    A Pipeline whose preprocessing is one ColumnTransformer is split (the explainer sees the preprocessed
    features); any other model is explained on the raw columns as a whole.
    """
    identity = np.arange(len(raw_columns))
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2:
        return _Parts(model, lambda X: X, identity)
    # a sampler (resample:) acts in fit only: what the model sees at predict time is the ColumnTransformer's output
    prep = [s for _, s in steps[:-1] if s != "passthrough" and s is not None and not hasattr(s, "fit_resample")]
    if len(prep) != 1 or not hasattr(prep[0], "transformers_"):
        return _Parts(model, lambda X: X, identity, note="preprocessing is not one ColumnTransformer: raw columns")
    ct, est = prep[0], steps[-1][1]
    owner = _column_owners(ct, raw_columns)
    return _Parts(est, lambda X: _as_frame(ct.transform(X)), owner)


def _as_frame(Xt: Any) -> pd.DataFrame:
    return Xt if isinstance(Xt, pd.DataFrame) else pd.DataFrame(np.asarray(Xt))


def _column_owners(ct: Any, raw_columns: list[str]) -> np.ndarray:
    """For each output column of a fitted ColumnTransformer, the index of its original column.

    Output columns follow `transformers_` in order. A one-hot encoder (possibly the last step of a Pipeline)
    contributes, per input column, its fitted categories minus a dropped one (infrequent categories
    collapse into one column); other transformers must output columns named after their inputs (imputers may
    drop all-missing columns, which is why the names are looked up rather than assumed 1:1).
    """
    where = {c: i for i, c in enumerate(raw_columns)}
    names_in = list(getattr(ct, "feature_names_in_", raw_columns))
    owner: list[int] = []
    for _name, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        cols = _column_names(cols, names_in)
        if not cols:
            continue
        if isinstance(trans, str) and trans == "passthrough":
            owner += [where[c] for c in cols]
            continue
        last = trans.steps[-1][1] if hasattr(trans, "steps") else trans
        if type(last).__name__ == "OneHotEncoder" and hasattr(last, "categories_"):
            counts = _onehot_counts(last)
            if hasattr(trans, "steps"):
                # steps before the encoder must keep the columns one to one
                before = trans[:-1].get_feature_names_out(cols) if len(trans.steps) > 1 else cols
                if list(before) != list(cols):
                    raise ExplainError("cannot map a one-hot encoder behind a column-changing step to raw columns")
            for c, n in zip(cols, counts, strict=True):
                owner += [where[c]] * n
            continue
        out = [str(n) for n in trans.get_feature_names_out(cols)]
        if not set(out) <= set(cols):
            raise ExplainError(f"cannot map the outputs of {type(last).__name__} back to raw columns")
        owner += [where[c] for c in out]
    return np.asarray(owner, dtype=np.int64)


def _column_names(cols: Any, names_in: list[str]) -> list[str]:
    if isinstance(cols, slice):
        return names_in[cols]
    cols = list(np.atleast_1d(cols)) if not isinstance(cols, str) else [cols]
    if cols and all(isinstance(c, bool | np.bool_) for c in cols):
        return [n for n, keep in zip(names_in, cols, strict=True) if keep]
    return [names_in[int(c)] if isinstance(c, int | np.integer) else str(c) for c in cols]


def _onehot_counts(enc: Any) -> list[int]:
    """Output columns per input column of a fitted OneHotEncoder, from its categories."""
    counts = []
    drop = getattr(enc, "drop_idx_", None)
    infrequent = getattr(enc, "infrequent_categories_", None)
    for i, cats in enumerate(enc.categories_):
        n = len(cats)
        if infrequent is not None and infrequent[i] is not None:
            n = n - len(infrequent[i]) + 1
        if drop is not None and drop[i] is not None:
            n -= 1
        counts.append(n)
    return counts
