"""What an explanation is: plain numpy arrays and JSON-ready fields, and the one error explaining raises.

`Explanation` holds numpy arrays and JSON-ready fields (`to_arrays`/`from_arrays`), so the store never pickles
a model-dependent object. Every failure leaves `explain_fold` as one exception type, `ExplainError`, whose
message (one line) the engine records.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from harness.report.format import jsonable_lax

T = TypeVar("T")

CLASSIFICATION = "classification"
REGRESSION = "regression"
OUTPUT_SPACES = ("raw", "log-odds", "probability")


class ExplainError(Exception):
    """The model could not be explained; the message says why (one line, for the results store)."""


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message: what a one-line `ExplainError` quotes of a library's error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


@dataclass
class Explanation:
    """SHAP values of one fold's model on a prefix of the fold's explain rows, per ORIGINAL feature.

    values[i, :, k].sum() + base_values[k] equals the model's output k on row i in `output_space` (up to
    `additivity_gap`, measured on the explained rows):
    "raw" = regression prediction, decision_function, or a regressor's raw tree margin;
    "log-odds" = a classifier's margin (logit; per-class softmax logit for multiclass);
    "probability" = predict_proba (the positive class for binary tasks).
    """

    values: np.ndarray  # (n_rows, n_features, n_outputs) float32
    base_values: np.ndarray  # (n_outputs,) float64
    features: list[str]  # original column names, in X_train's order
    data: np.ndarray  # (n_rows, n_features) float64: raw values, categoricals as codes, NaN kept
    row_index: np.ndarray  # (n_rows,) int64: X_explain's index labels (dataset positions) of the rows
    explainer: str  # "xgboost" | "lightgbm" | "tree" | "linear" | "permutation"
    output_space: str  # "raw" | "log-odds" | "probability"
    output_names: list[str]  # positive class / each class / "prediction"
    model: str  # class name of the explained estimator
    seconds: float  # wall time spent in explain_fold, one-off costs included
    budget_s: float
    n_model_features: int  # features the explainer saw (after one-hot), before grouping
    additivity_gap: float  # max |sum(values) + base - model output| over the explained rows
    categories: dict[str, list[str]] = field(default_factory=dict)  # code -> category, per categorical feature
    max_evals: int | None = None  # permutation: model evaluations per row
    n_background: int | None = None  # background rows (permutation, linear)
    note: str = ""  # why a fallback happened, or other caveats
    one_off_s: float = 0.0  # of `seconds`, what the process paid once (shap import, numba JIT): off the budget

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.values.shape[2])

    def head(self, n: int) -> Explanation:
        """The first `n` rows: models of a fold are compared on the prefix they all explained."""
        return _replace(self, values=self.values[:n], data=self.data[:n], row_index=self.row_index[:n])

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for np.savez / BLOBs) and a JSON-ready dict: everything needed to rebuild, no pickle."""
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        meta = {f.name: jsonable_lax(getattr(self, f.name)) for f in fields(self) if f.name not in _ARRAY_FIELDS}
        meta |= {"n_rows": self.n_rows, "n_outputs": self.n_outputs}  # for queries; derived again on load
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Explanation:
        """Inverse of `to_arrays` (meta may have been through JSON)."""
        values = np.asarray(arrays["values"], dtype=np.float32)
        base = np.asarray(arrays["base_values"], dtype=np.float64)
        data = np.asarray(arrays["data"], dtype=np.float64)
        rows = np.asarray(arrays["row_index"], dtype=np.int64)
        known = {f.name for f in fields(cls)} - set(_ARRAY_FIELDS)
        kw = {k: v for k, v in meta.items() if k in known}
        kw["features"] = list(kw["features"])
        kw["output_names"] = list(kw["output_names"])
        kw["categories"] = {k: list(v) for k, v in kw.get("categories", {}).items()}
        return cls(values=values, base_values=base, data=data, row_index=rows, **kw)


_ARRAY_FIELDS = ("values", "base_values", "data", "row_index")


def _replace(expl: Explanation, **changes: Any) -> Explanation:
    kw = {f.name: getattr(expl, f.name) for f in fields(expl)} | changes
    return Explanation(**kw)


def guarded(compute: Callable[[], T], label: str = "") -> T:
    """Run an explainer: its (and the model's) warnings silenced, since they would flood the fold's notes,
    and any failure one ExplainError line for the store."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compute()
    except ExplainError:
        raise
    except Exception as exc:
        raise ExplainError(f"{label}{type(exc).__name__}: {_first_line(exc)}") from exc


def raw_frames(
    X_train: pd.DataFrame, X_explain: pd.DataFrame, task: str, max_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows and the rows to explain (at most `max_rows`), with the raw column names as strings
    (the names every explanation is stored under); refuses an unknown task and an empty prefix."""
    if task not in (CLASSIFICATION, REGRESSION):
        raise ExplainError(f"unknown task {task!r}")
    raw = [str(c) for c in X_train.columns]
    X_rows = X_explain.set_axis(raw, axis=1).iloc[:max_rows]
    if len(X_rows) == 0:
        raise ExplainError("no rows to explain")
    return X_train.set_axis(raw, axis=1), X_rows
