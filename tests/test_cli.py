"""The command line end to end: exit codes, files, messages.

Runs and the first validation go through a subprocess, as a user runs them; quick
commands go through typer's CliRunner in this process (same app, same exit codes).
Runs pass `--threads 1`: on a small shared machine a multi-threaded LightGBM or BLAS
fit of a few hundred rows can take seconds instead of milliseconds, and the test
suite runs two workers side by side.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness import __version__

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.yaml"
CSV_COLUMNS = ["dataset", "estimator", "repeat", "fold", "status"]
CSV_TAIL = ["fit_time", "predict_time", "n_train", "n_test", "error", "worker"]
SMOKE_METRICS = ["accuracy", "balanced_accuracy", "roc_auc", "log_loss", "r2", "rmse", "mae"]


def harness(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_DEBUG", "HARNESS_ALLOW_MODULES", "FORCE_COLOR")}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def db_rows(db: Path, sql: str = "SELECT run_id, key FROM results") -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def tiny_smoke(tmp_path: Path) -> Path:
    """suites/smoke.yaml cut down: same datasets, 2 folds, two cheap estimators (one classification only)."""
    suite = yaml.safe_load(SMOKE.read_text())
    for ds in suite["datasets"]:
        if not ds["source"].startswith(("sklearn:", "synthetic:")):
            ds["source"] = str((SMOKE.parent / ds["source"]).resolve())  # relative to the suite file
    suite["name"] = "tiny"
    suite["cv"]["folds"] = 2
    suite["estimators"] = [e for e in suite["estimators"] if e["name"] in ("linear", "knn")]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_version():
    proc = harness("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"harness {__version__}"


def test_console_script_version():
    script = Path(sys.executable).parent / "harness"
    if not script.exists():
        pytest.skip("no installed `harness` script next to this interpreter")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"harness {__version__}"


def test_validate_smoke_suite():
    proc = harness("validate", "suites/smoke.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "suites/smoke.yaml: ok (3 datasets, 7 estimators, 63 folds)" in proc.stdout
    assert proc.stderr == ""


def test_validate_malformed_suite_exits_2_with_one_line_per_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nestimator: []\ncv: {scheme: stratified_kfld}\n"
        "metrics: {classification: [acuracy]}\n"
        "datasets: [{name: iris, source: 'sklearn:iris'}]\n"
        "estimators: [{name: rf, model: random_forrest}]\n"
    )
    proc = harness("validate", path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc)
    assert lines == [line for line in proc.stderr.splitlines() if line.strip()]  # nothing but error lines
    assert sorted(lines) == sorted(
        [
            f"error: {path}: estimator: unknown key (did you mean 'estimators'?)",
            f"error: {path}: cv.scheme: unknown cv scheme 'stratified_kfld' (did you mean 'stratified_kfold'?); "
            "choose one of kfold, stratified_kfold, group_kfold, holdout",
            f"error: {path}: metrics.classification[0]: unknown metric 'acuracy' (did you mean 'accuracy'?)",
        ]
    )


def test_validate_reports_dataset_and_estimator_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "datasets: [{name: iris, source: 'sklearn:iris'}, {name: gone, source: gone.csv, target: y}]\n"
        "estimators: [{name: rf, model: random_forrest}, {name: x, model: subprocess.Popen}]\n"
    )
    proc = harness("validate", path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 3, proc.stderr
    assert lines[0].startswith(f"error: {path}: datasets[1].source: file not found")
    assert lines[1].startswith(f"error: {path}: estimators[0].model: 'random_forrest'")
    assert "did you mean 'random_forest'" in lines[1]
    assert lines[2].startswith(f"error: {path}: estimators[1].model: import path 'subprocess.Popen' is outside")


def test_error_text_is_printed_verbatim(tmp_path):
    """Messages quote user text; rich must not read `[/x]` or `[bold]` in it as markup (it crashed, or ate it)."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "datasets: [{name: a, source: '[/x].csv', target: y}, {name: b, source: '[bold]b.csv', target: y}]\n"
        "estimators: [{name: lin, model: linear}]\n"
    )
    proc = harness("validate", path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 2, proc.stderr
    assert lines[0].endswith("file not found: " + str(tmp_path / "[/x].csv"))
    assert lines[1].endswith("file not found: " + str(tmp_path / "[bold]b.csv"))


def test_yaml_tag_is_refused_by_the_cli(tmp_path, cli):
    marker = tmp_path / "MARKER"
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    for proc in (harness("validate", path), cli("run", path, "--out", tmp_path / "out")):
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert error_lines(proc) == [
            f"error: {path}: line 1: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed: "
            "suites are data, not code"
        ]
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_validate_missing_suite_file(tmp_path, cli):
    proc = cli("validate", tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert error_lines(proc) == [f"error: {tmp_path / 'nope.yaml'}: suite file not found"]


@pytest.mark.slow
def test_run_real_smoke_suite_rerun_and_report(tmp_path):
    out = tmp_path / "smoke"
    proc = harness("run", SMOKE, "--out", out, "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    db, csv, board = out / "results.db", out / "results.csv", out / "leaderboard.md"
    assert db.is_file() and csv.is_file() and board.is_file()

    results = pd.read_csv(csv)
    assert list(results.columns) == CSV_COLUMNS + SMOKE_METRICS + CSV_TAIL
    assert len(results) == 63  # 3 datasets x 7 estimators x 3 folds, one row per fold
    assert results.groupby(["dataset", "estimator"]).size().eq(3).all()
    assert not results.duplicated(["dataset", "estimator", "repeat", "fold"]).any()
    skipped = results[results["status"] == "skipped"]
    assert set(zip(skipped["dataset"], skipped["estimator"], strict=True)) == {("diabetes", "knn")}
    ok = results[results["status"] == "ok"]
    assert len(ok) == 60
    assert ok["error"].isna().all()
    assert (ok["n_train"] + ok["n_test"]).groupby(ok["dataset"]).unique().map(list).to_dict() == {
        "iris": [150],
        "diabetes": [442],
        "penguins": [344],
    }
    classification = ok[ok["dataset"] != "diabetes"]
    assert classification["accuracy"].between(0.8, 1).all()
    assert classification["r2"].isna().all()
    assert ok.loc[ok["dataset"] == "diabetes", "rmse"].gt(0).all()
    assert (ok["fit_time"] >= 0).all()

    text = board.read_text()
    for heading in ("# Leaderboard: smoke", "## iris", "## diabetes", "## penguins", "## Overall"):
        assert heading in text
    assert "Skipped: **knn**" in text

    first = db_rows(db)
    assert len(first) == 63
    (first_run,) = {run_id for run_id, _ in first}

    # The same command again computes nothing: every fold is already in the store.
    proc = harness("run", SMOKE, "--out", out, "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "63 folds already in the store; 0 to compute" in proc.stdout
    assert sorted(db_rows(db)) == sorted(first)  # same keys, same run_id: nothing rewritten
    runs = db_rows(db, "SELECT run_id FROM runs ORDER BY started")
    assert len(runs) == 2 and runs[0][0] == first_run
    assert pd.read_csv(csv).equals(results)

    # `harness report` rebuilds both files from the store alone, byte for byte.
    csv_text, board_text = csv.read_text(), board.read_text()
    csv.unlink()
    board.unlink()
    proc = harness("report", out)
    assert proc.returncode == 0, proc.stderr
    assert csv.read_text() == csv_text
    assert board.read_text() == board_text
    assert len(db_rows(db)) == 63


def test_dry_run_prints_the_plan_and_fits_nothing(tiny_smoke, tmp_path, cli):
    out = tmp_path / "out"
    proc = cli("run", tiny_smoke, "--out", out, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "plan: tiny" in proc.stdout
    for name in ("iris", "diabetes", "penguins", "linear", "knn"):
        assert name in proc.stdout
    assert "12 folds in the plan, 12 to run" in proc.stdout  # 3 datasets x 2 estimators x 2 folds
    assert "(skipped: declared for classification only)" in proc.stdout
    db = out / "results.db"
    assert not db.exists() or db_rows(db) == []


@pytest.mark.slow
def test_filters_restrict_the_run_then_the_rest_is_computed(tiny_smoke, tmp_path):
    out = tmp_path / "out"
    proc = harness("run", tiny_smoke, "--out", out, "--threads", "1", "--dataset", "iris", "--estimator", "linear")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = pd.read_csv(out / "results.csv")
    assert set(zip(results["dataset"], results["estimator"], strict=True)) == {("iris", "linear")}
    assert sorted(results["fold"]) == [0, 1]
    assert (results["status"] == "ok").all()
    assert len(db_rows(out / "results.db")) == 2

    # The plan of the whole suite now shows those 2 folds as done ...
    proc = harness("run", tiny_smoke, "--out", out, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "12 folds in the plan, 10 to run" in proc.stdout
    # ... and the unfiltered run computes only the other 10.
    proc = harness("run", tiny_smoke, "--out", out, "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 folds already in the store; 10 to compute" in proc.stdout
    assert len(db_rows(out / "results.db")) == 12
    assert len(pd.read_csv(out / "results.csv")) == 12


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dataset", "nope"], "--dataset nope: no such name in the suite (the suite has: iris, diabetes, penguins)"),
        (["--dataset", "iirs"], "--dataset iirs: no such name in the suite (did you mean 'iris'?)"),
        (["--estimator", "lienar"], "--estimator lienar: no such name in the suite (did you mean 'linear'?)"),
    ],
    ids=["unknown-dataset", "dataset-typo", "estimator-typo"],
)
def test_unknown_filter_exits_2_before_anything_runs(tiny_smoke, tmp_path, cli, args, expected):
    out = tmp_path / "out"
    proc = cli("run", tiny_smoke, "--out", out, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert error_lines(proc) == [f"error: {tiny_smoke}: {expected}"]
    assert not (out / "results.db").exists()


def test_report_on_a_directory_without_a_store_exits_2(tmp_path, cli):
    proc = cli("report", tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert error_lines(proc) == [f"error: {tmp_path / 'results.db'}: no results store here (run `harness run` first)"]
    assert list(tmp_path.iterdir()) == []  # no empty store created, no files written


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("estimators", ["random_forest", "stacking", "lightgbm"]),
        ("datasets", ["sklearn:iris", "synthetic:"]),
        ("metrics", ["accuracy", "roc_auc", "rmse", "lower"]),
    ],
)
def test_list(cli, topic, expected):
    proc = cli("list", topic)
    assert proc.returncode == 0, proc.stderr
    for word in expected:
        assert word in proc.stdout


@pytest.mark.parametrize(
    ("topic", "hint"), [("foo", ""), ("estimator", " (did you mean 'estimators'?)")], ids=["unknown", "typo"]
)
def test_list_unknown_topic_exits_2(cli, topic, hint):
    proc = cli("list", topic)
    assert proc.returncode == 2
    assert error_lines(proc) == [f"error: list: unknown topic '{topic}'{hint}; choose estimators, datasets or metrics"]


def test_bad_arguments_exit_2(cli):
    proc = cli("run", "suites/smoke.yaml", "--n-jobs", "0")
    assert proc.returncode == 2
    assert "Invalid value for '--n-jobs'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli("frobnicate")
    assert proc.returncode == 2
    assert "No such command 'frobnicate'" in proc.stderr
