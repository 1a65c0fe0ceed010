"""Baselines and the regression gate: did this change make any model worse, on the same folds?

A baseline file freezes a run's per-fold scores with everything that says what they
mean (dataset fingerprint, split definition, estimator configuration, package
versions), small and diff-friendly so it can be committed beside the code. `check`
compares a later run with it fold by fold: because splits depend only on the data,
the cv spec and the seed, the same (seed, repeat, fold) identity is the same split on
both sides, and paired differences cancel the large fold-to-fold variation that would
drown a real regression. The paired differences go through the Nadeau–Bengio corrected
resampled t-test (`harness.stats.corrected_ttest`), because cross-validation folds
share training rows and the plain paired t-test is far too eager to call a noisy
difference significant. Anything that breaks the pairing (changed data, different
splits) is reported and falls back to an unpaired Welch test, labelled as such; nothing
is dropped silently.

Verdict rule for one (dataset, estimator) on metric M, with d the per-fold differences
current − baseline oriented so that positive is better (lower-is-better metrics such as
rmse and log_loss negated):

- **regressed** when mean(d) < −tolerance AND the one-sided corrected test of
  "worse" is significant at alpha (p = P(T ≤ t) with T ~ Student t, df = J − 1);
  folds that were ok in the baseline and now fail (error, timeout) are a regression too;
- **improved** likewise in the other direction;
- **unchanged** otherwise; **not compared** when fewer than two usable folds remain.

One-sided tests at alpha (default 0.05), not two-sided: the gate asks two directional
questions fixed in advance ("is it worse?" to fail the build, "is it better?" to
report), and each has its own false-alarm rate alpha under "nothing changed". A
two-sided test would halve that rate for no reason while costing power, which the
corrected test already lacks with 5 folds (df = 4).

Tolerance: the smallest drop that matters, in the metric's own units. By default
(`tolerance=None`) it is 0.005 for metrics bounded in [0, 1] (accuracy, roc_auc, r2,
...) and 0.5 % of the baseline's mean |score| for unbounded ones (rmse, log_loss, ...),
whose scale depends on the data. `tolerance=0` means any significant drop counts.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import HarnessError
from harness.fileio import atomic_write, check_set_targets, check_target, is_baseline_file, write_set
from harness.metrics import BOUNDED_METRICS, METRICS
from harness.spec import CVSpec, did_you_mean
from harness.splits import cv_definition
from harness.store import FAILED, OK, SKIPPED, Store

FORMAT = "harness-baseline"
FORMAT_VERSION = 1
DEFAULT_TOLERANCE = 0.005
PAIRED = "paired (corrected t)"
UNPAIRED = "unpaired (Welch)"
REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED = "regressed", "improved", "unchanged", "not compared"


class BaselineError(HarnessError):
    """A baseline file or check argument is unusable (missing, not a baseline, unknown metric)."""


# ---------------------------------------------------------------- building and saving


def baseline_from_store(store: Store) -> dict[str, Any]:
    """The latest suite version's current cells as a baseline dict (what `save` writes, what `check` compares)."""
    run = store.latest_run()
    if run is None:
        raise BaselineError(f"{store.path}: the store has no runs")
    settings = json.loads(run["settings"] or "{}")
    folds = store.results(store.current_keys())
    if folds.empty:
        raise BaselineError(f"{store.path}: no results for the latest suite version")
    metric_names = [m for m in METRICS if m in folds.columns]
    datasets: dict[str, Any] = {}
    cells: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for name, rows in folds.groupby("dataset", sort=True):
        task = str(rows["task"].iloc[0])
        datasets[name] = _dataset_entry(rows, task, settings)
        for est, g in rows.groupby("estimator", sort=True):
            if (g["status"] == SKIPPED).all():
                skipped.setdefault(name, {})[est] = str(g["error"].iloc[0] or "")
                continue
            names = [m for m in metric_names if METRICS[m].task == task]
            cells.setdefault(name, {})[est] = {
                "config": json.loads(g["config"].iloc[0] or "{}"),
                "folds": [_fold_entry(r, names) for r in g.sort_values(["seed", "repeat", "fold"]).to_dict("records")],
            }
    versions = Counter(v for v in folds["versions"] if v)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "suite": run["suite"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": {"run_id": run["run_id"], "started": _iso(run["started"]), "finished": _iso(run["finished"])},
        "versions": json.loads(versions.most_common(1)[0][0]) if versions else {},
        "metrics": {
            m: {"task": METRICS[m].task, "greater_is_better": METRICS[m].greater_is_better} for m in metric_names
        },
        "primary": settings.get("primary", {}),
        "datasets": datasets,
        "cells": cells,
        "skipped": skipped,
        "champion": json.loads(run["suite_json"] or "{}").get("champion"),
    }


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _dataset_entry(rows: pd.DataFrame, task: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Fingerprint and split definition: what must match for folds to be the same rows on both sides."""
    seeds = sorted({int(s) for s in rows["seed"].dropna()})
    split: dict[str, Any] = {}
    if "cv" in settings and seeds:
        split = cv_definition(CVSpec(**settings["cv"]), task, seeds[0])
        split.pop("seed", None)
    split["seeds"] = seeds
    fingerprints = sorted({str(f) for f in rows["dataset_fingerprint"].dropna()})
    return {"task": task, "fingerprint": fingerprints[0] if len(fingerprints) == 1 else fingerprints, "split": split}


def _fold_entry(row: dict[str, Any], metric_names: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seed": _int(row["seed"]),
        "repeat": int(row["repeat"]),
        "fold": int(row["fold"]),
        "status": row["status"],
        "n_train": _int(row["n_train"]),
        "n_test": _int(row["n_test"]),
    }
    if row["status"] == OK:
        entry["scores"] = {m: _num(row.get(m)) for m in metric_names}
    return entry


def _int(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _num(value: Any) -> float | None:
    """A JSON-safe float: NaN, inf and missing become None."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def save_baseline(out_dir: str | Path, to: str | Path | None = None, force: bool = False) -> Path:
    """Write DIR's current results as a baseline (JSON, or Parquet when `to` ends in .parquet).

    Refuses (exit 2), before reading the store, to write over a file that is not a
    baseline (the results store, a report, anything else) unless `force`.
    """
    out_dir = Path(out_dir)
    path = Path(to) if to is not None else out_dir / "baseline.json"
    check_target(path, is_baseline_file, "harness baseline file", force)
    with Store(out_dir / "results.db", create=False) as store:
        baseline = baseline_from_store(store)
    write_baseline(baseline, path, force=force)
    return path


def write_baseline(baseline: dict[str, Any], path: str | Path, force: bool = False) -> None:
    """JSON with sorted keys and one value per line (diff-friendly), or one Parquet row per fold. Never pickle.

    Atomic (temporary file, then os.replace); refuses to write over a file that is not a baseline unless `force`.
    """
    path = check_target(path, is_baseline_file, "harness baseline file", force)
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: _write_parquet(baseline, tmp))
    else:
        atomic_write(path, _dumps(baseline) + "\n")


def _dumps(obj: Any) -> str:
    return json.dumps(_json_safe(obj), indent=2, sort_keys=True, allow_nan=False)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, bool | str) or obj is None:
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    return str(obj)


def _write_parquet(baseline: dict[str, Any], path: Path) -> None:
    """Folds as rows (one column per metric); everything else as JSON in the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    header = {k: v for k, v in baseline.items() if k != "cells"}
    header["cells"] = {}
    for ds, ests in baseline["cells"].items():
        for est, cell in ests.items():
            header["cells"].setdefault(ds, {})[est] = {k: v for k, v in cell.items() if k != "folds"}
            for f in cell["folds"]:
                rec = {k: v for k, v in f.items() if k != "scores"} | {"dataset": ds, "estimator": est}
                rec |= {f"score.{m}": v for m, v in (f.get("scores") or {}).items()}
                rows.append(rec)
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    table = table.replace_schema_metadata({b"harness_baseline": _dumps(header).encode()})
    pq.write_table(table, path)


def _read_parquet(path: Path) -> dict[str, Any]:
    """The baseline dict from a Parquet baseline; every problem is a BaselineError naming the key or column."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many types on junk
        raise BaselineError(f"{path}: not a harness baseline file (unreadable Parquet: {type(exc).__name__})") from None
    meta = table.schema.metadata or {}
    if b"harness_baseline" not in meta:
        raise BaselineError(f"{path}: not a harness baseline file (a Parquet file without baseline metadata)")
    try:
        baseline = json.loads(meta[b"harness_baseline"])
    except ValueError:
        raise BaselineError(f"{path}: metadata harness_baseline: not JSON") from None
    _check_header(path, baseline)
    _validate(path, baseline)  # the header alone (cells without folds): types before they are used
    missing = [c for c in ("dataset", "estimator", "status", "repeat", "fold") if c not in table.column_names]
    if missing:
        raise BaselineError(f"{path}: column {missing[0]}: missing (a baseline has one row per fold)")
    tasks = {name: info["task"] for name, info in baseline["datasets"].items()}
    for i, rec in enumerate(table.to_pandas().to_dict("records")):
        ds, est, status = rec["dataset"], rec["estimator"], rec["status"]
        for col, value in (("dataset", ds), ("estimator", est), ("status", status)):
            if not isinstance(value, str):
                raise BaselineError(f"{path}: row {i} column {col}: should be a string, got {value!r}")
        if ds not in tasks:
            raise BaselineError(f"{path}: row {i} column dataset: '{ds}' is not in the baseline's datasets")
        cell = baseline["cells"].setdefault(ds, {}).setdefault(est, {})
        try:
            fold = {k: _int(rec.get(k)) for k in ("seed", "repeat", "fold", "n_train", "n_test")}
        except (TypeError, ValueError):
            raise BaselineError(f"{path}: row {i}: seed, repeat, fold, n_train and n_test should be integers") from None
        fold["status"] = status
        if status == OK:  # every metric of the dataset's task, as in the JSON form
            names = [
                k[6:] for k in rec if k.startswith("score.") and k[6:] in METRICS and METRICS[k[6:]].task == tasks[ds]
            ]
            fold["scores"] = {m: _num(rec[f"score.{m}"]) for m in names}
        if not isinstance(cell.setdefault("folds", []), list):
            raise BaselineError(f"{path}: cells.{ds}.{est}.folds: should be in the rows, not the metadata")
        cell["folds"].append(fold)
    return baseline


# The baseline schema, checked whole before anything uses it: a malformed file (edited by
# hand, truncated, from a hostile pull request) is one line naming the file and the key path,
# never a crash deep in a comparison or after a run has fitted every fold. Unknown keys are
# allowed (a later minor version may add some); the keys and types this module reads are not.


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


def _key(item: Any) -> str:
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


def _validate(path: Path, baseline: dict[str, Any]) -> None:
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


def _check_header(path: Path, baseline: Any) -> None:
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


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline file and validate its whole schema, refusing anything else (exit 2 with one line).

    The line names the file and the key path of the first problem, e.g.
    `b.json: malformed baseline: datasets.wine: Input should be a valid dictionary`.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a baseline file" if path.is_dir() else "no such baseline file"
        raise BaselineError(f"{path}: {what} (write one with `harness baseline save DIR`)")
    if path.suffix == ".parquet" or _starts_with(path, b"PAR1"):
        baseline = _read_parquet(path)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"{path}: not a harness baseline file ({type(exc).__name__})") from None
        if not text.strip():
            raise BaselineError(f"{path}: not a harness baseline file (the file is empty)")
        try:
            baseline = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BaselineError(f"{path}: not a harness baseline file (not JSON: {type(exc).__name__})") from None
        _check_header(path, baseline)
    _validate(path, baseline)
    return baseline


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


# ---------------------------------------------------------------- comparing


@dataclass
class CheckOptions:
    """`metric`: None = each task's primary metric; `tolerance`: None = the per-metric default (module docstring)."""

    metric: str | None = None
    tolerance: float | None = None
    alpha: float = 0.05
    champion: str | None = None
    write: bool = True  # write DIR/check.md and DIR/check.json


@dataclass
class Mismatch:
    """Something that differs between baseline and run besides the scores; severity info | warning | error."""

    kind: str
    severity: str
    detail: str
    dataset: str | None = None
    estimator: str | None = None


@dataclass
class Comparison:
    """One (dataset, estimator): the inputs (per-fold values) and outputs of its test, and the verdict."""

    dataset: str
    estimator: str
    metric: str
    greater_is_better: bool
    test: str
    verdict: str
    reason: str
    tolerance: float
    alpha: float
    baseline_mean: float | None = None
    current_mean: float | None = None
    mean_diff: float | None = None  # oriented: positive = current better
    std: float | None = None
    t: float | None = None
    df: float | None = None
    p_two_sided: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    n_pairs: int = 0
    newly_failed: int = 0
    n_train: float | None = None
    n_test: float | None = None
    folds: list[dict[str, Any]] = field(default_factory=list)
    baseline_values: list[float] = field(default_factory=list)
    current_values: list[float] = field(default_factory=list)


@dataclass
class ChampionCheck:
    """Is the champion still best or tied-best (not significantly worse than the best) on a dataset?"""

    dataset: str
    champion: str
    metric: str
    status: str  # best | tied-best | worse | failed | not applicable
    best: str | None = None
    champion_mean: float | None = None
    best_mean: float | None = None
    mean_diff: float | None = None  # oriented champion − best (≤ 0)
    t: float | None = None
    df: float | None = None
    p_worse: float | None = None
    n_pairs: int = 0
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("worse", "failed")


@dataclass
class CheckResult:
    """Everything `check` found; `exit_code` is 1 when something regressed or the champion lost."""

    suite: str
    baseline_file: str
    comparisons: list[Comparison]
    mismatches: list[Mismatch]
    champion: list[ChampionCheck]
    options: CheckOptions
    tolerance_rule: str
    md_path: Path | None = None
    json_path: Path | None = None

    def by_verdict(self, verdict: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == verdict]

    @property
    def regressed(self) -> bool:
        return bool(self.by_verdict(REGRESSED)) or any(c.failed for c in self.champion)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    @property
    def verdict_line(self) -> str:
        n = {v: len(self.by_verdict(v)) for v in (REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED)}
        lost = [c.dataset for c in self.champion if c.failed]
        regressed = n[REGRESSED] > 0
        head = "REGRESSED" if regressed else ("FAILED: champion lost" if self.regressed else "OK: no regressions")
        parts = [f"{n[REGRESSED]} regressed", f"{n[IMPROVED]} improved", f"{n[UNCHANGED]} unchanged"]
        if n[NOT_COMPARED]:
            parts.append(f"{n[NOT_COMPARED]} not compared")
        parts.append(f"{len(self.mismatches)} mismatches")
        tail = f"; champion '{self.options.champion}' lost on {', '.join(lost)}" if lost else ""
        return f"{head} ({', '.join(parts)}){tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "baseline": self.baseline_file,
            "verdict": "regressed" if self.regressed else "ok",
            "summary": self.verdict_line,
            "exit_code": self.exit_code,
            "options": asdict(self.options),
            "tolerance_rule": self.tolerance_rule,
            "comparisons": [asdict(c) for c in self.comparisons],
            "mismatches": [asdict(m) for m in self.mismatches],
            "champion": [asdict(c) | {"failed": c.failed} for c in self.champion],
        }


CHECK_FILES = ("check.md", "check.json")


def check_run(
    out_dir: str | Path, baseline_file: str | Path, options: CheckOptions | None = None, force: bool = False
) -> CheckResult:
    """Compare the run in `out_dir` with a baseline file; write DIR/check.md and DIR/check.json (as a set).

    An existing check.md/check.json that is not the harness's own output is refused (exit 2)
    before anything is compared, unless `force`.
    """
    options = options or CheckOptions()
    _check_options(options)
    baseline = load_baseline(baseline_file)
    out_dir = Path(out_dir)
    if options.write:
        check_set_targets(out_dir, CHECK_FILES, force)
    with Store(out_dir / "results.db", create=False) as store:
        current = baseline_from_store(store)
    result = compare(baseline, current, options, baseline_file=str(baseline_file))
    if options.write:
        files = {"check.md": check_markdown(result), "check.json": _dumps(result.to_dict()) + "\n"}
        result.md_path, result.json_path = write_set(out_dir, files, force)
    return result


def _check_options(options: CheckOptions) -> None:
    if not 0 < options.alpha < 1:
        raise BaselineError(f"--alpha {options.alpha}: must be between 0 and 1")
    if options.tolerance is not None and not (options.tolerance >= 0 and math.isfinite(options.tolerance)):
        raise BaselineError(f"--tolerance {options.tolerance}: must be a number >= 0")
    if options.metric is not None and options.metric not in METRICS:
        raise BaselineError(f"--metric {options.metric}: unknown metric{did_you_mean(options.metric, list(METRICS))}")


def compare(
    baseline: dict[str, Any], current: dict[str, Any], options: CheckOptions, baseline_file: str = "<baseline>"
) -> CheckResult:
    """Compare two baseline dicts (the file and the run); pure, so the lead's `run --baseline` can reuse it."""
    _check_options(options)
    _check_metric_present(baseline, current, options.metric)
    # The suite's `champion:` applies unless the caller names one.
    options = replace(options, champion=options.champion or current.get("champion"))
    if options.champion is not None:
        _check_champion_known(current, options.champion)
    mismatches = _run_mismatches(baseline, current)
    comparisons: list[Comparison] = []
    for ds in sorted(set(baseline["datasets"]) | set(current["datasets"])):
        if ds not in current["datasets"]:
            mismatches.append(Mismatch("dataset missing", "warning", "in the baseline but not in the run", ds))
            continue
        if ds not in baseline["datasets"]:
            mismatches.append(Mismatch("dataset new", "info", "in the run but not in the baseline", ds))
            continue
        comparisons += _compare_dataset(ds, baseline, current, options, mismatches)
    champion = _champion_checks(current, options) if options.champion else []
    rule = (
        f"absolute {options.tolerance:g} in the metric's units"
        if options.tolerance is not None
        else f"{DEFAULT_TOLERANCE:g} for metrics bounded in [0, 1]; "
        f"{DEFAULT_TOLERANCE:.1%} of the baseline's mean |score| for unbounded metrics"
    )
    return CheckResult(str(current.get("suite")), baseline_file, comparisons, mismatches, champion, options, rule)


def _check_metric_present(baseline: dict[str, Any], current: dict[str, Any], metric: str | None) -> None:
    if metric is None:
        return
    if metric not in current.get("metrics", {}) and metric not in baseline.get("metrics", {}):
        recorded = sorted(set(current.get("metrics", {})) | set(baseline.get("metrics", {})))
        raise BaselineError(
            f"--metric {metric}: not computed in this run or the baseline (have: {', '.join(recorded)})"
        )


def _check_champion_known(current: dict[str, Any], champion: str) -> None:
    names = {e for ests in current["cells"].values() for e in ests} | {
        e for ests in current.get("skipped", {}).values() for e in ests
    }
    if champion not in names:
        raise BaselineError(
            f"--champion {champion}: no such estimator in the run{did_you_mean(champion, sorted(names))}"
            f" (the run has: {', '.join(sorted(names))})"
        )


def _run_mismatches(baseline: dict[str, Any], current: dict[str, Any]) -> list[Mismatch]:
    out = []
    if baseline.get("suite") != current.get("suite"):
        out.append(Mismatch("suite", "info", f"suite '{baseline.get('suite')}' → '{current.get('suite')}'"))
    old, new = baseline.get("versions", {}), current.get("versions", {})
    for pkg in sorted(set(old) | set(new)):  # the key packages the run recorded (runner.package_versions)
        if old.get(pkg) != new.get(pkg):
            out.append(
                Mismatch("versions", "warning", f"{pkg} {old.get(pkg) or 'absent'} → {new.get(pkg) or 'absent'}")
            )
    return out


def _metric_for(task: str, side: dict[str, Any], options: CheckOptions) -> str | None:
    if options.metric is not None and METRICS[options.metric].task == task:
        return options.metric
    return side.get("primary", {}).get(task)


def _compare_dataset(
    ds: str, baseline: dict[str, Any], current: dict[str, Any], options: CheckOptions, mismatches: list[Mismatch]
) -> list[Comparison]:
    """Dataset-level identity checks once, then one comparison per estimator present on both sides."""
    b_info, c_info = baseline["datasets"][ds], current["datasets"][ds]
    task = c_info["task"]
    if b_info.get("task") != task:
        mismatches.append(Mismatch("task", "error", f"task {b_info.get('task')} → {task}: not comparable", ds))
        return []
    pairable = True
    if b_info.get("fingerprint") != c_info.get("fingerprint"):
        mismatches.append(
            Mismatch(
                "fingerprint",
                "warning",
                f"dataset content changed (fingerprint {str(b_info.get('fingerprint'))[:12]} → "
                f"{str(c_info.get('fingerprint'))[:12]}): folds are different rows, compared unpaired",
                ds,
            )
        )
        pairable = False
    b_split = {k: v for k, v in b_info.get("split", {}).items() if k != "seeds"}
    c_split = {k: v for k, v in c_info.get("split", {}).items() if k != "seeds"}
    if b_split != c_split:
        mismatches.append(
            Mismatch("split", "warning", f"split definition {b_split} → {c_split}: compared unpaired", ds)
        )
        pairable = False
    b_seeds, c_seeds = b_info.get("split", {}).get("seeds"), c_info.get("split", {}).get("seeds")
    if b_seeds != c_seeds:
        mismatches.append(
            Mismatch("seeds", "warning", f"seeds {b_seeds} → {c_seeds}: only folds of common seeds are paired", ds)
        )
    metric = _metric_for(task, current, options)
    if options.metric is not None and metric != options.metric:
        mismatches.append(
            Mismatch("metric", "info", f"--metric {options.metric} is not a {task} metric; using {metric}", ds)
        )
    b_cells, c_cells = baseline["cells"].get(ds, {}), current["cells"].get(ds, {})
    out = []
    for est in sorted(set(b_cells) | set(c_cells)):
        if est not in c_cells:
            mismatches.append(Mismatch("estimator missing", "warning", "in the baseline but not in the run", ds, est))
        elif est not in b_cells:
            mismatches.append(Mismatch("estimator new", "info", "in the run but not in the baseline", ds, est))
        else:
            changes = _config_changes(b_cells[est].get("config", {}), c_cells[est].get("config", {}))
            if changes:
                mismatches.append(Mismatch("config", "info", "configuration changed: " + "; ".join(changes), ds, est))
            out.append(_compare_cell(ds, est, metric, b_cells[est], c_cells[est], pairable, options))
    return out


def _config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs, e.g. 'params.max_depth: 8 → 1' (the usual intended change)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{path}: added {json.dumps(new[k], default=str)}")
            elif k not in new:
                out.append(f"{path}: removed")
            else:
                out += _config_changes(old[k], new[k], path)
        return out
    if old != new:
        return [f"{prefix}: {json.dumps(old, default=str)} → {json.dumps(new, default=str)}"]
    return []


def _fold_id(f: dict[str, Any]) -> tuple[int | None, int, int]:
    return (f.get("seed"), f["repeat"], f["fold"])


def _scores(cell: dict[str, Any], metric: str) -> dict[tuple, tuple[float, float, float]]:
    """Usable folds: fold identity → (score, n_train, n_test) for ok folds with a value."""
    out = {}
    for f in cell.get("folds", []):
        value = (f.get("scores") or {}).get(metric) if f.get("status") == OK else None
        if value is not None and math.isfinite(value):
            out[_fold_id(f)] = (float(value), float(f.get("n_train") or np.nan), float(f.get("n_test") or np.nan))
    return out


def _newly_failed(b_cell: dict[str, Any], c_cell: dict[str, Any], paired: bool) -> int:
    """Folds ok in the baseline that now fail (error, timeout): by identity when paired, by count otherwise."""
    b_ok = {_fold_id(f) for f in b_cell.get("folds", []) if f.get("status") == OK}
    c_failed = {_fold_id(f) for f in c_cell.get("folds", []) if f.get("status") in FAILED}
    if paired:
        return len(b_ok & c_failed)
    c_ok = sum(f.get("status") == OK for f in c_cell.get("folds", []))
    return max(0, len(b_ok) - c_ok) if c_failed else 0


def _tolerance(metric: str, baseline_mean: float | None, options: CheckOptions) -> float:
    if options.tolerance is not None:
        return options.tolerance
    if metric in BOUNDED_METRICS or baseline_mean is None:
        return DEFAULT_TOLERANCE
    return DEFAULT_TOLERANCE * abs(baseline_mean)


def _compare_cell(
    ds: str,
    est: str,
    metric: str | None,
    b_cell: dict[str, Any],
    c_cell: dict[str, Any],
    pairable: bool,
    options: CheckOptions,
) -> Comparison:
    greater = METRICS[metric].greater_is_better if metric in METRICS else True
    base = Comparison(ds, est, str(metric), greater, "none", NOT_COMPARED, "", options.tolerance or 0.0, options.alpha)
    if metric is None:
        base.reason = "no metric for this task"
        return base
    b, c = _scores(b_cell, metric), _scores(c_cell, metric)
    common = sorted(set(b) & set(c), key=str) if pairable else []
    paired = len(common) >= 2
    base.newly_failed = _newly_failed(b_cell, c_cell, paired)
    base.n_baseline, base.n_current = len(b), len(c)
    base.baseline_values = [v[0] for v in b.values()]
    base.current_values = [v[0] for v in c.values()]
    base.baseline_mean = float(np.mean(base.baseline_values)) if b else None
    base.current_mean = float(np.mean(base.current_values)) if c else None
    base.tolerance = _tolerance(metric, base.baseline_mean, options)
    sign = 1.0 if greater else -1.0
    if paired:
        _paired_test(base, b, c, common, sign, options.alpha)
    elif len(b) >= 2 and len(c) >= 2:
        _welch_test(base, sign)
        if pairable:
            base.reason = "fewer than 2 common folds; "
    else:
        base.reason = f"too few usable folds (baseline {len(b)}, run {len(c)})"
        if base.newly_failed:
            base.verdict, base.reason = REGRESSED, f"{base.newly_failed} folds ok in the baseline now fail"
        return base
    _decide(base)
    return base


def _paired_test(comp: Comparison, b: dict, c: dict, common: list[tuple], sign: float, alpha: float) -> None:
    from harness.stats import corrected_ttest

    diff = np.array([sign * (c[k][0] - b[k][0]) for k in common])
    n_train = np.array([(c[k][1] + b[k][1]) / 2 for k in common])
    n_test = np.array([(c[k][2] + b[k][2]) / 2 for k in common])
    res = corrected_ttest(diff, n_train, n_test, alpha=alpha)
    comp.test, comp.n_pairs = PAIRED, len(common)
    comp.folds = [
        {"seed": k[0], "repeat": k[1], "fold": k[2], "baseline": b[k][0], "current": c[k][0], "diff": d}
        for k, d in zip(common, diff, strict=True)
    ]
    comp.mean_diff, comp.std, comp.df = float(res.mean), _num(res.std), _num(res.df)
    comp.t = None if math.isnan(res.t) else float(res.t)  # ±inf kept for the decision; _decide clears it
    comp.p_two_sided, comp.ci_low, comp.ci_high = _num(res.p), _num(res.ci_low), _num(res.ci_high)
    comp.n_train, comp.n_test = float(n_train.mean()), float(n_test.mean())
    # Means over the paired folds only, so that the table's two means differ by exactly mean_diff.
    comp.baseline_mean = float(np.mean([b[k][0] for k in common]))
    comp.current_mean = float(np.mean([c[k][0] for k in common]))
    comp.p_worse, comp.p_better = _one_sided(res.t, res.df)
    if math.isnan(res.t):
        comp.reason = f"no test: {getattr(res, 'reason', None) or 'the corrected t-test is undefined'}; "


def _one_sided(t: float, df: float) -> tuple[float | None, float | None]:
    """P(T ≤ t) (evidence of worse) and P(T ≥ t) (evidence of better) for Student t with df."""
    from scipy import stats

    if t is None or math.isnan(t) or df is None or not df >= 1:
        return None, None
    return float(stats.t.cdf(t, df)), float(stats.t.sf(t, df))


def _welch_test(comp: Comparison, sign: float) -> None:
    """Folds cannot be paired (different rows or splits): Welch's t-test on the two sets of fold scores."""
    from scipy import stats

    cur = sign * np.asarray(comp.current_values)
    old = sign * np.asarray(comp.baseline_values)
    comp.test = UNPAIRED
    comp.mean_diff = float(cur.mean() - old.mean())
    if np.var(cur) == 0 and np.var(old) == 0:  # scipy would return NaN; the answer is plain
        same = comp.mean_diff == 0
        comp.t = 0.0 if same else math.copysign(math.inf, comp.mean_diff)
        comp.p_two_sided = 1.0 if same else 0.0
        comp.p_worse = 0.5 if same else float(comp.mean_diff > 0)  # 0: certainly worse
        comp.p_better = 0.5 if same else float(comp.mean_diff < 0)
        return
    two = stats.ttest_ind(cur, old, equal_var=False)
    comp.t, comp.df, comp.p_two_sided = float(two.statistic), float(two.df), float(two.pvalue)
    comp.p_worse = float(stats.ttest_ind(cur, old, equal_var=False, alternative="less").pvalue)
    comp.p_better = float(stats.ttest_ind(cur, old, equal_var=False, alternative="greater").pvalue)
    comp.std = float(np.sqrt(cur.var(ddof=1) / len(cur) + old.var(ddof=1) / len(old)))


def _decide(comp: Comparison) -> None:
    """The verdict rule of the module docstring; the reason says which condition decided."""
    d, tol, alpha = comp.mean_diff, comp.tolerance, comp.alpha
    worse_sig = comp.p_worse is not None and comp.p_worse < alpha
    better_sig = comp.p_better is not None and comp.p_better < alpha
    prefix = comp.reason
    if comp.newly_failed:
        comp.verdict = REGRESSED
        comp.reason = prefix + f"{comp.newly_failed} folds ok in the baseline now fail"
    elif comp.t is None:
        comp.verdict = NOT_COMPARED
    elif d < -tol and worse_sig:
        comp.verdict = REGRESSED
        comp.reason = prefix + f"mean drop {-d:.4g} > tolerance {tol:.4g}, one-sided p = {comp.p_worse:.3g} < {alpha:g}"
    elif d > tol and better_sig:
        comp.verdict = IMPROVED
        comp.reason = prefix + f"mean gain {d:.4g} > tolerance {tol:.4g}, one-sided p = {comp.p_better:.3g} < {alpha:g}"
    else:
        comp.verdict = UNCHANGED
        p = comp.p_worse if d < 0 else comp.p_better
        within = abs(d) <= tol
        why = f"|mean diff| {abs(d):.4g} ≤ tolerance {tol:.4g}" if within else f"not significant (p = {_p(p)})"
        comp.reason = prefix + why
    if comp.t is not None and not math.isfinite(comp.t):
        comp.t = None  # ±inf (all differences equal) has served the decision; JSON has no inf


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


# ---------------------------------------------------------------- champion


def _champion_checks(current: dict[str, Any], options: CheckOptions) -> list[ChampionCheck]:
    """Per dataset of the run: the champion against the best mean, paired on the run's own folds."""
    name = str(options.champion)
    out = []
    for ds, info in sorted(current["datasets"].items()):
        metric = _metric_for(info["task"], current, options)
        cells = current["cells"].get(ds, {})
        if metric is None:
            continue
        if name in current.get("skipped", {}).get(ds, {}):
            out.append(ChampionCheck(ds, name, metric, "not applicable", detail="skipped on this dataset"))
            continue
        out.append(_champion_on(ds, name, metric, cells, options))
    return out


def _champion_on(ds: str, name: str, metric: str, cells: dict[str, Any], options: CheckOptions) -> ChampionCheck:
    sign = 1.0 if METRICS[metric].greater_is_better else -1.0
    scores = {est: _scores(cell, metric) for est, cell in cells.items()}
    means = {est: sign * float(np.mean([v[0] for v in s.values()])) for est, s in scores.items() if s}
    if name not in means:
        return ChampionCheck(ds, name, metric, "failed", detail="the champion has no successful fold here")
    best = max(sorted(means), key=lambda e: means[e])
    check = ChampionCheck(ds, name, metric, "best", best, sign * means[name], sign * means[best])
    if best == name or means[best] == means[name]:
        check.best, check.detail = name, "best mean"
        return check
    common = sorted(set(scores[name]) & set(scores[best]), key=str)
    diff = np.array([sign * (scores[name][k][0] - scores[best][k][0]) for k in common])
    check.mean_diff, check.n_pairs = float(diff.mean()) if len(diff) else None, len(common)
    if len(common) < 2:
        check.status, check.detail = "failed", f"fewer than 2 folds shared with the best ({best})"
        return check
    from harness.stats import corrected_ttest

    n_train = np.array([scores[name][k][1] for k in common])
    n_test = np.array([scores[name][k][2] for k in common])
    res = corrected_ttest(diff, n_train, n_test, alpha=options.alpha)
    check.t, check.df = _num(res.t), _num(res.df)
    check.p_worse = _one_sided(res.t, res.df)[0]
    tol = _tolerance(metric, check.best_mean, options)
    worse = check.mean_diff < -tol and check.p_worse is not None and check.p_worse < options.alpha
    check.status = "worse" if worse else "tied-best"
    check.detail = f"behind {best} by {-check.mean_diff:.4g}, one-sided p = {_p(check.p_worse)}" + (
        f" < {options.alpha:g}" if worse else f" (tolerance {tol:.4g}, alpha {options.alpha:g})"
    )
    return check


# ---------------------------------------------------------------- reports


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _row(c: Comparison) -> list[str]:
    return [
        c.dataset,
        c.estimator,
        c.metric + ("" if c.greater_is_better else " ↓"),
        _fmt(c.baseline_mean),
        _fmt(c.current_mean),
        "—" if c.mean_diff is None else f"{c.mean_diff:+.4f}",
        _p(c.p_worse if (c.mean_diff or 0) < 0 else c.p_better),
        c.test,
        c.verdict,
        c.reason,
    ]


HEADER = ["dataset", "estimator", "metric", "baseline", "run", "diff (+ = better)", "p (one-sided)", "test", "verdict"]


def check_markdown(result: CheckResult) -> str:
    """For a pull-request comment: verdict, regressions first, then improvements, unchanged, mismatches."""
    o = result.options
    lines = [
        f"## harness check: {result.suite}",
        "",
        f"**{result.verdict_line}**",
        "",
        f"Baseline `{result.baseline_file}`; alpha {o.alpha:g} (one-sided corrected resampled t-test on paired folds); "
        f"tolerance: {result.tolerance_rule}. Differences are run − baseline, oriented so that + is better "
        "(↓ marks lower-is-better metrics).",
    ]
    for title, verdict in (
        ("Regressions", REGRESSED),
        ("Improvements", IMPROVED),
        ("Unchanged", UNCHANGED),
        ("Not compared", NOT_COMPARED),
    ):
        rows = result.by_verdict(verdict)
        if not rows:
            continue
        lines += ["", f"### {title} ({len(rows)})", "", "| " + " | ".join([*HEADER, "why"]) + " |"]
        lines.append("|" + "---|" * (len(HEADER) + 1))
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _row(c)) + " |" for c in rows]
    if result.champion:
        lines += ["", f"### Champion: {o.champion}", "", "| dataset | status | best | detail |", "|---|---|---|---|"]
        lines += [f"| {c.dataset} | {c.status} | {c.best or '—'} | {c.detail} |" for c in result.champion]
    lines += ["", f"### Mismatches ({len(result.mismatches)})", ""]
    if not result.mismatches:
        lines.append("None: same data, splits, configurations and package versions.")
    for m in result.mismatches:
        where = "/".join(x for x in (m.dataset, m.estimator) if x)
        lines.append(f"- **{m.kind}** ({m.severity}){' ' + where if where else ''}: {m.detail}")
    return "\n".join(lines) + "\n"


def check_table(result: CheckResult):
    """The terminal view: one row per comparison, regressions first, coloured by verdict."""
    from rich.markup import escape
    from rich.table import Table

    colour = {REGRESSED: "bold red", IMPROVED: "green", UNCHANGED: "", NOT_COMPARED: "yellow"}
    table = Table(title=f"check: {result.suite} vs {escape(result.baseline_file)}")
    for col in HEADER:
        table.add_column(col, justify="right" if col in ("baseline", "run", "diff (+ = better)") else "left")
    for verdict in (REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED):
        for c in result.by_verdict(verdict):
            cells = [escape(x) for x in _row(c)[:-1]]
            style = colour[verdict]
            cells[-1] = f"[{style}]{cells[-1]}[/]" if style else cells[-1]
            table.add_row(*cells)
    return table
