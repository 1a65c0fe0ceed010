"""Leaderboards and output files, computed from the store alone."""

from __future__ import annotations

import math

import pandas as pd

from harness.leaderboard import dataset_table, load_leaderboards
from harness.report import write_outputs
from harness.runner import RunOptions, run_suite
from harness.spec import parse_suite
from harness.store import Store


def _rows(values: dict[str, list[float]], metric: str = "rmse") -> pd.DataFrame:
    recs = []
    for est, vals in values.items():
        for k, v in enumerate(vals):
            recs.append(
                {
                    "estimator": est,
                    "fold": k,
                    "status": "ok" if v is not None else "error",
                    metric: v,
                    "fit_time": 1.0,
                    "predict_time": 0.1,
                    "error": None if v is not None else "boom",
                }
            )
    return pd.DataFrame(recs)


def test_lower_is_better_ranks_the_right_way_and_ties_average():
    table = dataset_table(_rows({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [1.0, 1.0]}), ["rmse"], "rmse", {"rmse": False})
    ranks = dict(zip(table["estimator"], table["rank"], strict=True))
    assert ranks == {"a": 1.5, "c": 1.5, "b": 3.0}


def test_mean_and_sample_std_over_successful_folds_only():
    table = dataset_table(_rows({"a": [1.0, 3.0, None]}, "accuracy"), ["accuracy"], "accuracy", {"accuracy": True})
    rec = table.iloc[0]
    assert rec["accuracy_mean"] == 2.0 and math.isclose(rec["accuracy_std"], math.sqrt(2)) and rec["n_error"] == 1


def test_outputs_rebuild_from_the_store_alone(tmp_path):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 2},
            "datasets": [
                {"name": "iris", "source": "sklearn:iris"},
                {"name": "diabetes", "source": "sklearn:diabetes"},
            ],
            "estimators": [
                {"name": "tree", "model": "decision_tree"},
                {"name": "knn", "model": "sklearn.neighbors.KNeighborsClassifier", "tasks": ["classification"]},
            ],
        }
    )
    run_suite(suite, RunOptions(out=tmp_path))
    write_outputs(tmp_path)
    csv1, md1 = (tmp_path / "results.csv").read_text(), (tmp_path / "leaderboard.md").read_text()
    (tmp_path / "results.csv").unlink()
    (tmp_path / "leaderboard.md").unlink()
    write_outputs(tmp_path)
    assert (tmp_path / "results.csv").read_text() == csv1 and (tmp_path / "leaderboard.md").read_text() == md1
    frame = pd.read_csv(tmp_path / "results.csv")
    assert list(frame.columns[:5]) == ["dataset", "estimator", "repeat", "fold", "status"]
    assert {"accuracy", "r2", "rmse", "fit_time", "n_train", "error"} <= set(frame.columns)
    assert len(frame) == 8
    assert "Skipped: **knn** (declared for classification only)" in md1
    with Store(tmp_path / "results.db") as store:
        boards = load_leaderboards(store)
    assert set(boards.per_dataset) == {"iris", "diabetes"}
    iris = boards.per_dataset["iris"].set_index("estimator")
    expected = frame[(frame["dataset"] == "iris") & (frame["estimator"] == "tree")]["accuracy"].mean()
    assert iris.loc["tree", "accuracy_mean"] == expected
