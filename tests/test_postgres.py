"""Tuning studies in a real PostgreSQL server (`--storage postgresql://...`), started by this module.

Skips when PostgreSQL (Debian's `postgresql` package) or the psycopg driver (the `dask` extra) is missing,
unless HARNESS_REQUIRE_POSTGRES=1 (as in .ci/run), where it fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.tuning import make_storage
from tests.postgres import PostgresServer, require_postgres

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer(require_postgres())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(postgres, request) -> str:
    """A fresh database for this test; its URL."""
    return postgres.create_database("t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower())


def _finished(url: str, name: str | None = None) -> list:
    import optuna

    if name is None:
        (summary,) = optuna.get_all_study_summaries(url)  # exactly one study
        name = summary.study_name
    return [t for t in optuna.load_study(study_name=name, storage=url).trials if t.state.is_finished()]


# Each process waits for the other before its study starts, so both really run at once;
# its trials score `worker + x / 10`, so a trial's value names the process that ran it.
_WORKER = """
import os, sys, time
from pathlib import Path
from harness.tuning import StudyPlan, parse_space, run_study
url, worker, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
plan = StudyPlan(name="shared", storage=url, space=parse_space({"x": {"float": [0, 1]}}), metric="accuracy",
                 maximize=True, trials=12, pruner="none", sampler="random", seed=worker)
def evaluate(params, k, *_):
    time.sleep(0.05)
    return worker + params["x"] / 10
(barrier / f"ready-{worker}").touch()
deadline = time.time() + 30
while len(list(barrier.glob("ready-*"))) < 2 and time.time() < deadline:
    time.sleep(0.01)
run_study(plan, evaluate, 1)
"""


def test_two_processes_share_one_study_and_stop_together_at_its_budget(tmp_path, database):
    make_storage(database)  # the tables, as the runner creates them before its tasks start
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, database, str(i), str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for err in errors]
    finished = _finished(database, "shared")
    numbers = sorted(t.number for t in finished)
    assert numbers == list(range(len(finished)))  # unique, gapless trial numbers
    # Exactly the budget: not 24 (each process its own 12), and not 13 either (the trial the
    # other process is still running when the 12th finishes must not start).
    assert len(finished) == 12, f"{len(finished)} finished trials for a budget of 12"
    assert all(t.state.name == "COMPLETE" for t in finished)
    by_worker = Counter(int(t.value) for t in finished)
    assert set(by_worker) == {0, 1}, by_worker  # both ran some


def _suite(tmp_path: Path) -> Path:
    raw = {
        "name": "pg",
        "cv": {"folds": 2},
        "explain": {"enabled": False},
        "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [
            {
                "name": "tree",
                "model": "decision_tree",
                "tune": {"mode": "tune_then_cv", "trials": 4, "inner_folds": 2},
            }
        ],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _assert_every_trial_in_postgres(tmp_path: Path, url: str) -> None:
    finished = _finished(url)
    assert len(finished) == 4 and all(t.state.name == "COMPLETE" for t in finished)
    assert not (tmp_path / "out" / "studies.db").exists()  # nothing went to the default SQLite file


@pytest.mark.slow
def test_a_run_with_processes_keeps_its_study_in_postgres(tmp_path, cli, database):
    result = cli("run", _suite(tmp_path), "--out", tmp_path / "out", "--storage", database, "--n-jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_every_trial_in_postgres(tmp_path, database)


@pytest.mark.slow
def test_a_run_on_a_cluster_keeps_its_study_in_postgres(tmp_path, cli, database):
    pytest.importorskip("distributed")
    from tests.test_cluster import LoopbackCluster

    cluster = LoopbackCluster(2)
    try:
        result = cli(
            "run", _suite(tmp_path), "--out", tmp_path / "out", "--storage", database, "--cluster", cluster.address
        )
    finally:
        cluster.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cluster tcp://127.0.0.1" in result.stdout
    _assert_every_trial_in_postgres(tmp_path, database)


@pytest.mark.slow
def test_cluster_workers_share_one_study_in_postgres_and_stop_together_at_its_budget(tmp_path, cli, database):
    pytest.importorskip("distributed")
    from tests.test_cluster import SHARED, LoopbackCluster, suite_file

    cluster = LoopbackCluster(2)
    try:
        path = suite_file(tmp_path, [SHARED], folds=2)
        result = cli("run", path, "--out", tmp_path / "out", "--storage", database, "--cluster", cluster.address,
                     "--allow-module", "tests", "-d", "wine")  # fmt: skip
    finally:
        cluster.close()
    assert result.returncode == 0, result.stdout + result.stderr
    finished = _finished(database)
    assert len(finished) == 8 and all(t.state.name == "COMPLETE" for t in finished)
    assert len({t.user_attrs["process"] for t in finished}) == 2, "one worker ran every trial"
    assert not (tmp_path / "out" / "studies.db").exists()
