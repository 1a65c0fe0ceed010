"""Analysis, first part: leaderboards computed from the results store alone.

Per dataset, each estimator's mean and sample standard deviation (ddof=1) of every
metric over its successful folds, its fit and predict times, its fold counts by
status, and its rank by the suite's primary metric (direction-aware, ties
averaged). Across datasets, the mean of those ranks. Nothing here refits anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.store import ERROR, FAILED, OK, SKIPPED, TIMEOUT, Store


@dataclass
class Leaderboards:
    """What the reports need: per-fold rows, per-dataset tables and the overall ranking."""

    suite: str
    run: dict[str, Any]
    folds: pd.DataFrame
    per_dataset: dict[str, pd.DataFrame]
    overall: pd.DataFrame
    primary: dict[str, str]
    metrics: dict[str, list[str]]
    directions: dict[str, bool]
    datasets: dict[str, dict[str, Any]]

    def primary_for(self, dataset: str) -> str:
        return self.primary[self.datasets[dataset]["task"]]


def load_leaderboards(store: Store) -> Leaderboards:
    run = store.latest_run()
    if run is None:
        raise ValueError("the store has no runs")
    settings = json.loads(run["settings"])
    folds = store.results(store.current_keys())
    directions = store.metric_directions()
    infos = {
        info["name"]: info for fp, info in store.dataset_infos().items() if fp in set(folds["dataset_fingerprint"])
    }
    per_dataset = {}
    for name, rows in folds.groupby("dataset", sort=False):
        task = rows["task"].iloc[0]
        per_dataset[name] = dataset_table(rows, settings["metrics"][task], settings["primary"][task], directions)
    return Leaderboards(
        run["suite"],
        run,
        folds,
        per_dataset,
        overall_table(per_dataset),
        settings["primary"],
        settings["metrics"],
        directions,
        infos,
    )


def dataset_table(rows: pd.DataFrame, metrics: list[str], primary: str, directions: dict[str, bool]) -> pd.DataFrame:
    """One row per estimator: mean/std per metric, times, status counts, rank by the primary metric."""
    records = []
    for est, g in rows.groupby("estimator", sort=False):
        ok = g[g["status"] == OK]
        rec: dict[str, Any] = {"estimator": est, "folds": len(g)}
        for status in (OK, ERROR, TIMEOUT, SKIPPED):
            rec[f"n_{status}"] = int((g["status"] == status).sum())
        for m in metrics:
            values = pd.to_numeric(ok[m], errors="coerce") if m in ok else pd.Series(dtype=float)
            rec[f"{m}_mean"] = values.mean() if values.notna().any() else np.nan
            rec[f"{m}_std"] = values.std(ddof=1) if values.notna().sum() > 1 else np.nan
            rec[f"{m}_n"] = int(values.notna().sum())
        rec["fit_time"] = ok["fit_time"].mean() if len(ok) else np.nan
        tuning = [e["tuning"] for e in ok.get("extra", []) if isinstance(e, dict) and "tuning" in e]
        rec["tune_time"] = float(np.mean([t["wall_s"] for t in tuning])) if tuning else np.nan
        rec["tune_mode"] = tuning[0]["mode"] if tuning else None
        rec["predict_time"] = ok["predict_time"].mean() if len(ok) else np.nan
        rec["skip_reason"] = g.loc[g["status"] == SKIPPED, "error"].iloc[0] if rec[f"n_{SKIPPED}"] else None
        records.append(rec)
    table = pd.DataFrame(records)
    # Means equal up to float noise (e.g. 0.99130434782 vs ...783) are ties, not wins.
    score = table[f"{primary}_mean"].round(12)
    # Rank only estimators that produced a score; higher-is-better metrics rank descending.
    table["rank"] = score.rank(ascending=not directions.get(primary, True), method="average")
    return table.sort_values(["rank", "estimator"], na_position="last").reset_index(drop=True)


def overall_table(per_dataset: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean rank across the datasets where an estimator was ranked, with failure counts."""
    rows: dict[str, dict[str, Any]] = {}
    for table in per_dataset.values():
        for rec in table.to_dict("records"):
            r = rows.setdefault(
                rec["estimator"], {"estimator": rec["estimator"], "ranks": [], "failed_folds": 0, "skipped_on": 0}
            )
            if not np.isnan(rec["rank"]):
                r["ranks"].append(rec["rank"])
            r["failed_folds"] += sum(rec[f"n_{s}"] for s in FAILED)
            r["skipped_on"] += int(rec[f"n_{SKIPPED}"] == rec["folds"])
    out = pd.DataFrame(
        [
            {
                "estimator": r["estimator"],
                "mean_rank": float(np.mean(r["ranks"])) if r["ranks"] else np.nan,
                "datasets_ranked": len(r["ranks"]),
                "failed_folds": r["failed_folds"],
                "skipped_on": r["skipped_on"],
            }
            for r in rows.values()
        ]
    )
    if out.empty:
        return out
    return out.sort_values(["mean_rank", "estimator"], na_position="last").reset_index(drop=True)
