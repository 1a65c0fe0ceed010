"""The plain-text reports: results.csv, leaderboard.md and summary.md, rebuilt from the store alone.

`results.csv` has one row per fold (status, every metric by name, times, sizes,
error); `leaderboard.md` has each dataset's table ranked by the primary metric, the
skipped estimators with the reason, grouped failures, and the overall mean rank.
`summary.md` is the short form for a pull-request comment: per dataset the best model
and the ranking by the primary metric, the overall ranking, and the significance verdicts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from harness.leaderboard import Leaderboards
from harness.report.format import fmt_mean as fmt
from harness.report.format import fmt_p, fmt_time, md_table
from harness.report.views import champion_verdict
from harness.store import FAILED

if TYPE_CHECKING:
    from harness.report.context import ReportData

TUNE_LABEL = {"nested": " (tuned)", "tune_then_cv": " (tuned, optimistic)"}
CSV_COLUMNS = ["dataset", "estimator", "repeat", "fold", "status"]
CSV_TAIL = ["fit_time", "predict_time", "n_train", "n_test", "error", "worker"]


def results_frame(boards: Leaderboards) -> pd.DataFrame:
    metrics = list(dict.fromkeys(m for names in boards.metrics.values() for m in names))
    # reindex adds a metric no fold produced as an empty column, without touching boards.folds
    return boards.folds.reindex(columns=CSV_COLUMNS + metrics + CSV_TAIL)


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
            tune = [fmt_time(rec["tune_time"])] if tuned else []
            rows.append(
                [
                    rank,
                    rec["estimator"] + TUNE_LABEL.get(rec["tune_mode"], ""),
                    *cells,
                    fmt_time(rec["fit_time"]),
                    *tune,
                    fmt_time(rec["predict_time"]),
                    f"{rec['n_ok']}/{failed}",
                ]
            )
        lines += md_table(header, rows)
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
    lines += md_table(["estimator", "mean rank", "datasets ranked", "failed folds", "skipped on (datasets)"], rows)
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


def summary_markdown(data: ReportData) -> str:
    """Compact Markdown for a pull-request comment: winners, rankings and significance verdicts."""
    boards, stats = data.boards, data.stats
    settings, across = stats.get("settings", {}), stats.get("across", {})
    run = boards.run
    lines = [f"# Benchmark summary: {boards.suite}", ""]
    user_rope = settings.get("rope") or {}
    rope = (
        ", ".join(f"{k} = {v:g}" for k, v in user_rope.items()) or f"default ({settings.get('default_rope', 0.01):g})"
    )
    lines.append(
        f"Run `{run.get('run_id')}` ({run.get('status')}). α = {settings.get('alpha', 0.05)}; failures policy: "
        f"{settings.get('failures', 'dummy')}; rope: {rope}. Scores: mean ± std over successful folds."
    )
    champion = data.suite.get("champion")
    if champion:
        lines += ["", f"Champion (production model): **{champion}**."]
    lines += ["", "## Best per dataset", ""]
    rows = []
    for ds, table in boards.per_dataset.items():
        st = stats.get("per_dataset", {}).get(ds, {})
        metric = st.get("metric") or boards.primary_for(ds)
        arrow = "↑" if boards.directions.get(metric, True) else "↓"
        indexed = table.set_index("estimator")
        best = st.get("best")
        score = (
            fmt(indexed.loc[best, f"{metric}_mean"], indexed.loc[best, f"{metric}_std"])
            if best in indexed.index
            else "—"
        )
        tied = [m for m in st.get("not_significantly_worse_than_best", []) if m != best]
        ranked = table[table["rank"].notna()]
        ranking = "; ".join(
            f"{r['rank']:g} {r['estimator']} {fmt(r[f'{metric}_mean'])}" for r in ranked.to_dict("records")
        )
        row = [ds, f"{metric} {arrow}", best or "—", score, ", ".join(tied) or "none", ranking]
        if champion:
            row.append(champion_verdict(champion, st))
        rows.append(row)
    header = ["dataset", "metric", "best", "mean ± std", "not significantly worse", "ranking"]
    lines += md_table(header + (["champion"] if champion else []), rows)
    lines += ["", "## Overall ranking", ""]
    avg = across.get("average_ranks") or {}
    rows = [
        [
            r["estimator"],
            "—" if math.isnan(r["mean_rank"]) else f"{r['mean_rank']:.2f}",
            str(r["datasets_ranked"]),
            f"{avg[r['estimator']]:.2f}" if r["estimator"] in avg else "—",
            str(r["failed_folds"]),
        ]
        for r in boards.overall.to_dict("records")
    ]
    lines += md_table(
        ["estimator", "mean rank", "datasets ranked", "average rank (failure policy)", "failed folds"], rows
    )
    lines.append("")
    lines += _across_lines(across, settings)
    lines += ["", "## Significant differences (corrected t-test, Holm within each dataset)", ""]
    for ds in boards.per_dataset:
        st = stats.get("per_dataset", {}).get(ds, {})
        sig = [p for p in st.get("pairs", []) if p.get("significant")]
        if not sig:
            lines.append(f"- **{ds}**: no significant difference between any pair.")
            continue
        parts = []
        for p in sig:
            win, lose = (p["a"], p["b"]) if p["verdict"] == "A better" else (p["b"], p["a"])
            parts.append(
                f"{win} > {lose} (by {abs(p['mean_diff']):.4f}, CI [{p['ci_low']:.4f}, {p['ci_high']:.4f}], "
                f"Holm p = {fmt_p(p['p_holm'])}; Bayes: {p['bayes_decision']})"
            )
        lines.append(f"- **{ds}**: " + "; ".join(parts) + ".")
    flagged = [
        f"{ds} / {m}" for ds in boards.per_dataset for m in stats.get("per_dataset", {}).get(ds, {}).get("flagged", [])
    ]
    if flagged:
        lines += [
            "",
            f"Failure flag (> {settings.get('flag_failure_rate', 0.1):.0%} of folds failed): {', '.join(flagged)}.",
        ]
    lines.append("")
    return "\n".join(lines)


def _across_lines(across: dict, settings: dict) -> list[str]:
    if not across.get("meaningful"):
        return [
            f"**Across datasets:** no across-dataset test is meaningful with {across.get('n_datasets', 0)} dataset(s) "
            f"(at least {settings.get('min_datasets', 5)} are needed); the ranks are descriptive."
        ]
    fr = across.get("friedman") or {}
    out = [
        f"**Across datasets:** Friedman p = {fmt_p(fr.get('p_chi2'))}, Iman–Davenport p = {fmt_p(fr.get('p_f'))}, "
        f"Kendall's W = {fr.get('kendall_w') if fr.get('kendall_w') is None else round(fr['kendall_w'], 3)}."
    ]
    if across.get("wilcoxon_holm") is None:
        return [*out, f"No Wilcoxon test across datasets ({across.get('wilcoxon_note') or 'not run'})."]
    out.append(f"Wilcoxon signed-rank tests (Holm) compare {across.get('wilcoxon_quantity')}.")
    sig = [p for p in across.get("wilcoxon_holm") or [] if p.get("significant")]
    for p in sig:
        other = p["b"] if p["better"] == p["a"] else p["a"]
        out.append(f"- {p['better']} > {other} (Wilcoxon–Holm p = {fmt_p(p['p_holm'])})")
    if not sig:
        out.append("No pair differs significantly across datasets (Wilcoxon signed-rank, Holm).")
    return out
