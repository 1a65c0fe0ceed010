"""Learning curves and validation curves: extra fits inside one fold, never touching its test rows.

Why here, as a pure per-fold unit: each curve point is one more fit on (part of) the fold's
training rows, scored on the fold's test rows exactly as the fold itself is scored
(`model_responses` + `score_fold`), so a curve point and a leaderboard score mean the same
thing. `fit.py` calls `fold_curves` once the fold's own model is fitted and stores what it
returns in the fold's `extra`; a point that fails becomes a point with an error, never a
failed fold.

- Learning curve: the training part is subsampled by one seeded, stratified permutation
  whose prefixes are the subsets (so each smaller subset is inside the larger one, and
  every estimator of the fold gets the same rows: the seed names no estimator). Fraction
  1.0 is the fold's own fit, copied, not refitted.
- Validation curve: one fit per value of one parameter on the whole training part, scored
  on the training rows and the test rows (as scikit-learn's `validation_curve`).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from harness.engine.limits import limit_threads
from harness.engine.tasks import FoldTask, derive_seed
from harness.errors import EstimatorError
from harness.metrics import CLASSIFICATION, METRICS, model_responses, score_fold
from harness.preprocess import Columns
from harness.registry import Resolved, build
from harness.spec import did_you_mean


def nested_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of range(len(y)) whose every prefix is a stratified sample of y's classes.

    Each class is shuffled on its own; its k-th row (of n_c) gets the key (k + u) / n_c with u
    uniform in [0, 1), so sorting by key interleaves the classes in proportion and any prefix
    holds each class's share of rows to within one. The first row of every class comes first,
    so any prefix of at least as many rows as classes sees every class (a classifier fitted on
    it knows every label).
    """
    rng = np.random.default_rng(seed)
    keys = np.empty(len(y))
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        keys[rows] = (np.arange(len(rows)) + rng.random(len(rows))) / len(rows)
        keys[rows[0]] = -1.0 + rng.random()  # every class opens the order
    return np.argsort(keys, kind="stable")


def subset_sizes(n_train: int, fractions: tuple[float, ...], n_classes: int = 0) -> list[int]:
    """Rows fitted at each fraction: round(f · n), at least one row per class (and one row)."""
    return [n_train if f >= 1.0 else min(n_train, max(1, n_classes, round(f * n_train))) for f in fractions]


def learning_subsets(task: FoldTask) -> list[tuple[float, np.ndarray]]:
    """(fraction, training rows) per fraction below 1.0, each subset inside the next (positions into the dataset).

    The order depends only on (suite seed, dataset, repeat, fold): every estimator gets the same rows.
    """
    ds, split = task.dataset, task.split
    seed = derive_seed(task.seed, "learning curve", ds.name, None, split.repeat, split.fold)
    train = np.asarray(split.train)
    if ds.task == CLASSIFICATION:
        order = nested_order(np.asarray(ds.y)[train], seed)
        n_classes = len(np.unique(np.asarray(ds.y)[train]))
    else:
        order, n_classes = np.random.default_rng(seed).permutation(len(train)), 0
    fractions = tuple(f for f in task.learning_curve or () if f < 1.0)
    sizes = subset_sizes(len(train), fractions, n_classes)
    return [(f, np.sort(train[order[:size]])) for f, size in zip(fractions, sizes, strict=True)]


def fold_curves(
    task: FoldTask,
    resolved: Resolved,
    model: Any,
    metrics: dict[str, float | None],
    fit_time: float,
) -> dict[str, Any]:
    """The fold's curves for its `extra`: {"learning_curve": [...], "validation_curve": {...}} (only those asked for).

    `resolved` is the estimator the fold fitted (tuned parameters included), `model` that fit,
    `metrics` and `fit_time` its own result: fraction 1.0 of the learning curve.
    """
    out: dict[str, Any] = {}
    if task.learning_curve:
        full = {"fraction": 1.0, "n_train": len(task.split.train), "metrics": dict(metrics), "fit_time": fit_time}
        points = [_point(task, resolved, rows, {"fraction": f}) for f, rows in learning_subsets(task)]
        out["learning_curve"] = [*points, full]
    if task.validation_curve:
        out["validation_curve"] = _validation_curve(task, resolved, model, fit_time)
    return out


def _point(task: FoldTask, resolved: Resolved, rows: np.ndarray, label: dict[str, Any]) -> dict[str, Any]:
    """One learning-curve point: a fresh model fitted on `rows`, scored on the whole test fold."""
    point = {**label, "n_train": len(rows)}
    try:
        model, fit_time = _fit(task, resolved, rows)
        point["metrics"] = _scores(task, model, task.split.test)
        point["fit_time"] = fit_time
    except Exception as exc:  # a subset too small for the model is a point with a reason, not a failed fold
        point["error"] = _one_line(exc)
    return point


def _validation_curve(task: FoldTask, resolved: Resolved, model: Any, own_fit_time: float) -> dict[str, Any]:
    """Train and test scores for each value of the curve's parameter, fitted on the whole training part.

    A value equal to the fold's own (same type and value) reuses the fold's fit instead of repeating it.
    """
    param, values = task.validation_curve["param"], task.validation_curve["values"]
    own = _own_value(model, param)
    points = []
    for value in values:
        point: dict[str, Any] = {"value": value}
        try:
            if own is not _MISSING and type(own) is type(value) and own == value:
                fitted, fit_time = model, own_fit_time  # the fold's own fit already is this point
                point["reused"] = True
            else:
                fitted, fit_time = _fit(task, resolved.with_params({param: value}), task.split.train)
            point["train"] = _scores(task, fitted, task.split.train)
            point["test"] = _scores(task, fitted, task.split.test)
            point["fit_time"] = fit_time
        except Exception as exc:
            point["error"] = _one_line(exc)
        points.append(point)
    return {"param": param, "points": points}


_MISSING = object()


def _own_value(model: Any, param: str) -> Any:
    """The parameter's value in the fold's own fitted model (its final step), or _MISSING."""
    final = model[-1] if hasattr(model, "steps") else model
    try:
        return final.get_params(deep=False).get(param, _MISSING)
    except Exception:
        return _MISSING


def _fit(task: FoldTask, resolved: Resolved, rows: np.ndarray) -> tuple[Any, float]:
    ds = task.dataset
    with threadpool_limits(limits=task.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fold's own fit already recorded the model's warnings
        model = build(resolved, Columns(ds.numeric, ds.categorical, ds.has_missing))
        limit_threads(model, task.threads)
        start = time.perf_counter()
        model.fit(ds.X.iloc[rows], ds.y[rows])
        return model, time.perf_counter() - start


def _scores(task: FoldTask, model: Any, rows: np.ndarray) -> dict[str, float | None]:
    """The fold's metrics of `model` on `rows`, exactly as the fold is scored."""
    ds = task.dataset
    needed = {METRICS[m].response for m in task.metrics}
    n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0
    with threadpool_limits(limits=task.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        responses = model_responses(model, ds.X.iloc[rows], needed, n_classes)
    return score_fold(list(task.metrics), ds.y[rows], responses, ds.classes)[0]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------- checks before anything is fitted


def check_validation_curve(resolved: Resolved, param: str, values: list[Any]) -> list[str]:
    """Problems with `curve:` for this estimator ("curve.param: ...", "curve.values[2]: ..."), found by building.

    The name must be a parameter of the estimator itself (its final step; `get_params`), and each
    value must pass the same checks as `params:` (scikit-learn's parameter constraints, finite numbers).
    """
    columns = Columns(["x"], ["c"], True)
    model = build(resolved, columns)
    final = model[-1] if hasattr(model, "steps") else model
    names = sorted(final.get_params(deep=False))
    if param not in names:
        cls = type(final).__name__
        variant = f" (the {resolved.task} model of '{resolved.spec.model}')" if "." not in resolved.spec.model else ""
        return [f"curve.param: {cls}{variant} has no parameter '{param}'{did_you_mean(param, names)}"]
    problems = []
    for j, value in enumerate(values):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"curve.values[{j}]: {value} is not a finite number")
            continue
        try:
            build(resolved.with_params({param: value}), columns)
        except EstimatorError as exc:
            message = str(exc).removeprefix(f"params.{param}: ").removeprefix("params: ")
            problems.append(f"curve.values[{j}]: {message}")
    return problems
