"""Metrics: scikit-learn metric functions with their direction and the response they need.

Each fold's model is asked for each response (labels, probabilities, decision scores)
at most once, and every metric is computed from those arrays. The values equal what
scikit-learn's scorers of the same name give (`get_scorer`), but stored in natural
units: log loss and errors are positive and marked lower-is-better, never negated,
so rankings and tests downstream know which way is better.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# What a metric reads from the fitted model.
PREDICT = "predict"  # labels or values
PROBA = "proba"  # predict_proba, all columns
SCORE = "score"  # binary: decision_function, else predict_proba[:, 1]; multiclass: proba


@dataclass(frozen=True)
class Metric:
    """A metric in natural units with the direction that makes it better."""

    name: str
    task: str
    greater_is_better: bool
    response: str
    func: Callable[..., float]
    sklearn_scorer: str
    description: str

    def compute(self, y_true: np.ndarray, response: np.ndarray, classes: np.ndarray | None) -> float:
        """Score one fold; raises ValueError when the metric does not apply to it."""
        return float(self.func(y_true, response, classes))


def _roc_auc(y, score, classes):
    if score.ndim == 2:  # multiclass: one-vs-rest, macro averaged (sklearn's roc_auc_ovr)
        return skm.roc_auc_score(y, score, multi_class="ovr", labels=classes)
    return skm.roc_auc_score(y, score)


def _average_precision(y, score, classes):
    if score.ndim == 2:
        raise ValueError("average_precision applies to binary targets only")
    return skm.average_precision_score(y, score, pos_label=classes[1])


def _labels(fn: Callable[..., float], **kw: Any) -> Callable[..., float]:
    return lambda y, pred, classes: fn(y, pred, **kw)


_METRICS = [
    Metric(
        "accuracy", CLASSIFICATION, True, PREDICT, _labels(skm.accuracy_score), "accuracy", "fraction of correct labels"
    ),
    Metric(
        "balanced_accuracy",
        CLASSIFICATION,
        True,
        PREDICT,
        _labels(skm.balanced_accuracy_score),
        "balanced_accuracy",
        "mean recall over classes",
    ),
    Metric(
        "f1_macro",
        CLASSIFICATION,
        True,
        PREDICT,
        _labels(skm.f1_score, average="macro"),
        "f1_macro",
        "F1, unweighted mean over classes",
    ),
    Metric(
        "f1_weighted",
        CLASSIFICATION,
        True,
        PREDICT,
        _labels(skm.f1_score, average="weighted"),
        "f1_weighted",
        "F1, mean weighted by support",
    ),
    Metric(
        "precision_macro",
        CLASSIFICATION,
        True,
        PREDICT,
        _labels(skm.precision_score, average="macro", zero_division=0),
        "precision_macro",
        "precision, unweighted mean over classes",
    ),
    Metric(
        "recall_macro",
        CLASSIFICATION,
        True,
        PREDICT,
        _labels(skm.recall_score, average="macro"),
        "recall_macro",
        "recall, unweighted mean over classes",
    ),
    Metric(
        "roc_auc",
        CLASSIFICATION,
        True,
        SCORE,
        _roc_auc,
        "roc_auc / roc_auc_ovr",
        "ROC AUC (binary; one-vs-rest macro for multiclass)",
    ),
    Metric(
        "average_precision",
        CLASSIFICATION,
        True,
        SCORE,
        _average_precision,
        "average_precision",
        "area under precision-recall (binary)",
    ),
    Metric(
        "log_loss",
        CLASSIFICATION,
        False,
        PROBA,
        lambda y, p, c: skm.log_loss(y, p, labels=c),
        "neg_log_loss",
        "cross-entropy of predicted probabilities",
    ),
    Metric("r2", REGRESSION, True, PREDICT, _labels(skm.r2_score), "r2", "coefficient of determination"),
    Metric(
        "explained_variance",
        REGRESSION,
        True,
        PREDICT,
        _labels(skm.explained_variance_score),
        "explained_variance",
        "explained variance",
    ),
    Metric(
        "rmse",
        REGRESSION,
        False,
        PREDICT,
        _labels(skm.root_mean_squared_error),
        "neg_root_mean_squared_error",
        "root mean squared error",
    ),
    Metric(
        "mse",
        REGRESSION,
        False,
        PREDICT,
        _labels(skm.mean_squared_error),
        "neg_mean_squared_error",
        "mean squared error",
    ),
    Metric(
        "mae",
        REGRESSION,
        False,
        PREDICT,
        _labels(skm.mean_absolute_error),
        "neg_mean_absolute_error",
        "mean absolute error",
    ),
    Metric(
        "median_ae",
        REGRESSION,
        False,
        PREDICT,
        _labels(skm.median_absolute_error),
        "neg_median_absolute_error",
        "median absolute error",
    ),
    Metric(
        "mape",
        REGRESSION,
        False,
        PREDICT,
        _labels(skm.mean_absolute_percentage_error),
        "neg_mean_absolute_percentage_error",
        "mean absolute percentage error",
    ),
]

METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}

DEFAULT_METRICS = {
    CLASSIFICATION: ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"],
    REGRESSION: ["r2", "rmse", "mae"],
}


# Metrics on a fixed scale (at most 1; r2 and explained_variance are bounded above): one
# absolute width (a rope, a tolerance) means the same on every dataset. The others (log
# loss and errors in the target's units) need widths relative to the scores themselves.
BOUNDED_METRICS = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "roc_auc",
        "average_precision",
        "r2",
        "explained_variance",
    }
)


def get_metric(name: str) -> Metric:
    return METRICS[name]


def model_responses(model: Any, X: Any, needed: set[str], n_classes: int) -> dict[str, np.ndarray]:
    """Ask the fitted model for each needed response once.

    Mirrors scikit-learn's scorer rules: binary ranking metrics prefer
    `decision_function` and fall back to the positive-class probability.
    A response the model cannot give is simply absent (its metrics become missing).
    """
    out: dict[str, np.ndarray] = {PREDICT: np.asarray(model.predict(X))}
    proba = None
    if (PROBA in needed or SCORE in needed) and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        out[PROBA] = proba
    if SCORE in needed:
        if n_classes > 2:
            if proba is not None:
                out[SCORE] = proba
        elif hasattr(model, "decision_function"):
            out[SCORE] = np.asarray(model.decision_function(X))
        elif proba is not None:
            out[SCORE] = proba[:, 1]
    return out


def score_fold(
    names: list[str], y_true: np.ndarray, responses: dict[str, np.ndarray], classes: np.ndarray | None
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Every metric for one fold; a metric that does not apply is None with a reason."""
    values: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for name in names:
        metric = METRICS[name]
        resp = responses.get(metric.response)
        if resp is None:
            values[name], notes[name] = None, f"model has no {metric.response} output"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = metric.compute(y_true, resp, classes)
        except ValueError as exc:  # e.g. roc_auc with one class present in the fold
            values[name], notes[name] = None, str(exc).splitlines()[0]
            continue
        if math.isfinite(value):
            values[name] = value
        else:  # e.g. scikit-learn returns NaN for roc_auc when the fold holds one class
            values[name], notes[name] = None, "undefined on this fold"
    return values, notes
