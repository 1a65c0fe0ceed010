"""The Python API: harness.run / harness.open and the Results a notebook holds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from sklearn.datasets import make_classification

import harness
from harness.errors import HarnessError, SuiteError


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    X, y = make_classification(n, 5, n_informative=3, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["colour"] = pd.Categorical(np.where(X[:, 0] > 0, "red", "blue"))
    frame["y"] = np.where(y == 1, "yes", "no")
    return frame


def _suite(source, **dataset) -> dict:
    return {
        "name": "nb",
        "cv": {"folds": 4, "repeats": 2},
        "explain": {"enabled": True},
        "datasets": [{"name": "mine", "source": source, "target": "y", **dataset}],
        "estimators": [
            {"name": "lr", "model": "linear"},
            {"name": "tree", "model": "decision_tree", "params": {"max_depth": 3}},
        ],
    }


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    frame = _frame()
    before = frame.copy(deep=True)
    out = tmp_path_factory.mktemp("api") / "out"
    results = harness.run(_suite(frame), out=out)
    return frame, before, out, results


def test_a_dataframe_source_runs_and_is_left_unchanged(ran):
    frame, before, out, results = ran
    pd.testing.assert_frame_equal(frame, before)
    assert results.exit_code == 0 and results.out == out
    assert len(results.folds) == 2 * 4 * 2 and (results.folds["status"] == "ok").all()
    assert (out / "report.html").is_file() and (out / "stats.json").is_file()


def test_run_and_open_give_the_same_folds_and_the_csvs_values(ran):
    _, _, out, results = ran
    opened = harness.open(out)
    pd.testing.assert_frame_equal(opened.folds, results.folds)
    csv = pd.read_csv(out / "results.csv")
    mine = results.folds[csv.columns]
    assert list(mine.columns) == list(csv.columns) and len(mine) == len(csv)
    for col in ["accuracy", "log_loss", "fit_time", "n_train"]:
        np.testing.assert_allclose(mine[col].to_numpy(dtype=float), csv[col].to_numpy(dtype=float), rtol=1e-12)
    assert isinstance(results.folds["config"].iloc[0], dict)
    assert results.folds["config"].iloc[0]["class"].endswith("LogisticRegression")
    assert isinstance(results.folds["versions"].iloc[0], dict) and "scikit-learn" in results.folds["versions"].iloc[0]


def test_the_leaderboard_is_the_mean_and_std_of_the_folds(ran):
    _, _, _, results = ran
    board = results.leaderboard("mine")
    folds = results.folds
    for rec in board.itertuples():
        scores = folds.loc[folds["estimator"] == rec.estimator, "accuracy"]
        assert rec.metric == "accuracy" and rec.n_ok == 8
        assert rec.mean == pytest.approx(scores.mean()) and rec.std == pytest.approx(scores.std(ddof=1))
    assert sorted(board["rank"]) == [1.0, 2.0]
    by_loss = results.leaderboard(metric="log_loss")
    assert (by_loss.sort_values("mean")["rank"].to_numpy() == [1.0, 2.0]).all()  # lower is better


@pytest.mark.parametrize(("a", "b"), [("lr", "tree"), ("tree", "lr")])
def test_compare_agrees_with_an_independent_nadeau_bengio_test(ran, a, b):
    _, _, _, results = ran
    (row,) = results.compare(a, b).to_dict("records")
    folds = results.folds.set_index(["repeat", "fold"])
    diff = folds.loc[folds["estimator"] == a, "accuracy"] - folds.loc[folds["estimator"] == b, "accuracy"]
    n_train, n_test = folds["n_train"].mean(), folds["n_test"].mean()
    k = len(diff)
    t = diff.mean() / math.sqrt((1 / k + n_test / n_train) * diff.var(ddof=1))
    p = 2 * sps.t.sf(abs(t), k - 1)
    assert (row["a"], row["b"], row["n"]) == (a, b, 8)
    assert row["mean_diff"] == pytest.approx(diff.mean(), abs=1e-12)
    assert row["t"] == pytest.approx(t, rel=1e-9) and row["p"] == pytest.approx(p, rel=1e-9)
    assert row["ci_low"] < row["mean_diff"] < row["ci_high"]
    assert row["p_a_better"] + row["p_rope"] + row["p_b_better"] == pytest.approx(1)
    if row["verdict"] != "no significant difference":
        assert row["verdict"] == f"{a if row['mean_diff'] > 0 else b} better"


def test_compare_names_the_pair_of_stats_json(ran):
    _, _, _, results = ran
    pair = results.stats["per_dataset"]["mine"]["pairs"][0]
    row = results.compare(pair["a"], pair["b"]).iloc[0]
    assert row["p_holm"] == pair["p_holm"] and row["mean_diff"] == pair["mean_diff"]


def test_predictions_are_the_out_of_fold_rows(ran):
    frame, _, _, results = ran
    preds = results.predictions("mine", "lr")
    assert len(preds) == 2 * len(frame)  # every row once per repeat
    assert (preds.groupby("repeat")["row"].nunique() == len(frame)).all()
    assert {"proba_no", "proba_yes"} <= set(preds.columns)
    np.testing.assert_allclose(preds[["proba_no", "proba_yes"]].sum(axis=1), 1.0, rtol=1e-5)
    labels = np.array(["no", "yes"])
    assert (labels[preds["y_true"].to_numpy()] == frame["y"].to_numpy()[preds["row"].to_numpy()]).all()


def test_explanations_rank_features_by_mean_absolute_shap(ran):
    frame, _, _, results = ran
    table = results.explanations("mine", "tree")
    assert set(table.index) == set(frame.columns) - {"y"}
    assert table["mean"].is_monotonic_decreasing and (table["mean"] >= 0).all()


def test_the_notebook_view_and_a_report_elsewhere(ran, tmp_path):
    _, _, _, results = ran
    html = results._repr_html_()
    assert "<table" in html and "lr" in html and "tree" in html
    path = results.write_report(tmp_path / "copy.html")
    assert path.read_text().startswith("<!DOCTYPE html>") or "<html" in path.read_text()[:200]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.compare("lr", "nope"), "compare: no estimator 'nope'"),
        (lambda r: r.leaderboard("nope"), "no dataset 'nope'"),
        (lambda r: r.leaderboard(metric="r2"), "no metric 'r2' for dataset 'mine'"),
        (lambda r: r.predictions("mine", "nope"), "no estimator 'nope'"),
    ],
)
def test_unknown_names_are_one_line_errors(ran, call, message):
    with pytest.raises(HarnessError, match=message):
        call(ran[3])


def test_an_invalid_dataframe_gets_the_key_path_error_a_file_gets(tmp_path):
    frame = _frame(40)
    frame.to_csv(tmp_path / "mine.csv", index=False)
    errors = []
    for source in (frame, str(tmp_path / "mine.csv")):
        with pytest.raises(SuiteError) as info:
            harness.run(_suite(source, categorical=["nope"]), out=tmp_path / "out")
        errors.append(info.value.problems)
    for problems in errors:
        assert len(problems) == 1 and "datasets[0].categorical[0]: column 'nope' not found in" in problems[0]
    assert "the DataFrame of dataset 'mine'" in errors[0][0]
    assert not (tmp_path / "out").exists()  # nothing fitted, nothing written


def test_a_suite_file_cannot_name_a_dataframe(tmp_path, cli):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ndatasets: [{name: d, source: 'dataframe:d', target: y}]\nestimators: [{name: t, model: decision_tree}]\n"
    )
    result = cli("validate", path)
    assert result.returncode == 2
    assert "datasets[0].source: 'dataframe:d' names a pandas DataFrame" in result.stderr


def test_open_without_a_store_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match=r"no results\.db here"):
        harness.open(tmp_path)
