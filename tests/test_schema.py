"""The suite's JSON Schema: generated from the model, shipped current, and as strict as the shape checks.

Every shipped suite must validate against it; malformed suites must fail it *and*
harness's own validation (so an editor never flags what `harness validate` accepts, or
the reverse, for the cases a schema can express); every key has a description that
the README's suite reference backs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.errors import SuiteError
from harness.schema import DESCRIPTIONS, ENUMS, key_nodes, schema_text, suite_schema
from harness.spec import parse_suite

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "suites" / "suite.schema.json"
SUITES = sorted((ROOT / "suites").glob("*.yaml"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
MINIMAL = {
    "name": "t",
    "datasets": [{"name": "d", "source": "sklearn:iris"}],
    "estimators": [{"name": "a", "model": "linear"}],
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = suite_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, suite: dict) -> list[str]:
    return [e.message for e in validator.iter_errors(suite)]


def test_the_shipped_schema_is_what_harness_schema_prints(cli) -> None:
    proc = cli("schema")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == suite_schema()
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        "suites/suite.schema.json is stale: regenerate it with `harness schema --out suites/suite.schema.json`"
    )


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_every_shipped_suite_points_at_the_schema_and_validates(path: Path, validator) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./suite.schema.json"
    assert _errors(validator, yaml.safe_load(text)) == []


def test_the_readme_suite_example_validates(validator) -> None:
    example = _readme_suite_example()
    assert _errors(validator, example) == []
    parse_suite(example)  # and harness agrees


def _with(path: str, value: object) -> dict:
    """MINIMAL with `value` at the dotted `path` (list indexes as numbers)."""
    suite = json.loads(json.dumps(MINIMAL))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = suite
    for part in parents:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[last] = value
    return suite


MALFORMED = [
    pytest.param(_with("colour", "red"), id="unknown-top-key"),
    pytest.param(_with("cv.fold", 3), id="unknown-nested-key"),
    pytest.param(_with("datasets.0.targt", "y"), id="unknown-dataset-key"),
    pytest.param(_with("estimators.0.tune", {"trials": 2, "samplr": "tpe"}), id="unknown-tune-key"),
    pytest.param(_with("seed", "zero"), id="wrong-type-seed"),
    pytest.param(_with("cv.folds", 2.5), id="wrong-type-folds"),
    pytest.param(_with("datasets.0.categorical", "island"), id="wrong-type-list"),
    pytest.param(_with("estimators", {"name": "a", "model": "linear"}), id="wrong-type-estimators"),
    pytest.param(_with("cv.folds", 1), id="below-minimum"),
    pytest.param(_with("seed", -1), id="negative-seed"),
    pytest.param(_with("datasets", []), id="no-datasets"),
    pytest.param(_with("datasets.0.inf", "ignore"), id="bad-enum-literal"),
    pytest.param(_with("cv.scheme", "stratified"), id="bad-enum-scheme"),
    pytest.param(_with("metrics.classification", ["acuracy"]), id="bad-enum-metric"),
    pytest.param(_with("metrics.classification", ["r2"]), id="metric-of-another-task"),
    pytest.param(_with("estimators.0.tune", {"sampler": "bayes"}), id="bad-enum-sampler"),
    pytest.param(_with("analysis.rope", {"acc": 0.01}), id="bad-rope-metric"),
    pytest.param(_with("name", "my suite/../x"), id="name-not-plain"),
    pytest.param(_with("estimators.0", {"name": "a"}), id="missing-model"),
    pytest.param(_with("datasets.0", {"name": "d", "openml_suite": 99, "source": "x"}), id="dataset-and-suite-mixed"),
]


@pytest.mark.parametrize("suite", MALFORMED)
def test_malformed_suites_fail_the_schema_and_harness(suite: dict, validator) -> None:
    assert _errors(validator, suite), "the schema accepted it"
    with pytest.raises(SuiteError):
        parse_suite(suite)


@pytest.mark.parametrize(
    "suite",
    [
        pytest.param(MINIMAL, id="minimal"),
        pytest.param(_with("datasets.0", {"openml_suite": "OpenML-CC18", "max_rows": 1000}), id="openml-suite"),
        pytest.param(_with("estimators.0.tune", {"trials": 5, "sampler": "random", "metric": "roc_auc"}), id="tune"),
        pytest.param(_with("analysis.rope", {"accuracy": 0.02}), id="rope"),
        pytest.param(_with("seeds", [0, 1, 2]), id="seeds"),
        pytest.param(_with("estimators.0.params", {"C": 0.5, "penalty": None}), id="params-free-form"),
    ],
)
def test_good_suites_pass_the_schema_and_harness(suite: dict, validator) -> None:
    assert _errors(validator, suite) == []
    parse_suite(suite)


def test_every_key_has_a_description() -> None:
    schema = suite_schema()
    paths = {path: node for path, node in key_nodes(schema, schema["$defs"]) if not path.endswith("[]")}
    missing = sorted(p for p, node in paths.items() if not node.get("description"))
    assert not missing, f"suite keys without a description: add them to harness/schema.py DESCRIPTIONS: {missing}"
    stale = sorted(set(DESCRIPTIONS) - set(paths))
    assert not stale, f"DESCRIPTIONS names keys the suite no longer has: {stale}"
    assert set(ENUMS) <= {p for p, _ in key_nodes(schema, schema["$defs"])}


def test_descriptions_come_from_the_readme() -> None:
    """Each described key is in the README's suite documentation, and each key of its example is described."""
    undocumented = sorted(
        path for path in DESCRIPTIONS if not re.search(rf"\b{re.escape(path.rsplit('.', 1)[-1])}\b", README)
    )
    assert not undocumented, f"keys the README does not mention: {undocumented}"
    example_paths = set(_key_paths(_readme_suite_example()))
    assert example_paths <= set(DESCRIPTIONS), sorted(example_paths - set(DESCRIPTIONS))


def test_schema_out_writes_its_own_file_and_refuses_others(cli, tmp_path: Path) -> None:
    target = tmp_path / "suite.schema.json"
    assert cli("schema", "--out", target).returncode == 0
    assert target.read_text(encoding="utf-8") == schema_text()
    assert cli("schema", "--out", target).returncode == 0  # its own file: rewritten
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}\n', encoding="utf-8")
    proc = cli("schema", "--out", foreign)
    assert proc.returncode == 2
    assert "refusing to overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert foreign.read_text(encoding="utf-8") == '{"mine": true}\n'


def _readme_suite_example() -> dict:
    """The YAML block under the README's "## The suite file"."""
    section = README.split("## The suite file", 1)[1]
    return yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])


def _key_paths(value: object, prefix: str = "") -> list[str]:
    """Key paths of a suite mapping, "[]" for list items; free-form mappings (params, rope, space) not entered."""
    out: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            if key not in ("params", "rope", "space"):
                out += _key_paths(child, path)
    elif isinstance(value, list) and prefix in ("datasets", "estimators"):
        for item in value:
            out += _key_paths(item, f"{prefix}[]")
    return out
