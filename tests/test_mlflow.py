"""MLflow export against a real local tracking store (SQLite, read back with MlflowClient).

One tiny run (two datasets, two estimators, 2 folds) is exported once at the end of
`harness run --mlflow URI` and again by `harness export mlflow`; the tests read the
store back: one parent, one child per (dataset, estimator), parameters, mean/std and
per-fold metrics equal to the Results, tags, artifacts, and no duplicates on re-export.
Creating an MLflow database runs its migrations (seconds), so the tests copy one made once.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from mlflow import MlflowClient

import harness
from harness.integrations import mlflow as exporter

SUITE = """\
name: mlf
cv: {folds: 2}
metrics: {classification: [accuracy, roc_auc], regression: [r2, rmse]}
explain: {enabled: false}
datasets:
  - {name: iris, source: "sklearn:iris"}
  - {name: diabetes, source: "sklearn:diabetes"}
estimators:
  - {name: linear, model: linear}
  - {name: tree, model: decision_tree, params: {max_depth: 3}}
"""


@dataclass
class Run:
    """The exported tiny run: its output folder, the tracking URI, what the CLI printed, its Results."""

    out: Path
    uri: str
    stdout: str
    results: harness.Results


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made (once: the migrations take seconds)."""
    db = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, empty_db: Path):
    """`harness run --mlflow URI` on the tiny suite (module-scoped: a run and a database are seconds each)."""
    from typer.testing import CliRunner

    from harness.cli import app

    root = tmp_path_factory.mktemp("mlflow-run")
    (root / "s.yaml").write_text(SUITE, encoding="utf-8")
    db = root / "track" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(empty_db, db)
    uri = f"sqlite:///{db}"
    result = CliRunner().invoke(app, ["run", str(root / "s.yaml"), "--out", str(root / "out"), "--mlflow", uri])
    assert result.exit_code == 0, result.output
    return Run(root / "out", uri, result.stdout, harness.open(root / "out"))


def _runs(uri: str, experiment: str = "mlf") -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_run_exports_one_parent_and_a_child_per_cell(exported: Run) -> None:
    uri, stdout, results = exported.uri, exported.stdout, exported.results
    assert "mlflow: experiment 'mlf'" in stdout and "4 child runs" in stdout
    runs = _runs(uri)
    parents = [r for r in runs if r.data.tags["harness.kind"] == "run"]
    children = [r for r in runs if r.data.tags["harness.kind"] == "cell"]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.run_name for r in children} == {"iris/linear", "iris/tree", "diabetes/linear", "diabetes/tree"}
    run_id = results.data.boards.run["run_id"]
    for r in runs:
        tags = r.data.tags
        assert tags["harness.suite"] == "mlf" and tags["harness.seed"] == "0" and tags["harness.run_id"] == run_id
        assert tags["harness.version.scikit-learn"] == results.folds["versions"].iloc[0]["scikit-learn"]
        assert tags[exporter.KEY_TAG] and r.info.status == "FINISHED"
    assert parent.data.params["cv.folds"] == "2"
    assert set(parent.data.metrics) == {"mean_rank.linear", "mean_rank.tree"}


@pytest.mark.parametrize(
    ("dataset", "estimator", "metric"), [("iris", "tree", "accuracy"), ("diabetes", "linear", "rmse")]
)
def test_child_holds_params_mean_std_and_per_fold_steps(
    exported: Run, dataset: str, estimator: str, metric: str
) -> None:
    uri, results = exported.uri, exported.results
    child = next(r for r in _runs(uri) if r.info.run_name == f"{dataset}/{estimator}")
    board = results.leaderboard(dataset, metric=metric).set_index("estimator").loc[estimator]
    assert child.data.metrics[f"{metric}_mean"] == pytest.approx(board["mean"], rel=1e-12)
    assert child.data.metrics[f"{metric}_std"] == pytest.approx(board["std"], rel=1e-12)
    history = MlflowClient(tracking_uri=uri).get_metric_history(child.info.run_id, metric)
    folds = results.folds[(results.folds["dataset"] == dataset) & (results.folds["estimator"] == estimator)]
    assert sorted((m.step, m.value) for m in history) == sorted(zip(folds["fold"], folds[metric], strict=True))
    config = folds["config"].iloc[0]
    assert child.data.params["class"] == config["class"]
    assert child.data.params["model"] == {"tree": "decision_tree", "linear": "linear"}[estimator]
    if estimator == "tree":
        assert child.data.params["params.max_depth"] == "3"
    assert child.data.tags["harness.dataset"] == dataset and child.data.tags["harness.estimator"] == estimator


def test_reports_are_artifacts_of_the_parent(exported: Run, tmp_path: Path) -> None:
    out, uri = exported.out, exported.uri
    parent = next(r for r in _runs(uri) if r.data.tags["harness.kind"] == "run")
    client = MlflowClient(tracking_uri=uri)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= set(exporter.ARTIFACTS)
    got = client.download_artifacts(parent.info.run_id, "summary.md", str(tmp_path))
    assert Path(got).read_text(encoding="utf-8") == (out / "summary.md").read_text(encoding="utf-8")
    assert (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").is_dir()  # beside the database, not in cwd


def test_exporting_again_updates_rather_than_duplicates(exported: Run, cli) -> None:
    out, uri = exported.out, exported.uri
    before = {r.info.run_id for r in _runs(uri)}
    proc = cli("export", "mlflow", out, "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr
    assert "0 created, 0 updated, 5 unchanged" in proc.stdout
    # A half-written child (its digest tag missing) is completed in place, its metrics not logged twice.
    client = MlflowClient(tracking_uri=uri)
    child = next(r for r in _runs(uri) if r.info.run_name == "iris/linear")
    client.delete_tag(child.info.run_id, exporter.DIGEST_TAG)
    done = exporter.export_run(out, uri, data=exported.results.data)
    assert (done.created, done.updated, done.unchanged) == (0, 1, 4)
    assert {r.info.run_id for r in _runs(uri)} == before
    assert len(client.get_metric_history(child.info.run_id, "accuracy")) == 2


def test_default_store_is_embedded_in_the_output_folder(exported: Run, empty_db: Path, cli, tmp_path: Path) -> None:
    out = exported.out
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    shutil.copy(empty_db, copy / "mlflow.db")
    proc = cli("export", "mlflow", copy, "--experiment", "other")
    assert proc.returncode == 0, proc.stderr
    assert f"sqlite:///{copy.resolve() / 'mlflow.db'}" in proc.stdout
    runs = _runs(f"sqlite:///{copy / 'mlflow.db'}", "other")
    assert len(runs) == 5
    assert (copy / "mlartifacts").is_dir()


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("ftp://host/x", "unknown tracking URI scheme 'ftp'"),
        ("sqlite:///{out}/results.db", "that is a harness store"),
        ("sqlite:///{out}/notes.db", "SQLite database of another tool"),
        ("sqlite:///{out}/text.db", "is not a SQLite database"),
    ],
)
def test_bad_tracking_uris_are_refused_before_the_store_is_touched(exported: Run, cli, uri: str, fragment: str) -> None:
    out = exported.out
    with sqlite3.connect(out / "notes.db") as con:
        con.execute("CREATE TABLE IF NOT EXISTS notes (x)")
    (out / "text.db").write_text("not a database\n" * 10, encoding="utf-8")
    before = (out / "results.db").read_bytes()
    proc = cli("export", "mlflow", out, "--tracking-uri", uri.format(out=out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert (out / "results.db").read_bytes() == before


def test_run_with_a_bad_uri_fits_nothing(cli, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    proc = cli("run", suite, "--out", tmp_path / "out", "--mlflow", "ftp://nowhere")
    assert proc.returncode == 2 and "unknown tracking URI scheme" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_mlflow_names_the_extra(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    proc = cli("export", "mlflow", tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == 'error: mlflow: MLflow is not installed; install the extra: pip install "harness[mlflow]"'
    )


def test_a_failed_export_at_the_end_of_a_run_keeps_the_run(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(*args, **kwargs):
        raise exporter.MlflowError("mlflow: sqlite:///x.db: OperationalError: database is locked")

    monkeypatch.setattr(exporter, "export_run", refuse)
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace('  - {name: diabetes, source: "sklearn:diabetes"}\n', ""), encoding="utf-8")
    proc = cli("run", suite, "--out", tmp_path / "out", "--mlflow", f"sqlite:///{tmp_path}/m.db")
    assert proc.returncode == 1
    assert "database is locked" in proc.stderr and "export it again with `harness export mlflow" in proc.stderr
    assert (tmp_path / "out" / "results.db").is_file() and (tmp_path / "out" / "report.html").is_file()
    assert len(harness.open(tmp_path / "out").folds) == 4


def test_records_are_built_from_the_read_model_alone(exported: Run) -> None:
    """Without MLflow: one record per cell with a distinct content key, the same when built again."""
    results = exported.results
    parent, children = exporter.build_records(results.data)
    again = exporter.build_records(results.data)
    assert len({c.key for c in children}) == 4 and parent.key not in {c.key for c in children}
    assert [c.digest for c in children] == [c.digest for c in again[1]]


@pytest.mark.parametrize(
    ("uri", "expected", "artifacts"),
    [
        (None, "sqlite:///{root}/out/mlflow.db", "{root}/out/mlartifacts"),  # embedded in the output folder
        ("sqlite:///track.db", "sqlite:///track.db", "{root}/mlartifacts"),  # relative to the working folder
        ("sqlite:///{root}/t/m.db", "sqlite:///{root}/t/m.db", "{root}/t/mlartifacts"),  # beside the database
        ("runs", "file://{root}/runs", None),  # a file store keeps artifacts inside
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000", None),  # the server decides
    ],
)
def test_tracking_targets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uri, expected: str, artifacts) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path.resolve()
    target = exporter.target_for(Path("out"), uri.format(root=root) if uri else None)
    assert target.tracking_uri == expected.format(root=root)
    assert target.artifact_root == (Path(artifacts.format(root=root)).as_uri() if artifacts else None)


def test_python_api_exports_and_keeps_the_run_when_export_fails(
    empty_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    suite = {
        "name": "api",
        "cv": {"folds": 2},
        "explain": {"enabled": False},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "linear", "model": "linear"}],
    }
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(empty_db, out / "mlflow.db")  # the embedded default, its tables already made
    results = harness.run(suite, out=out, mlflow=True)
    assert results.mlflow_error is None and results.mlflow.created == 2
    assert len(_runs(f"sqlite:///{out / 'mlflow.db'}", "api")) == 2

    def refuse(*args, **kwargs):
        raise exporter.MlflowError("mlflow: server down")

    monkeypatch.setattr(exporter, "export_run", refuse)
    with pytest.warns(UserWarning, match="server down"):
        again = harness.run(suite, out=out, mlflow="sqlite:///elsewhere.db")
    assert again.mlflow is None and "export it again with `harness export mlflow" in again.mlflow_error
    assert len(again.folds) == 2
