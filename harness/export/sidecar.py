"""The sidecar FILE.json beside an exported model: what it expects, what it predicts, how good it is.

It is what `check_frame` checks new data against (feature names, dtypes, categories),
what `harness predict` labels its output with (the classes), and the provenance a
reviewer needs: the cross-validated scores the store holds for this (dataset,
estimator), the suite, seed and package versions, and the SHA-256 of the model file
(so a sidecar never describes another model).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import pandas as pd

from harness.export.model import SIDECAR_FORMAT, SIDECAR_VERSION


def build_sidecar(
    cell: Any,
    resolved: Any,
    tuning: dict[str, Any] | None,
    payload: bytes,
    untrusted: list[str],
    fit_s: float,
    model_file: str,
) -> dict[str, Any]:
    """The sidecar of one export, JSON-ready."""
    from harness.engine.tasks import package_versions

    ds, suite = cell.dataset, cell.suite
    spec_json = json.loads(cell.run["suite_json"])
    spec = next(d for d in suite.datasets if d.name == ds.name)
    ignored = [*spec.drop, *([suite.cv.group] if suite.cv.group else [])]
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "model_file": model_file,
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "skops_types": untrusted,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": ds.task,
        "target": spec.target or "__target__",  # a built-in set's target has no name of its own
        "ignored_columns": ignored,
        "inf": spec.inf,
        "features": features(ds.X, ds.categorical),
        "classes": None if ds.labels is None else _plain(list(ds.labels)),
        "dataset": {"name": ds.name, "source": ds.source, "fingerprint": ds.fingerprint, "rows": len(ds.y)},
        "estimator": {
            "name": resolved.spec.name,
            "class": resolved.cls_path,
            "params": _plain(resolved.params),
            "config": _plain(resolved.config()),
            "tuning": _plain(tuning),
            "fit_s": round(fit_s, 4),
        },
        "scores": scores(cell.folds, suite, ds.task, cell.directions),
        "suite": {
            "name": suite.name,
            "seed": suite.seed,
            "seeds": spec_json.get("seeds") or [suite.seed],  # the scores are over every seed's folds
            "spec": spec_json,
        },
        "run": {"run_id": cell.run["run_id"], "versions": json.loads(cell.run.get("versions") or "{}")},
        "versions": package_versions(),
    }


def features(X: pd.DataFrame, categorical: list[str]) -> list[dict[str, Any]]:
    """Per feature column: name, dtype, and for a categorical one its categories (sorted) and raw kind."""
    out = []
    for col in X.columns:
        entry: dict[str, Any] = {"name": str(col), "dtype": str(X[col].dtype), "categorical": col in categorical}
        if col in categorical:
            cats = sorted(str(v) for v in X[col].dropna().unique())
            entry["categories"] = cats
            entry["raw_kind"] = "number" if all(_is_number(v) for v in cats) else "text"
        out.append(entry)
    return out


def scores(folds: pd.DataFrame, suite: Any, task: str, directions: dict[str, bool]) -> dict[str, Any]:
    """The cross-validated scores of this cell in the store: per metric mean, std and folds scored."""
    ok = folds[folds["status"] == "ok"]
    metrics = {}
    for name in suite.metric_names(task):
        values = pd.to_numeric(ok[name], errors="coerce").dropna() if name in ok else pd.Series(dtype=float)
        metrics[name] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "n": len(values),
            "greater_is_better": directions.get(name),
        }
    return {
        "primary": suite.primary_metric(task),
        "folds": len(folds),
        "folds_ok": len(ok),
        "cv": suite.cv.model_dump(),
        "metrics": metrics,
    }


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON values (the sidecar is read by other tools)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
