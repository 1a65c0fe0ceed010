"""Datasets reach the engine's workers through shared memory: once per worker, the same results."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import harness.engine.shared as shared
from harness.datasets import Dataset, load_dataset
from harness.engine import execute
from harness.engine.limits import start_worker
from harness.runner import RunOptions, prepare
from harness.spec import DatasetSpec, parse_suite


@pytest.fixture
def everything_shared(monkeypatch):
    monkeypatch.setattr(shared, "MIN_SHARED_BYTES", 0)  # tiny test data takes the shared path too


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    frame.insert(2, "colour", rng.choice(["red", "blue", None], n))  # a text column between numeric ones
    frame.loc[::9, "b"] = np.nan
    frame["y"] = (frame["a"] + rng.normal(size=n) > 0).astype(int)
    return frame


def _suite(path, estimators=None):
    return parse_suite(
        {
            "name": "shared",
            "cv": {"folds": 3},
            "explain": {"enabled": False},
            "datasets": [{"name": "d", "source": str(path), "target": "y"}],
            "estimators": estimators
            or [
                {"name": "linear", "model": "linear"},
                {"name": "hgb", "model": "hist_gradient_boosting", "params": {"max_iter": 10}},
            ],
        }
    )


def _scores(results) -> dict:
    return {(r.estimator, r.fold): (r.status, r.error, r.metrics, r.y_pred.tolist()) for r in results}


def test_workers_fed_through_shared_memory_score_as_the_driver_does(tmp_path, everything_shared):
    path = tmp_path / "d.csv"
    _frame(300).to_csv(path, index=False)
    plan = prepare(_suite(path), RunOptions(out=tmp_path / "out", n_jobs=2, threads=1))
    serial = _scores(execute(plan.tasks, 1))
    parallel = _scores(execute(plan.tasks, 2, preload=plan.preload))
    assert parallel == serial and all(status == "ok" for status, *_ in serial.values())


def test_a_task_carries_a_token_not_its_data(tmp_path, everything_shared):
    """What is pickled per task does not grow with the dataset; the data goes once per worker."""
    sizes = {}
    for n in (1_000, 50_000):
        path = tmp_path / f"d{n}.csv"
        _frame(n).to_csv(path, index=False)
        plan = prepare(_suite(path, [{"name": "linear", "model": "linear"}]), RunOptions(n_jobs=2))
        pool = shared.Shared()
        try:
            task = plan.tasks[0]
            payload, files = pool.dumps(task)
            split_bytes = len(pickle.dumps((task.split.train, task.split.test)))
            sizes[n] = len(payload) - split_bytes
            assert len(files) == 1 and pool.dumps(plan.tasks[1])[1][0] is files[0]  # one file per dataset
        finally:
            pool.close()
    assert sizes[50_000] == sizes[1_000] < 5_000


def test_a_worker_maps_each_dataset_once_and_reads_it_back_exactly(tmp_path, everything_shared):
    path = tmp_path / "d.csv"
    _frame(200).to_csv(path, index=False)
    ds = load_dataset(DatasetSpec(name="d", source=str(path), target="y"))
    pool, worker = shared.Shared(), start_worker()
    try:
        for _ in range(2):
            worker.submit(_Echo(ds), pool)
            back, usable = worker.collect()
            assert usable
        assert len(worker.mapped) == 1
    finally:
        worker.stop()
        pool.close()
    pd.testing.assert_frame_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.y, ds.y)
    assert (back.fingerprint, back.categorical, back.has_missing) == (ds.fingerprint, ds.categorical, True)


def test_small_or_unshareable_datasets_travel_pickled(tmp_path):
    ds = Dataset("tiny", pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]}), np.array([0, 1, 0, 1]), "classification", [], "x")
    pool = shared.Shared()
    try:
        assert pool.dumps(_Echo(ds))[1] == []
    finally:
        pool.close()


class _Echo:
    """A stand-in task: the worker runs it through run_task, which does not know it, and sends back its crash."""

    def __init__(self, ds: Dataset) -> None:
        self.ds, self.timeout_s = ds, None

    def crashed(self, error: str, detail: str | None = None, **kw) -> Dataset:
        return self.ds
