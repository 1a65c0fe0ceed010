"""LIME explanations of a fold's fitted model, per raw column, within the fold's explanation budget.

Why the raw feature space (and not the preprocessed one, grouped back with `anatomy`): LIME explains a row
by sampling perturbed rows around it and fitting a local linear model to the model's outputs there. Its
samples must be inputs the model could meet. Perturbing one-hot children one by one makes rows with two
categories at once, or none; perturbing raw columns (a category is drawn from the training frequencies, a
number from its training quartile bins) makes valid raw rows, which the whole fitted pipeline
(preprocessing included) then scores. So LIME's interpretable features are the raw columns themselves and
nothing needs grouping. The explained rows are the fold's SHAP rows (`explain_rows` order, a prefix of
it), so the two methods can be compared row for row.

What LIME needs that the data may lack: numbers without gaps (its quartile statistics and sampling). A
missing numeric value is replaced by the training median for LIME's statistics and the explained row; a
missing category is a category of its own ("missing"), which the model receives as missing again.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from harness.explain.anatomy import _FrameCodec
from harness.explain.result import REGRESSION, ExplainError, guarded, raw_frames
from harness.explain.runtime import _ONE_OFF, _SAFETY, _Clock
from harness.report.format import jsonable_lax

NUM_SAMPLES = 1000  # perturbed rows per explained row (LIME's default is 5000; the budget usually decides rows)
STATS_ROWS = 2000  # training rows LIME's quartiles and category frequencies are taken from
PREFIX = "lime_"  # LIME's arrays sit beside SHAP's in a fold's stored explanation


@dataclass
class LimeExplanation:
    """LIME weights of one fold's model on a prefix of the fold's explain rows, per raw column.

    values[i, j, k] is the weight of column j in the local linear model around row i for output k (the
    positive class of a binary classifier, each class of a multiclass one, the prediction of a regressor),
    on LIME's binary "row i's bin/category" feature: how much output k moves when column j leaves row i's
    value. `output_space` is "probability" (predict_proba) or "raw" (predict, or decision_function).
    """

    values: np.ndarray  # (n_rows, n_features, n_outputs) float32
    row_index: np.ndarray  # (n_rows,) int64: dataset positions of the rows
    features: list[str]
    output_names: list[str]
    output_space: str
    seconds: float
    budget_s: float
    num_samples: int
    score: float  # mean R² of the local linear models on LIME's samples (how local-linear the model is)
    one_off_s: float = 0.0  # of `seconds`, importing lime (off the budget)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def head(self, n: int) -> LimeExplanation:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return LimeExplanation(**kw | {"values": self.values[:n], "row_index": self.row_index[:n]})

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays under `lime_` names and a JSON-ready dict under "lime": they sit beside SHAP's in the store."""
        arrays = {PREFIX + "values": self.values, PREFIX + "rows": self.row_index}
        meta = {
            f.name: jsonable_lax(getattr(self, f.name)) for f in fields(self) if f.name not in ("values", "row_index")
        }
        return arrays, {"lime": meta | {"n_rows": self.n_rows}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> LimeExplanation | None:
        """Inverse of `to_arrays` from a fold's stored explanation; None when the fold has no LIME values."""
        if PREFIX + "values" not in arrays or "lime" not in meta:
            return None
        known = {f.name for f in fields(cls)} - {"values", "row_index"}
        kw = {k: v for k, v in meta["lime"].items() if k in known}
        kw["features"], kw["output_names"] = list(kw["features"]), list(kw["output_names"])
        values = np.asarray(arrays[PREFIX + "values"], dtype=np.float32)
        return cls(values=values, row_index=np.asarray(arrays[PREFIX + "rows"], dtype=np.int64), **kw)


def import_lime() -> Any:
    """lime.lime_tabular, imported once per process; the import counts as one-off work (off the budget)."""
    if "lime.lime_tabular" not in sys.modules:
        t0 = time.perf_counter()
        try:
            import lime.lime_tabular  # noqa: F401
        except ImportError as exc:
            raise ExplainError(
                f"explain.method: LIME needs the lime package: pip install 'harness[lime]' ({exc})"
            ) from None
        _ONE_OFF[0] += time.perf_counter() - t0
    return sys.modules["lime.lime_tabular"]


def explain_lime(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int,
    num_samples: int = NUM_SAMPLES,
) -> LimeExplanation:
    """LIME weights of a fitted fold model on a prefix of `X_explain` (at most `max_rows`; fewer when
    `budget_s` runs out: the first row always runs). Raises ExplainError (only that), one line.
    """
    clock = _Clock()
    return guarded(
        lambda: _explain(model, X_train, X_explain, task, budget_s, seed, max_rows, num_samples, clock), "LIME: "
    )


@dataclass
class _Space:
    """Raw rows as the floats LIME samples, and back: categories as codes (missing = one more code)."""

    codec: _FrameCodec
    categorical: list[int]  # positions of categorical columns
    medians: np.ndarray  # per column, for numeric gaps

    @classmethod
    def fit(cls, X_train: pd.DataFrame, X_rows: pd.DataFrame) -> _Space:
        codec = _FrameCodec.fit(X_train, X_rows)
        categorical = [j for j, cats in enumerate(codec.categories) if cats is not None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column has no median: it becomes 0
            medians = np.nan_to_num(np.nanmedian(codec.encode(X_train), axis=0))
        return cls(codec, categorical, medians)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        A = self.codec.encode(X)
        for j in range(A.shape[1]):
            gap = np.isnan(A[:, j])
            if gap.any():
                cats = self.codec.categories[j]
                A[gap, j] = len(cats) if cats is not None else self.medians[j]
        return A

    def decode(self, A: np.ndarray) -> pd.DataFrame:
        A = np.array(A, dtype=np.float64)
        for j in self.categorical:
            A[A[:, j] >= len(self.codec.categories[j]), j] = np.nan  # the "missing" code
        return self.codec.decode(A)

    def category_names(self) -> dict[int, list[str]]:
        return {j: [*map(str, self.codec.categories[j]), "missing"] for j in self.categorical}


def _predictor(model: Any, task: str, space: _Space) -> tuple[Any, str, str, list[str]]:
    """LIME's predict function on float rows, its mode, the output space and the labels of the outputs."""
    if task == REGRESSION:
        return (
            (lambda A: np.asarray(model.predict(space.decode(A)), dtype=np.float64)),
            "regression",
            "raw",
            ["prediction"],
        )
    classes = [str(c) for c in np.asarray(getattr(model, "classes_", [])).tolist()]
    if hasattr(model, "predict_proba"):
        return (lambda A: np.asarray(model.predict_proba(space.decode(A)))), "classification", "probability", classes
    if hasattr(model, "decision_function") and len(classes) == 2:
        return (
            (lambda A: np.asarray(model.decision_function(space.decode(A)), dtype=np.float64)),
            "regression",
            "raw",
            (classes[-1:]),
        )
    raise ExplainError("LIME needs predict_proba (or a binary decision_function)")


def _explain(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int,
    num_samples: int,
    clock: _Clock,
) -> LimeExplanation:
    X_train, X_rows = raw_frames(X_train, X_explain, task, max_rows)
    lime_tabular = import_lime()
    raw = list(X_train.columns)
    rng = np.random.default_rng(seed)
    stats = X_train.iloc[np.sort(rng.permutation(len(X_train))[:STATS_ROWS])]
    space = _Space.fit(stats, X_rows)
    predict, mode, output_space, names = _predictor(model, task, space)
    explainer = lime_tabular.LimeTabularExplainer(
        space.encode(stats),
        mode=mode,
        feature_names=raw,
        categorical_features=space.categorical,
        categorical_names=space.category_names(),
        feature_selection="none",  # every column gets a weight: rankings compare over all columns
        discretize_continuous=True,
        random_state=seed,
    )
    labels = (
        list(range(len(names)))
        if mode == "classification" and len(names) > 2
        else [1 if mode == "classification" else 0]
    )
    if mode == "classification" and len(names) == 2:
        names = names[-1:]
    rows = space.encode(X_rows)
    values, scores, per_row = [], [], 0.0
    for i in range(len(rows)):
        t0 = time.perf_counter()
        exp = explainer.explain_instance(
            rows[i], predict, labels=labels, num_features=len(raw), num_samples=num_samples
        )
        weights = np.zeros((len(raw), len(labels)))
        local = exp.local_exp if mode == "classification" else {labels[0]: exp.local_exp[next(iter(exp.local_exp))]}
        for k, label in enumerate(labels):
            for j, w in local[label]:
                weights[j, k] = w
        values.append(weights)
        scores.append(float(exp.score) if np.ndim(exp.score) == 0 else float(np.mean(exp.score)))
        per_row = max(per_row, time.perf_counter() - t0) if i == 0 else (per_row + time.perf_counter() - t0) / 2
        if (budget_s - clock.used()) * _SAFETY < per_row:
            break
    n = len(values)
    one_off = clock.one_off()
    return LimeExplanation(
        values=np.asarray(values, dtype=np.float32),
        row_index=_positions(X_rows.index[:n]),
        features=raw,
        output_names=names,
        output_space=output_space,
        seconds=time.perf_counter() - clock.start,
        budget_s=float(budget_s),
        num_samples=int(num_samples),
        score=float(np.mean(scores)),
        one_off_s=one_off,
        note=f"seconds include {one_off:.1f} s of one-off lime import" if one_off > 0.1 else "",
    )


def _positions(index: pd.Index) -> np.ndarray:
    try:
        return np.asarray(index, dtype=np.int64)
    except (TypeError, ValueError):
        return np.arange(len(index), dtype=np.int64)
