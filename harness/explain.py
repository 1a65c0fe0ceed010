"""SHAP explanations of a fold's fitted model, as plain numpy the store can keep and the report can plot.

Why this module looks the way it does:

- **One explainer per model family, chosen from the final estimator.** Boosting libraries compute exact
  TreeSHAP themselves (XGBoost `pred_contribs`, LightGBM `pred_contrib`), scikit-learn trees go through
  `shap.TreeExplainer`, linear models through `shap.LinearExplainer`, and everything else (SVMs, kNN,
  ensembles, the torch MLP) through `shap.PermutationExplainer` on the model's probability, decision or
  prediction function. A fast explainer whose sums do not reproduce the model's output (e.g. shap reading an
  HistGradientBoosting tree with categorical splits) is not trusted: we fall back to permutation.
- **Explain what the model sees, report what the user knows.** The explainer works on the preprocessed
  features (one-hot children, ordinal codes, scaled numerics); the values of the children of one original
  column are then summed. The child -> column map comes from the fitted ColumnTransformer (its transformers'
  input columns and fitted one-hot categories), never from parsing feature names, which may collide.
- **Same rows for every model.** `explain_rows` permutes a fold's test rows once; every model explains a
  prefix of that order, so models that could afford fewer rows still share rows with the others.
- **A time budget, not a row count.** A first small batch is timed, the rest is extrapolated, and rows stop
  being added when the budget would be exceeded. Permutation rows are seeded one by one, so a row's values do
  not depend on how many rows the budget allowed. The budget clock covers everything a fold pays for
  (preprocessing the rows, building the explainer, the additivity check); what a process pays once (importing
  shap, compiling its numba kernels) is kept off it, so the first fold of a process is not starved, and is
  recorded apart (`one_off_s`) so that reports can show both.
- **Plain data out.** `Explanation` holds numpy arrays and JSON-ready fields (`to_arrays`/`from_arrays`), so the
  store never pickles a model-dependent object.

Every failure leaves `explain_fold` as one exception type, `ExplainError`, whose message the engine records.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from harness.report.format import jsonable_lax

CLASSIFICATION = "classification"
REGRESSION = "regression"
OUTPUT_SPACES = ("raw", "log-odds", "probability")

DEFAULT_MAX_ROWS = 500  # rows a fold explains at most (the budget usually decides)
DEFAULT_BACKGROUND = 50  # training rows that stand in for "feature absent" in the permutation explainer
MIN_BACKGROUND = 5  # fewest background rows a slow model's budget may cut the background to
LINEAR_BACKGROUND = 1000  # training rows whose mean is the linear explainer's reference point
MAX_PERMUTATIONS = 10  # antithetic permutations per row when the budget allows (shap's "auto")
MIN_ROWS = 5  # the first timed batch of a cheap explainer; a handful of rows whenever possible
_SAFETY = 0.9  # extrapolations aim at this share of the remaining budget
_ADDITIVITY_TOL = 1e-3  # relative gap above which a fast explainer's values are rejected

_TREE_CLASSES = {
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
}
_LINEAR_SVM_CLASSES = {"LinearSVC", "LinearSVR"}


class ExplainError(Exception):
    """The model could not be explained; the message says why (one line, for the results store)."""


# ---------------------------------------------------------------- the result


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


# ---------------------------------------------------------------- which rows


def explain_rows(test_index: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of a fold's test rows; every model of the fold explains a prefix of it.

    Pass the same `seed` for every model of a fold (e.g. derived from the suite seed, repeat and fold):
    the order then depends on nothing model-specific, so a model that could afford fewer rows explains a
    subset of the rows every other model explained.
    """
    test_index = np.asarray(test_index)
    return test_index[np.random.default_rng(seed).permutation(len(test_index))]


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
    prep = [s for _, s in steps[:-1] if s != "passthrough" and s is not None]
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


# ---------------------------------------------------------------- explainers
#
# Each explainer is a `_Plan`: compute(X_model_rows) -> (values (n, m, k), base (k,)), the model's output
# in the same space for the additivity check, and labels. `first` is the size of the first timed batch.


@dataclass
class _Plan:
    name: str
    compute: Callable[[pd.DataFrame, int], tuple[np.ndarray, np.ndarray]]  # (rows, position of first row)
    reference: Callable[[pd.DataFrame], np.ndarray]  # model output, (n, k)
    output_space: str
    first: int = MIN_ROWS
    max_evals: int | None = None
    n_background: int | None = None
    # permutation: choose max_evals; returns the expected seconds per row at that setting
    calibrate: Callable[[pd.DataFrame, float], float] | None = None


def _cols(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def _binary_positive(values: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two outputs that are a binary classifier's class probabilities: keep the positive class."""
    if values.shape[2] == 2:
        return values[:, :, 1:], base[1:]
    return values, base


def _xgboost_plan(est: Any, task: str) -> _Plan:
    import xgboost as xgb

    booster = est.get_booster()
    try:
        best = est.best_iteration  # the sklearn wrapper predicts with the best iteration when there is one
        iteration_range = (0, int(best) + 1)
    except AttributeError:
        iteration_range = (0, 0)

    def compute(Xm: pd.DataFrame, _pos: int) -> tuple[np.ndarray, np.ndarray]:
        dm = xgb.DMatrix(Xm, enable_categorical=True)
        c = np.asarray(booster.predict(dm, pred_contribs=True, iteration_range=iteration_range), dtype=np.float64)
        c = c[:, None, :] if c.ndim == 2 else c  # binary/regression (n, m+1); multiclass (n, k, m+1)
        return c[:, :, :-1].transpose(0, 2, 1), c[0, :, -1]

    def reference(Xm: pd.DataFrame) -> np.ndarray:
        return _cols(est.predict(Xm, output_margin=True))

    space = "log-odds" if task == CLASSIFICATION else "raw"
    # Contributions of a few hundred trees cost about 0.5 ms a row: a first batch of 64 alone would overrun a
    # fast model's floor budget; batches grow fourfold from there.
    return _Plan("xgboost", compute, reference, space, first=16)


def _lightgbm_plan(est: Any, task: str) -> _Plan:
    def compute(Xm: pd.DataFrame, _pos: int) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(est.predict(Xm, pred_contrib=True), dtype=np.float64)
        k = getattr(est, "n_classes_", 1) if task == CLASSIFICATION else 1
        k = 1 if k <= 2 else k
        c = c.reshape(len(Xm), k, -1)  # multiclass: k blocks of (m contributions, bias) side by side
        return c[:, :, :-1].transpose(0, 2, 1), c[0, :, -1]

    def reference(Xm: pd.DataFrame) -> np.ndarray:
        return _cols(est.predict(Xm, raw_score=True))

    space = "log-odds" if task == CLASSIFICATION else "raw"
    # Contributions of a few hundred trees cost about 0.5 ms a row: a first batch of 64 alone would overrun a
    # fast model's floor budget; batches grow fourfold from there.
    return _Plan("lightgbm", compute, reference, space, first=16)


def _tree_plan(est: Any, task: str, codec: _FrameCodec) -> _Plan:
    shap = import_shap()

    name = type(est).__name__
    if getattr(est, "is_categorical_", None) is not None and np.any(est.is_categorical_):
        raise ExplainError("shap's TreeExplainer ignores HistGradientBoosting categorical splits")
    explainer = shap.TreeExplainer(est, model_output="raw")
    margin = task == CLASSIFICATION and "Gradient" in name  # boosting: log-odds; forests: probabilities

    def compute(Xm: pd.DataFrame, _pos: int) -> tuple[np.ndarray, np.ndarray]:
        sv = np.asarray(explainer.shap_values(codec.encode(Xm), check_additivity=False), dtype=np.float64)
        values = sv if sv.ndim == 3 else sv[:, :, None]
        base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64)).ravel()
        return _binary_positive(values, base)

    def reference(Xm: pd.DataFrame) -> np.ndarray:
        if task == REGRESSION:
            return _cols(est.predict(Xm))
        if margin:
            return _cols(est.decision_function(Xm))
        proba = np.asarray(est.predict_proba(Xm))
        return _cols(proba[:, 1] if proba.shape[1] == 2 else proba)

    space = "raw" if task == REGRESSION else ("log-odds" if margin else "probability")
    # TreeSHAP costs O(trees x leaves x depth^2) per row: a big forest needs a small first probe.
    return _Plan("tree", compute, reference, space, first=2)


def _linear_plan(est: Any, task: str, codec: _FrameCodec, background: np.ndarray) -> _Plan:
    shap = import_shap()

    explainer = shap.LinearExplainer(est, background)
    has_decision = task == CLASSIFICATION

    def compute(Xm: pd.DataFrame, _pos: int) -> tuple[np.ndarray, np.ndarray]:
        sv = np.asarray(explainer.shap_values(codec.encode(Xm)), dtype=np.float64)
        values = sv if sv.ndim == 3 else sv[:, :, None]
        base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64)).ravel()
        return values, base

    def reference(Xm: pd.DataFrame) -> np.ndarray:
        return _cols(est.decision_function(Xm) if has_decision else est.predict(Xm))

    logistic = has_decision and hasattr(est, "predict_proba")
    space = "log-odds" if logistic else "raw"
    return _Plan("linear", compute, reference, space, first=64, n_background=len(background))


def _response(est: Any, task: str) -> tuple[Callable[[pd.DataFrame], np.ndarray], str]:
    """The function the permutation explainer explains: probabilities, else decision scores, else predictions."""
    if task == REGRESSION:
        return (lambda X: _cols(est.predict(X))), "raw"
    if hasattr(est, "predict_proba"):

        def proba(X: pd.DataFrame) -> np.ndarray:
            p = np.asarray(est.predict_proba(X), dtype=np.float64)
            return p[:, 1:] if p.shape[1] == 2 else p

        return proba, "probability"
    if hasattr(est, "decision_function"):
        return (lambda X: _cols(est.decision_function(X))), "raw"
    raise ExplainError(f"{type(est).__name__} has neither predict_proba nor decision_function")


def _permutation_plan(est: Any, task: str, codec: _FrameCodec, background: np.ndarray, seed: int) -> _Plan:
    shap = import_shap()
    respond, space = _response(est, task)
    warm_up()

    def f(A: np.ndarray) -> np.ndarray:
        return respond(codec.decode(A))

    per_perm = 2 * len(codec.columns) + 1  # model evaluations of one antithetic permutation
    done: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (row position, max_evals) -> result
    state: dict[str, Any] = {}

    def build(bg: np.ndarray) -> None:
        masker = shap.maskers.Independent(bg, max_samples=len(bg))
        with _global_numpy_seed(seed):  # shap seeds numpy's global RNG in its constructor
            state["explainer"] = shap.PermutationExplainer(f, masker, seed=seed)
        plan.n_background = len(bg)

    def explain_row(a: np.ndarray, pos: int) -> tuple[np.ndarray, np.ndarray]:
        key = (pos, plan.max_evals)
        if key not in done:
            # one seed per row position: a row's values do not depend on the batch it was computed in
            with _global_numpy_seed(seed * 1_000_003 + pos):
                out = state["explainer"](a[None, :], max_evals=plan.max_evals, silent=True)
            values = np.asarray(out.values, dtype=np.float64).reshape(1, len(a), -1)
            done[key] = values, np.asarray(out.base_values, dtype=np.float64).ravel()
        return done[key]

    def compute(Xm: pd.DataFrame, pos: int) -> tuple[np.ndarray, np.ndarray]:
        results = [explain_row(a, pos + i) for i, a in enumerate(codec.encode(Xm))]
        return np.concatenate([v for v, _ in results]), results[0][1]

    def calibrate(Xm: pd.DataFrame, seconds_left: float) -> float:
        """Time one row at one permutation, then give every row as many permutations as the budget allows.

        Returns the expected seconds per row: the timed row is cached, so re-timing it would say ~0.
        """
        # A row costs about per_perm evaluations of the whole background: time a few of them in one call,
        # so a model too slow for the budget (an SVC with many support vectors) gets a smaller
        # background before the first row is paid for.
        tiles = min(per_perm, 8)
        t0 = time.perf_counter()
        f(np.tile(background, (tiles, 1)))
        row_estimate = per_perm / tiles * (time.perf_counter() - t0)
        n_bg = len(background)
        if row_estimate > seconds_left * _SAFETY:
            n_bg = max(MIN_BACKGROUND, int(n_bg * seconds_left * _SAFETY / row_estimate))
        build(background[:n_bg])
        t0 = time.perf_counter()
        compute(Xm.iloc[:1], 0)
        per_row = time.perf_counter() - t0
        permutations = min(MAX_PERMUTATIONS, max(1, int(seconds_left * _SAFETY / max(per_row * len(Xm), 1e-9))))
        plan.max_evals = per_perm * permutations
        return per_row * permutations

    plan = _Plan(
        "permutation",
        compute,
        respond,
        space,
        first=1,
        max_evals=per_perm,
        n_background=len(background),
        calibrate=calibrate,
    )
    return plan


# ---------------------------------------------------------------- what a process pays once

_WARM = False
_ONE_OFF = [0.0]  # seconds this process has spent on one-off work (imports, JIT) inside explanations


def one_off_seconds() -> float:
    """Seconds this process has spent so far importing shap and compiling its kernels (never decreases).

    A fold reads it before and after its explanation: the difference is kept off the fold's budget clock.
    """
    return _ONE_OFF[0]


def import_shap() -> Any:
    """shap, imported once per process; the import (about 0.5 s, matplotlib and numba) counts as one-off."""
    if "shap" not in sys.modules:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap's import warns about matplotlib deprecations
            import shap  # noqa: F401
        _ONE_OFF[0] += time.perf_counter() - t0
    return sys.modules["shap"]


def warm_up() -> float:
    """Compile shap's numba kernels once per process; returns the seconds it took (0 when already done).

    The first permutation explanation in a process spends seconds (about 4 here) in numba's JIT compiler, a cost
    that belongs to the process rather than to the model: it is kept off the budget clock and reported as the
    explanation's `one_off_s`. Only the permutation explainer needs it (tree, linear and the boosting
    libraries' own contributions do not), so it is paid only where such a model is explained.
    """
    global _WARM
    if _WARM:
        return 0.0
    shap = import_shap()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = np.linspace(0.0, 1.0, 6).reshape(2, 3)
        explainer = shap.PermutationExplainer(lambda A: A[:, :2], shap.maskers.Independent(bg, max_samples=2))
        with _global_numpy_seed(0):
            explainer(bg[:1] + 1.0, max_evals=7, silent=True)
    _WARM = True
    seconds = time.perf_counter() - t0
    _ONE_OFF[0] += seconds
    return seconds


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (shap's permutations draw from it) and restore the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _choose_plan(
    est: Any, task: str, codec: _FrameCodec, Xm_train: pd.DataFrame, seed: int, n_bg: int
) -> tuple[_Plan, str]:
    """The fastest exact explainer this estimator supports, else the permutation explainer (with why)."""
    module, name = type(est).__module__, type(est).__name__
    rng = np.random.default_rng(seed)
    note = ""
    try:
        if module.startswith("xgboost") and hasattr(est, "get_booster"):
            return _xgboost_plan(est, task), ""
        if module.startswith("lightgbm") and hasattr(est, "booster_"):
            return _lightgbm_plan(est, task), ""
        if name in _TREE_CLASSES and module.startswith("sklearn"):
            return _tree_plan(est, task, codec), ""
        if _is_linear(est, module, name):
            bg = _sample(Xm_train, LINEAR_BACKGROUND, rng)
            return _linear_plan(est, task, codec, codec.encode(bg)), ""
    except ExplainError as exc:
        note = f"{exc}; permutation instead"
    except Exception as exc:  # shap rejects the model (e.g. multiclass GradientBoostingClassifier)
        note = f"{type(exc).__name__}: {_first_line(exc)}; permutation instead"
    bg = codec.encode(_sample(Xm_train, n_bg, np.random.default_rng(seed)))
    return _permutation_plan(est, task, codec, bg, seed), note


def _is_linear(est: Any, module: str, name: str) -> bool:
    linear = module.startswith("sklearn.linear_model") or name in _LINEAR_SVM_CLASSES
    return linear and hasattr(est, "coef_") and hasattr(est, "intercept_")


def _sample(X: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(X) <= n:
        return X
    return X.iloc[np.sort(rng.choice(len(X), size=n, replace=False))]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


# ---------------------------------------------------------------- budgeted run


@dataclass
class _Clock:
    """An explanation's budget time: wall time since it started, less the one-off work the process did since."""

    start: float = field(default_factory=time.perf_counter)
    one_off_at_start: float = field(default_factory=one_off_seconds)

    def used(self) -> float:
        return time.perf_counter() - self.start - self.one_off()

    def one_off(self) -> float:
        return one_off_seconds() - self.one_off_at_start


def _run_budgeted(plan: _Plan, Xm: pd.DataFrame, budget_s: float, clock: _Clock) -> tuple[np.ndarray, np.ndarray]:
    """Explain rows of `Xm` in order, batch by batch, while the extrapolated time fits the budget.

    The first batch always runs (it is what the extrapolation is based on), so a model whose first batch
    alone exceeds the budget still reports a few rows, and the overshoot is that one batch.
    """
    n_max = len(Xm)
    expected = 0.0  # seconds per row known beforehand (the calibration row is cached, so its re-run is free)
    if plan.calibrate is not None:
        expected = plan.calibrate(Xm, budget_s - clock.used())
    parts, base, done, size = [], None, 0, min(plan.first, n_max)
    while size > 0:
        t0 = time.perf_counter()
        values, b = plan.compute(Xm.iloc[done : done + size], done)
        per_row = max((time.perf_counter() - t0) / size, expected)
        parts.append(values)
        base = b if base is None else base
        done += size
        left = budget_s - clock.used()
        affordable = int(left * _SAFETY / max(per_row, 1e-9))
        size = max(0, min(n_max - done, affordable, max(4 * size, 16)))
    return np.concatenate(parts), np.asarray(base)


# ---------------------------------------------------------------- entry point


def explain_fold(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int = DEFAULT_MAX_ROWS,
    n_background: int = DEFAULT_BACKGROUND,
) -> Explanation:
    """SHAP values of a fitted fold model on a prefix of `X_explain`, summed back to the original columns.

    `model` is the fitted fold model (a Pipeline with a "prep" ColumnTransformer, or the bare estimator);
    `X_explain` should be the fold's test rows in `explain_rows` order, so every model of the fold explains a
    prefix of the same rows. At most `max_rows` rows; fewer when `budget_s` (seconds) runs out. Raises
    ExplainError (only that) when the model cannot be explained; its message is one line for the store.
    """
    clock = _Clock()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap and sklearn warnings would flood the engine's fold notes
            return _explain(model, X_train, X_explain, task, budget_s, seed, max_rows, n_background, clock)
    except ExplainError:
        raise
    except Exception as exc:
        raise ExplainError(f"{type(exc).__name__}: {_first_line(exc)}") from exc


def _explain(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int,
    n_background: int,
    clock: _Clock,
) -> Explanation:
    if task not in (CLASSIFICATION, REGRESSION):
        raise ExplainError(f"unknown task {task!r}")
    raw_columns = [str(c) for c in X_train.columns]
    X_train = X_train.set_axis(raw_columns, axis=1)
    X_rows = X_explain.set_axis(raw_columns, axis=1).iloc[:max_rows]
    if len(X_rows) == 0:
        raise ExplainError("no rows to explain")
    parts = _split_model(model, raw_columns)
    rng = np.random.default_rng(seed)
    # Only the training rows a background can use are transformed: the budget is for SHAP, not preprocessing.
    Xm_train = parts.transform(_sample(X_train, max(LINEAR_BACKGROUND, n_background), rng))
    Xm_rows = parts.transform(X_rows)
    if len(parts.owner) != Xm_rows.shape[1]:
        raise ExplainError(f"{len(parts.owner)} mapped model inputs but the preprocessing gives {Xm_rows.shape[1]}")
    codec = _FrameCodec.fit(Xm_train, Xm_rows)
    plan, note = _choose_plan(parts.estimator, task, codec, Xm_train, seed, n_background)
    values, base = _run_budgeted(plan, Xm_rows, budget_s, clock)
    n = len(values)
    gap = _additivity_gap(values, base, plan.reference(Xm_rows.iloc[:n]))
    if plan.name != "permutation" and gap > _ADDITIVITY_TOL * (1 + np.abs(base).max()):
        # a fast explainer that does not add up to the model's output is wrong for this model: start over
        note = f"{plan.name} explainer off by {gap:.3g}; permutation instead"
        bg = codec.encode(_sample(Xm_train, n_background, np.random.default_rng(seed)))
        plan = _permutation_plan(parts.estimator, task, codec, bg, seed)
        values, base = _run_budgeted(plan, Xm_rows, budget_s, clock)
        n = len(values)
        gap = _additivity_gap(values, base, plan.reference(Xm_rows.iloc[:n]))
    grouped = _group(values, parts.owner, len(raw_columns))
    one_off = clock.one_off()
    warm = f"seconds include {one_off:.1f} s of one-off shap import / numba compilation" if one_off > 0.1 else ""
    raw_codec = _FrameCodec.fit(X_train, X_rows)
    return Explanation(
        values=grouped.astype(np.float32),
        base_values=base.astype(np.float64),
        features=raw_columns,
        data=raw_codec.encode(X_rows.iloc[:n]),
        row_index=_row_index(X_rows.index[:n]),
        explainer=plan.name,
        output_space=plan.output_space,
        output_names=_output_names(model, task, values.shape[2]),
        model=type(parts.estimator).__name__,
        seconds=time.perf_counter() - clock.start,
        budget_s=float(budget_s),
        n_model_features=int(values.shape[1]),
        additivity_gap=gap,
        categories=raw_codec.category_names(),
        max_evals=plan.max_evals,
        n_background=plan.n_background,
        note="; ".join(filter(None, [parts.note, note, warm])),
        one_off_s=one_off,
    )


def _additivity_gap(values: np.ndarray, base: np.ndarray, reference: np.ndarray) -> float:
    total = values.sum(axis=1) + base[None, :]
    if total.shape != reference.shape:
        raise ExplainError(f"explainer outputs {total.shape[1]} columns but the model {reference.shape[1]}")
    return float(np.nanmax(np.abs(total - reference))) if total.size else 0.0


def _group(values: np.ndarray, owner: np.ndarray, n_features: int) -> np.ndarray:
    """Sum model inputs (e.g. one-hot children) into their original column: (n, m, k) -> (n, f, k)."""
    membership = np.zeros((len(owner), n_features))
    membership[np.arange(len(owner)), owner] = 1.0
    return np.einsum("nmk,mf->nfk", values, membership)


def _row_index(index: pd.Index) -> np.ndarray:
    try:
        return np.asarray(index, dtype=np.int64)
    except (TypeError, ValueError):
        return np.arange(len(index), dtype=np.int64)  # non-integer labels: positions in X_explain


def _output_names(model: Any, task: str, n_outputs: int) -> list[str]:
    if task == REGRESSION:
        return ["prediction"] if n_outputs == 1 else [f"output_{k}" for k in range(n_outputs)]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return [f"output_{k}" for k in range(n_outputs)]
    classes = [str(c) for c in np.asarray(classes).tolist()]
    return classes[-1:] if n_outputs == 1 and len(classes) == 2 else classes[:n_outputs]


# ---------------------------------------------------------------- aggregation for the report


def mean_abs_importance(explanations: list[Explanation], labels: list[str] | None = None) -> pd.DataFrame:
    """Global importance per original feature: mean |SHAP| over rows and outputs, per fold, then across folds.

    One column per explanation (`labels`, default fold_0, fold_1, ...), then "mean" and "std" (sample
    standard deviation, ddof=1, across folds; NaN with one fold). Features missing from a fold are NaN there.
    Rows are sorted by decreasing mean.
    """
    labels = labels or [f"fold_{i}" for i in range(len(explanations))]
    if len(labels) != len(explanations):
        raise ValueError("one label per explanation")
    per_fold = {
        label: pd.Series(np.abs(e.values).mean(axis=(0, 2), dtype=np.float64), index=e.features)
        for label, e in zip(labels, explanations, strict=True)
    }
    table = pd.DataFrame(per_fold)
    folds = table[labels]
    table["mean"] = folds.mean(axis=1)
    table["std"] = folds.std(axis=1, ddof=1)
    return table.sort_values("mean", ascending=False, kind="stable")


def rank_agreement(importances: dict[str, pd.Series]) -> pd.DataFrame:
    """Pairwise Kendall tau (tau-b, scipy) between models' feature importances, on their common features.

    Importances rather than ranks are passed: tau depends on the order only. NaN where two models share
    fewer than two features or one is constant.
    """
    names = list(importances)
    out = pd.DataFrame(np.nan, index=names, columns=names, dtype=float)
    for i, a in enumerate(names):
        for b in names[i:]:
            common = importances[a].index.intersection(importances[b].index)
            x = importances[a].loc[common].to_numpy(dtype=float)
            y = importances[b].loc[common].to_numpy(dtype=float)
            ok = ~(np.isnan(x) | np.isnan(y))
            tau = math.nan
            if ok.sum() >= 2:
                tau = float(kendalltau(x[ok], y[ok]).statistic)
            out.loc[a, b] = out.loc[b, a] = tau
    return out
