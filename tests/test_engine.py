"""The engine's scores equal plain scikit-learn on the same folds; failures become rows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor, StackingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from harness.engine import derive_seed, limit_threads, threads_per_worker
from harness.runner import RunOptions, run_suite
from harness.spec import parse_suite
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
CLF_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1_macro": "f1_macro"}
REG_METRICS = {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}


def _run(tmp_path: Path, datasets: list[dict], estimators: list[dict], metrics: dict, folds: int = 3, **suite_kw):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"scheme": "stratified_kfold", "folds": folds},
            "metrics": metrics,
            "datasets": datasets,
            "estimators": estimators,
            **suite_kw,
        },
        path=ROOT / "suites" / "t.yaml",
    )
    summary = run_suite(suite, RunOptions(out=tmp_path, n_jobs=1, threads=1))
    with Store(tmp_path / "results.db") as store:
        return summary, store.results()


def _assert_equal(rows: pd.DataFrame, expected: dict, mapping: dict[str, str]) -> None:
    rows = rows.sort_values("fold")
    assert list(rows["status"]) == ["ok"] * len(rows)
    for ours, scorer in mapping.items():
        theirs = np.asarray(expected[f"test_{scorer}"])
        if scorer.startswith("neg_"):
            theirs = -theirs  # the harness stores losses and errors as positive, lower is better
        np.testing.assert_allclose(rows[ours].to_numpy(dtype=float), theirs, rtol=1e-10, atol=1e-12, err_msg=ours)


CLASSIFICATION_CASES = [
    ("linear", {}, lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))),
    ("random_forest", {"n_estimators": 20}, lambda: RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)),
    ("lightgbm", {"n_estimators": 20}, lambda: LGBMClassifier(n_estimators=20, random_state=0, verbose=-1, n_jobs=1)),
]


@pytest.mark.parametrize(("model", "params", "plain"), CLASSIFICATION_CASES, ids=[c[0] for c in CLASSIFICATION_CASES])
@pytest.mark.parametrize(("source", "auc_scorer"), [("breast_cancer", "roc_auc"), ("wine", "roc_auc_ovr")])
def test_classification_scores_equal_cross_validate(tmp_path, model, params, plain, source, auc_scorer):
    metrics = {"classification": [*CLF_METRICS, "roc_auc", "log_loss"], "regression": ["r2"]}
    _, rows = _run(
        tmp_path,
        [{"name": source, "source": f"sklearn:{source}"}],
        [{"name": "m", "model": model, "params": params}],
        metrics,
    )
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine}[source]
    X, y = loader(return_X_y=True, as_frame=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scoring = [*CLF_METRICS.values(), auc_scorer, "neg_log_loss"]
    expected = cross_validate(plain(), X, y, cv=cv, scoring=scoring)
    _assert_equal(rows, expected, {**CLF_METRICS, "roc_auc": auc_scorer, "log_loss": "neg_log_loss"})


REGRESSION_CASES = [
    ("linear", {}, lambda: make_pipeline(StandardScaler(), Ridge(random_state=0))),
    ("random_forest", {"n_estimators": 20}, lambda: RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1)),
    ("lightgbm", {"n_estimators": 20}, lambda: LGBMRegressor(n_estimators=20, random_state=0, verbose=-1, n_jobs=1)),
]


@pytest.mark.parametrize(("model", "params", "plain"), REGRESSION_CASES, ids=[c[0] for c in REGRESSION_CASES])
def test_regression_scores_equal_cross_validate(tmp_path, model, params, plain):
    metrics = {"classification": ["accuracy"], "regression": list(REG_METRICS)}
    _, rows = _run(
        tmp_path,
        [{"name": "diabetes", "source": "sklearn:diabetes"}],
        [{"name": "m", "model": model, "params": params}],
        metrics,
    )
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    # stratified_kfold falls back to KFold for a regression target
    expected = cross_validate(
        plain(), X, y, cv=KFold(3, shuffle=True, random_state=0), scoring=list(REG_METRICS.values())
    )
    _assert_equal(rows, expected, REG_METRICS)


def test_categorical_and_missing_values_equal_hand_built_pipeline(tmp_path, tiny_mixed_csv):
    """Fold-local imputation, scaling and one-hot encoding, as a careful user would write them."""
    metrics = {"classification": ["accuracy", "log_loss"], "regression": ["r2"]}
    ds = {"name": "mixed", "source": str(tiny_mixed_csv), "target": "label", "categorical": ["size"]}
    _, rows = _run(tmp_path, [ds], [{"name": "m", "model": "linear"}], metrics)
    frame = pd.read_csv(tiny_mixed_csv)
    X, y = frame.drop(columns="label"), frame["label"]
    X["size"] = X["size"].astype(str)
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["a", "b"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["colour", "size"]),
        ]
    )
    plain = make_pipeline(prep, LogisticRegression(max_iter=1000, random_state=0))
    expected = cross_validate(
        plain, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0), scoring=["accuracy", "neg_log_loss"]
    )
    _assert_equal(rows, expected, {"accuracy": "accuracy", "log_loss": "neg_log_loss"})


def test_stacking_equals_hand_built_stacking(tmp_path):
    metrics = {"classification": ["accuracy", "log_loss"], "regression": ["r2"]}
    estimators = [
        {"name": "linear", "model": "linear"},
        {"name": "rf", "model": "random_forest", "params": {"n_estimators": 10}},
        {"name": "stack", "model": "stacking", "params": {"estimators": ["linear", "rf"], "final_estimator": "linear"}},
    ]
    _, rows = _run(tmp_path, [{"name": "bc", "source": "sklearn:breast_cancer"}], estimators, metrics)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    plain = StackingClassifier(
        [
            ("linear", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))),
            ("rf", RandomForestClassifier(n_estimators=10, random_state=0)),
        ],
        final_estimator=make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0)),
    )
    expected = cross_validate(
        plain, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0), scoring=["accuracy", "neg_log_loss"]
    )
    _assert_equal(rows[rows["estimator"] == "stack"], expected, {"accuracy": "accuracy", "log_loss": "neg_log_loss"})


def test_every_estimator_sees_the_same_splits(tmp_path):
    estimators = [{"name": "linear", "model": "linear"}, {"name": "tree", "model": "decision_tree"}]
    _run(
        tmp_path,
        [{"name": "wine", "source": "sklearn:wine"}],
        estimators,
        {"classification": ["accuracy"], "regression": ["r2"]},
    )
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
        by_est = {
            est: [store.predictions(k)["test_index"].tolist() for k in g.sort_values("fold")["key"]]
            for est, g in rows.groupby("estimator")
        }
    assert by_est["linear"] == by_est["tree"]
    X, y = load_wine(return_X_y=True)
    assert by_est["linear"] == [t.tolist() for _, t in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)]


def test_raising_estimator_and_timeout_become_rows_and_the_suite_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ALLOW_MODULES", "tests")
    from harness.registry import allowed_modules

    estimators = [
        {"name": "broken", "model": "tests.estimators.RaisingClassifier", "params": {"message": "boom"}},
        {"name": "sleepy", "model": "tests.estimators.SleepyClassifier", "params": {"seconds": 60}, "timeout_s": 1.5},
        {"name": "linear", "model": "linear"},
    ]
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"scheme": "stratified_kfold", "folds": 2},
            "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": estimators,
        }
    )
    start = time.perf_counter()
    summary = run_suite(suite, RunOptions(out=tmp_path, allow_modules=allowed_modules()))
    elapsed = time.perf_counter() - start
    assert elapsed < 30, "the timed-out fit was not stopped"
    assert summary.exit_code == 1
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    status = rows.groupby("estimator")["status"].agg(set).to_dict()
    assert status == {"broken": {"error"}, "sleepy": {"timeout"}, "linear": {"ok"}}
    broken = rows[rows["estimator"] == "broken"]
    assert set(broken["error"]) == {"ValueError: boom"}
    assert all("Traceback" in d for d in broken["detail"])
    assert rows.loc[rows["estimator"] == "sleepy", "error"].str.contains("time limit of 1.5 s").all()


def test_timeout_leaves_fast_fits_alone(tmp_path):
    _, rows = _run(
        tmp_path,
        [{"name": "iris", "source": "sklearn:iris"}],
        [{"name": "linear", "model": "linear", "timeout_s": 60}],
        {"classification": ["accuracy"], "regression": ["r2"]},
    )
    assert (rows["status"] == "ok").all() and rows["accuracy"].gt(0.8).all()


def test_metric_that_does_not_apply_is_missing_not_a_crash(tmp_path):
    """roc_auc needs a score; LinearSVC has decision_function but no predict_proba, so log_loss is missing."""
    metrics = {"classification": ["accuracy", "roc_auc", "log_loss"], "regression": ["r2"]}
    _, rows = _run(
        tmp_path, [{"name": "bc", "source": "sklearn:breast_cancer"}], [{"name": "svm", "model": "linear_svm"}], metrics
    )
    assert (rows["status"] == "ok").all()
    assert rows["roc_auc"].notna().all() and rows["log_loss"].isna().all()
    assert all("no proba output" in str(notes) for notes in rows["notes"])


def test_thread_limits_reach_every_learner():
    from sklearn.ensemble import StackingClassifier

    model = StackingClassifier(
        [("rf", RandomForestClassifier()), ("lgbm", make_pipeline(StandardScaler(), LGBMClassifier()))],
        final_estimator=LogisticRegression(),
    )
    limit_threads(model, 3)
    params = model.get_params(deep=True)
    assert params["n_jobs"] == 1  # the meta-estimator does not multiply threads
    assert params["rf__n_jobs"] == 3
    assert params["lgbm__lgbmclassifier__n_jobs"] == 3
    assert threads_per_worker(2, None) >= 1
    assert threads_per_worker(1, 5) == 5


@pytest.mark.parametrize("model", ["xgboost", "lightgbm", "hist_gradient_boosting", "linear"])
def test_string_labels_work_for_every_learner(tmp_path, model):
    """Labels are encoded once per dataset (sorted), so XGBoost's 0..k-1 requirement holds everywhere."""
    ds = {"name": "penguins", "source": str(ROOT / "datasets/penguins.csv"), "target": "species", "drop": ["year"]}
    _, rows = _run(
        tmp_path,
        [ds],
        [{"name": "m", "model": model, "params": {"n_estimators": 10} if model in ("xgboost", "lightgbm") else {}}],
        {"classification": ["accuracy", "log_loss"], "regression": ["r2"]},
    )
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    assert rows["accuracy"].min() > 0.85


def test_robustness_scores_equal_plain_scikit_learn_on_the_same_perturbed_rows(tmp_path):
    """Each noise level rescores the fold's fitted model on perturbed test rows; reproduce one by hand."""
    from harness.robustness import perturb

    _, rows = _run(
        tmp_path,
        [{"name": "wine", "source": "sklearn:wine"}],
        [{"name": "rf", "model": "random_forest", "params": {"n_estimators": 20}}],
        {"classification": ["accuracy"]},
        robustness={"levels": [0.25, 2.0]},
        explain={"enabled": False},
    )
    X, y = load_wine(return_X_y=True, as_frame=True)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    for fold, extra in zip(rows["fold"], rows["extra"], strict=True):
        train, test = folds[fold]
        assert set(extra["robustness"]) == {"0.25", "2"}
        model = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(X.iloc[train], y.iloc[train])
        for i, level in enumerate([0.25, 2.0]):
            seed = derive_seed(0, "robustness", "wine", None, 0, fold, i)  # the same noise for every model
            noisy = perturb(X.iloc[test], X.iloc[train], level, seed, [])
            expected = (model.predict(noisy) == y.iloc[test].to_numpy()).mean()
            assert extra["robustness"][f"{level:g}"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    # heavy noise hurts: the mean score at 2 standard deviations is below the clean score
    clean = rows["accuracy"].mean()
    assert np.mean([e["robustness"]["2"]["accuracy"] for e in rows["extra"]]) < clean


def test_shap_values_are_stored_for_the_first_repeat_and_add_up(tmp_path):
    """Explanations land in the store per fold, for a shared row prefix, and sum to the model's output."""
    _, rows = _run(
        tmp_path,
        [{"name": "diabetes", "source": "sklearn:diabetes"}],
        [
            {"name": "ridge", "model": "linear"},
            {"name": "rf", "model": "random_forest", "params": {"n_estimators": 10}},
        ],
        {"regression": ["r2"]},
        cv={"scheme": "kfold", "folds": 2, "repeats": 2},
        explain={"max_rows": 30, "min_s": 2.0},
    )
    with Store(tmp_path / "results.db") as store:
        stored = store.explanations(rows["key"])
    explained = rows[rows["key"].isin(stored)]
    assert sorted(explained["repeat"].unique()) == [0] and len(explained) == 4  # 2 models x 2 folds of repeat 0
    for fold in (0, 1):
        keys = explained.loc[explained["fold"] == fold, "key"].tolist()
        prefixes = [stored[k][0]["rows"] for k in keys]
        n = min(len(p) for p in prefixes)
        assert n >= 5 and all(np.array_equal(p[:n], prefixes[0][:n]) for p in prefixes)
    for key in explained["key"]:
        arrays, meta = stored[key]
        assert meta["features"] == list(load_diabetes(as_frame=True).data.columns)
        assert arrays["values"].shape[1:] == (10, 1)


# ---------------------------------------------------------------- fit_and_score on tasks built directly


def _task(model: str, params: dict | None = None, **kw):
    """A fold task built by hand, as scikit-learn's tests build `_fit_and_score` arguments."""
    from harness.datasets import load_dataset
    from harness.engine import FoldTask
    from harness.registry import Resolver
    from harness.spec import DatasetSpec
    from harness.splits import make_splits

    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 3},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "m", "model": model, "params": params or {}}],
        }
    )
    ds = load_dataset(DatasetSpec(name="iris", source="sklearn:iris"))
    resolved = Resolver(suite, ("sklearn", "harness", "tests")).resolve("m", ds.task)
    split = make_splits(ds, suite.cv, 0)[1]
    return FoldTask("k", ds, resolved, split, ["accuracy", "log_loss"], seed=7, **kw), ds, split


def test_fit_and_score_equals_plain_scikit_learn_and_carries_its_identity():
    from sklearn.tree import DecisionTreeClassifier

    from harness.engine import fit_and_score

    task, ds, split = _task("decision_tree")
    result = fit_and_score(task)
    plain = DecisionTreeClassifier(random_state=0).fit(ds.X.iloc[split.train], ds.y[split.train])
    assert result.status == "ok" and result.kind == "fold"
    assert result.metrics["accuracy"] == pytest.approx(plain.score(ds.X.iloc[split.test], ds.y[split.test]), abs=0)
    np.testing.assert_array_equal(result.test_index, split.test)
    assert (result.key, result.seed, result.fingerprint) == ("k", 7, ds.fingerprint)
    assert result.config == task.resolved.config() and result.worker and result.started <= result.finished


@pytest.mark.parametrize(
    ("model", "params", "status", "error"),
    [
        ("tests.estimators.RaisingClassifier", {"message": "bad fit"}, "error", "ValueError: bad fit"),
        ("linear", {"C": 1.0}, "ok", None),
    ],
)
def test_fit_and_score_records_a_failure_instead_of_raising(model, params, status, error):
    from harness.engine import fit_and_score

    result = fit_and_score(_task(model, params)[0])
    assert result.status == status and result.error == error
    assert (result.detail is not None and "Traceback" in result.detail) == (status == "error")


def test_fit_and_score_applies_a_preset_and_records_it():
    from harness.engine import fit_and_score

    task, _, _ = _task("decision_tree", preset={"params": {"max_depth": 1}, "tuning": {"mode": "tune_then_cv"}})
    result = fit_and_score(task)
    assert result.extra["tuning"] == {"mode": "tune_then_cv"}
    assert result.metrics["accuracy"] < 0.75  # a stump cannot separate three classes


def test_fit_and_score_skips_with_the_reason():
    from dataclasses import replace

    from harness.engine import fit_and_score

    task, _, _ = _task("decision_tree")
    task = replace(task, resolved=replace(task.resolved, skipped="declared for regression only"))
    result = fit_and_score(task)
    assert (result.status, result.error) == ("skipped", "declared for regression only")
