"""Learning curves (training-set size) and validation curves (one parameter): engine, checks, read model, outputs.

The engine's curve points must mean what the fold's own score means: fraction 1.0 is the
fold's result itself, subsets are nested, stratified and drawn from the training part only,
and a validation curve equals scikit-learn's `validation_curve` on the same folds.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, validation_curve
from sklearn.tree import DecisionTreeClassifier

import harness.runner
from harness.engine import fit_and_score
from harness.engine.curves import learning_subsets, nested_order, subset_sizes
from harness.planner import RunOptions, prepare
from harness.report.curves import fit_time_exponent, last_doubling
from harness.spec import parse_suite

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"classification": ["accuracy", "roc_auc"], "regression": ["r2", "rmse"]}


def _plan(tmp_path: Path, estimators: list[dict], datasets: list[dict] | None = None, **suite_kw):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"scheme": "stratified_kfold", "folds": 3},
            "metrics": METRICS,
            "explain": {"enabled": False},
            "datasets": datasets or [{"name": "bc", "source": "sklearn:breast_cancer"}],
            "estimators": estimators,
            **suite_kw,
        },
        path=ROOT / "suites" / "t.yaml",
    )
    return prepare(suite, RunOptions(out=tmp_path, threads=1))


# ---------------------------------------------------------------- subsets


@pytest.mark.parametrize("counts", [[50, 50], [90, 10], [60, 25, 15], [200, 3, 1]])
@pytest.mark.parametrize("seed", [0, 7])
def test_every_prefix_is_stratified_and_sees_every_class(counts: list[int], seed: int):
    y = np.repeat(np.arange(len(counts)), counts)[np.random.default_rng(seed).permutation(sum(counts))]
    order = nested_order(y, seed)
    assert sorted(order) == list(range(len(y)))  # a permutation
    shares = np.asarray(counts) / len(y)
    for n in range(len(counts), len(y) + 1):
        got = np.bincount(y[order[:n]], minlength=len(counts))
        assert (got >= 1).all(), n  # every class in every prefix of at least as many rows as classes
        assert np.all(np.abs(got - shares * n) <= len(counts) + 1), (n, got, shares * n)


def test_subset_sizes_round_and_keep_one_row_per_class():
    assert subset_sizes(100, (0.1, 0.25, 0.5, 1.0)) == [10, 25, 50, 100]
    assert subset_sizes(100, (0.001,), n_classes=3) == [3]
    assert subset_sizes(7, (0.5,)) == [4]


@pytest.mark.parametrize("source", ["breast_cancer", "diabetes"])
def test_subsets_are_nested_inside_the_training_part_and_shared_by_estimators(tmp_path: Path, source: str):
    plan = _plan(
        tmp_path,
        [{"name": "a", "model": "decision_tree"}, {"name": "b", "model": "linear"}],
        [{"name": "d", "source": f"sklearn:{source}"}],
        learning_curve={"fractions": [0.1, 0.3, 0.6]},
    )
    by_fold: dict[tuple[int, int], list] = {}
    for task in plan.tasks:
        subsets = learning_subsets(task)
        assert [f for f, _ in subsets] == [0.1, 0.3, 0.6]
        train, test = set(task.split.train), set(task.split.test)
        for (_, small), (_, large) in itertools.pairwise(subsets):
            assert set(small) < set(large)  # each subset inside the larger one
        for _, rows in subsets:
            assert set(rows) <= train and not set(rows) & test  # never a test row
            assert len(rows) == len(set(rows))
        assert [len(r) for _, r in subsets] == [round(f * len(train)) for f in (0.1, 0.3, 0.6)]
        by_fold.setdefault((task.split.repeat, task.split.fold), []).append(subsets)
    for same_fold in by_fold.values():  # every estimator of a fold gets the same rows
        first = same_fold[0]
        for other in same_fold[1:]:
            assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


# ---------------------------------------------------------------- engine


def test_learning_curve_at_full_size_is_the_folds_own_result(tmp_path: Path):
    plan = _plan(tmp_path, [{"name": "tree", "model": "decision_tree", "params": {"max_depth": 3}}],
                 learning_curve={"fractions": [0.2, 0.5]})  # fmt: skip
    for task in plan.tasks:
        result = fit_and_score(task)
        assert result.status == "ok", result.error
        points = result.extra["learning_curve"]
        assert [p["fraction"] for p in points] == [0.2, 0.5, 1.0]
        full = points[-1]
        assert full["metrics"] == result.metrics and full["fit_time"] == result.fit_time
        assert full["n_train"] == result.n_train == len(task.split.train)
        # a subset point is a fresh fit on its rows, scored on the whole test fold
        _, rows = learning_subsets(task)[0]
        X, y = task.dataset.X, task.dataset.y
        plain = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X.iloc[rows], y[rows])
        accuracy = float(np.mean(plain.predict(X.iloc[task.split.test]) == y[task.split.test]))
        assert points[0]["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_a_subset_too_small_for_the_model_is_a_point_with_an_error_not_a_failed_fold(tmp_path: Path):
    plan = _plan(tmp_path, [{"name": "knn", "model": "knn", "params": {"n_neighbors": 30}}],
                 learning_curve={"fractions": [0.01, 0.5]})  # fmt: skip
    result = fit_and_score(plan.tasks[0])
    assert result.status == "ok"
    small, half, _ = result.extra["learning_curve"]
    assert "n_neighbors" in small["error"] and "metrics" not in small
    assert half["metrics"]["accuracy"] > 0.5


def test_validation_curve_equals_scikit_learns_on_the_same_folds(tmp_path: Path):
    depths = [1, 3, None]
    est = {"name": "tree", "model": "sklearn.tree.DecisionTreeClassifier", "params": {"random_state": 0},
           "curve": {"param": "max_depth", "values": depths}}  # fmt: skip
    plan = _plan(tmp_path, [est])
    results = sorted((fit_and_score(t) for t in plan.tasks), key=lambda r: r.fold)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    assert [list(t.split.test) for t in sorted(plan.tasks, key=lambda t: t.split.fold)] == [list(f[1]) for f in folds]
    train, test = validation_curve(DecisionTreeClassifier(random_state=0), X, y, param_name="max_depth",
                                   param_range=depths, cv=folds, scoring="accuracy")  # fmt: skip
    for k, result in enumerate(results):
        curve = result.extra["validation_curve"]
        assert curve["param"] == "max_depth"
        assert [p["value"] for p in curve["points"]] == depths
        assert [p["train"]["accuracy"] for p in curve["points"]] == pytest.approx(train[:, k], abs=1e-12)
        assert [p["test"]["accuracy"] for p in curve["points"]] == pytest.approx(test[:, k], abs=1e-12)
        assert curve["points"][2].get("reused")  # max_depth=None is the fold's own fit: not refitted
        assert curve["points"][2]["test"]["accuracy"] == result.metrics["accuracy"]


def test_curves_leave_other_keys_alone(tmp_path: Path):
    plain = [{"name": "a", "model": "decision_tree"}, {"name": "b", "model": "linear"}]
    curved = [plain[0], {**plain[1], "curve": {"param": "C", "values": [0.1, 1.0]}}]
    before = {(t.resolved.spec.name, t.split.fold): t.key for t in _plan(tmp_path, plain).tasks}
    after = {(t.resolved.spec.name, t.split.fold): t.key for t in _plan(tmp_path, curved).tasks}
    assert all(after[k] == before[k] for k in before if k[0] == "a")
    assert all(after[k] != before[k] for k in before if k[0] == "b")  # b's folds are recomputed with the curve
    assert all(t.learning_curve is None and t.validation_curve is None for t in _plan(tmp_path, plain).tasks)


# ---------------------------------------------------------------- bad input: exit 2, one line, nothing fitted

SUITE = """name: t
cv: {{folds: 3}}
datasets: [{{name: bc, source: "sklearn:breast_cancer"}}]
{extra}
estimators:
  - {{name: tree, model: decision_tree{fields}}}
"""


@pytest.mark.parametrize(
    ("extra", "fields", "fragment"),
    [
        ("", ", curve: {param: max_dept, values: [1, 2]}",
         "estimators[0].curve.param: DecisionTreeClassifier (the classification model of 'decision_tree') has no parameter 'max_dept' (did you mean 'max_depth'?)"),
        ("", ", curve: {param: max_depth, values: [2, -1]}",
         "estimators[0].curve.values[1]: DecisionTreeClassifier: must be an int in the range [1, inf) or None"),
        ("", ", curve: {param: min_samples_leaf, values: [1, .nan]}", "estimators[0].curve.values: [1]: nan is not"),
        ("", ", curve: {param: max_depth, values: [2, 2]}", "estimators[0].curve.values: [1]: 2 is given twice"),
        ("", ", curve: {param: max_depth, values: []}", "estimators[0].curve.values: List should have at least 1"),
        ("", ", curve: {param: max_depth, values: [1], value: [1]}", "estimators[0].curve.value: unknown key (did you mean 'values'?)"),
        ("learning_curve: {fractions: [0, 0.5]}", "", "learning_curve.fractions: fractions must be in (0, 1]"),
        ("", ", learning_curve: {fractions: [1.5]}", "estimators[0].learning_curve.fractions: fractions must be in"),
    ],
    ids=["param-name", "value-range", "value-nan", "value-twice", "no-values", "unknown-key", "fraction-0", "fraction-big"],
)  # fmt: skip
def test_bad_curves_exit_2_naming_the_key_before_fitting(tmp_path, cli, monkeypatch, extra, fields, fragment):
    def execute(*args, **kwargs):
        raise AssertionError("a fold was executed for a malformed suite")

    monkeypatch.setattr(harness.runner, "execute", execute, raising=False)
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(extra=extra, fields=fields))
    out = tmp_path / "out"
    for args in (("validate", path), ("run", path, "--out", out, "--threads", "1")):
        proc = cli(*args)
        assert proc.returncode == 2, (args[0], proc.stdout, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        assert fragment in lines[0], lines[0]
    assert not (out / "results.db").exists()


# ---------------------------------------------------------------- read model and outputs


def test_run_writes_curve_files_and_report_rebuilds_them_from_the_store(tmp_path: Path, cli):
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: t\ncv: {folds: 3}\nexplain: {enabled: false}\n"
        "metrics: {classification: [accuracy, log_loss], regression: [r2]}\n"
        "learning_curve: {fractions: [0.25, 0.5]}\n"
        'datasets: [{name: iris, source: "sklearn:iris"}, {name: diabetes, source: "sklearn:diabetes"}]\n'
        "estimators:\n"
        "  - {name: tree, model: decision_tree, params: {max_depth: 3}, curve: {param: max_depth, values: [1, 3]}}\n"
        "  - {name: dummy, model: sklearn.dummy.DummyClassifier, learning_curve: {fractions: [0.5]}}\n"
    )
    out = tmp_path / "out"
    assert cli("run", path, "--out", out, "--threads", "1").returncode == 0
    learning = pd.read_csv(out / "learning_curves.csv")
    assert list(learning.columns) == ["dataset", "estimator", "seed", "repeat", "fold", "fraction", "n_train",
                                      "accuracy", "log_loss", "r2", "fit_time", "error"]  # fmt: skip
    assert len(learning) == 3 * 3 + 3 * 3 + 3 * 2  # tree on two datasets (3 fractions), dummy on iris (2)
    results = pd.read_csv(out / "results.csv")
    full = learning[learning["fraction"] == 1.0].merge(results, on=["dataset", "estimator", "repeat", "fold"])
    assert len(full) == 9
    np.testing.assert_array_equal(full["n_train_x"], full["n_train_y"])
    np.testing.assert_allclose(full["fit_time_x"], full["fit_time_y"])
    for metric in ("accuracy", "r2"):
        np.testing.assert_allclose(full[f"{metric}_x"], full[f"{metric}_y"])
    with (out / "validation_curves.csv").open() as f:
        header = next(csv.reader(f))
    assert header[:7] == ["dataset", "estimator", "seed", "repeat", "fold", "param", "value"]
    assert {"train_accuracy", "test_accuracy", "train_r2", "test_r2", "fit_time"} <= set(header)
    html = (out / "report.html").read_text()
    assert 'id="training-size"' in html and 'id="validation-curves"' in html
    assert "could not be built" not in html
    before = {n: (out / n).read_text() for n in ("learning_curves.csv", "validation_curves.csv", "report.html")}
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.db").write_bytes((out / "results.db").read_bytes())
    assert cli("report", copy).returncode == 0
    for name, text in before.items():
        assert (copy / name).read_text() == text, name


def test_no_curve_files_without_curves(tmp_path: Path, cli):
    path = tmp_path / "suite.yaml"
    path.write_text('name: t\ncv: {folds: 2}\nexplain: {enabled: false}\ndatasets: [{name: iris, source: "sklearn:iris"}]\n'
                    "estimators: [{name: tree, model: decision_tree}]\n")  # fmt: skip
    assert cli("run", path, "--out", tmp_path / "out", "--threads", "1").returncode == 0
    assert not (tmp_path / "out" / "learning_curves.csv").exists()
    assert 'id="training-size"' not in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("b", [0.5, 1.0, 2.0])
def test_fit_time_exponent_recovers_a_power_law(b: float):
    n = np.array([100.0, 250, 500, 1000])
    exponent, se = fit_time_exponent(n, 0.003 * n**b)
    assert exponent == pytest.approx(b) and se == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(fit_time_exponent(np.array([100.0, 100.0]), np.array([1.0, 2.0]))[0])


@pytest.mark.parametrize(
    ("gains", "greater", "rising"),
    [([0.05, 0.06, 0.055, 0.05, 0.06], True, True), ([0.01, -0.02, 0.015, -0.01, 0.0], True, False),
     ([-0.05, -0.06, -0.055, -0.05, -0.06], False, True)],
)  # fmt: skip
def test_last_doubling_gain_is_oriented_and_corrected(gains: list[float], greater: bool, rising: bool):
    rows = []
    for fold, g in enumerate(gains):
        rows += [{"seed": 0, "repeat": 0, "fold": fold, "fraction": 0.5, "n_train": 400, "score": 0.8},
                 {"seed": 0, "repeat": 0, "fold": fold, "fraction": 1.0, "n_train": 800, "score": 0.8 + g}]  # fmt: skip
    test, start = last_doubling(pd.DataFrame(rows), greater, {(0, 0, k): 200.0 for k in range(5)})
    assert start == 0.5 and test.n == 5
    assert test.mean == pytest.approx(np.mean(gains) if greater else -np.mean(gains))
    assert test.ratio == pytest.approx(200 / 800)  # Nadeau–Bengio: n_test / n_train of the full size
    assert (test.ci_low > 0) is rising
