"""Reports: files a person or a CI job reads, rebuilt from the results store alone.

`results.csv` has one row per fold (status, every metric by name, times, sizes,
error); `leaderboard.md` has each dataset's table ranked by the primary metric, the
skipped estimators with the reason, grouped failures, and the overall mean rank.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.leaderboard import Leaderboards, load_leaderboards
from harness.store import FAILED, Store

_TUNE_LABEL = {"nested": " (tuned)", "tune_then_cv": " (tuned, optimistic)"}
CSV_COLUMNS = ["dataset", "estimator", "repeat", "fold", "status"]
CSV_TAIL = ["fit_time", "predict_time", "n_train", "n_test", "error"]


def write_outputs(out_dir: str | Path) -> Leaderboards:
    """(Re)write results.csv and leaderboard.md in `out_dir` from its results.db."""
    out_dir = Path(out_dir)
    with Store(out_dir / "results.db", create=False) as store:
        boards = load_leaderboards(store)
    results_frame(boards).to_csv(out_dir / "results.csv", index=False)
    (out_dir / "leaderboard.md").write_text(leaderboard_markdown(boards), encoding="utf-8")
    return boards


def results_frame(boards: Leaderboards) -> pd.DataFrame:
    metrics = list(dict.fromkeys(m for names in boards.metrics.values() for m in names))
    # reindex adds a metric no fold produced as an empty column, without touching boards.folds
    return boards.folds.reindex(columns=CSV_COLUMNS + metrics + CSV_TAIL)


def fmt(mean: float, std: float | None = None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt_time(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def leaderboard_markdown(boards: Leaderboards) -> str:
    run = boards.run
    lines = [f"# Leaderboard: {boards.suite}", ""]
    lines.append(
        "Mean ± sample standard deviation over successful folds; each dataset ranked by its task's primary "
        "metric (1 = best, ties averaged). Times are seconds per fold."
    )
    lines.append(f"Latest run `{run['run_id']}` ({run['status']}).")
    lines.append("")
    for name, table in boards.per_dataset.items():
        info = boards.datasets.get(name, {})
        task = info.get("task", "")
        primary = boards.primary.get(task, "")
        better = "higher" if boards.directions.get(primary, True) else "lower"
        lines.append(f"## {name}")
        lines.append("")
        lines.append(
            f"{task}, {info.get('n_rows', '?')} rows × {info.get('n_features', '?')} features; "
            f"ranked by **{primary}** ({better} is better)."
            + "".join(f" Note: {note}." for note in info.get("notes", []))
        )
        lines.append("")
        metrics = boards.metrics.get(task, [])
        tuned = table["tune_mode"].notna().any()
        header = [
            "rank",
            "estimator",
            *metrics,
            "fit time",
            *(["tune time"] if tuned else []),
            "predict time",
            "folds ok/failed",
        ]
        rows = []
        ran = table[table["n_skipped"] < table["folds"]]
        for rec in ran.to_dict("records"):
            failed = sum(rec[f"n_{s}"] for s in FAILED)
            rank = "—" if math.isnan(rec["rank"]) else f"{rec['rank']:g}"
            cells = [fmt(rec[f"{m}_mean"], rec[f"{m}_std"]) for m in metrics]
            tune = [_fmt_time(rec["tune_time"])] if tuned else []
            rows.append(
                [
                    rank,
                    rec["estimator"] + _TUNE_LABEL.get(rec["tune_mode"], ""),
                    *cells,
                    _fmt_time(rec["fit_time"]),
                    *tune,
                    _fmt_time(rec["predict_time"]),
                    f"{rec['n_ok']}/{failed}",
                ]
            )
        lines += _md_table(header, rows)
        if tuned:
            lines += [
                "",
                "Tuned estimators: *nested* scores are honest estimates (each outer fold tuned on its own "
                "training part); *tune_then_cv* scores are optimistic (tuned on all rows, test folds included).",
            ]
        skipped = table[table["n_skipped"] == table["folds"]]
        for rec in skipped.to_dict("records"):
            lines.append("")
            lines.append(f"Skipped: **{rec['estimator']}** ({rec['skip_reason']}).")
        lines.append("")
    lines += failures_markdown(boards.folds)
    lines += ["## Overall", ""]
    overall = boards.overall
    rows = [
        [
            r["estimator"],
            "—" if math.isnan(r["mean_rank"]) else f"{r['mean_rank']:.2f}",
            str(r["datasets_ranked"]),
            str(r["failed_folds"]),
            str(r["skipped_on"]),
        ]
        for r in overall.to_dict("records")
    ]
    lines += _md_table(["estimator", "mean rank", "datasets ranked", "failed folds", "skipped on (datasets)"], rows)
    lines.append("")
    return "\n".join(lines)


def failures_markdown(folds: pd.DataFrame) -> list[str]:
    """Identical errors grouped, as scikit-learn's cross_validate summarises fit failures."""
    failed = folds[folds["status"].isin(FAILED)]
    if failed.empty:
        return []
    lines = ["## Failures", ""]
    groups = failed.groupby(["dataset", "estimator", "status", "error"], sort=True, dropna=False).size()
    for (ds, est, status, error), n in groups.items():
        lines.append(f"- {ds} / {est}: {n} fold{'s' if n > 1 else ''} {status}: {error}")
    lines.append("")
    return lines
