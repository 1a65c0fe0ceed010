"""Suite validation: every malformed suite gives one line per problem naming the file and key path.

Each malformed suite goes through the same path as `harness validate` and `harness run`:
`load_suite` (YAML + schema + cross-field checks) and then `prepare` (datasets load,
estimators resolve and build). Nothing is fitted on the way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness.runner
from harness.datasets import load_dataset
from harness.errors import SuiteError
from harness.runner import RunOptions, prepare, run_suite
from harness.spec import DatasetSpec, Suite, load_suite, parse_suite

ROOT = Path(__file__).resolve().parents[1]
PENGUINS = ROOT / "datasets" / "penguins.csv"

# A valid suite over a 20-row CSV; the malformed cases below change one or a few things.
HEAD = "name: t\ncv: {scheme: stratified_kfold, folds: 2}\n"
DATASETS = "datasets:\n  - {name: good, source: good.csv, target: y}\n"
ESTIMATORS = "estimators:\n  - {name: lin, model: linear}\n"


def _suite(head: str = HEAD, datasets: str = DATASETS, estimators: str = ESTIMATORS) -> str:
    return head + datasets + estimators


def _est(line: str) -> str:
    return f"estimators:\n  - {{name: lin, model: linear}}\n  - {line}\n"


def _ds(line: str) -> str:
    return f"datasets:\n  - {{name: good, source: good.csv, target: y}}\n  - {line}\n"


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    """tmp_path with the CSV fixtures the suites name (paths are relative to the suite file)."""
    rng = np.random.default_rng(0)
    n = 20
    good = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], size=n),
            "y": np.arange(n) % 2,
        }
    )
    good.to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "header_only.csv").write_text("a,b,y\n")
    (tmp_path / "zero_bytes.csv").write_text("")
    (tmp_path / "no_target_values.csv").write_text("a,y\n1,\n2,\n3,\n")
    (tmp_path / "one_class.csv").write_text("a,y\n" + "".join(f"{i},yes\n" for i in range(10)))
    (tmp_path / "text_target.csv").write_text("a,y\n" + "".join(f"{i},{'uv'[i % 2]}\n" for i in range(10)))
    return tmp_path


def _problems(path: Path, options: RunOptions | None = None) -> list[str]:
    """The problem lines `harness validate` would print for this suite file."""
    with pytest.raises(SuiteError) as info:
        prepare(load_suite(path), options)
    return info.value.problems


# (suite text, regex for the text after "FILE: "); one problem each.
MALFORMED = [
    pytest.param("name: t\ndatasets: [\n", r"line \d+: invalid YAML: ", id="yaml-syntax"),
    pytest.param("name: t\n\tdatasets: []\n", r"line 2: invalid YAML: found character '\\t'", id="yaml-tab"),
    pytest.param(
        _suite(head=HEAD + "estimator: []\n"),
        r"estimator: unknown key \(did you mean 'estimators'\?\)$",
        id="unknown-top-level-key",
    ),
    pytest.param(
        _suite(datasets="datasets:\n  - {name: good, source: good.csv, tagret: y}\n"),
        r"datasets\[0\]\.tagret: unknown key \(did you mean 'target'\?\)$",
        id="unknown-dataset-key",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: lin, model: linear, param: {C: 1}}\n"),
        r"estimators\[0\]\.param: unknown key \(did you mean 'params'\?\)$",
        id="unknown-estimator-key",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {scheme: kfold, folds: many}\n"),
        r"cv\.folds: Input should be a valid integer",
        id="wrong-type-int",
    ),
    pytest.param(
        _suite(datasets="datasets: {name: good, source: good.csv, target: y}\n"),
        r"datasets: Input should be a valid list$",
        id="wrong-type-list",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: lin, model: linear, params: [1, 2]}\n"),
        r"estimators\[0\]\.params: Input should be a valid dictionary$",
        id="wrong-type-params",
    ),
    pytest.param(_suite(estimators=""), r"estimators: required key is missing$", id="missing-key"),
    pytest.param(_suite(datasets="datasets: []\n"), r"datasets: List should have at least 1 item", id="no-datasets"),
    pytest.param("", r"the suite must be a mapping", id="empty-file"),
    pytest.param("- a\n- b\n", r"the suite must be a mapping", id="top-level-list"),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: lin, model: random_forrest}\n"),
        r"estimators\[0\]\.model: 'random_forrest' is neither a registry name \(did you mean 'random_forest'\?\)",
        id="unknown-estimator",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: lin, model: sklearn.ensemble.RandomForestClasifier}\n"),
        r"estimators\[0\]\.model: module 'sklearn\.ensemble' has no 'RandomForestClasifier' "
        r"\(did you mean 'RandomForestClassifier'\?\)$",
        id="unknown-class-in-module",
    ),
    pytest.param(
        _suite(head=HEAD + "metrics: {classification: [acuracy]}\n"),
        r"metrics\.classification\[0\]: unknown metric 'acuracy' \(did you mean 'accuracy'\?\)$",
        id="unknown-metric",
    ),
    pytest.param(
        _suite(head=HEAD + "metrics: {regression: [r2, accuracy]}\n"),
        r"metrics\.regression\[1\]: 'accuracy' is a classification metric$",
        id="metric-of-other-task",
    ),
    pytest.param(
        _suite(head=HEAD + "primary: {classification: roc_auc}\nmetrics: {classification: [accuracy]}\n"),
        r"primary\.classification: 'roc_auc' is not in metrics\.classification$",
        id="primary-not-listed",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {scheme: stratified_kfld}\n"),
        r"cv\.scheme: unknown cv scheme 'stratified_kfld' \(did you mean 'stratified_kfold'\?\)",
        id="unknown-cv-scheme",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {scheme: group_kfold}\n"),
        r"cv\.group: group_kfold needs the name of the group column$",
        id="group-kfold-without-group",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: missing.csv, target: y}")),
        r"datasets\[1\]\.source: file not found: .*missing\.csv$",
        id="missing-file",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: 'sklearn:irs'}")),
        r"datasets\[1\]\.source: unknown scikit-learn dataset 'irs' \(did you mean 'iris'\?\)",
        id="unknown-sklearn-set",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: good.csv, target: yy}")),
        r"datasets\[1\]\.target: column 'yy' not found in .*good\.csv \(did you mean 'y'\?\)$",
        id="missing-target-column",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: good.csv}")),
        r"datasets\[1\]\.target: name the target column of .*good\.csv \(columns: a, b, colour, y\)$",
        id="no-target-given",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: good.csv, target: y, categorical: [color]}")),
        r"datasets\[1\]\.categorical\[0\]: column 'color' not found in .*good\.csv \(did you mean 'colour'\?\)$",
        id="missing-categorical-column",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: header_only.csv, target: y}")),
        r"datasets\[1\]: .*header_only\.csv has no rows with a target value$",
        id="empty-dataset",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: no_target_values.csv, target: y}")),
        r"datasets\[1\]: .*no_target_values\.csv has no rows with a target value$",
        id="target-all-missing",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: zero_bytes.csv, target: y}")),
        r"datasets\[1\]\.source: cannot read .*zero_bytes\.csv: ",
        id="zero-byte-file",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: one_class.csv, target: y}")),
        r"datasets\[1\]\.target: target 'y' has a single class \('yes'\); nothing to classify$",
        id="target-one-class",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: other, source: text_target.csv, target: y, task: regression}")),
        r"datasets\[1\]\.task: target 'y' is not numeric, so it cannot be a regression target$",
        id="regression-on-text-target",
    ),
    pytest.param(
        _suite(datasets=_ds("{name: good, source: 'sklearn:iris'}")),
        r"datasets\[1\]\.name: duplicate name 'good' \(also datasets\[0\]\)$",
        id="duplicate-dataset-name",
    ),
    pytest.param(
        _suite(estimators=_est("{name: lin, model: knn}")),
        r"estimators\[1\]\.name: duplicate name 'lin' \(also estimators\[0\]\)$",
        id="duplicate-estimator-name",
    ),
    pytest.param(
        _suite(
            estimators=_est("{name: stack, model: stacking, params: {estimators: [lin, lni], final_estimator: lin}}")
        ),
        r"estimators\[1\]\.params\.estimators\[1\]: 'lni' is not an estimator of this suite \(did you mean 'lin'\?\)$",
        id="stacking-member-missing",
    ),
    pytest.param(
        _suite(estimators=_est("{name: stack, model: stacking, params: {estimators: [lin], final_estimator: ridge}}")),
        r"estimators\[1\]\.params\.final_estimator: 'ridge' is not an estimator of this suite",
        id="stacking-final-missing",
    ),
    pytest.param(
        _suite(head="name: ../escape\n"),
        r"name: '\.\./escape' must be a plain file name",
        id="suite-name-path",
    ),
    pytest.param(
        _suite(head="name: a/b\n"),
        r"name: 'a/b' must be a plain file name",
        id="suite-name-slash",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: 'my model', model: linear}\n"),
        r"estimators\[0\]\.name: 'my model' must be a plain name",
        id="estimator-name-space",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: x, model: evilpkg.Foo}\n"),
        r"estimators\[0\]\.model: import path 'evilpkg\.Foo' is outside the allowed modules \(sklearn, ",
        id="import-path-not-allowed",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: x, model: subprocess.Popen}\n"),
        r"estimators\[0\]\.model: import path 'subprocess\.Popen' is outside the allowed modules",
        id="import-path-popen",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: x, model: os.path.Path}\n"),
        r"estimators\[0\]\.model: import path 'os\.path\.Path' is outside the allowed modules",
        id="import-path-os",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: x, model: sklearn.metrics.accuracy_score}\n"),
        r"estimators\[0\]\.model: 'sklearn\.metrics\.accuracy_score' is not a scikit-learn estimator class$",
        id="import-path-not-an-estimator",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: rf, model: random_forest, params: {n_estimator: 5}}\n"),
        r"estimators\[0\]\.params\.n_estimator: RandomForestClassifier has no parameter 'n_estimator' "
        r"\(did you mean 'n_estimators'\?\)$",
        id="unknown-parameter",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: rf, model: random_forest, params: {n_estimators: -3}}\n"),
        r"estimators\[0\]\.params\.n_estimators: RandomForestClassifier: must be an int "
        r"in the range \[1, inf\)\. Got -3 instead\.$",
        id="bad-parameter-value",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: t, model: decision_tree, tune: {trials: 4, workers: 2}}\n"),
        r"estimators\[0\]\.tune: workers: only a tune_then_cv study is shared by several workers",
        id="shared-nested-study",
    ),
    pytest.param(
        _suite(head=HEAD + "seed: 1\nseed: 2\n"),
        r"line 4: invalid YAML: duplicate key 'seed'$",
        id="duplicate-yaml-key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_suite_gives_one_line_naming_file_and_key(suite_dir, text, expected):
    path = suite_dir / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=re.escape(f"{path}: ") + expected) as info:
        prepare(load_suite(path))
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    assert "Traceback" not in problems[0]


def test_missing_suite_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SuiteError, match=re.escape(f"{path}: suite file not found")):
        load_suite(path)
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path)  # a directory is not a suite file either


def test_non_utf8_suite_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SuiteError, match=re.escape(f"{path}: not a UTF-8 text file")):
        load_suite(path)


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system ''",
        "!custom 'touch {marker}'",
    ],
    ids=["object-apply", "object-new", "name", "custom-tag"],
)
def test_python_object_tags_are_refused_and_never_run(suite_dir, value):
    marker = suite_dir / "MARKER"
    tagged = value.format(marker=marker)
    path = suite_dir / "suite.yaml"
    path.write_text(_suite(estimators=f"estimators:\n  - {{name: lin, model: {tagged}}}\n"))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    (line,) = info.value.problems
    assert re.match(re.escape(f"{path}: ") + r"line 6: YAML tag '.+' is not allowed: suites are data, not code$", line)
    assert not marker.exists(), "the YAML tag was executed"


def test_yaml_anchors_and_merge_keys_still_load(suite_dir):
    """The duplicate-key check must not refuse `<<:` merges that override a key on purpose."""
    path = suite_dir / "suite.yaml"
    path.write_text(
        HEAD
        + DATASETS
        + "estimators:\n"
        + "  - &rf {name: rf, model: random_forest, params: {n_estimators: 3}}\n"
        + "  - {<<: *rf, name: rf2}\n"
    )
    suite = load_suite(path)
    assert [(e.name, e.params) for e in suite.estimators] == [("rf", {"n_estimators": 3}), ("rf2", {"n_estimators": 3})]


def test_disallowed_import_path_is_refused_before_import(suite_dir, monkeypatch):
    """An import path outside the allow-list is never imported (importing runs module code)."""
    marker = suite_dir / "IMPORTED"
    pkg = suite_dir / "evilpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\nclass Foo:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(suite_dir))
    monkeypatch.delitem(sys.modules, "evilpkg", raising=False)
    path = suite_dir / "suite.yaml"
    path.write_text(_suite(estimators="estimators:\n  - {name: x, model: evilpkg.Foo}\n"))

    (line,) = _problems(path)
    assert "outside the allowed modules" in line
    assert "cannot import" not in line
    assert not marker.exists()
    assert "evilpkg" not in sys.modules

    # Control: once the user allows the module it is imported, and the class is still checked.
    (line,) = _problems(path, RunOptions(allow_modules=("sklearn", "evilpkg")))
    assert marker.exists()
    assert line.endswith("estimators[0].model: 'evilpkg.Foo' is not a scikit-learn estimator class")
    sys.modules.pop("evilpkg", None)


def test_schema_problems_are_reported_together(suite_dir):
    path = suite_dir / "suite.yaml"
    path.write_text(
        "name: t\nestimator: []\ncv: {scheme: stratified_kfld, folds: 1}\n"
        "metrics: {classification: [acuracy, accuracy], regression: [r2]}\n" + DATASETS + ESTIMATORS
    )
    problems = _problems(path)
    assert len(problems) == 4, problems
    assert all(p.startswith(f"{path}: ") for p in problems)
    keys = sorted(p.removeprefix(f"{path}: ").split(":")[0] for p in problems)
    assert keys == ["cv.folds", "cv.scheme", "estimator", "metrics.classification[0]"]


def test_consistency_problems_are_reported_together(suite_dir):
    path = suite_dir / "suite.yaml"
    path.write_text(
        "name: t\nmetrics: {classification: [accuracy], regression: [r2]}\n"
        "primary: {regression: mae}\ncv: {scheme: group_kfold}\n"
        + _ds("{name: good, source: 'sklearn:iris'}")
        + _est("{name: lin, model: knn}")
    )
    problems = _problems(path)
    keys = [p.removeprefix(f"{path}: ").split(":")[0] for p in problems]
    assert keys == ["datasets[1].name", "estimators[1].name", "primary.regression", "cv.group"]


def test_dataset_and_estimator_problems_are_reported_together(suite_dir):
    path = suite_dir / "suite.yaml"
    path.write_text(
        HEAD
        + _ds("{name: gone, source: missing.csv, target: y}")
        + "  - {name: one, source: one_class.csv, target: y}\n"
        + "estimators:\n"
        + "  - {name: lin, model: lienar}\n"
        + "  - {name: rf, model: random_forest, params: {n_estimator: 5}}\n"
        + "  - {name: x, model: evilpkg.Foo}\n"
    )
    problems = _problems(path)
    keys = [p.removeprefix(f"{path}: ").split(":")[0] for p in problems]
    assert keys == [
        "datasets[1].source",
        "datasets[2].target",
        "estimators[0].model",
        "estimators[1].params.n_estimator",
        "estimators[2].model",
    ]
    assert "did you mean 'linear'" in problems[2]


def test_nothing_is_fitted_or_stored_for_an_invalid_suite(suite_dir, monkeypatch):
    def no_execute(*args, **kwargs):
        raise AssertionError("a fold was executed for an invalid suite")

    monkeypatch.setattr(harness.runner, "execute", no_execute)
    path = suite_dir / "suite.yaml"
    path.write_text(_suite(estimators=_est("{name: rf, model: random_forest, params: {n_estimators: -3}}")))
    out = suite_dir / "out"
    with pytest.raises(SuiteError, match=r"estimators\[1\]\.params"):
        run_suite(load_suite(path), RunOptions(out=out))
    assert not (out / "results.db").exists()


# ---------------------------------------------------------------- valid suites


@pytest.mark.parametrize(
    ("name", "tasks", "n_folds"),
    [
        ("smoke", {"iris": "classification", "diabetes": "regression", "penguins": "classification"}, 63),
        (
            "tabular",
            {
                "breast_cancer": "classification",
                "wine": "classification",
                "diabetes": "regression",
                "penguins": "classification",
                "synth": "classification",
            },
            275,
        ),
    ],
)
def test_shipped_suites_validate(name, tasks, n_folds):
    suite = load_suite(ROOT / "suites" / f"{name}.yaml")
    assert suite.name == name
    assert suite.label == str(ROOT / "suites" / f"{name}.yaml")
    plan = prepare(suite)
    assert {n: d.task for n, d in plan.datasets.items()} == tasks
    assert len(plan.tasks) == n_folds
    assert len({t.key for t in plan.tasks}) == n_folds


def _load_csv(tmp_path: Path, frame: pd.DataFrame, **spec) -> object:
    frame.to_csv(tmp_path / "data.csv", index=False)
    return load_dataset(DatasetSpec(name="d", source="data.csv", **spec), tmp_path)


@pytest.mark.parametrize(
    ("y", "task", "expected_task", "expected_kind"),
    [
        (np.arange(40) % 3, None, "classification", "i"),  # few integer values: class labels
        (np.arange(40) % 3 + 0.0, None, "classification", "i"),  # 0.0, 1.0, 2.0 are labels too
        (np.arange(40) * 0.37, None, "regression", "f"),  # floats: regression
        (np.arange(40), None, "regression", "f"),  # 40 distinct integers: a count, not labels
        (np.array(["lo", "hi"] * 20), None, "classification", "U"),
        (np.array([True, False] * 20), None, "classification", "b"),
        (np.arange(40) % 3, "regression", "regression", "f"),  # task: override
        (np.arange(40) * 0.5, "classification", "classification", "f"),
    ],
    ids=["int-few", "float-integral", "float", "int-many", "text", "bool", "override-regression", "override-class"],
)
def test_task_inference_and_override(tmp_path, y, task, expected_task, expected_kind):
    frame = pd.DataFrame({"x": np.linspace(0, 1, len(y)), "y": y})
    ds = _load_csv(tmp_path, frame, target="y", task=task)
    assert ds.task == expected_task
    if expected_task == "classification":  # codes 0..k-1 in sorted label order; the labels are kept
        assert ds.y.dtype.kind == "i" and ds.y.min() == 0
        assert ds.labels.dtype.kind == expected_kind and list(ds.labels) == sorted(ds.labels)
    else:
        assert ds.y.dtype.kind == expected_kind and ds.labels is None
    assert len(ds.y) == len(y)


def test_penguins_categoricals_detected_and_missing_kept_missing():
    ds = load_dataset(DatasetSpec(name="penguins", source=str(PENGUINS), target="species", drop=["year"]))
    assert ds.task == "classification"
    assert ds.categorical == ["island", "sex"]
    assert ds.numeric == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    assert list(ds.labels) == ["Adelie", "Chinstrap", "Gentoo"] and sorted(set(ds.y)) == [0, 1, 2]
    # 11 rows have NA in sex: they stay missing (imputed per fold), not a category called 'nan'
    assert int(ds.X["sex"].isna().sum()) == 11
    assert set(ds.X["sex"].dropna()) == {"male", "female"}
    assert ds.has_missing
    assert ds.notes == []


def test_rows_with_missing_target_are_dropped_with_a_note():
    ds = load_dataset(DatasetSpec(name="penguins", source=str(PENGUINS), target="sex", drop=["year"]))
    assert ds.notes == ["dropped 11 rows with a missing target"]
    assert len(ds.X) == len(ds.y) == 344 - 11
    assert list(ds.labels) == ["female", "male"] and set(ds.y) == {0, 1}
    assert "species" in ds.categorical


def test_declared_categorical_and_drop(tmp_path):
    frame = pd.DataFrame({"code": [1, 2, 3, 1] * 5, "x": np.arange(20.0), "id": np.arange(20), "y": [0, 1] * 10})
    ds = _load_csv(tmp_path, frame, target="y", categorical=["code"], drop=["id"])
    assert list(ds.X.columns) == ["code", "x"]
    assert ds.categorical == ["code"]
    assert set(ds.X["code"]) == {"1", "2", "3"}


def test_parse_suite_on_a_dict_fills_defaults():
    suite = parse_suite(
        {
            "name": "api",
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [{"name": "lin", "model": "linear"}],
        }
    )
    assert isinstance(suite, Suite)
    assert suite.path is None
    assert suite.label == "<suite api>"
    assert (suite.cv.scheme, suite.cv.folds, suite.cv.repeats, suite.seed) == ("stratified_kfold", 5, 1, 0)
    assert suite.metric_names("classification")[0] == suite.primary_metric("classification") == "accuracy"
    assert suite.primary_metric("regression") == "r2"
    plan = prepare(suite)
    assert len(plan.tasks) == 5


def test_parse_suite_on_a_bad_dict_uses_the_label():
    with pytest.raises(SuiteError) as info:
        parse_suite({"name": "api", "datasets": [], "estimator": []}, label="inline")
    assert sorted(info.value.problems) == [
        "inline: datasets: List should have at least 1 item after validation, not 0",
        "inline: estimator: unknown key (did you mean 'estimators'?)",
        "inline: estimators: required key is missing",
    ]
    with pytest.raises(SuiteError, match=r"^inline: the suite must be a mapping"):
        parse_suite(["not", "a", "mapping"], label="inline")
