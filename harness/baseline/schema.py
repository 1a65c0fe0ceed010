"""The baseline file's schema: the format marker, its version, and every key and type `gate` reads.

Checked whole before anything uses a file: a malformed file (edited by hand, truncated,
from a hostile pull request) is one line naming the file and the key path, never a crash
deep in a comparison or after a run has fitted every fold. Unknown keys are allowed (a
later minor version may add some); the keys and types this package reads are not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.baseline.result import BaselineError

FORMAT = "harness-baseline"
FORMAT_VERSION = 1


class _Schema(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Fold(_Schema):
    seed: int | None = None
    repeat: int
    fold: int
    status: Literal["ok", "error", "timeout", "skipped"]
    n_train: int | None = None
    n_test: int | None = None
    scores: dict[str, float | None] | None = None


class _Cell(_Schema):
    config: dict[str, Any] = {}
    folds: list[_Fold] = []


class _Split(_Schema):
    seeds: list[int] | None = None


class _Dataset(_Schema):
    task: Literal["classification", "regression"]
    fingerprint: str | list[str] | None = None
    split: _Split = _Split()


class _Metric(_Schema):
    task: Literal["classification", "regression"]
    greater_is_better: bool


class _Baseline(_Schema):
    format: Literal["harness-baseline"]
    format_version: int = FORMAT_VERSION
    suite: str | None = None
    created: str | None = None
    run: dict[str, Any] = {}
    versions: dict[str, str | None] = {}
    metrics: dict[str, _Metric] = {}
    primary: dict[str, str] = {}
    datasets: dict[str, _Dataset]
    cells: dict[str, dict[str, _Cell]]
    skipped: dict[str, dict[str, str]] = {}
    champion: str | None = None
    alpha: float | None = None


def _key(item: Any) -> str:
    """A key as printed in an error: quoted when empty or unprintable."""
    text = str(item)
    return text if text.isprintable() and text else json.dumps(text)


def _key_path(data: Any, loc: tuple, missing: bool) -> str:
    """The error's location as a key path in the file ('cells.wine.tree.folds[0].fold'), without pydantic's union tags."""
    parts: list[str] = []
    node = data
    for i, item in enumerate(loc):
        if isinstance(node, dict) and isinstance(item, str) and item in node:
            parts.append(("." if parts else "") + _key(item))
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            parts.append(f"[{item}]")
            node = node[item]
        elif missing and i == len(loc) - 1:
            parts.append(("." if parts else "") + _key(item))
        # else: a tag pydantic adds for a member of a union (e.g. 'list[str]'): not a key in the file
    return "".join(parts) or "(top level)"


_EXPECTED = {
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
}


def _expected(err: dict[str, Any]) -> str:
    if err["type"] in _EXPECTED:
        return _EXPECTED[err["type"]]
    return str(err["msg"]).removeprefix("Input should be ")  # e.g. "'classification' or 'regression'"


def validate(path: Path, baseline: dict[str, Any]) -> None:
    """The whole schema, or a BaselineError naming the file and the key path of the first problem."""
    try:
        _Baseline.model_validate(baseline)
    except ValidationError as exc:
        problems: dict[str, list[str]] = {}
        for err in exc.errors():
            where = _key_path(baseline, tuple(err["loc"]), err["type"] == "missing")
            wanted = problems.setdefault(where, [])
            text = "missing" if err["type"] == "missing" else _expected(err)
            if text not in wanted:
                wanted.append(text)
        where, wanted = next(iter(problems.items()))
        what = "missing" if wanted == ["missing"] else "should be " + " or ".join(w for w in wanted if w != "missing")
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise BaselineError(f"{path}: malformed baseline: {where}: {what}{more}") from None
    unknown = sorted(set(baseline["cells"]) - set(baseline["datasets"]))
    if unknown:
        raise BaselineError(f"{path}: malformed baseline: cells.{_key(unknown[0])}: not a dataset in datasets")


def check_header(path: Path, baseline: Any) -> None:
    """The format marker and version, checked before the schema (a newer version may have another schema)."""
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        raise BaselineError(f'{path}: not a harness baseline file (no "format": "{FORMAT}")')
    version = baseline.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BaselineError(f"{path}: malformed baseline: format_version: should be a positive integer")
    if version > FORMAT_VERSION:
        raise BaselineError(
            f"{path}: baseline format version {version} is newer than this harness reads "
            f"({FORMAT_VERSION}); upgrade harness"
        )
