"""LIME (explain.method lime | both): informative features first, stored beside SHAP, rebuilt and compared in the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from harness.explain import explain_fold
from harness.explain.lime import LimeExplanation, _Space, explain_lime
from harness.report import views
from harness.report.context import load_report_data
from harness.spec import ExplainSpec
from harness.store import Store

INFORMATIVE = {"f0", "f1", "f2"}  # make_classification(shuffle=False) puts the informative columns first


def _synthetic() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(400, 8, n_informative=3, n_redundant=0, shuffle=False, class_sep=2.0, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y


@pytest.mark.parametrize(
    "model",
    [LogisticRegression(max_iter=1000), RandomForestClassifier(n_estimators=30, random_state=0)],
    ids=["linear", "forest"],
)
def test_lime_and_shap_rank_the_informative_features_first(model) -> None:
    X, y = _synthetic()
    model.fit(X[:300], y[:300])
    lime = explain_lime(model, X[:300], X[300:], "classification", budget_s=5.0, seed=0, max_rows=12)
    shap = explain_fold(model, X[:300], X[300:], "classification", budget_s=5.0, seed=0, max_rows=12)
    for values in (lime.values, shap.values):
        ranking = pd.Series(np.abs(values).mean(axis=(0, 2)), index=X.columns).sort_values(ascending=False)
        assert set(ranking.index[:3]) == INFORMATIVE
    assert lime.n_rows == 12 and lime.output_names == ["1"] and lime.output_space == "probability"
    np.testing.assert_array_equal(lime.row_index, shap.row_index[: lime.n_rows])  # the same rows, in order


def test_lime_stops_at_its_budget_after_the_first_row() -> None:
    X, y = _synthetic()
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X[:300], y[:300])
    lime = explain_lime(model, X[:300], X[300:], "classification", budget_s=0.0, seed=0, max_rows=50)
    assert lime.n_rows == 1 and lime.budget_s == 0.0


def test_raw_space_keeps_categories_and_gaps() -> None:
    """Categories are codes LIME samples, a missing category is a code of its own that decodes back to missing."""
    X = pd.DataFrame({"n": [1.0, np.nan, 3.0, 4.0], "c": ["a", None, "b", "a"]})
    space = _Space.fit(X, X)
    A = space.encode(X)
    assert not np.isnan(A).any() and A[1, 0] == 3.0  # the training median fills the numeric gap
    back = space.decode(A)
    assert back["c"].isna().tolist() == [False, True, False, False] and back["c"][0] == "a"
    assert space.category_names() == {1: ["a", "b", "missing"]}


def test_store_round_trip() -> None:
    X, y = _synthetic()
    model = LogisticRegression(max_iter=1000).fit(X[:300], y[:300])
    lime = explain_lime(model, X[:300], X[300:], "classification", budget_s=1.0, seed=0, max_rows=3)
    arrays, meta = lime.to_arrays()
    back = LimeExplanation.from_arrays(arrays, meta)
    assert back is not None and back.features == lime.features
    np.testing.assert_array_equal(back.values, lime.values)
    assert LimeExplanation.from_arrays({"values": np.zeros((1, 1, 1))}, {}) is None  # a SHAP-only fold


def test_default_method_keeps_the_explain_settings_and_keys() -> None:
    assert "method" not in ExplainSpec().settings()
    assert ExplainSpec(method="both").settings()["method"] == "both"


def _suite(tmp_path: Path, method: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "cv": {"folds": 3},
                "datasets": [
                    {
                        "name": "synth",
                        "source": "synthetic:classification",
                        "params": {"n_samples": 200, "n_features": 5, "n_informative": 2, "n_redundant": 0},
                    }
                ],
                "estimators": [
                    {"name": "lr", "model": "linear"},
                    {"name": "tree", "model": "decision_tree", "params": {"max_depth": 3}},
                ],
                "explain": {"method": method, "folds": 1, "min_s": 0.3},
            }
        )
    )
    return path


@pytest.mark.parametrize("method", ["both", "lime"])
def test_report_shows_lime_and_its_agreement(cli, tmp_path: Path, method: str) -> None:
    out = tmp_path / "out"
    assert cli("run", _suite(tmp_path, method), "--out", out).returncode == 0
    with Store(out / "results.db") as store:
        stored = store.explanations(store.results()["key"])
        models = views.lime_view(load_report_data(store), "synth")
    assert len(stored) == 2  # one explained fold per model
    for arrays, _meta in stored.values():
        assert "lime_values" in arrays and ("values" in arrays) is (method == "both")
    assert [m.estimator for m in sorted(models, key=lambda m: m.estimator)] == ["lr", "tree"]
    assert all((m.tau is not None and -1 <= m.tau <= 1) is (method == "both") for m in models)
    page = (out / "report.html").read_text()
    assert 'id="lime"' in page and "τ with SHAP" in page
    first = page
    assert cli("report", out).returncode == 0
    assert (out / "report.html").read_text() == first  # rebuilt from the store alone


def test_missing_lime_package_is_exit_2(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lime" else real(name, *a))
    result = cli("validate", _suite(tmp_path, "both"))
    assert result.returncode == 2
    assert "explain.method" in result.stderr and "harness[lime]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
