"""The results store: one row per key, committed at once, predictions round-trip without pickle."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from harness.errors import StoreError
from harness.store import FoldResult, Store


def _result(key: str, status: str = "ok", acc: float | None = 0.9) -> FoldResult:
    return FoldResult(
        key,
        "iris",
        "tree",
        "classification",
        0,
        1,
        status,
        metrics={"accuracy": acc},
        fit_time=0.1,
        predict_time=0.01,
        n_train=100,
        n_test=50,
        test_index=np.arange(5),
        y_true=np.array([0, 1, 2, 1, 0]),
        y_pred=np.array([0, 1, 1, 1, 0]),
        proba=np.full((5, 3), 1 / 3),
    )


def test_rows_are_committed_at_once_and_visible_to_another_connection(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1"), "run", 0, {"class": "x"}, {"python": "3"}, "fp")
        with sqlite3.connect(tmp_path / "r.db") as other:  # as a killed process's successor would see it
            assert other.execute("SELECT key, status FROM results").fetchall() == [("k1", "ok")]


def test_same_key_never_duplicates(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1", "error", None), "run1", 0, {}, {}, "fp")
        store.add(_result("k1", "ok", 0.8), "run2", 0, {}, {}, "fp")
        rows = store.results()
        assert len(rows) == 1 and rows["status"].iloc[0] == "ok" and rows["accuracy"].iloc[0] == 0.8
        assert store.done_keys(("ok",)) == {"k1"} and store.done_keys(("error",)) == set()


def test_predictions_round_trip(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1"), "run", 0, {}, {}, "fp")
        pred = store.predictions("k1")
    np.testing.assert_array_equal(pred["test_index"], np.arange(5))
    np.testing.assert_array_equal(pred["y_pred"], [0, 1, 1, 1, 0])
    assert pred["proba"].shape == (5, 3)


def test_missing_or_foreign_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no results store"):
        Store(tmp_path / "nope.db", create=False)
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a harness results store"):
        Store(bad)


def test_explanations_round_trip_without_pickle_and_follow_their_fold(tmp_path):
    values = np.random.default_rng(0).normal(size=(4, 3, 1)).astype(np.float32)
    result = _result("k1")
    result.explanation = ({"values": values, "rows": np.arange(4)}, {"features": ["a", "b", "c"], "explainer": "tree"})
    with Store(tmp_path / "r.db") as store:
        store.add(result, "run", 0, {}, {}, "fp")
        arrays, meta = store.explanations(["k1", "missing"])["k1"]
        np.testing.assert_array_equal(arrays["values"], values)
        assert arrays["values"].dtype == np.float32 and meta["features"] == ["a", "b", "c"]
        store.add(_result("k1", status="error", acc=None), "run2", 0, {}, {}, "fp")  # a rerun that failed
        assert store.explanations(["k1"]) == {}
