"""Contract: every registry entry, with its tiny params, fits and scores on both tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.datasets import Dataset
from harness.engine import FoldTask, fit_and_score
from harness.errors import EstimatorError
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.preprocess import Columns
from harness.registry import REGISTRY, Resolver, build, import_estimator_class
from harness.spec import parse_suite
from harness.splits import make_splits

MEMBERS = {"estimators": ["m_linear", "m_tree"], "final_estimator": "m_linear", "estimator": "m_tree"}


def _tiny_dataset(task: str) -> Dataset:
    rng = np.random.default_rng(1)
    n = 80
    X = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v", "w"], n).astype(object)}
    )
    X.loc[[2, 9], "a"] = np.nan
    X.loc[[4], "c"] = np.nan
    signal = X["a"].fillna(0) + (X["c"] == "u")
    y = (
        (signal > 0.3).astype(int).to_numpy()
        if task == CLASSIFICATION
        else (signal + rng.normal(size=n) * 0.1).to_numpy()
    )
    return Dataset("tiny", X, y, task, ["c"], "test")


def _suite(entry_name: str):
    entry = REGISTRY[entry_name]
    params = dict(entry.tiny)
    params.update({k: MEMBERS[k] for k in entry.members})
    return parse_suite(
        {
            "name": "contract",
            "datasets": [{"name": "tiny", "source": "sklearn:iris"}],
            "estimators": [
                {"name": "m_linear", "model": "linear"},
                {"name": "m_tree", "model": "decision_tree", "params": {"max_depth": 2}},
                {"name": "subject", "model": entry_name, "params": params},
            ],
        }
    )


@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_fits_and_scores(name, task):
    suite = _suite(name)
    resolved = Resolver(suite).resolve("subject", task)
    assert resolved.skipped is None
    ds = _tiny_dataset(task)
    split = make_splits(ds, suite.cv, 0)[0]
    metrics = ["accuracy", "roc_auc"] if task == CLASSIFICATION else ["r2", "rmse"]
    result = fit_and_score(FoldTask("k", ds, resolved, split, metrics))
    assert result.status == "ok", result.detail
    assert result.metrics[metrics[0]] is not None and np.isfinite(result.metrics[metrics[0]])
    assert len(result.y_pred) == len(split.test)
    config = resolved.config()
    assert config["class"] == REGISTRY[name].class_path(task)


def test_entries_declare_tags_and_descriptions():
    for entry in REGISTRY.values():
        assert entry.description and entry.tags.categorical in ("onehot", "ordinal", "native", "none")
        assert entry.classifier or entry.regressor


def test_seed_reaches_random_state_and_user_params_win():
    suite = parse_suite(
        {
            "name": "t",
            "seed": 7,
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [
                {"name": "rf", "model": "random_forest", "params": {"n_estimators": 3, "random_state": 1}},
                {"name": "et", "model": "extra_trees"},
            ],
        }
    )
    r = Resolver(suite)
    assert r.resolve("rf", CLASSIFICATION).params == {"n_estimators": 3, "random_state": 1}
    assert r.resolve("et", CLASSIFICATION).params["random_state"] == 7


def test_native_categoricals_reach_lightgbm_as_category_dtype():
    suite = _suite("lightgbm")
    ds = _tiny_dataset(CLASSIFICATION)
    model = build(
        Resolver(suite).resolve("subject", CLASSIFICATION), Columns(ds.numeric, ds.categorical, ds.has_missing)
    )
    model.fit(ds.X, ds.y)
    assert str(model[:-1].transform(ds.X)["c"].dtype) == "category"
    assert model[-1].booster_.dump_model()["feature_names"] == ["a", "b", "c"]
    assert "c" in [model[-1].feature_name_[i] for i in range(3)]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("os.system", "outside the allowed modules"),
        ("evilpkg.Model", "outside the allowed modules"),
        ("sklearnx.Model", "outside the allowed modules"),  # prefix must match whole module names
        ("sklearn.metrics.accuracy_score", "not a scikit-learn estimator class"),
        ("sklearn.linear_model.LogisticRegresion", "did you mean 'LogisticRegression'"),
        ("not a path", "neither a registry name"),
    ],
)
def test_import_paths_are_checked_before_import(path, message):
    with pytest.raises(EstimatorError, match=message):
        import_estimator_class(path, ("sklearn", "harness"))


def test_import_path_estimator_skipped_for_the_other_task():
    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "knn", "model": "sklearn.neighbors.KNeighborsClassifier"}],
        }
    )
    r = Resolver(suite)
    assert r.resolve("knn", CLASSIFICATION).skipped is None
    assert "classification estimator" in r.resolve("knn", REGRESSION).skipped
