"""harness export model / harness predict / results.parquet, on a tiny run shared by the module."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import harness
from harness.errors import HarnessError
from harness.export import check_frame, load_exported

SUITE = """
name: exp
seed: 0
cv: {scheme: stratified_kfold, folds: 2}
metrics: {classification: [accuracy, roc_auc]}
datasets:
  - {name: num, source: num.csv, target: y}
  - {name: cat, source: cat.csv, target: y, categorical: [colour], drop: [id]}
estimators:
  - {name: linear, model: linear}
  - {name: lgbm, model: lightgbm, params: {n_estimators: 10}}
  - {name: tt, model: decision_tree, tune: {trials: 2, inner_folds: 2, mode: tune_then_cv}}
  - {name: nest, model: decision_tree, tune: {trials: 2, inner_folds: 2}}
"""


def _data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    num = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    num["y"] = np.where(num["a"] - num["b"] > 0, "yes", "no")
    num.to_csv(folder / "num.csv", index=False)
    cat = pd.DataFrame({"id": range(n), "x": rng.normal(size=n), "colour": rng.choice(["red", "blue"], size=n)})
    cat["y"] = np.where(cat["x"] + (cat["colour"] == "red") > 0.5, 1, 0)
    cat.loc[[2, 9], "x"] = np.nan
    cat.to_csv(folder / "cat.csv", index=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite folder (suite.yaml, num.csv, cat.csv) and its run in out/."""
    folder = tmp_path_factory.mktemp("export")
    _data(folder)
    (folder / "suite.yaml").write_text(SUITE)
    harness.run(folder / "suite.yaml", out=folder / "out", threads=1, report=False, datasets=["num"])
    harness.run(
        folder / "suite.yaml", out=folder / "out", threads=1, report=False, datasets=["cat"], estimators=["lgbm"]
    )
    return folder


def _export(cli, run: Path, estimator: str, dataset: str, to: Path, *more: str):
    return cli(
        "export", "model", run / "out", "-e", estimator, "-d", dataset, "--to", to, "--suite", run / "suite.yaml", *more
    )


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """linear, lgbm and tt exported from dataset num, linear from cat (through the API the CLI calls)."""
    from harness.export.refit import ExportOptions, export_model

    folder = tmp_path_factory.mktemp("models")
    out = {}
    for est, ds in (("linear", "num"), ("lgbm", "num"), ("tt", "num"), ("lgbm", "cat")):
        path = folder / f"{est}_{ds}.skops"
        export_model(run / "out", est, ds, path, ExportOptions(suite=run / "suite.yaml"))
        out[f"{est}_{ds}"] = path
    return out


# ---------------------------------------------------------------- refit equals plain scikit-learn


def _plain(run: Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(run / "num.csv")
    return frame[["a", "b", "c"]], (frame["y"] == "yes").to_numpy().astype(int)


@pytest.mark.parametrize("name", ["linear_num", "lgbm_num", "tt_num"])
def test_exported_model_equals_plain_sklearn_fit_on_all_rows(run, exported, name):
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = _plain(run, "num")
    model = load_exported(exported[name])
    if name == "linear_num":
        plain = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    elif name == "lgbm_num":
        plain = LGBMClassifier(n_estimators=10, random_state=0, verbose=-1)
    else:  # tune_then_cv: the study's best parameters, as the run's folds stored them
        folds = harness.open(run / "out").folds
        best = folds[(folds["estimator"] == "tt") & (folds["dataset"] == "num")]["extra"].iloc[0]["tuning"]
        assert model.sidecar["estimator"]["tuning"]["best_params"] == best["best_params"]
        plain = DecisionTreeClassifier(random_state=0, **best["best_params"])
    plain.fit(X, y)
    checked, warnings = check_frame(model.sidecar, pd.read_csv(run / "num.csv"), "num.csv")
    assert warnings == []  # the target column is no extra column
    np.testing.assert_allclose(model.model.predict_proba(checked), plain.predict_proba(X), rtol=1e-12)
    assert list(model.predict(checked)) == list(np.where(plain.predict(X) == 1, "yes", "no"))
    assert list(model.classes) == ["no", "yes"]


def test_sidecar_holds_schema_classes_scores_and_provenance(run, exported):
    sidecar = load_exported(exported["lgbm_cat"]).sidecar
    assert [f["name"] for f in sidecar["features"]] == ["x", "colour"]
    colour = sidecar["features"][1]
    assert colour["categorical"] and colour["categories"] == ["blue", "red"]
    assert sidecar["classes"] == [0, 1] and sidecar["target"] == "y" and sidecar["ignored_columns"] == ["id"]
    folds = harness.open(run / "out").folds
    mine = folds[(folds["estimator"] == "lgbm") & (folds["dataset"] == "cat")]
    assert sidecar["scores"]["metrics"]["accuracy"]["mean"] == pytest.approx(mine["accuracy"].mean())
    assert sidecar["scores"]["metrics"]["accuracy"]["n"] == 2
    assert sidecar["suite"]["name"] == "exp" and sidecar["suite"]["seed"] == 0
    assert {"harness", "scikit-learn", "lightgbm"} <= set(sidecar["versions"])


def test_model_file_loads_without_pickle(exported, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    model = load_exported(exported["lgbm_cat"])
    assert model.model.predict(
        check_frame(model.sidecar, pd.DataFrame({"x": [0.1], "colour": ["red"]}), "t")[0]
    ).shape == (1,)


def test_nested_tuning_runs_one_study_on_all_rows(cli, run, tmp_path):
    proc = _export(cli, run, "nest", "num", tmp_path / "n.skops")
    assert proc.returncode == 0, proc.stderr
    tuning = json.loads((tmp_path / "n.json").read_text())["estimator"]["tuning"]
    assert tuning["n_complete"] == 2 and set(tuning["best_params"]) == {"max_depth", "min_samples_leaf"}


# ---------------------------------------------------------------- export: bad input


def test_export_finds_relative_data_through_the_suite_file_the_run_recorded(cli, run, tmp_path):
    proc = cli("export", "model", run / "out", "-e", "linear", "-d", "num", "--to", tmp_path / "m.skops")
    assert proc.returncode == 0, proc.stderr  # no --suite: the run's settings name its suite file


def test_export_finds_no_relative_data_without_the_suite_file(cli, run, tmp_path):
    import sqlite3

    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("*.yaml"))
    with sqlite3.connect(moved / "out" / "results.db") as db:  # the recorded suite file no longer exists
        for run_id, settings in db.execute("SELECT run_id, settings FROM runs").fetchall():
            gone = json.loads(settings) | {"suite_path": str(moved / "suite.yaml")}
            db.execute("UPDATE runs SET settings = ? WHERE run_id = ?", (json.dumps(gone), run_id))
    proc = cli("export", "model", moved / "out", "-e", "linear", "-d", "num", "--to", tmp_path / "m.skops")
    assert proc.returncode == 2, proc.stderr
    assert "num.csv" in proc.stderr and "--suite" in proc.stderr  # the warning says how to point at the suite
    assert not (tmp_path / "m.skops").exists()


def test_export_refuses_changed_data(cli, run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("out"))
    frame = pd.read_csv(copy / "num.csv")
    frame.loc[0, "a"] += 1
    frame.to_csv(copy / "num.csv", index=False)
    proc = cli(
        "export",
        "model",
        run / "out",
        "-e",
        "linear",
        "-d",
        "num",
        "--to",
        tmp_path / "m.skops",
        "--suite",
        copy / "suite.yaml",
    )
    assert proc.returncode == 2 and "differs from the run's" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "nope", "-d", "num"], "--estimator nope: not in the run"),
        (["-e", "linear", "-d", "numb"], "did you mean 'num'"),
    ],
)
def test_export_names_unknown_estimators_and_datasets(cli, run, tmp_path, args, message):
    proc = cli("export", "model", run / "out", *args, "--to", tmp_path / "m.skops")
    assert proc.returncode == 2 and message in proc.stderr


def test_export_never_writes_over_a_file_it_does_not_own(cli, run, tmp_path):
    mine = tmp_path / "m.skops"
    mine.write_text("my notes")
    assert _export(cli, run, "linear", "num", mine).returncode == 2
    assert mine.read_text() == "my notes"
    assert _export(cli, run, "linear", "num", tmp_path / "m.pkl").returncode == 2  # only .skops
    assert _export(cli, run, "linear", "num", mine, "--force").returncode == 0
    assert _export(cli, run, "linear", "num", mine).returncode == 0  # its own export: written over


def test_the_torch_mlp_round_trips_through_skops_without_pickle(monkeypatch):
    import skops.io as sio

    from harness.datasets import load_dataset
    from harness.export.model import trusted_types
    from harness.preprocess import Columns
    from harness.registry import Resolver, build
    from harness.spec import parse_suite

    params = {"hidden_sizes": [8], "max_epochs": 2, "device": "cpu"}
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "mlp", "model": "mlp", "params": params}],
        }
    )
    ds = load_dataset(suite.datasets[0])
    fitted = build(Resolver(suite).resolve("mlp", ds.task), Columns(ds.numeric, ds.categorical, ds.has_missing))
    fitted.fit(ds.X, ds.y)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("dump", "dumps", "load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    payload = sio.dumps(fitted)
    trusted, refused = trusted_types(sio.get_untrusted_types(data=payload))
    assert refused == [] and any(t.startswith("harness.models.") for t in trusted)
    back = sio.loads(payload, trusted=trusted)
    np.testing.assert_array_equal(back.predict_proba(ds.X), fitted.predict_proba(ds.X))


# ---------------------------------------------------------------- predict


def _predict(cli, exported, frame: pd.DataFrame, tmp_path: Path, name: str = "lgbm_cat", suffix: str = ".csv"):
    data = tmp_path / f"data{suffix}"
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data)
    return cli("predict", exported[name], data, "--out", tmp_path / "preds.csv")


def test_predict_writes_labels_and_probabilities(cli, run, exported, tmp_path):
    proc = _predict(cli, exported, pd.read_csv(run / "num.csv").drop(columns="y"), tmp_path, "linear_num")
    assert proc.returncode == 0, proc.stderr
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert list(preds.columns) == ["prediction", "proba_no", "proba_yes"] and len(preds) == 60
    assert set(preds["prediction"]) <= {"yes", "no"}
    np.testing.assert_allclose(preds[["proba_no", "proba_yes"]].sum(axis=1), 1.0)


def test_predict_refuses_a_missing_column(cli, run, exported, tmp_path):
    proc = _predict(cli, exported, pd.read_csv(run / "cat.csv").drop(columns="colour"), tmp_path)
    assert proc.returncode == 2
    assert "data.csv: missing column 'colour'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "preds.csv").exists()


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        (lambda f: f.assign(extra=1), "extra column 'extra' ignored"),
        (lambda f: f.assign(colour=["green", *f["colour"][1:]]), "categories the model never saw: 'green'"),
        (lambda f: f.assign(x=f["x"].astype(str).replace("nan", None)), "column 'x' is str, not numeric"),
        (lambda f: f.assign(colour=np.arange(len(f))), "column 'colour' is int64, but was text in training"),
    ],
)
def test_predict_reports_extra_retyped_and_unseen(cli, run, exported, tmp_path, change, warning):
    proc = _predict(cli, exported, change(pd.read_csv(run / "cat.csv")), tmp_path, suffix=".parquet")
    assert proc.returncode == 0, proc.stderr
    assert warning in proc.stderr
    assert len(pd.read_csv(tmp_path / "preds.csv")) == 60


def test_predict_refuses_text_in_a_numeric_column(cli, run, exported, tmp_path):
    frame = pd.read_csv(run / "cat.csv").astype({"x": object})
    frame.loc[1, "x"] = "abc"
    proc = _predict(cli, exported, frame, tmp_path)
    assert proc.returncode == 2 and "data.csv: column 'x' must be numeric (float64) but holds 'abc'" in proc.stderr


def test_check_frame_casts_numbers_held_as_text_with_a_warning():
    sidecar = {"features": [{"name": "x", "dtype": "float64", "categorical": False}], "target": "y"}
    checked, warnings = check_frame(sidecar, pd.DataFrame({"x": ["1.5", "2"], "y": [0, 1]}), "f.csv")
    assert checked["x"].tolist() == [1.5, 2.0] and checked["x"].dtype == np.float64
    assert len(warnings) == 1 and "column 'x'" in warnings[0]
    with pytest.raises(HarnessError, match=r"f.csv: column 'x' must be numeric .* 'abc'"):
        check_frame(sidecar, pd.DataFrame({"x": ["abc"]}), "f.csv")


def test_predict_refuses_a_model_that_does_not_match_its_sidecar(cli, run, exported, tmp_path):
    model = tmp_path / "m.skops"
    shutil.copy(exported["lgbm_cat"], model)
    shutil.copy(exported["lgbm_num"].with_suffix(".json"), tmp_path / "m.json")
    data = tmp_path / "d.csv"
    pd.read_csv(run / "cat.csv").to_csv(data, index=False)
    proc = cli("predict", model, data, "--out", tmp_path / "p.csv")
    assert proc.returncode == 2 and "does not match its sidecar" in proc.stderr


# ---------------------------------------------------------------- results.parquet


def test_results_parquet_has_the_rows_of_results_csv_with_proper_types(run):
    from harness.export.results import results_parquet
    from harness.report import read_outputs_data
    from harness.report.markdown import results_frame

    frame = results_frame(read_outputs_data(run / "out").boards)  # what build_outputs writes both files from
    csv = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
    table = pd.read_parquet(io.BytesIO(results_parquet(frame)))
    assert list(table.columns) == list(csv.columns) and len(table) == len(csv) > 0
    for col in ("repeat", "fold", "n_train", "n_test"):
        assert table[col].dtype == np.int64, col
    for col in ("accuracy", "roc_auc", "fit_time", "predict_time"):
        assert table[col].dtype == np.float64, col
    for col in ("dataset", "estimator", "status", "error", "worker"):
        assert pd.api.types.is_string_dtype(table[col]), col  # error: string even when empty (the CSV: float)
    pd.testing.assert_frame_equal(
        table.drop(columns=["error"]), csv.drop(columns=["error"]), check_dtype=False, check_exact=False, rtol=1e-12
    )


def test_results_parquet_keeps_gaps_in_integer_columns_and_marks_itself(tmp_path):
    from harness.export.results import results_parquet
    from harness.fileio import is_own_output

    frame = pd.DataFrame({"dataset": ["d", "d"], "n_test": [5, np.nan], "error": [None, "ValueError: x"]})
    path = tmp_path / "results.parquet"
    path.write_bytes(results_parquet(frame))
    table = pd.read_parquet(path, dtype_backend="numpy_nullable")
    assert table["n_test"].tolist()[0] == 5 and pd.isna(table["n_test"].tolist()[1])
    assert str(table["n_test"].dtype) == "Int64" and table["error"].tolist()[1] == "ValueError: x"
    assert is_own_output(path)  # recognised without a manifest, so `harness report` may rewrite it
    (tmp_path / "other.parquet").write_bytes(path.read_bytes())
    frame.to_parquet(tmp_path / "results.parquet")
    assert not is_own_output(tmp_path / "results.parquet")  # someone else's Parquet file of that name


@pytest.mark.parametrize("model", ["xgboost", "lightgbm", "random_forest", "extra_trees"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_boosting_and_tree_pipelines_round_trip_through_skops_with_only_known_types(tiny_mixed_csv, model, task):
    import skops.io as sio

    from harness.datasets import load_dataset
    from harness.export.model import trusted_types
    from harness.preprocess import Columns
    from harness.registry import Resolver, build
    from harness.spec import parse_suite

    target = "label" if task == "classification" else "b"
    raw = {
        "name": "s",
        "datasets": [{"name": "d", "source": str(tiny_mixed_csv), "target": target}],
        "estimators": [{"name": "m", "model": model, "params": {"n_estimators": 5}}],
    }
    suite = parse_suite(raw)
    ds = load_dataset(suite.datasets[0])
    fitted = build(Resolver(suite).resolve("m", ds.task), Columns(ds.numeric, ds.categorical, ds.has_missing))
    fitted.fit(ds.X, ds.y)
    payload = sio.dumps(fitted)
    trusted, refused = trusted_types(sio.get_untrusted_types(data=payload))
    assert refused == []
    back = sio.loads(payload, trusted=trusted)
    np.testing.assert_array_equal(back.predict(ds.X), fitted.predict(ds.X))


def test_tune_then_cv_falls_back_to_the_study_without_writing_it(run, exported, tmp_path, monkeypatch):
    from harness.export import refit

    studies = run / "out" / "studies.db"
    before = studies.read_bytes()
    monkeypatch.setattr(refit, "_stored_preset", lambda folds: None)  # as if no fold had stored its parameters
    refit.export_model(run / "out", "tt", "num", tmp_path / "t.skops", refit.ExportOptions(suite=run / "suite.yaml"))
    from_study = json.loads((tmp_path / "t.json").read_text())["estimator"]["tuning"]["best_params"]
    assert from_study == load_exported(exported["tt_num"]).sidecar["estimator"]["tuning"]["best_params"]
    assert studies.read_bytes() == before
