"""Resampling (estimators' `resample:`): only training rows are resampled, in every fit; bad settings are exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier

from harness.datasets import Dataset
from harness.engine.fit import fit_early_stopped
from harness.preprocess import Columns
from harness.registry import DEFAULT_ALLOWED_MODULES, Resolver, build
from harness.resample import class_counts
from harness.runner import RunOptions, run_suite
from harness.spec import parse_suite
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
LOG: list[tuple[str, np.ndarray]] = []  # (fit | predict, the `id` column of the rows the model saw)


class Recorder(ClassifierMixin, BaseEstimator):
    """Records the `id` column of every row it is fitted on or asked to predict (the fits run in this process)."""

    def __init__(self, knob: int = 1):
        self.knob = knob  # a parameter for a tuning space to sample

    def fit(self, X, y):
        LOG.append(("fit", np.asarray(X["id"], dtype=float)))
        self.model_ = DummyClassifier(strategy="prior").fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        LOG.append(("predict", np.asarray(X["id"], dtype=float)))
        return self.model_.predict(X)

    def predict_proba(self, X):
        LOG.append(("predict", np.asarray(X["id"], dtype=float)))
        return self.model_.predict_proba(X)


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 5 == 0).astype(int)  # 20% minority
    return pd.DataFrame({"id": np.arange(n, dtype=float), "x": rng.normal(size=n) + y, "y": y})


def _suite(tmp_path: Path, resample: dict, tune: dict | None = None) -> tuple:
    path = tmp_path / "imb.csv"
    _frame().to_csv(path, index=False)
    est = {"name": "rec", "model": "tests.test_resample.Recorder", "resample": resample}
    if tune:
        est["tune"] = tune
    raw = {
        "name": "imb",
        "cv": {"folds": 3},
        "metrics": {"classification": ["accuracy"]},
        "explain": {"enabled": False},
        "datasets": [{"name": "imb", "source": str(path), "target": "y"}],
        "estimators": [est],
    }
    return parse_suite(raw, path=tmp_path / "imb.yaml")


@pytest.mark.parametrize("method", ["random_over", "random_under", "smote"])
@pytest.mark.parametrize("tuned", [False, True])
def test_test_rows_are_never_resampled(tmp_path: Path, method: str, tuned: bool) -> None:
    """Every fit of a fold (inner tuning folds too) sees none of the fold's test rows; predict sees them as they are."""
    LOG.clear()
    tune = {"trials": 2, "inner_folds": 2, "space": {"knob": {"categorical": [1, 2]}}} if tuned else None
    suite = _suite(tmp_path, {"method": method, "k_neighbors": 2} if method == "smote" else {"method": method}, tune)
    run_suite(
        suite, RunOptions(out=tmp_path / "out", n_jobs=1, threads=1, allow_modules=(*DEFAULT_ALLOWED_MODULES, "tests"))
    )
    with Store(tmp_path / "out" / "results.db") as store:
        folds = store.results()
        tests = {row["key"]: store.predictions(row["key"])["test_index"] for _, row in folds.iterrows()}
    assert list(folds["status"]) == ["ok"] * 3
    fitted: list[np.ndarray] = []
    seen_folds = 0
    for kind, ids in LOG:
        if kind == "fit":
            fitted.append(ids)
            continue
        test = next((t for t in tests.values() if np.array_equal(np.sort(ids), np.sort(t))), None)
        if test is None:  # an inner tuning fold's test part
            continue
        np.testing.assert_array_equal(np.sort(ids), np.sort(test.astype(float)))  # never resampled: as many rows
        assert fitted, "the outer fit comes before its predictions"
        for ids_fit in fitted:  # the outer fit and every inner fit of this fold
            assert not np.isin(ids_fit, test).any()
        seen_folds += 1 if fitted else 0
        fitted = []
    assert seen_folds >= 3
    data = _frame()
    for _, row in folds.iterrows():
        counts = row["extra"]["resample"]
        train = np.setdiff1d(np.arange(len(data)), tests[row["key"]])
        assert counts["before"] == {str(c): int((data["y"][train] == c).sum()) for c in (0, 1)}
        balanced = counts["after"]["0"] == counts["after"]["1"]
        assert balanced and counts["method"] == method


@pytest.mark.parametrize(
    ("method", "model", "params"),
    [
        ("smote", "linear", {}),
        ("smote", "lightgbm", {"n_estimators": 5}),
        ("random_under", "hist_gradient_boosting", {}),
    ],
)
def test_samplers_fit_mixed_columns(method: str, model: str, params: dict) -> None:
    """SMOTE-NC takes the encoded categories of one-hot, ordinal or native encodings; missing numbers are imputed."""
    rng = np.random.default_rng(0)
    cat = rng.choice(["a", "b", "c"], 200).astype(object)
    cat[:5] = None
    X = pd.DataFrame({"n1": rng.normal(size=200), "n2": rng.normal(size=200), "c": cat})
    X.loc[3, "n1"] = np.nan
    y = (rng.random(200) < 0.2).astype(int)
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "e", "model": model, "params": params, "resample": {"method": method}}],
        }
    )
    resolved = Resolver(suite).resolve("e", "classification")
    fitted = build(resolved, Columns(["n1", "n2"], ["c"], True)).fit(X, y)
    counts = class_counts(fitted, y, [0, 1])
    assert counts is not None and counts["before"] == {"0": int((y == 0).sum()), "1": int((y == 1).sum())}
    assert fitted.predict_proba(X).shape == (200, 2)
    assert "resample" in resolved.config()
    if method == "smote":  # SMOTE's nearest neighbours need complete numbers, whatever the model's tags
        assert resolved.tags.impute


def test_early_stopping_fit_resamples_its_fitted_rows_only() -> None:
    """A tuned LightGBM fit stops on a slice of its training rows: the slice is transformed, never resampled."""
    data = _frame(300)
    X, y = data[["id", "x"]], data["y"].to_numpy()
    ds = Dataset(name="d", X=X, y=y, task="classification", categorical=[], source="test")
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [
                {
                    "name": "e",
                    "model": "lightgbm",
                    "params": {"n_estimators": 20},
                    "resample": {"method": "random_over"},
                }
            ],
        }
    )
    model = build(Resolver(suite).resolve("e", "classification"), Columns(["id", "x"], [], False))
    rows = np.arange(200)
    rounds = fit_early_stopped(model, ds, rows, rounds=5, seed=0)
    assert rounds is not None and model[-1].n_features_in_ == 2
    sampler = model.named_steps["resample"]
    assert sum(sampler.sampling_strategy_.values()) > 0  # it did resample the fitted part


def test_no_resample_leaves_the_estimator_as_it_was() -> None:
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "e", "model": "linear"}],
        }
    )
    resolved = Resolver(suite).resolve("e", "classification")
    assert "resample" not in resolved.config()
    assert type(build(resolved, Columns(["x"], [], False))).__module__.startswith("sklearn")


@pytest.mark.parametrize(
    ("resample", "dataset", "message"),
    [
        ({"method": "smote"}, "sklearn:diabetes", "estimators[0].resample: resampling rebalances classes"),
        (
            {"method": "random_over", "k_neighbors": 3},
            "sklearn:iris",
            "estimators[0].resample.k_neighbors: only method smote",
        ),
        ({"method": "smote", "sampling_strategy": 2.0}, "sklearn:iris", "estimators[0].resample.sampling_strategy:"),
        ({"method": "smote", "k_neighbors": 0}, "sklearn:iris", "estimators[0].resample.k_neighbors"),
        ({"method": "tomek"}, "sklearn:iris", "estimators[0].resample.method"),
        ({"method": "smote", "neighbours": 3}, "sklearn:iris", "estimators[0].resample.neighbours"),
    ],
)
def test_bad_resample_settings_are_exit_2(cli, tmp_path: Path, resample: dict, dataset: str, message: str) -> None:
    import yaml

    suite = tmp_path / "s.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "datasets": [{"name": "d", "source": dataset}],
                "estimators": [{"name": "e", "model": "linear", "resample": resample}],
            }
        )
    )
    result = cli("validate", suite)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_shap_sees_through_the_sampler() -> None:
    """The sampler acts in fit only: SHAP explains the model behind the preprocessing, grouped to raw columns."""
    from harness.explain import explain_fold

    data = _frame(200)
    X, y = data[["id", "x"]].assign(c=np.where(data["id"] % 3 == 0, "a", "b")), data["y"].to_numpy()
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "e", "model": "linear", "resample": {"method": "smote"}}],
        }
    )
    model = build(Resolver(suite).resolve("e", "classification"), Columns(["id", "x"], ["c"], False)).fit(X, y)
    expl = explain_fold(model, X, X.iloc[:10], "classification", budget_s=2.0, seed=0)
    assert expl.explainer == "linear" and expl.features == ["id", "x", "c"] and expl.n_model_features == 4


@pytest.mark.parametrize(
    ("ensemble", "params"),
    [("bagging", {"estimator": "tree"}), ("stacking", {"estimators": ["linear"], "final_estimator": "tree"})],
)
def test_a_resampling_member_fitted_bare_is_refused(cli, tmp_path: Path, ensemble: str, params: dict) -> None:
    """A bagged member and a stacking final estimator are bare models: their own sampler would be silently lost."""
    import yaml

    suite = tmp_path / "s.yaml"
    estimators = [
        {"name": "tree", "model": "decision_tree", "resample": {"method": "random_over"}},
        {"name": "linear", "model": "linear"},
        {"name": "ens", "model": ensemble, "params": params},
    ]
    data = {"name": "s", "datasets": [{"name": "d", "source": "sklearn:iris"}], "estimators": estimators}
    suite.write_text(yaml.safe_dump(data))
    result = cli("validate", suite)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "estimators[2].params." in result.stderr and "give `resample:` to 'ens' itself" in result.stderr
