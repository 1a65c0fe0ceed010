"""One explainer per model family, chosen from the final estimator: each is a `_Plan` the budgeted run executes.

Boosting libraries compute exact TreeSHAP themselves (XGBoost `pred_contribs`, LightGBM `pred_contrib`),
scikit-learn trees go through `shap.TreeExplainer`, linear models through `shap.LinearExplainer`, and
everything else (SVMs, kNN, ensembles, the torch MLP) through `shap.PermutationExplainer` on the model's
probability, decision or prediction function. Permutation rows are seeded one by one, so a row's values do
not depend on how many rows the budget allowed.

Each explainer is a `_Plan`: compute(X_model_rows) -> (values (n, m, k), base (k,)), the model's output
in the same space for the additivity check, and labels. `first` is the size of the first timed batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.explain.anatomy import _FrameCodec
from harness.explain.result import CLASSIFICATION, REGRESSION, ExplainError, _first_line
from harness.explain.runtime import _SAFETY, _global_numpy_seed, import_shap, warm_up

MIN_BACKGROUND = 5  # fewest background rows a slow model's budget may cut the background to
LINEAR_BACKGROUND = 1000  # training rows whose mean is the linear explainer's reference point
MAX_PERMUTATIONS = 10  # antithetic permutations per row when the budget allows (shap's "auto")
MIN_ROWS = 5  # the first timed batch of a cheap explainer; a handful of rows whenever possible

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
