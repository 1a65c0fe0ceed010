"""Each metric equals scikit-learn's scorer of the same name, in natural units with its direction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.metrics import CLASSIFICATION, METRICS, model_responses, score_fold

SCORER = {
    "roc_auc": {2: "roc_auc", 3: "roc_auc_ovr"},
}


def _fitted(kind: str):
    if kind == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return Ridge().fit(X[:300], y[:300]), X[300:], y[300:], None
    X, y = (load_breast_cancer if kind == "binary" else load_wine)(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[::2], y[::2])
    return model, X[1::2], y[1::2], np.unique(y)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "diabetes"])
def test_metrics_equal_sklearn_scorers(kind):
    model, X, y, classes = _fitted(kind)
    task = "regression" if classes is None else CLASSIFICATION
    names = [n for n, m in METRICS.items() if m.task == task]
    if kind == "multiclass":
        names.remove("average_precision")  # binary only
    responses = model_responses(model, X, {METRICS[n].response for n in names}, 0 if classes is None else len(classes))
    values, notes = score_fold(names, y, responses, classes)
    assert not notes
    for name in names:
        metric = METRICS[name]
        scorer = SCORER.get(name, {}).get(len(classes) if classes is not None else 0, metric.sklearn_scorer)
        expected = get_scorer(scorer)(model, X, y)
        if not metric.greater_is_better:
            expected = -expected
        assert values[name] == pytest.approx(expected, rel=1e-12), name


def test_binary_auc_uses_decision_function_like_sklearn():
    """Where a model has both, sklearn's roc_auc scorer reads decision_function, not probabilities."""
    model, X, _, _ = _fitted("binary")
    responses = model_responses(model, X, {"score"}, 2)
    np.testing.assert_array_equal(responses["score"], model.decision_function(X))


def test_metric_on_a_fold_with_one_class_is_missing_with_a_reason():
    y = np.array([1, 1, 1])
    values, notes = score_fold(
        ["roc_auc", "accuracy"], y, {"score": np.array([0.2, 0.4, 0.9]), "predict": y}, np.array([0, 1])
    )
    assert values == {"roc_auc": None, "accuracy": 1.0}
    assert "roc_auc" in notes
