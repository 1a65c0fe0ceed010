"""A corpus of malformed and hostile suites: each is bad input, refused with exit 2 and one line.

Every case goes through the command line twice, as `harness validate` and as
`harness run --out DIR`: both must exit 2 (never 3), print no traceback, print one
`error:` line naming the file and the key path, and fit or store nothing. The cases are
classes of input a careless user or a hostile pull request can write: YAML alias bombs and
deep nesting, parameters on sources that take none, sizes that cannot fit in memory,
non-finite or absurd numbers, names with a newline, and misleading messages.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import harness.runner
from harness.errors import SuiteError
from harness.spec import MAX_DEPTH, parse_suite

HEAD = "name: t\ncv: {folds: 2}\n"
DATASETS = "datasets:\n  - {name: d, source: d.csv, target: y}\n"
ESTIMATORS = "estimators:\n  - {name: lin, model: linear}\n"
CSV = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(12))


def _suite(head: str = HEAD, datasets: str = DATASETS, estimators: str = ESTIMATORS) -> str:
    return head + datasets + estimators


def _ds(fields: str) -> str:
    return f"datasets:\n  - {{name: d, {fields}}}\n"


def _est(fields: str) -> str:
    return f"estimators:\n  - {{name: lin, model: linear, {fields}}}\n"


def _tune(space: str, extra: str = "") -> str:
    return _est(f"tune: {{trials: 2, {extra}space: {{C: {space}}}}}")


def _bomb(indent: str) -> str:
    """Billion laughs: nine levels of ten aliases each expand to 10**9 strings."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * 10)}]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


DATASET_BOMB = "datasets:\n  - name: d\n    source: synthetic:classification\n    params:\n" + _bomb(" " * 6)
ESTIMATOR_BOMB = "estimators:\n  - name: lin\n    model: linear\n    params:\n" + _bomb(" " * 6)
DEEP_LIST = _ds("source: d.csv, target: y, params: {x: " + "[" * 3000 + "]" * 3000 + "}")
DEEP_MAP = _ds("source: d.csv, target: y, params: " + "{a: " * 3000 + "1" + "}" * 3000)

# (suite text, fragment of the one error line after "FILE: ")
CASES = [
    # YAML that expands or nests without bound
    pytest.param(_suite(datasets=DATASET_BOMB), "datasets[0].params.l5: more than 1,000,000 values", id="alias-bomb"),
    pytest.param(
        _suite(estimators=ESTIMATOR_BOMB), "estimators[0].params.l5: more than 1,000,000 values", id="alias-bomb-est"
    ),
    pytest.param(
        _suite(datasets=_ds("source: d.csv, target: y, params: {x: &a [1, *a]}")),
        "datasets[0].params.x[1]: an alias refers to itself",
        id="recursive-alias",
    ),
    pytest.param(
        _suite(datasets=DEEP_LIST),
        f"datasets[0].params.x[0][0][0][0]...: nested deeper than {MAX_DEPTH} levels",
        id="deep-list",
    ),
    pytest.param(
        _suite(datasets=DEEP_MAP),
        f"datasets[0].params.a.a.a.a.a...: nested deeper than {MAX_DEPTH} levels",
        id="deep-mapping",
    ),
    # params on a source that takes none
    pytest.param(
        _suite(datasets=_ds("source: d.csv, target: y, params: {sep: ';'}")),
        "datasets[0].params: d.csv takes no params",
        id="params-on-csv",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'sklearn:iris', params: {n_samples: 10}")),
        "datasets[0].params: sklearn:iris takes no params",
        id="params-on-sklearn",
    ),
    # synthetic sizes and values
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:classification', params: {n_samples: 2000000000000}")),
        "datasets[0].params.n_samples: 2,000,000,000,000 is too large",
        id="n-samples-absurd",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:regression', params: {n_features: 1000000000000}")),
        "datasets[0].params.n_features: 1,000,000,000,000 is too large",
        id="n-features-absurd",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:classification', params: {n_samples: 2.0e+12}")),
        "datasets[0].params.n_samples: 2000000000000.0 is not a whole number >= 0",
        id="n-samples-float",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:classification', params: {n_samples: 2e12}")),
        "datasets[0].params.n_samples: '2e12' is not a whole number >= 0",
        id="n-samples-text",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:friedman1', params: {n_samples: -5}")),
        "datasets[0].params.n_samples: -5 is not a whole number >= 0",
        id="n-samples-negative",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:regression', params: {noise: .inf}")),
        "datasets[0].params.noise: inf is not a finite number",
        id="synthetic-inf",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:classification', params: {weights: [.nan]}")),
        "datasets[0].params.weights: [nan] is not a finite number",
        id="synthetic-nan-in-list",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:regression', params: {n_targets: 2}")),
        "datasets[0].params.n_targets: not a suite setting",
        id="synthetic-two-targets",
    ),
    pytest.param(
        _suite(datasets=_ds("source: 'synthetic:regression', params: {n_sample: 20}")),
        "datasets[0].params.n_sample: make_regression takes no parameter 'n_sample' (did you mean 'n_samples'?)",
        id="synthetic-unknown-param",
    ),
    # non-finite and absurd numbers of the schema
    pytest.param(
        _suite(head=HEAD + "timeout_s: .inf\n"), "timeout_s: Input should be a finite number", id="timeout-inf"
    ),
    pytest.param(_suite(head=HEAD + "timeout_s: -4\n"), "timeout_s: Input should be greater than 0", id="timeout-neg"),
    pytest.param(
        _suite(head=HEAD + "timeout_s: 1.0e+30\n"),
        "timeout_s: Input should be less than or equal to",
        id="timeout-huge",
    ),
    pytest.param(
        _suite(estimators=_est("timeout_s: .nan")),
        "estimators[0].timeout_s: Input should be a finite number",
        id="estimator-timeout-nan",
    ),
    pytest.param(
        _suite(head=HEAD + "robustness: {levels: [.nan]}\n"),
        "robustness.levels[0]: Input should be a finite number",
        id="robustness-nan",
    ),
    pytest.param(
        _suite(head=HEAD + "analysis: {rope: {accuracy: .nan}}\n"),
        "analysis.rope.accuracy: Input should be a finite number",
        id="rope-nan",
    ),
    pytest.param(
        _suite(head=HEAD + "analysis: {rope: {accuracy: .inf}}\n"),
        "analysis.rope.accuracy: Input should be a finite number",
        id="rope-inf",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {scheme: holdout, test_size: .nan}\n"),
        "cv.test_size: Input should be a finite number",
        id="test-size-nan",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {folds: .inf}\n"), "cv.folds: Input should be a finite number", id="folds-inf"
    ),
    pytest.param(
        _suite(head=HEAD + "explain: {min_s: .inf}\n"), "explain.min_s: Input should be a finite number", id="min-s-inf"
    ),
    pytest.param(
        _suite(head=HEAD + "tuning: {max_total_s: .inf}\n"),
        "tuning.max_total_s: Input should be a finite number",
        id="max-total-inf",
    ),
    pytest.param(
        _suite(estimators=_est("tune: {timeout_s: .nan}")),
        "estimators[0].tune.timeout_s: Input should be a finite number",
        id="tune-timeout-nan",
    ),
    pytest.param(
        _suite(estimators=_est("tune: {trials: 1000000000000}")),
        "estimators[0].tune.trials: Input should be less than or equal to 1000000",
        id="tune-trials-huge",
    ),
    pytest.param(_suite(head=HEAD + "seed: -1\n"), "seed: Input should be greater than or equal to 0", id="seed-neg"),
    pytest.param(
        _suite(head=HEAD + "seed: 1099511627776\n"),
        "seed: Input should be less than or equal to 4294967295",
        id="seed-2**40",
    ),
    pytest.param(_suite(head=HEAD + "seed: .nan\n"), "seed: Input should be a finite number", id="seed-nan"),
    pytest.param(
        _suite(head=HEAD + "seeds: [0, 1099511627776]\n"),
        "seeds[1]: Input should be less than or equal to 4294967295",
        id="seeds-item-huge",
    ),
    pytest.param(
        _suite(head="name: t\ncv: {folds: 2, repeats: 2}\nseed: 4294967295\n"),
        "seed: 4294967295 + cv.repeats - 1 exceeds the largest seed",
        id="seed-plus-repeat",
    ),
    pytest.param(_suite(estimators=_est("params: {C: .nan}")), "estimators[0].params", id="estimator-param-nan"),
    # tuning spaces
    pytest.param(
        _suite(estimators=_tune("{float: [0, .inf]}")),
        "estimators[0].tune.space: C: float bounds must be finite numbers",
        id="space-inf-bound",
    ),
    pytest.param(
        _suite(estimators=_tune("{float: [.nan, 1]}")),
        "estimators[0].tune.space: C: float bounds must be finite numbers",
        id="space-nan-bound",
    ),
    pytest.param(
        _suite(estimators=_tune("{float: [0.1, 1], step: .nan}")),
        "estimators[0].tune.space: C: step must be a positive finite number",
        id="space-nan-step",
    ),
    pytest.param(
        _suite(estimators=_tune("{int: [1, 100000000000000000000]}")),
        "estimators[0].tune.space: C: int bounds must lie within",
        id="space-huge-bound",
    ),
    pytest.param(
        _suite(estimators=_tune("{int: [1, 10], step: 0.5}")),
        "estimators[0].tune.space: C: an int range needs a whole-number step",
        id="space-int-fraction-step",
    ),
    pytest.param(
        _suite(estimators=_tune("{categorical: [1, .nan]}")),
        "estimators[0].tune.space: C: categorical choices must be",
        id="space-nan-choice",
    ),
    pytest.param(
        _suite(estimators=_tune("{float: [0.0, 1.0], step: 1.0e-9}", extra="sampler: grid, ")),
        "estimators[0].tune: space: the grid has more than 1,000,000 points",
        id="space-huge-grid",
    ),
    # names: one line each, a file name at most
    pytest.param(
        _suite(head='name: "trail\\n"\ncv: {folds: 2}\n'),
        r"name: 'trail\n' contains a control character",
        id="suite-name-newline",
    ),
    pytest.param(
        _suite(datasets='datasets:\n  - {name: "d\\n", source: d.csv, target: y}\n'),
        r"datasets[0].name: 'd\n' contains a control character",
        id="dataset-name-newline",
    ),
    pytest.param(
        _suite(estimators='estimators:\n  - {name: lin, model: "sklearn.linear_model.Ridge\\n"}\n'),
        r"estimators[0].model: 'sklearn.linear_model.Ridge\n' contains a control character",
        id="model-newline",
    ),
    pytest.param(
        _suite(datasets='datasets:\n  - {name: d, source: d.csv, target: "y\\n"}\n'),
        r"datasets[0].target: 'y\n' contains a control character",
        id="target-newline",
    ),
    pytest.param(_suite(head=HEAD + '"seed\\n": 1\n'), r"'seed\n': unknown key", id="key-newline"),
    pytest.param(_suite(head=f"name: {'n' * 300}\n"), "longer than 100 characters", id="suite-name-long"),
    # estimator parameters nothing else checks: nan and inf where no constraint is declared
    pytest.param(
        _suite(estimators="estimators:\n  - {name: gbm, model: lightgbm, params: {learning_rate: .nan}}\n"),
        "estimators[0].params.learning_rate: LGBMClassifier: nan is not a finite number",
        id="lightgbm-nan",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: xgb, model: xgboost, params: {reg_lambda: .inf}}\n"),
        "estimators[0].params.reg_lambda: XGBClassifier: inf is not a finite number",
        id="xgboost-inf",
    ),
    pytest.param(
        _suite(estimators="estimators:\n  - {name: mlp, model: mlp, params: {hidden_sizes: [0]}}\n"),
        "estimators[0].params.hidden_sizes: TorchMLPClassifier: must be a list or tuple of positive integers",
        id="mlp-zero-width",
    ),
    # messages that blamed the wrong thing
    pytest.param(
        _suite(datasets=_ds("source: d.csv, target: y, reference: d")),
        "datasets[0].reference: a dataset cannot be its own reference ('d')",
        id="own-reference",
    ),
]


@pytest.fixture
def no_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    def execute(*args, **kwargs):
        raise AssertionError("a fold was executed for a malformed suite")

    monkeypatch.setattr(harness.runner, "execute", execute, raising=False)


@pytest.mark.parametrize(("text", "fragment"), CASES)
def test_malformed_suite_exits_2_with_one_line_before_fitting(tmp_path: Path, cli, no_fits, text, fragment):
    (tmp_path / "d.csv").write_text(CSV)
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    for args in (("validate", path), ("run", path, "--out", out, "--threads", "1")):
        proc = cli(*args)
        assert proc.returncode == 2, (args[0], proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "internal error" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines == [f"error: {path}: " + lines[0].removeprefix(f"error: {path}: ")], proc.stderr
        assert fragment in lines[0], lines[0]
    assert not (out / "results.db").exists()


@pytest.mark.parametrize("bomb", [DATASET_BOMB, ESTIMATOR_BOMB], ids=["dataset-params", "estimator-params"])
def test_alias_bomb_is_refused_within_two_seconds(tmp_path: Path, cli, no_fits, bomb):
    path = tmp_path / "bomb.yaml"
    path.write_text(_suite(datasets=bomb) if bomb is DATASET_BOMB else _suite(estimators=bomb))
    out = tmp_path / "out"
    cli("run", path, "--out", out)  # imports what `run` needs first: only the refusal is timed
    for args in (("validate", path), ("run", path, "--out", out)):
        start = time.perf_counter()
        proc = cli(*args)
        assert time.perf_counter() - start < 2
        assert proc.returncode == 2
        assert "aliases are expanded (an alias bomb?)" in proc.stderr
    assert not out.exists()


def test_anchors_within_bounds_still_load(tmp_path: Path, cli):
    """Aliases that share a few values, and nesting a few levels deep, are ordinary YAML."""
    (tmp_path / "d.csv").write_text(CSV)
    path = tmp_path / "suite.yaml"
    path.write_text(
        HEAD
        + DATASETS
        + "estimators:\n"
        + "  - &rf {name: rf, model: random_forest, params: {n_estimators: 3, max_depth: 2}}\n"
        + "  - {<<: *rf, name: rf2}\n"
        + "  - {name: lin, model: linear, tune: {trials: 2, space: {C: {categorical: [[1, [2, [3]]], 4]}}}}\n"
    )
    proc = cli("validate", path)
    assert proc.returncode == 0, proc.stderr


def _api_suite(params: object) -> dict:
    return {
        "name": "api",
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "lin", "model": "linear", "params": {"x": params}}],
    }


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _cyclic() -> list:
    value: list = []
    value.append(value)
    return value


def _shared(levels: int) -> list:
    value: list = ["lol"] * 10
    for _ in range(levels):
        value = [value] * 10
    return value


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (_nested(3000), f"api: estimators[0].params.x[0][0][0][0]...: nested deeper than {MAX_DEPTH} levels"),
        (_cyclic(), "api: estimators[0].params.x[0]: contains itself"),
        (_shared(8), "more than 1,000,000 values"),
    ],
    ids=["deep", "cyclic", "shared-bomb"],
)
def test_parse_suite_bounds_a_python_mapping(params, expected):
    start = time.perf_counter()
    with pytest.raises(SuiteError) as info:
        parse_suite(_api_suite(params), label="api")
    assert time.perf_counter() - start < 2
    (line,) = info.value.problems
    assert expected in line
