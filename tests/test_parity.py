"""An estimator named by import path scores exactly what plain scikit-learn gives on the same folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

from harness.planner import RunOptions
from harness.registry import Resolver, build
from harness.runner import run_suite
from harness.spec import parse_suite
from harness.store import Store


def _classification(missing: bool) -> pd.DataFrame:
    X, y = make_classification(300, 6, n_informative=4, random_state=0)
    X = X * np.array([1, 10, 100, 1000, 0.01, 5])  # unscaled: scaling would move a tree's thresholds
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    if missing:
        frame.iloc[::7, 2] = np.nan
    frame["y"] = y
    return frame


def _harness_scores(tmp_path, frame, model, params, metric, cv) -> pd.Series:
    suite = parse_suite(
        {
            "name": "parity",
            "cv": cv,
            "explain": {"enabled": False},
            "metrics": {"regression" if metric == "r2" else "classification": [metric]},
            "datasets": [{"name": "d", "source": frame, "target": "y"}],
            "estimators": [{"name": "m", "model": model, "params": params}],
        }
    )
    run_suite(suite, RunOptions(out=tmp_path / "out"))
    rows = Store(tmp_path / "out" / "results.db").results()
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    return rows.sort_values("fold")[metric].reset_index(drop=True)


CASES = [
    pytest.param(
        "diabetes",
        "sklearn.tree.DecisionTreeRegressor",
        {"random_state": 0, "max_depth": 4},
        lambda: DecisionTreeRegressor(random_state=0, max_depth=4),
        "r2",
        {"scheme": "kfold", "folds": 5},
        id="tree-regressor",
    ),
    pytest.param(
        "numeric",
        "sklearn.ensemble.RandomForestClassifier",
        {"random_state": 0, "n_estimators": 25},
        lambda: RandomForestClassifier(random_state=0, n_estimators=25),
        "accuracy",
        {"scheme": "stratified_kfold", "folds": 5},
        id="forest",
    ),
    pytest.param(
        "missing",
        "sklearn.svm.SVC",
        {"random_state": 0},
        lambda: make_pipeline(SimpleImputer(strategy="median"), SVC(random_state=0)),
        "accuracy",
        {"scheme": "stratified_kfold", "folds": 5},
        id="imputation-pipeline-for-an-estimator-without-nan",
    ),
    pytest.param(
        "missing",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"random_state": 0, "max_iter": 30},
        lambda: HistGradientBoostingClassifier(random_state=0, max_iter=30),
        "accuracy",
        {"scheme": "stratified_kfold", "folds": 5},
        id="nan-capable-estimator-gets-raw-columns",
    ),
]


@pytest.mark.parametrize(("data", "model", "params", "plain", "metric", "cv"), CASES)
def test_import_path_estimators_score_as_cross_validate(tmp_path, data, model, params, plain, metric, cv):
    if data == "diabetes":
        X, y = load_diabetes(return_X_y=True, as_frame=True)
        frame = X.assign(y=y)
    else:
        frame = _classification(missing=data == "missing")
    ours = _harness_scores(tmp_path, frame, model, params, metric, cv)
    X, y = frame.drop(columns="y"), frame["y"]
    if cv["scheme"] == "kfold":
        splitter = KFold(cv["folds"], shuffle=True, random_state=0)
    else:
        splitter = StratifiedKFold(cv["folds"], shuffle=True, random_state=0)
    theirs = cross_validate(plain(), X, y, cv=splitter, scoring=metric)["test_score"]
    np.testing.assert_array_equal(ours.to_numpy(), theirs)


@pytest.mark.parametrize(
    ("model", "missing", "wrapped"),
    [
        ("sklearn.tree.DecisionTreeClassifier", False, False),  # numeric, complete: the raw columns
        ("sklearn.tree.DecisionTreeClassifier", True, False),  # trees take NaN: still raw
        ("sklearn.svm.SVC", True, True),  # cannot take NaN: imputation, and nothing else
        ("sklearn.svm.SVC", False, False),  # never scaled unless asked
    ],
)
def test_an_import_path_gets_only_what_the_data_requires(model, missing, wrapped):
    from harness.preprocess import Columns

    suite = parse_suite({"name": "s", "datasets": [{"name": "d", "source": "sklearn:iris"}],
                         "estimators": [{"name": "m", "model": model}]})  # fmt: skip
    r = Resolver(suite).resolve("m", "classification")
    assert r.tags.scale is False
    est = build(r, Columns(["a", "b"], [], missing))
    assert hasattr(est, "steps") is wrapped
    if wrapped:
        (_, prep), _ = est.steps
        assert [type(s).__name__ for _, s in prep.transformers[0][1].steps] == ["SimpleImputer"]


def test_scaling_is_there_when_the_suite_asks():
    suite = parse_suite({"name": "s", "datasets": [{"name": "d", "source": "sklearn:iris"}],
                         "estimators": [{"name": "m", "model": "sklearn.svm.SVC", "preprocess": {"scale": True}}]})  # fmt: skip
    assert Resolver(suite).resolve("m", "classification").tags.scale is True
