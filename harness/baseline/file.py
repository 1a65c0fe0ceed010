"""The baseline file: built from the store, written (JSON or Parquet), read back and validated.

A baseline file freezes a run's per-fold scores with everything that says what they
mean (dataset fingerprint, split definition, estimator configuration, package
versions), small and diff-friendly so it can be committed beside the code. The same
dict, built from a later run's store, is what `gate.compare` compares it with.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from harness.baseline.result import BaselineError, finite_or_none
from harness.baseline.schema import FORMAT, FORMAT_VERSION, check_header, validate
from harness.fileio import atomic_write, check_target, is_baseline_file
from harness.metrics import METRICS
from harness.report.format import dumps
from harness.spec import CVSpec
from harness.splits import cv_definition
from harness.store import OK, SKIPPED, Store


def baseline_from_store(store: Store) -> dict[str, Any]:
    """The latest suite version's current cells as a baseline dict (what `save` writes, what `check` compares)."""
    run = store.latest_run()
    if run is None:
        raise BaselineError(f"{store.path}: the store has no runs")
    return baseline_from_run(run, store.results(store.current_keys()), store.path)


def baseline_from_run(run: dict[str, Any], folds: pd.DataFrame, where: str | Path) -> dict[str, Any]:
    """The baseline dict of a run row and its current folds, as the reports' read model holds them
    (`ReportData.boards.run` / `.folds`): a check after a run reads the store no second time."""
    settings = json.loads(run["settings"] or "{}")
    suite = json.loads(run["suite_json"] or "{}")
    if folds.empty:
        raise BaselineError(f"{where}: no results for the latest suite version")
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
                "config": g["config"].iloc[0] or {},
                "folds": [_fold_entry(r, names) for r in g.sort_values(["seed", "repeat", "fold"]).to_dict("records")],
            }
    versions = Counter(json.dumps(v, sort_keys=True) for v in folds["versions"] if v)
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
        "champion": suite.get("champion"),
        "alpha": (suite.get("analysis") or {}).get("alpha"),  # the level of the run's summary
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
        entry["scores"] = {m: finite_or_none(row.get(m)) for m in metric_names}
    return entry


def _int(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


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
        atomic_write(path, dumps_sorted(baseline) + "\n")


def dumps_sorted(obj: Any) -> str:
    """Baseline and check files: strict JSON with sorted keys, so files diff cleanly."""
    return dumps(obj, sort_keys=True)


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
    table = table.replace_schema_metadata({b"harness_baseline": dumps_sorted(header).encode()})
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
    check_header(path, baseline)
    validate(path, baseline)  # the header alone (cells without folds): types before they are used
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
            fold["scores"] = {m: finite_or_none(rec[f"score.{m}"]) for m in names}
        if not isinstance(cell.setdefault("folds", []), list):
            raise BaselineError(f"{path}: cells.{ds}.{est}.folds: should be in the rows, not the metadata")
        cell["folds"].append(fold)
    return baseline


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
        check_header(path, baseline)
    validate(path, baseline)
    return baseline


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False
