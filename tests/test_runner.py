"""Resume: a run killed with SIGKILL keeps its finished folds; a rerun computes only the rest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
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


def _poll(proc: subprocess.Popen, done: Callable[[], bool], limit_s: float = 120) -> None:
    """Wait until `done()` holds, the process ends or the limit passes (the caller asserts which)."""
    deadline = time.time() + limit_s
    while not done() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)


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
    _poll(proc, lambda: _rows(db) >= 3)
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


@pytest.mark.parametrize("change", ["data file", "harness version"])
def test_a_fold_keyed_anew_counts_once_under_its_new_key(tmp_path, monkeypatch, change):
    """The same suite text after the CSV changed, or under a new harness version (whose defaults
    may differ): every fold is recomputed, and the reports' current rows are the new ones only."""
    import harness.planner

    frame = pd.DataFrame({"x": np.arange(60.0), "z": np.arange(60.0) % 7, "y": np.arange(60) % 2})
    frame.to_csv(tmp_path / "d.csv", index=False)
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 3},
            "datasets": [{"name": "d", "source": str(tmp_path / "d.csv"), "target": "y"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        }
    )
    out = tmp_path / "out"
    monkeypatch.setattr(harness.planner, "__version__", "0.2.0")
    run_suite(suite, RunOptions(out=out))
    if change == "data file":
        frame.iloc[:50].to_csv(tmp_path / "d.csv", index=False)
    else:
        monkeypatch.setattr(harness.planner, "__version__", "0.3.0")
    summary = run_suite(suite, RunOptions(out=out))
    assert sum(summary.computed.values()) == 3 and summary.reused == 0
    with Store(out / "results.db") as store:
        current = store.results(store.current_keys())
        assert len(store.results()) == 6 and len(current) == 3  # history kept, each fold once
        assert set(current["run_id"]) == {store.latest_run()["run_id"]}
        assert current["n_test"].sum() == (50 if change == "data file" else 60)


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
    _poll(proc, lambda: _rows(out / "results.db") >= 2)
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


# ---------------------------------------------------------------- studies and pretraining are tasks too


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _tiny_csvs(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(260, 4))
    frame = pd.DataFrame(X, columns=list("abcd")).assign(y=(X[:, 0] + X[:, 1] > 0).astype(int))
    frame.iloc[:200].to_csv(tmp_path / "src.csv", index=False)
    frame.iloc[200:].to_csv(tmp_path / "target.csv", index=False)
    return tmp_path / "src.csv", tmp_path / "target.csv"


def _steps_suite(tmp_path: Path, estimators: list[dict]) -> Path:
    source, target = _tiny_csvs(tmp_path)
    return _write(
        tmp_path,
        {
            "name": "steps",
            "cv": {"folds": 2},
            "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
            "explain": {"enabled": False},
            "datasets": [
                {"name": "src", "source": str(source), "target": "y"},
                {"name": "target", "source": str(target), "target": "y"},
            ],
            "estimators": [{"name": "tree", "model": "decision_tree"}, *estimators],
        },
    )


SLOW_STUDY = {
    "name": "sleepy",
    "model": "tests.estimators.SleepyClassifier",
    "timeout_s": 2,
    "tune": {"mode": "tune_then_cv", "trials": 3, "space": {"seconds": {"float": [60, 90]}}},
}
SLOW_PRETRAIN = {
    "name": "mlp_ft",
    "model": "mlp",
    "timeout_s": 2,
    "params": {"hidden_sizes": [8], "max_epochs": 2},
    "pretrain": {"dataset": "src", "params": {"batch_size": 1, "max_epochs": 100000, "early_stopping": False}},
    "finetune": "all",
}
RAISING_STUDY = {
    "name": "broken",
    "model": "tests.estimators.RaisingClassifier",
    "tune": {"mode": "tune_then_cv", "trials": 2, "inner_folds": 2, "space": {"message": {"categorical": ["nope"]}}},
}
RAISING_PRETRAIN = {
    "name": "mlp_bad",
    "model": "mlp",
    "params": {"hidden_sizes": [8], "max_epochs": 2},
    # a combination only fit can judge (nesterov needs momentum), in the pretraining parameters alone
    "pretrain": {"dataset": "src", "params": {"optimizer": "sgd", "momentum": 0.0, "nesterov": True}},
    "finetune": "all",
}


@pytest.mark.parametrize(
    ("estimator", "status", "cause"),
    [
        (SLOW_STUDY, "timeout", "tune_then_cv study of sleepy on {ds} timed out after 2 s"),
        (SLOW_PRETRAIN, "timeout", "pretraining mlp_ft on src timed out after 2 s"),
        (RAISING_STUDY, "error", "tune_then_cv study of broken on {ds} failed: StudyFailed: every trial failed (2)"),
        (RAISING_PRETRAIN, "error", "pretraining mlp_bad on src failed: ValueError: nesterov=True needs momentum"),
    ],
    ids=["study-timeout", "pretrain-timeout", "study-raises", "pretrain-raises"],
)
def test_a_failed_study_or_pretraining_becomes_rows_and_the_run_goes_on(tmp_path, cli, estimator, status, cause):
    path = _steps_suite(tmp_path, [estimator])
    out = tmp_path / "out"
    start = time.perf_counter()
    result = cli("run", path, "--out", out, "--allow-module", "tests", "--n-jobs", "2")
    assert time.perf_counter() - start < 60, "a study or pretraining ran past its time limit"
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    with Store(out / "results.db") as store:
        rows = store.results()
        steps = store.steps()
        assert store.latest_run()["status"] == "finished"
    mine = rows[rows["estimator"] == estimator["name"]]
    failed = mine[mine["status"] != "skipped"]  # a pretrained model skips its own source
    assert len(failed) > 0 and set(failed["status"]) == {status}
    for ds, error in zip(failed["dataset"], failed["error"], strict=True):
        assert error.startswith(cause.format(ds=ds)), error
    assert (rows.loc[rows["estimator"] == "tree", "status"] == "ok").all()
    assert set(steps["status"]) == {status}
    assert cli("report", out).returncode == 0


def test_two_studies_run_at_the_same_time_with_two_jobs(tmp_path):
    tuned = {
        "name": "counting",
        "model": "tests.estimators.CountingClassifier",
        "tune": {"mode": "tune_then_cv", "trials": 2, "inner_folds": 2, "space": {"seconds": {"float": [0.4, 0.5]}}},
    }
    suite = load_suite(_steps_suite(tmp_path, [tuned]))
    from harness.registry import allowed_modules

    options = RunOptions(out=tmp_path / "out", n_jobs=2, allow_modules=allowed_modules(("tests",)))
    summary = run_suite(suite, options)
    assert summary.exit_code == 0
    studies = [s for s in summary.steps if s.kind == "study"]
    assert len(studies) == 2 and all(s.status == "ok" for s in studies)
    (a, b) = studies
    assert max(a.started, b.started) < min(a.finished, b.finished), "the two studies ran one after the other"
    # a rerun reuses everything: no study, no fold
    again = run_suite(suite, options)
    assert sum(again.computed.values()) == 0 and again.steps == []


def test_two_workers_share_one_study_and_stop_together_at_its_budget(tmp_path):
    import optuna

    tuned = {
        "name": "counting",
        "model": "tests.estimators.CountingClassifier",
        "tune": {
            "mode": "tune_then_cv",
            "trials": 6,
            "inner_folds": 2,
            "workers": 2,
            "space": {"seconds": {"float": [0.1, 0.2]}},
        },
    }
    path = _write(
        tmp_path,
        {
            "name": "shared",
            "cv": {"folds": 2},
            "explain": {"enabled": False},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [tuned],
        },
    )
    from harness.registry import allowed_modules

    options = RunOptions(out=tmp_path / "out", n_jobs=2, allow_modules=allowed_modules(("tests",)))
    summary = run_suite(load_suite(path), options)
    assert summary.exit_code == 0
    runners = [s for s in summary.steps if "runner" in s.description]
    (study,) = [s for s in summary.steps if "runner" not in s.description]
    assert len(runners) == 2 and all(s.status == "ok" for s in summary.steps)
    a, b = runners
    assert max(a.started, b.started) < min(a.finished, b.finished), "the runners ran one after the other"
    assert study.started >= max(a.finished, b.finished)  # it reads the study once both are done
    storage = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    finished = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.state.is_finished()]
    assert len(finished) == 6, "the shared study ran past (or short of) its budget"
    assert len({t.user_attrs["process"] for t in finished}) == 2, "one worker ran every trial"
    assert study.value.n_complete == 6 and study.value.wall_s == max(a.value.wall_s, b.value.wall_s)
    with Store(tmp_path / "out" / "results.db") as store:
        rows = store.results()
    assert (rows["status"] == "ok").all() and len(rows) == 2
    assert all(x["tuning"]["n_complete"] == 6 for x in rows["extra"])
    again = run_suite(load_suite(path), options)  # a rerun reuses the folds: no runner, no study
    assert sum(again.computed.values()) == 0 and again.steps == []


def test_a_shared_study_whose_every_trial_fails_names_the_study_once(tmp_path, cli):
    broken = {**RAISING_STUDY, "tune": {**RAISING_STUDY["tune"], "workers": 2}}
    out = tmp_path / "out"
    result = cli("run", _steps_suite(tmp_path, [broken]), "--out", out, "--allow-module", "tests", "--n-jobs", "2")
    assert result.returncode == 1, result.stderr
    with Store(out / "results.db") as store:
        rows = store.results()
    failed = rows[rows["estimator"] == "broken"]
    assert len(failed) and (failed["status"] == "error").all()
    for ds, error in zip(failed["dataset"], failed["error"], strict=True):
        assert error.startswith(f"tune_then_cv study of broken on {ds} failed: StudyFailed: every trial failed (2)")


def test_a_run_that_fails_inside_is_closed_as_failed_with_the_reason(tmp_path, monkeypatch):
    suite = load_suite(_steps_suite(tmp_path, []))

    def broken_add(self, result, run_id):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "add", broken_add)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_suite(suite, RunOptions(out=tmp_path / "out"))
    monkeypatch.undo()
    with Store(tmp_path / "out" / "results.db") as store:
        run = store.latest_run()
    assert run["status"] == "failed" and run["reason"] == "RuntimeError: disk on fire" and run["finished"]


def test_dry_run_reports_exactly_what_the_run_selects(tmp_path, cli):
    path = _steps_suite(tmp_path, [{"name": "broken", "model": "tests.estimators.RaisingClassifier"}])
    out = tmp_path / "out"
    plan = cli("run", path, "--out", out, "--allow-module", "tests", "--dry-run")
    assert "8 folds in the plan, 8 to run" in plan.stdout and not out.exists()
    assert cli("run", path, "--out", out, "--allow-module", "tests").returncode == 1
    for flags, todo in [((), 0), (("--retry-failed",), 4), (("--force",), 8)]:
        result = cli("run", path, "--out", out, "--allow-module", "tests", "--dry-run", *flags)
        assert f"8 folds in the plan, {todo} to run" in result.stdout, (flags, result.stdout)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dropout": 1.5}, r"estimators\[1\]\.params\.dropout: TorchMLPClassifier: must be a float in the range"),
        ({"hidden_sizes": [0]}, r"estimators\[1\]\.params\.hidden_sizes: TorchMLPClassifier: must be a list"),
        ({"lr": -1}, r"estimators\[1\]\.params\.lr: TorchMLPClassifier: must be a float in the range \(0.0, inf\)"),
        ({"optimizer": "lbfgs"}, r"estimators\[1\]\.params\.optimizer: TorchMLPClassifier: must be a str among"),
    ],
)
def test_mlp_parameters_are_refused_before_anything_is_fitted(tmp_path, cli, params, message):
    import re

    path = _steps_suite(tmp_path, [{"name": "mlp", "model": "mlp", "params": params}])
    for command in (("validate", path), ("run", path, "--out", tmp_path / "out")):
        result = cli(*command)
        assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "out" / "results.db").exists()


def test_pretraining_parameters_are_checked_before_anything_is_fitted(tmp_path, cli):
    bad = {**RAISING_PRETRAIN, "pretrain": {"dataset": "src", "params": {"dropout": 2}}}
    result = cli("validate", _steps_suite(tmp_path, [bad]))
    assert result.returncode == 2
    assert "estimators[1].pretrain.params.dropout: TorchMLPClassifier: must be a float" in result.stderr


def test_every_exit_code_is_documented_in_the_help(cli):
    text = cli("--help").stdout
    for code in (0, 1, 2, 3, 130, 143):
        assert f"{code}: " in text


# ---------------------------------------------------------------- signals


def _signal_suite(tmp_path: Path, log: Path, timeout_s: float | None) -> Path:
    slow = {"name": "slow", "model": "tests.estimators.CountingClassifier", "params": {"log": str(log), "seconds": 1.5}}
    if timeout_s:
        slow["timeout_s"] = timeout_s
    return _write(
        tmp_path,
        {
            "name": "signals",
            "cv": {"folds": 4},
            "explain": {"enabled": False},
            "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}, {"name": "wine", "source": "sklearn:wine"}],
            "estimators": [slow],
        },
    )


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize(("n_jobs", "timeout_s"), [(2, 30), (1, None)], ids=["two-jobs-with-timeout", "in-process"])
def test_sigterm_stops_the_run_and_its_children_and_keeps_finished_folds(tmp_path, n_jobs, timeout_s):
    log, out = tmp_path / "fits.log", tmp_path / "out"
    path = _signal_suite(tmp_path, log, timeout_s)
    cmd = [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--allow-module", "tests"]
    proc = subprocess.Popen(
        [*cmd, "--n-jobs", str(n_jobs)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _poll(proc, lambda: _rows(out / "results.db") >= 2)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM: finished folds are kept")
    fits = _lines(log)
    time.sleep(2.5)  # longer than a fit: a child left running would log one more
    assert _lines(log) == fits, "a fit went on after the run stopped"
    with Store(out / "results.db") as store:
        run = store.latest_run()
        assert len(store.results()) >= 2
    assert (run["status"], run["reason"]) == ("interrupted", "SIGTERM")


@pytest.mark.slow
def test_a_study_killed_with_its_run_resumes_and_no_fold_is_stored_twice(tmp_path):
    import optuna

    log, out = tmp_path / "fits.log", tmp_path / "out"
    tuned = {
        "name": "tuned",
        "model": "tests.estimators.CountingClassifier",
        "params": {"log": str(log)},
        "tune": {"mode": "tune_then_cv", "trials": 12, "inner_folds": 2, "space": {"seconds": {"float": [0.2, 0.3]}}},
    }
    path = _write(
        tmp_path,
        {
            "name": "study",
            "cv": {"folds": 2},
            "explain": {"enabled": False},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [tuned],
        },
    )
    cmd = [sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--allow-module", "tests"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _poll(proc, lambda: _lines(log) >= 6)  # three trials' fits
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    storage = f"sqlite:///{out / 'studies.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    before = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    done_before = sum(t.state == optuna.trial.TrialState.COMPLETE for t in before)
    assert 0 < done_before < 12 and _rows(out / "results.db") == 0

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    states = optuna.trial.TrialState
    assert sum(t.state == states.COMPLETE for t in trials) >= done_before  # resumed, not restarted
    # a trial killed before its first heartbeat stays RUNNING and holds its number (test_tuning says more)
    assert sum(t.state in (states.COMPLETE, states.FAIL, states.RUNNING) for t in trials) == 12
    with Store(out / "results.db") as store:
        rows = store.results()
        steps = store.steps()
    assert len(rows) == 2 and rows["key"].is_unique and (rows["status"] == "ok").all()
    assert list(steps["status"]) == ["ok"]


def test_a_suite_with_several_seeds_loads_each_dataset_once(tmp_path, monkeypatch):
    import harness.planner as planner

    calls: list[str] = []
    real = planner.load_dataset
    monkeypatch.setattr(planner, "load_dataset", lambda spec, *a, **k: calls.append(spec.name) or real(spec, *a, **k))
    path = _write(
        tmp_path,
        {
            "name": "seeds",
            "seeds": [0, 1, 2],
            "cv": {"folds": 2},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}, {"name": "wine", "source": "sklearn:wine"}],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        },
    )
    plan = planner.prepare(load_suite(path), RunOptions(out=tmp_path / "out"))
    assert sorted(calls) == ["iris", "wine"] and len(plan.tasks) == 3 * 2 * 2
    assert len({id(t.dataset) for t in plan.tasks}) == 2  # every seed's folds share the one loaded copy
