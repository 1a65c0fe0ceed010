"""A suite on a real Dask cluster: a scheduler and two workers on loopback, started by the test.

The workers run in a private mount namespace where pytest's temporary folders are an empty
tmpfs, so, like workers on other machines, they cannot see the driver's suite, data copies
or output folder.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.engine.cluster import version_warnings
from harness.store import Store
from tests.test_runner import _rows  # rows committed so far, 0 while the store is not there yet

pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hidden() -> list[str]:
    """Wrap a worker command so that it cannot see pytest's temporary folders, where the driver's
    suites, data copies and outputs live: an empty tmpfs is mounted over them in a private mount
    namespace (root and unshare needed; else the command runs as is). Only those folders are
    hidden, not all of /tmp: the checkout and its virtual environment may live there.
    """
    hide = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    if os.geteuid() != 0 or shutil.which("unshare") is None or not hide.is_dir():
        return []
    return ["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{hide}" && exec "$@"', "sh"]


class LoopbackCluster:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1; stopped (process groups) at the end."""

    def __init__(self, n_workers: int = 2) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        port = self.address.rsplit(":", 1)[1]
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--no-dashboard",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        ]
        for i in range(n_workers):
            worker = [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--nthreads",
                "1",
                "--name",
                f"w{i}",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ]
            self.procs.append(
                subprocess.Popen(
                    [*_hidden(), *worker],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        self.wait_for_workers(n_workers)

    def wait_for_workers(self, n: int, limit_s: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=limit_s)
            self.workers = sorted(client.scheduler_info()["workers"])

    def worker_pids(self) -> list[int]:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            return list(client.run(os.getpid).values())

    def close(self) -> None:
        for proc in self.procs:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp_path_factory.getbasetemp()  # pytest's temporary folders exist, so the workers can hide them
    c = LoopbackCluster(2)
    yield c
    c.close()


def suite_file(tmp_path: Path, estimators: list[dict], folds: int = 3) -> Path:
    frame = pd.read_csv(ROOT / "datasets" / "penguins.csv")
    frame.to_csv(tmp_path / "penguins.csv", index=False)  # under /tmp: the workers cannot read it
    raw = {
        "name": "cluster",
        "cv": {"folds": folds},
        "explain": {"enabled": False},
        "metrics": {"classification": ["accuracy", "log_loss"], "regression": ["r2"]},
        "datasets": [
            {"name": "penguins", "source": "penguins.csv", "target": "species", "drop": ["year"]},
            {"name": "wine", "source": "sklearn:wine"},
        ],
        "estimators": estimators,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


ESTIMATORS = [
    {"name": "tree", "model": "decision_tree"},
    {"name": "lgbm", "model": "lightgbm", "params": {"n_estimators": 20}, "timeout_s": 60},
    {"name": "cell", "model": "decision_tree", "tune": {"mode": "tune_then_cv", "trials": 4, "inner_folds": 2}},
    {"name": "nested", "model": "decision_tree", "tune": {"trials": 2, "inner_folds": 2}},
]


@pytest.mark.slow
def test_a_suite_on_the_cluster_scores_as_a_local_run_and_stores_every_trial_at_the_driver(tmp_path, cli, cluster):
    from distributed import Client

    path = suite_file(tmp_path, ESTIMATORS)
    with Client(cluster.address) as client:  # the workers really cannot see the driver's files
        assert not any(client.run(os.path.exists, str(path)).values())
    remote = cli("run", path, "--out", tmp_path / "remote", "--cluster", cluster.address, "--threads", "1")
    assert remote.returncode == 0, remote.stderr
    assert "cluster tcp://127.0.0.1" in remote.stdout and "2 workers" in remote.stdout
    local = cli("run", path, "--out", tmp_path / "local", "--n-jobs", "2", "--threads", "1")
    assert local.returncode == 0, local.stderr
    with Store(tmp_path / "remote" / "results.db") as store:
        rows = store.results()
        settings = store.latest_run()["settings"]
    theirs = Store(tmp_path / "local" / "results.db").results()
    assert rows["key"].is_unique and len(rows) == len(theirs) == 2 * 4 * 3
    assert set(rows["worker"]) == set(cluster.workers)  # every fold names the worker it ran on
    merged = rows.merge(theirs, on="key", suffixes=("", "_local"))
    for metric in ("accuracy", "log_loss"):
        pd.testing.assert_series_equal(merged[metric], merged[f"{metric}_local"], check_names=False)
    with sqlite3.connect(tmp_path / "remote" / "studies.db") as db:
        trials = db.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    assert trials == 2 * 4 + 2 * 3 * 2  # two tune_then_cv studies of 4, six nested studies of 2
    assert '"executor": "dask"' in settings and "w0" in settings and "w1" in settings
    csv = pd.read_csv(tmp_path / "remote" / "results.csv")
    assert set(csv["worker"]) == set(cluster.workers)
    report = (tmp_path / "remote" / "report.html").read_text()
    assert f"Dask workers of {cluster.address}" in report and "w0 (tcp://127.0.0.1:" in report


SHARED = {
    "name": "shared",
    "model": "tests.estimators.SleepyClassifier",
    "tune": {
        "mode": "tune_then_cv",
        "trials": 8,
        "inner_folds": 2,
        "workers": 2,
        "space": {"seconds": {"float": [0.1, 0.15]}},
    },
}


def shared_trials(storage: str) -> list:
    """The finished trials of the run's one study."""
    import optuna

    (summary,) = optuna.get_all_study_summaries(storage)
    return [
        t for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials if t.state.is_finished()
    ]


@pytest.mark.slow
def test_two_workers_share_one_study_through_the_drivers_storage(tmp_path, cli, cluster):
    path = suite_file(tmp_path, [SHARED], folds=2)
    out = tmp_path / "out"
    result = cli("run", path, "--out", out, "--cluster", cluster.address, "--allow-module", "tests", "-d", "wine")
    assert result.returncode == 0, result.stdout + result.stderr
    finished = shared_trials(f"sqlite:///{out / 'studies.db'}")
    assert len(finished) == 8 and all(t.state.name == "COMPLETE" for t in finished)
    assert len({t.user_attrs["process"] for t in finished}) == 2, "one worker ran every trial"
    with Store(out / "results.db") as store:
        steps = store.steps()
    runners = steps[steps["description"].str.contains("runner")]
    assert len(runners) == 2 and set(runners["worker"]) == set(cluster.workers)


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_on_the_same_cluster(tmp_path, cluster):
    slow = {"name": "slow", "model": "tests.estimators.SleepyClassifier", "params": {"seconds": 1.0}}
    path = suite_file(tmp_path, [slow], folds=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--cluster", cluster.address,
           "--allow-module", "tests"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _rows(out / "results.db") < 2:
        assert time.time() < deadline and proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    kept = _rows(out / "results.db")
    assert 2 <= kept < 8
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    with Store(out / "results.db") as store:
        rows = store.results()
        runs = [r for (r,) in store.db.execute("SELECT run_id FROM runs ORDER BY started")]
    assert len(rows) == 8 and rows["key"].is_unique and (rows["status"] == "ok").all()
    assert (rows["run_id"] == runs[-1]).sum() == 8 - kept  # the rerun computed only what was missing


@pytest.mark.slow
def test_a_worker_killed_mid_run_costs_nothing(tmp_path, cli):
    own = LoopbackCluster(2)
    try:
        slow = {"name": "slow", "model": "tests.estimators.SleepyClassifier", "params": {"seconds": 1.0}}
        path = suite_file(tmp_path, [slow], folds=4)
        out = tmp_path / "out"
        cmd = [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(path),
            "--out",
            str(out),
            "--cluster",
            own.address,
            "--allow-module",
            "tests",
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 120
        while not (out / "results.db").exists() or _rows(out / "results.db") < 1:
            assert time.time() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        os.kill(own.worker_pids()[0], signal.SIGKILL)  # its nanny starts another; its task runs again
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        rows = Store(out / "results.db").results()
        assert len(rows) == 2 * 4 and rows["key"].is_unique and (rows["status"] == "ok").all()
    finally:
        own.close()


def test_an_unreachable_scheduler_is_one_line_and_exit_2_fast(tmp_path, cli):
    path = suite_file(tmp_path, [{"name": "tree", "model": "decision_tree"}])
    start = time.perf_counter()
    result = cli("run", path, "--out", tmp_path / "out", "--cluster", f"tcp://127.0.0.1:{_free_port()}")
    assert time.perf_counter() - start < 30
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()
        == [f"error: --cluster {result.args[-1]}: cannot reach the Dask scheduler within 10 s (OSError)"]
        or "cannot reach the Dask scheduler within 10 s" in result.stderr
    )
    assert not (tmp_path / "out" / "results.db").exists()


# A user's script without an `if __name__ == "__main__":` guard: the local cluster's workers
# are forked from the engine's fork server, and must neither run it again nor need it.
_UNGUARDED = """
import sys
from pathlib import Path
from harness.planner import RunOptions
from harness.runner import run_suite
from harness.spec import load_suite
out, marker = Path(sys.argv[2]), Path(sys.argv[3])
with marker.open("a") as f:
    f.write("ran\\n")
summary = run_suite(load_suite(sys.argv[1]), RunOptions(out=out, cluster="local:2", threads=1))
print("exit", summary.exit_code)
"""


@pytest.mark.slow
def test_a_local_cluster_scores_as_local_processes_and_never_reruns_the_callers_script(tmp_path, cli):
    path = suite_file(tmp_path, ESTIMATORS[:2], folds=2)
    marker, script = tmp_path / "marker", tmp_path / "script.py"
    script.write_text(_UNGUARDED)  # a file: a script given with -c is never run again anyway
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path / "cluster"), str(marker)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "exit 0" in run.stdout, run.stderr[-3000:]
    assert marker.read_text() == "ran\n", "a worker ran the caller's script again"
    local = cli("run", path, "--out", tmp_path / "local", "--n-jobs", "2", "--threads", "1")
    assert local.returncode == 0, local.stderr
    rows = Store(tmp_path / "cluster" / "results.db").results()
    theirs = Store(tmp_path / "local" / "results.db").results()
    assert len(rows) == len(theirs) == 2 * 2 * 2 and rows["worker"].str.startswith("tcp://127.0.0.1:").all()
    assert rows["worker"].nunique() == 2
    merged = rows.merge(theirs, on="key", suffixes=("", "_local"))
    pd.testing.assert_series_equal(merged["accuracy"], merged["accuracy_local"], check_names=False)


@pytest.mark.parametrize("address", ["local:0", "local:x", "nonsense"])
def test_a_malformed_cluster_address_is_bad_input(tmp_path, cli, address):
    path = suite_file(tmp_path, [{"name": "tree", "model": "decision_tree"}])
    result = cli("run", path, "--out", tmp_path / "out", "--cluster", address)
    assert result.returncode == 2 and f"--cluster {address}:" in result.stderr


def test_a_worker_with_other_versions_is_named():
    ours = {
        "harness": "0.2.0",
        "scikit-learn": "1.7.0",
        "numpy": "2.0",
        "lightgbm": "4",
        "xgboost": "3",
        "torch": "2.13.0",
        "optuna": "4",
    }
    workers = [
        {"address": "tcp://a:1", "host": "a", "versions": dict(ours)},
        {"address": "tcp://b:1", "host": "b", "versions": {**ours, "scikit-learn": "1.6.1"}},
    ]
    assert version_warnings(workers, ours) == [
        "worker tcp://b:1 (b) has scikit-learn 1.6.1, the driver 1.7.0: its scores may differ"
    ]
