"""Learning and validation curves as the reports see them: tables and derived numbers from the stored folds.

Why a module of its own: the engine stores each fold's curve points in its `extra`
(`engine.curves`); everything a report says about them is derived here from the read model
alone, so `learning_curves.csv`, `validation_curves.csv` and the HTML section agree and the
section only formats. Derived numbers:

- the fit-time scaling exponent b of fit_time ≈ c · n_train^b (least squares on log–log through
  the median fit time at each training size, with its standard error: the median, because a
  process's first fit pays one-off costs, imports and caches, that would bend the line);
- the gain over the last doubling of the training rows: per fold, the primary score at the
  full training part minus the score at the largest smaller fraction, divided by the number
  of doublings between them (oriented: positive = better), tested with the Nadeau–Bengio
  corrected t-test (fold training sets overlap), so "still rising" means the corrected
  confidence interval lies above 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.report.context import ReportData
from harness.stats import CorrectedTTest, corrected_ttest
from harness.store import OK

LEARNING_KEYS = ["dataset", "estimator", "seed", "repeat", "fold", "fraction", "n_train"]
VALIDATION_KEYS = ["dataset", "estimator", "seed", "repeat", "fold", "param", "value"]


def _metric_names(data: ReportData) -> list[str]:
    """Every metric of the run, in the suite's order (the columns of results.csv)."""
    return list(dict.fromkeys(m for names in data.boards.metrics.values() for m in names))


def _fold_records(data: ReportData, key: str) -> list[tuple[dict[str, Any], Any]]:
    """(fold row, extra[key]) for every ok fold that stored `key`, in the store's order."""
    folds = data.folds
    if folds.empty or "extra" not in folds:
        return []
    out = []
    for rec in folds[folds["status"] == OK].to_dict("records"):
        extra = rec.get("extra")
        if isinstance(extra, dict) and extra.get(key):
            out.append((rec, extra[key]))
    return out


def _identity(rec: dict[str, Any]) -> dict[str, Any]:
    seed = rec.get("seed")
    seed = 0 if seed is None or (isinstance(seed, float) and math.isnan(seed)) else int(seed)
    return {"dataset": rec["dataset"], "estimator": rec["estimator"], "seed": seed,
            "repeat": int(rec["repeat"]), "fold": int(rec["fold"])}  # fmt: skip


def learning_curve_frame(data: ReportData) -> pd.DataFrame:
    """One row per (fold, fraction): LEARNING_KEYS, one column per metric, fit_time, error."""
    metrics = _metric_names(data)
    rows = []
    for rec, points in _fold_records(data, "learning_curve"):
        for p in points:
            row = _identity(rec) | {"fraction": float(p["fraction"]), "n_train": int(p["n_train"])}
            row |= {m: (p.get("metrics") or {}).get(m) for m in metrics}
            rows.append(row | {"fit_time": p.get("fit_time"), "error": p.get("error")})
    return pd.DataFrame(rows, columns=[*LEARNING_KEYS, *metrics, "fit_time", "error"])


def validation_curve_frame(data: ReportData) -> pd.DataFrame:
    """One row per (fold, value): VALIDATION_KEYS, train_<metric> and test_<metric> columns, fit_time, error.

    `value` is the parameter's value as JSON text (null, 0.1, "gini", [64, 64]), so any value is one cell.
    """
    metrics = _metric_names(data)
    rows = []
    for rec, curve in _fold_records(data, "validation_curve"):
        for p in curve.get("points", []):
            row = _identity(rec) | {"param": curve.get("param"), "value": value_text(p.get("value"))}
            for part in ("train", "test"):
                row |= {f"{part}_{m}": (p.get(part) or {}).get(m) for m in metrics}
            rows.append(row | {"fit_time": p.get("fit_time"), "error": p.get("error")})
    scores = [f"{part}_{m}" for part in ("train", "test") for m in metrics]
    return pd.DataFrame(rows, columns=[*VALIDATION_KEYS, *scores, "fit_time", "error"])


def value_text(value: Any) -> str:
    """A parameter value as one short, unambiguous text (JSON)."""
    return json.dumps(value, sort_keys=True, default=str)


def learning_curves_csv(data: ReportData) -> str | None:
    """learning_curves.csv's text, or None when no fold stored a learning curve."""
    frame = learning_curve_frame(data)
    return None if frame.empty else frame.to_csv(index=False)


def validation_curves_csv(data: ReportData) -> str | None:
    """validation_curves.csv's text, or None when no fold stored a validation curve."""
    frame = validation_curve_frame(data)
    return None if frame.empty else frame.to_csv(index=False)


# ---------------------------------------------------------------- learning curves: derived numbers


@dataclass
class LearningSummary:
    """One estimator's learning curve on one dataset, on the dataset's primary metric."""

    estimator: str
    metric: str
    greater: bool
    points: pd.DataFrame  # per fraction: n_train, score_mean, score_std, time_median, time_q1, time_q3, folds
    exponent: float  # b of fit_time ≈ c · n^b (NaN when it cannot be fitted)
    exponent_se: float
    last_doubling: CorrectedTTest | None  # oriented gain per doubling over the last step, per fold
    from_fraction: float | None  # the fraction the last step starts from

    @property
    def verdict(self) -> str:
        """Whether the score still improves at full size: rising, flat or falling (corrected CI vs 0)."""
        t = self.last_doubling
        if t is None or not np.isfinite(t.ci_low):
            return "unknown" if t is None or not t.reason else f"unknown ({t.reason})"
        if t.ci_low > 0:
            return "still rising"
        if t.ci_high < 0:
            return "falling"
        return "flat (within fold noise)"


def learning_summaries(data: ReportData, ds: str) -> list[LearningSummary]:
    """Every estimator with a learning curve on `ds`, in the leaderboard's order."""
    frame = learning_curve_frame(data)
    frame = frame[frame["dataset"] == ds]
    if frame.empty:
        return []
    metric = data.primary(ds)
    greater = data.direction(metric)
    n_test = _test_sizes(data, ds)
    return [_summary(str(est), rows, metric, greater, n_test) for est, rows in frame.groupby("estimator", sort=False)]


def _test_sizes(data: ReportData, ds: str) -> dict[tuple[int, int, int], float]:
    folds = data.folds
    rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)]
    return {
        (_identity(r)["seed"], int(r["repeat"]), int(r["fold"])): float(r["n_test"]) for r in rows.to_dict("records")
    }


def _summary(est: str, rows: pd.DataFrame, metric: str, greater: bool, n_test: dict) -> LearningSummary:
    rows = rows.assign(score=pd.to_numeric(rows[metric], errors="coerce"),
                       time=pd.to_numeric(rows["fit_time"], errors="coerce"))  # fmt: skip
    points = (
        rows.groupby("fraction")
        .agg(
            n_train=("n_train", "mean"),
            score_mean=("score", "mean"),
            score_std=("score", "std"),
            time_median=("time", "median"),
            time_q1=("time", lambda t: t.quantile(0.25)),
            time_q3=("time", lambda t: t.quantile(0.75)),
            folds=("score", "count"),
        )
        .sort_index()
    )
    n, median = points["n_train"].to_numpy(float), points["time_median"].to_numpy(float)
    exponent, exponent_se = fit_time_exponent(n, median)
    test, start = last_doubling(rows, greater, n_test)
    return LearningSummary(est, metric, greater, points, exponent, exponent_se, test, start)


def fit_time_exponent(n_train: np.ndarray, fit_time: np.ndarray) -> tuple[float, float]:
    """(b, its standard error) of fit_time ≈ c · n^b by least squares on logs; NaN when fewer than 2 sizes."""
    keep = np.isfinite(n_train) & np.isfinite(fit_time) & (n_train > 0) & (fit_time > 0)
    x, y = np.log(n_train[keep]), np.log(fit_time[keep])
    if np.unique(x).size < 2:
        return math.nan, math.nan
    fit = sps.linregress(x, y)
    se = float(fit.stderr) if x.size > 2 else math.nan
    return float(fit.slope), se


def last_doubling(
    rows: pd.DataFrame, greater: bool, n_test: dict[tuple[int, int, int], float]
) -> tuple[CorrectedTTest | None, float | None]:
    """Per-fold gain per doubling from the largest fraction below 1.0 to 1.0, and the corrected t-test of its mean.

    Gains are oriented (a lower-is-better metric is negated), so a positive mean means still improving.
    """
    smaller = sorted(f for f in rows["fraction"].unique() if f < 1.0)
    if not smaller or not (rows["fraction"] == 1.0).any():
        return None, None
    start = smaller[-1]
    keys = ["seed", "repeat", "fold"]
    full, part = rows[rows["fraction"] == 1.0], rows[rows["fraction"] == start]
    both = full.merge(part, on=keys, suffixes=("_full", "_part")).set_index(keys)
    if both.empty:
        return None, start
    doublings = np.log2(both["n_train_full"].to_numpy(float) / both["n_train_part"].to_numpy(float))
    gain = (both["score_full"].to_numpy(float) - both["score_part"].to_numpy(float)) / doublings
    gain = gain if greater else -gain
    tests = np.array([n_test.get(k, math.nan) for k in both.index], dtype=float)
    return corrected_ttest(gain, both["n_train_full"].to_numpy(float), tests), start


# ---------------------------------------------------------------- validation curves


@dataclass
class ValidationSummary:
    """One estimator's validation curve on one dataset: mean ± std over folds per value, primary metric."""

    estimator: str
    param: str
    metric: str
    greater: bool
    table: pd.DataFrame  # index: value text (stored order); train_mean, train_std, test_mean, test_std, fit_time
    values: list[Any]  # the values themselves, in the same order

    @property
    def best(self) -> str | None:
        """The value with the best mean test score."""
        scores = self.table["test_mean"].dropna()
        if scores.empty:
            return None
        return str(scores.idxmax() if self.greater else scores.idxmin())


def validation_summaries(data: ReportData, ds: str) -> list[ValidationSummary]:
    """Every estimator with a validation curve on `ds`."""
    metric = data.primary(ds)
    greater = data.direction(metric)
    per_est: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for rec, curve in _fold_records(data, "validation_curve"):
        if rec["dataset"] == ds:
            per_est.setdefault(str(rec["estimator"]), []).append((str(curve.get("param")), curve.get("points", [])))
    out = []
    for est, curves in per_est.items():
        values: dict[str, Any] = {}
        cells: dict[str, dict[str, list[float]]] = {}
        for _, points in curves:
            for p in points:
                text = value_text(p.get("value"))
                values.setdefault(text, p.get("value"))
                cell = cells.setdefault(text, {"train": [], "test": [], "fit_time": []})
                for part in ("train", "test"):
                    cell[part].append(_num((p.get(part) or {}).get(metric)))
                cell["fit_time"].append(_num(p.get("fit_time")))
        table = pd.DataFrame(
            {
                text: {
                    "train_mean": _mean(c["train"]),
                    "train_std": _std(c["train"]),
                    "test_mean": _mean(c["test"]),
                    "test_std": _std(c["test"]),
                    "fit_time": _mean(c["fit_time"]),
                }
                for text, c in cells.items()
            }
        ).T
        out.append(ValidationSummary(est, curves[0][0], metric, greater, table, list(values.values())))
    return out


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean(xs: list[float]) -> float:
    arr = np.asarray(xs, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _std(xs: list[float]) -> float:
    arr = np.asarray(xs, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def curve_files(data: ReportData) -> dict[str, str | None]:
    """The curve outputs by file name; None where no fold stored that curve (the file is not written)."""
    return {"learning_curves.csv": learning_curves_csv(data), "validation_curves.csv": validation_curves_csv(data)}
