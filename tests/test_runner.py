"""Resume: a run killed with SIGKILL keeps its finished folds; a rerun computes only the rest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.runner import RunOptions, prepare, run_suite
from harness.spec import load_suite, parse_suite
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _suite_file(tmp_path: Path, log: Path, seconds: float) -> Path:
    suite = {
        "name": "resume",
        "cv": {"scheme": "stratified_kfold", "folds": 4},
        "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}, {"name": "wine", "source": "sklearn:wine"}],
        "estimators": [
            {
                "name": "slow",
                "model": "tests.estimators.CountingClassifier",
                "params": {"log": str(log), "seconds": seconds},
            },
            {"name": "tree", "model": "decision_tree"},
        ],
    }
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _start_run(tmp_path: Path, seconds: float = 0.4, **popen_kw) -> tuple[subprocess.Popen, list[str], Path, Path]:
    """`harness run` of the resume suite in a subprocess: (process, command, fits log, out dir)."""
    log = tmp_path / "fits.log"
    path = _suite_file(tmp_path, log, seconds=seconds)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--allow-module", "tests"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, **popen_kw)
    return proc, cmd, log, out


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates_or_refits(tmp_path):
    proc, cmd, log, out = _start_run(tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    db = out / "results.db"
    deadline = time.time() + 120
    while _rows(db) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    kept = _rows(db)
    total = 2 * 2 * 4  # datasets x estimators x folds
    assert 3 <= kept < total
    fits_before = len(log.read_text().splitlines())

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    with Store(db) as store:
        rows = store.results()
        runs = store.db.execute("SELECT run_id FROM runs ORDER BY started").fetchall()
    assert len(rows) == total and rows["key"].is_unique
    assert set(rows[["dataset", "estimator", "repeat", "fold"]].itertuples(index=False)) == {
        (d, e, 0, k) for d in ("iris", "wine") for e in ("slow", "tree") for k in range(4)
    }
    # Only the folds missing after the kill were computed by the rerun.
    assert (rows["run_id"] == runs[1][0]).sum() == total - kept
    slow_done_before = len(rows[(rows["estimator"] == "slow") & (rows["run_id"] == runs[0][0])])
    fits_after = len(log.read_text().splitlines())
    assert fits_after - fits_before == 8 - slow_done_before


def test_rerun_skips_done_folds_and_force_recomputes(tmp_path):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 3},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        }
    )
    first = run_suite(suite, RunOptions(out=tmp_path))
    assert sum(first.computed.values()) == 3 and first.reused == 0
    second = run_suite(suite, RunOptions(out=tmp_path))
    assert sum(second.computed.values()) == 0 and second.reused == 3
    forced = run_suite(suite, RunOptions(out=tmp_path, force=True))
    assert sum(forced.computed.values()) == 3
    with Store(tmp_path / "results.db") as store:
        assert len(store.results()) == 3


def test_changed_params_make_new_keys_and_old_rows_are_not_current(tmp_path):
    base = {
        "name": "t",
        "cv": {"folds": 3},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "tree", "model": "decision_tree", "params": {"max_depth": 1}}],
    }
    run_suite(parse_suite(base), RunOptions(out=tmp_path))
    base["estimators"][0]["params"]["max_depth"] = 3
    summary = run_suite(parse_suite(base), RunOptions(out=tmp_path))
    assert sum(summary.computed.values()) == 3
    with Store(tmp_path / "results.db") as store:
        assert len(store.results()) == 6  # history kept
        assert len(store.results(store.current_keys())) == 3


def test_filters_restrict_the_run_and_add_up(tmp_path):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 2},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}, {"name": "wine", "source": "sklearn:wine"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}, {"name": "linear", "model": "linear"}],
        }
    )
    run_suite(suite, RunOptions(out=tmp_path, datasets=("iris",), estimators=("tree",)))
    with Store(tmp_path / "results.db") as store:
        assert set(store.results()[["dataset", "estimator"]].itertuples(index=False)) == {("iris", "tree")}
    run_suite(suite, RunOptions(out=tmp_path))
    with Store(tmp_path / "results.db") as store:
        assert len(store.results(store.current_keys())) == 8


def test_same_suite_same_keys_in_another_process(tmp_path):
    """Keys (and so resume) do not depend on the process: same suite, same keys."""
    path = ROOT / "suites" / "smoke.yaml"
    keys = sorted(t.key for t in prepare(load_suite(path)).tasks)
    code = (
        "from harness.spec import load_suite; from harness.runner import prepare; "
        f"print('\\n'.join(sorted(t.key for t in prepare(load_suite({str(path)!r})).tasks)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == keys


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_finished_folds(tmp_path):
    # Slow fits (1 s) leave a wide window: on a loaded machine the poll can lag by seconds.
    # The child gets Ctrl-C's default disposition: started in the background by a shell
    # without job control (`bash -c '... &'`), the whole test tree inherits SIGINT ignored.
    proc, _, _, out = _start_run(
        tmp_path,
        seconds=1.0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while _rows(out / "results.db") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    with Store(out / "results.db") as store:
        assert len(store.results()) >= 2
        assert store.latest_run()["status"] == "interrupted"


def test_dataset_too_small_for_the_folds_is_bad_input(tmp_path):
    from harness.errors import SuiteError

    (tmp_path / "tiny.csv").write_text("a,y\n1,0\n2,1\n3,0\n4,1\n")
    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "tiny", "source": "tiny.csv", "target": "y"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        },
        label=str(tmp_path / "s.yaml"),
        path=tmp_path / "s.yaml",
    )
    with pytest.raises(
        SuiteError, match=r"s\.yaml: datasets\[0\]: cannot split for cv \(stratified_kfold\): .*n_splits=5"
    ):
        prepare(suite)


def test_typo_in_a_kwargs_estimator_parameter_is_caught():
    from harness.errors import SuiteError

    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "lgbm", "model": "lightgbm", "params": {"n_estimator": 5}}],
        }
    )
    with pytest.raises(SuiteError, match=r"estimators\[0\]\.params\.n_estimator: .*did you mean 'n_estimators'"):
        prepare(suite)


def test_unknown_filter_lists_the_names():
    from harness.errors import SuiteError

    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        }
    )
    with pytest.raises(SuiteError, match=r"--dataset zzz: no such name in the suite \(the suite has: iris\)"):
        prepare(suite, RunOptions(datasets=("zzz",)))


def test_several_seeds_rerun_every_fold_with_its_own_splits_and_random_state(tmp_path):
    raw = {
        "name": "seeds",
        "seeds": [0, 1],
        "explain": {"enabled": False},  # (on, only the first seed's folds would be explained)
        "cv": {"folds": 3},
        "metrics": {"classification": ["accuracy"]},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "rf", "model": "random_forest", "params": {"n_estimators": 5}}],
    }
    suite = parse_suite(raw)
    plan = prepare(suite)
    assert [t.seed for t in plan.tasks] == [0, 0, 0, 1, 1, 1]
    by_seed = {s: [t for t in plan.tasks if t.seed == s] for s in (0, 1)}
    assert by_seed[0][0].split.test.tolist() != by_seed[1][0].split.test.tolist()
    assert by_seed[0][0].resolved.params["random_state"] == 0 and by_seed[1][0].resolved.params["random_state"] == 1
    # a single-seed suite with seed 1 plans exactly the second seed's folds
    single = prepare(parse_suite({**raw, "seeds": None, "seed": 1}))
    assert [t.key for t in single.tasks] == [t.key for t in by_seed[1]]
    run_suite(suite, RunOptions(out=tmp_path))
    with Store(tmp_path / "results.db") as store:
        rows = store.results(store.current_keys())
    assert sorted(rows["seed"].tolist()) == [0, 0, 0, 1, 1, 1]
