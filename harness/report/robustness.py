"""Robustness numbers derived from the store: the robustness.csv frame and score-against-budget curves.

Every fold stores its robustness scores in its `extra` (engine.fit.score_perturbed): `robustness`
holds the noise scores on all its test rows by level; `attacks` holds, for the worst-case attacks,
the scores on the attacked rows (a seeded sample of at most `max_rows`) by attack and level, with
those rows' clean and noise scores and what each attack spent. This module turns them into one
long table (a row per fold, attack and level; level 0 is the clean score of the same rows), so
the CSV, the page and any reader share one definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.engine import OK
from harness.report.context import ReportData
from harness.robustness import ATTACKS

KEYS = ["dataset", "estimator", "seed", "repeat", "fold", "attack", "level", "rows"]


def robustness_frame(data: ReportData) -> pd.DataFrame:
    """One row per (fold, attack, level) with one column per metric; empty when nothing was attacked.

    `noise` rows are scored on all the fold's test rows (`rows` = n_test); the other attacks on the
    attacked rows (`rows`), level 0 being those rows' clean score.
    """
    folds = data.folds
    if folds.empty or "extra" not in folds:
        return pd.DataFrame(columns=KEYS)
    records: list[dict[str, Any]] = []
    metrics: list[str] = []
    for rec in folds[folds["status"] == OK].to_dict("records"):
        extra = rec.get("extra")
        if not isinstance(extra, dict):
            continue
        ident = {k: rec.get(k) for k in ("dataset", "estimator", "seed", "repeat", "fold")}
        for attack, rows, by_level in _fold_curves(rec, extra):
            for level, scores in by_level.items():
                metrics += [m for m in scores if m not in metrics]
                records.append(ident | {"attack": attack, "level": level, "rows": rows} | scores)
    if not records:
        return pd.DataFrame(columns=KEYS)
    frame = pd.DataFrame.from_records(records, columns=KEYS + metrics)
    order = {name: i for i, name in enumerate(ATTACKS)}  # noise, pgd, blackbox; then any other
    rank = frame["attack"].map(lambda a: order.get(a, len(order)))
    keys = ["dataset", "estimator", "seed", "repeat", "fold", "_rank", "attack", "level"]
    return frame.assign(_rank=rank).sort_values(keys, kind="stable").drop(columns="_rank").reset_index(drop=True)


def _fold_curves(rec: dict[str, Any], extra: dict[str, Any]) -> list[tuple[str, int, dict[float, dict]]]:
    """(attack, rows scored, {level: metric scores}) of one fold, level 0 first."""
    out = []
    noise = extra.get("robustness")
    if isinstance(noise, dict) and noise:
        clean = {m: rec.get(m) for m in next(iter(noise.values())) or {}}
        out.append(
            ("noise", int(rec.get("n_test") or 0), {0.0: clean} | {float(lv): s or {} for lv, s in noise.items()})
        )
    attacks = extra.get("attacks")
    if isinstance(attacks, dict):
        for name, per in attacks.items():
            if name in ("rows", "budget", "clean", "seconds", "noise") or not isinstance(per, dict):
                continue
            levels = {float(lv): v.get("scores") or {} for lv, v in per.items() if isinstance(v, dict)}
            if levels:
                out.append((name, int(attacks.get("rows") or 0), {0.0: attacks.get("clean") or {}} | levels))
    return out


def attack_curves(frame: pd.DataFrame, ds: str, metric: str) -> dict[str, dict[str, pd.Series]]:
    """attack -> estimator -> mean `metric` over folds by level (0 = clean), for one dataset."""
    rows = frame[frame["dataset"] == ds] if not frame.empty and metric in frame else frame.iloc[0:0]
    curves: dict[str, dict[str, pd.Series]] = {}
    for (attack, est), g in rows.groupby(["attack", "estimator"], sort=False):
        values = pd.to_numeric(g[metric], errors="coerce")
        means = values.groupby(g["level"]).mean().dropna()
        if not means.empty:
            curves.setdefault(str(attack), {})[str(est)] = means.sort_index()
    return curves


def attack_notes(data: ReportData, ds: str) -> dict[str, Any]:
    """For one dataset: attacks not applicable or failed per estimator, and what the attacks spent.

    {"skipped": {"pgd / rf": reason}, "seconds": per-fold mean seconds, "max_s": budget, "rows", "queries",
    "steps", "stopped": folds whose deadline cut an attack short}.
    """
    folds = data.folds
    rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)] if not folds.empty else folds
    skipped: dict[str, str] = {}
    seconds, stopped, budget, attacked = [], 0, {}, []
    for rec in rows.to_dict("records"):
        attacks = (rec.get("extra") or {}).get("attacks") if isinstance(rec.get("extra"), dict) else None
        if not isinstance(attacks, dict):
            continue
        budget = attacks.get("budget") or budget
        seconds.append(float(attacks.get("seconds") or 0.0))
        attacked.append(int(attacks.get("rows") or 0))
        for name, per in attacks.items():
            if not isinstance(per, dict):
                continue
            reason = per.get("not_applicable") or per.get("error")
            if reason:
                skipped[f"{name} / {rec['estimator']}"] = str(reason)
            stopped += any(isinstance(v, dict) and v.get("stopped") for v in per.values())
    if not seconds:
        return {}
    return {"skipped": skipped, "seconds": float(np.mean(seconds)), "total_s": float(np.sum(seconds)),
            "rows": int(np.max(attacked)), "stopped": stopped, **budget}  # fmt: skip


def robustness_csv(data: ReportData) -> dict[str, str]:
    """{"robustness.csv": text} when any fold was scored under noise or attacks, else {}."""
    frame = robustness_frame(data)
    return {} if frame.empty else {"robustness.csv": frame.to_csv(index=False)}
