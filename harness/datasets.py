"""Dataset loaders: scikit-learn's bundled sets, CSV/Parquet files, synthetic generators.

A loaded `Dataset` is the only thing the later stages see: features as a DataFrame in
file order, the target, the task, which columns are categorical, and a content
fingerprint that enters every result's key (a changed file never reuses old results).
Nothing is imputed or encoded here: that happens inside each fold (preprocess.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from harness.errors import DatasetError
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.spec import DatasetSpec, did_you_mean

SKLEARN_SETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
SYNTHETIC = {
    "classification": "make_classification",
    "regression": "make_regression",
    "friedman1": "make_friedman1",
}
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
# An integer-valued target with at most this many distinct values is a class label.
MAX_CLASSES_INFERRED = 20


@dataclass
class Dataset:
    """Features, target and what the folds need to know about them."""

    name: str
    X: pd.DataFrame
    y: np.ndarray
    task: str
    categorical: list[str]
    source: str
    groups: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # classification: the original label of each code in y
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            labels = None if self.labels is None else [str(v) for v in self.labels]
            self.fingerprint = fingerprint(self.X, self.y, self.task, self.categorical, self.groups, labels)

    @cached_property
    def numeric(self) -> list[str]:
        return [c for c in self.X.columns if c not in set(self.categorical)]

    @cached_property
    def has_missing(self) -> bool:
        return bool(self.X.isna().to_numpy().any())

    @cached_property
    def classes(self) -> np.ndarray | None:
        return np.unique(self.y) if self.task == CLASSIFICATION else None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "task": self.task,
            "n_rows": len(self.X),
            "n_features": int(self.X.shape[1]),
            "n_categorical": len(self.categorical),
            "n_classes": None if self.classes is None else len(self.classes),
            "missing_cells": int(self.X.isna().to_numpy().sum()),
            "fingerprint": self.fingerprint,
            "labels": None if self.labels is None else [str(v) for v in self.labels],
        }


def fingerprint(
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    categorical: list[str],
    groups: np.ndarray | None,
    labels: list[str] | None = None,
) -> str:
    """Content hash of everything that changes results: values, column names, types, roles."""
    h = hashlib.sha256()
    h.update(repr((list(map(str, X.columns)), [str(t) for t in X.dtypes], task, sorted(categorical), labels)).encode())
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(pd.Series(y), index=False).to_numpy().tobytes())
    if groups is not None:
        h.update(pd.util.hash_pandas_object(pd.Series(groups), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def load_dataset(spec: DatasetSpec, base_dir: Path | None = None, group: str | None = None, where: str = "") -> Dataset:
    """Load one dataset of a suite; `where` prefixes errors (e.g. 'suite.yaml: datasets[2]')."""
    where = where or f"datasets.{spec.name}"
    kind, _, rest = spec.source.partition(":")
    if kind == "sklearn" and rest:
        X, y = _load_sklearn(rest, where)
    elif kind == "synthetic" and rest:
        X, y = _load_synthetic(rest, spec.params, where)
    elif spec.source.lower().endswith(FILE_SUFFIXES):
        path = Path(spec.source)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return _from_frame(spec, _read_file(path, where), where, group, str(path))
    else:
        raise DatasetError(
            f"{where}.source: cannot read '{spec.source}': use sklearn:NAME, synthetic:KIND, or a .csv/.parquet path"
        )
    frame = X.copy()
    target = "__target__"
    frame[target] = y
    return _from_frame(
        spec.model_copy(update={"target": spec.target or target}),
        frame,
        where,
        group,
        spec.source,
        builtin_target=target,
    )


def _load_sklearn(name: str, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    import sklearn.datasets as skd

    if name not in SKLEARN_SETS:
        raise DatasetError(
            f"{where}.source: unknown scikit-learn dataset '{name}'{did_you_mean(name, SKLEARN_SETS)}; bundled: {', '.join(SKLEARN_SETS)}"
        )
    X, y = getattr(skd, SKLEARN_SETS[name])(return_X_y=True, as_frame=True)
    return X, np.asarray(y)


def _load_synthetic(kind: str, params: dict[str, Any], where: str) -> tuple[pd.DataFrame, np.ndarray]:
    import sklearn.datasets as skd

    if kind not in SYNTHETIC:
        raise DatasetError(
            f"{where}.source: unknown generator '{kind}'{did_you_mean(kind, SYNTHETIC)}; choose from {', '.join(SYNTHETIC)}"
        )
    params = {"random_state": 0, **params}
    try:
        X, y = getattr(skd, SYNTHETIC[kind])(**params)
    except TypeError as exc:
        raise DatasetError(f"{where}.params: {exc}") from None
    except ValueError as exc:
        raise DatasetError(f"{where}.params: {str(exc).splitlines()[0]}") from None
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y


def _read_file(path: Path, where: str) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{where}.source: file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # a parser's error names no file; ours does
        raise DatasetError(f"{where}.source: cannot read {path}: {str(exc).splitlines()[0]}") from None


def _from_frame(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    where: str,
    group: str | None,
    source: str,
    builtin_target: str | None = None,
) -> Dataset:
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if spec.target is None:
        raise DatasetError(f"{where}.target: name the target column of {source} (columns: {_head(columns)})")
    if spec.target not in columns:
        raise DatasetError(
            f"{where}.target: column '{spec.target}' not found in {source}{did_you_mean(spec.target, columns)}"
        )
    for key, names in (("drop", spec.drop), ("categorical", spec.categorical)):
        for i, col in enumerate(names):
            if col not in columns or col == builtin_target:
                raise DatasetError(
                    f"{where}.{key}[{i}]: column '{col}' not found in {source}{did_you_mean(col, columns)}"
                )
    if group is not None and group not in columns:
        raise DatasetError(
            f"{where}: group column '{group}' (cv.group) not found in {source}{did_you_mean(group, columns)}"
        )
    notes = []
    missing_target = frame[spec.target].isna().to_numpy()
    if missing_target.any():
        notes.append(f"dropped {int(missing_target.sum())} rows with a missing target")
        frame = frame.loc[~missing_target].reset_index(drop=True)
    if len(frame) == 0:
        raise DatasetError(f"{where}: {source} has no rows with a target value")
    groups = frame[group].to_numpy() if group else None
    X = frame.drop(columns=[spec.target, *spec.drop, *([group] if group else [])])
    if X.shape[1] == 0:
        raise DatasetError(f"{where}: {source} has no feature columns left after target/drop")
    y_raw = frame[spec.target]
    task = spec.task or infer_task(y_raw)
    y, labels = _target(y_raw, task, where, spec.target)
    categorical = [
        c for c in X.columns if c in spec.categorical or not pdt.is_numeric_dtype(X[c]) or pdt.is_bool_dtype(X[c])
    ]
    X = _normalise_types(X, categorical)
    return Dataset(spec.name, X, y, task, categorical, source, groups=groups, notes=notes, labels=labels)


def infer_task(y: pd.Series) -> str:
    """Strings, booleans and few distinct integers are labels; anything else is regression."""
    if not pdt.is_numeric_dtype(y) or pdt.is_bool_dtype(y):
        return CLASSIFICATION
    values = y.to_numpy(dtype=float)
    if np.all(np.mod(values, 1) == 0) and len(np.unique(values)) <= MAX_CLASSES_INFERRED:
        return CLASSIFICATION
    return REGRESSION


def _target(y: pd.Series, task: str, where: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Regression: floats. Classification: codes 0..k-1 in sorted label order, and the labels.

    Every learner then sees the same integer classes (XGBoost accepts nothing else), and
    the positive class of a binary task is the greater label, as in scikit-learn.
    """
    if task == REGRESSION:
        if not pdt.is_numeric_dtype(y) or pdt.is_bool_dtype(y):
            raise DatasetError(f"{where}.task: target '{name}' is not numeric, so it cannot be a regression target")
        return y.to_numpy(dtype=float), None
    arr = y.to_numpy()
    if arr.dtype.kind in "OUT":
        arr = arr.astype(str)
    elif arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
        arr = arr.astype(np.int64)
    labels, codes = np.unique(arr, return_inverse=True)
    if len(labels) < 2:
        raise DatasetError(
            f"{where}.target: target '{name}' has a single class ({arr[0].item()!r}); nothing to classify"
        )
    return codes.astype(np.int64), labels


def _normalise_types(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categoricals become string columns (NaN for missing), numerics become float64."""
    X = X.copy()
    for col in X.columns:
        if col in categorical:
            # pd.notna, not `v is np.nan`: pandas 3 hands back NaNs that are not the np.nan object,
            # and str() of those made a category 'nan' instead of a missing value.
            X[col] = X[col].astype(object).map(lambda v: str(v) if pd.notna(v) else np.nan)
        else:
            X[col] = X[col].astype(np.float64)
    return X


def _head(cols: list[str], n: int = 12) -> str:
    return ", ".join(cols[:n]) + (", ..." if len(cols) > n else "")


def available_sources() -> list[tuple[str, str]]:
    """(source, description) pairs for `harness list datasets`."""
    out = [(f"sklearn:{k}", "scikit-learn bundled set") for k in SKLEARN_SETS]
    out += [(f"synthetic:{k}", f"sklearn.datasets.{v}, params passed through") for k, v in SYNTHETIC.items()]
    return out


def row_hashes(ds: Dataset) -> np.ndarray:
    """One hash per row of features and target (for overlap checks between datasets)."""
    frame = ds.X.copy()
    frame["__target__"] = ds.y
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def shared_rows(a: Dataset, b: Dataset) -> int:
    """How many rows of `b` also appear in `a` (same columns required; 0 otherwise)."""
    if list(a.X.columns) != list(b.X.columns):
        return 0
    return int(np.isin(row_hashes(b), row_hashes(a)).sum())
