"""report.html: one self-contained page answering who wins, whether it is real, and why models decide as they do.

Why it is built this way: every number comes from `ReportData` (the store and the analysis
dict that is also stats.json), so the page, stats.json and summary.md never disagree.
Sections are built by small functions returning plain blocks (paragraph, table, figure);
the template only lays them out. A section that fails to build shows its error in place
instead of losing the whole report: the results it would summarise are still in the store.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from harness import __version__
from harness.explain import mean_abs_importance, rank_agreement
from harness.report import plots
from harness.report.context import FoldExplanation, ReportData
from harness.report.markdown import TUNE_LABEL, champion_verdict, fmt, fmt_time
from harness.report.template import TEMPLATE
from harness.store import FAILED, OK

Block = dict[str, Any]
SECTION_ERROR = "This section could not be built"


# ---------------------------------------------------------------- blocks


def para(text: str | Markup, kind: str = "p") -> Block:
    return {"kind": kind, "content": text}


def heading(text: str, anchor: str) -> Block:
    return {"kind": "h3", "content": text, "id": anchor}


def table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None, left: int = 2) -> Block:
    """A table block; the first `left` columns are left-aligned (names), the rest numbers."""
    classes = classes or [""] * len(rows)
    body = [{"cells": [str(c) if not isinstance(c, Markup) else c for c in r], "cls": k} for r, k in
            zip(rows, classes, strict=True)]  # fmt: skip
    return {"kind": "table", "content": {"header": header, "rows": body, "left": set(range(left)), "id": None}}


def figure(svg: str, caption: str = "") -> Block:
    return {"kind": "fig", "content": Markup(svg), "caption": caption}


def row(blocks: list[Block]) -> Block:
    """Blocks side by side (wrapping on narrow screens), e.g. two figures."""
    return {"kind": "row", "content": blocks}


def details(summary: str, blocks: list[Block], open_: bool = False) -> Block:
    return {"kind": "details", "caption": summary, "content": blocks, "open": open_}


def badge(text: str, cls: str) -> Markup:
    return Markup('<span class="badge {}">{}</span>').format(cls, text)


def anchor(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in str(p)) for p in parts)


def fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _better(greater: bool) -> str:
    return "higher" if greater else "lower"


# ---------------------------------------------------------------- page


def render_html(data: ReportData) -> str:
    """The whole page as one string (deterministic for a given store)."""
    plots.reset_ids()
    builders: list[tuple[str, str, Callable[[ReportData], list[Block] | None]]] = [
        ("summary", "Summary", summary_section),
        ("leaderboards", "Leaderboards per dataset", leaderboard_section),
        ("ranks", "Ranks across datasets", ranks_section),
        ("scores", "Fold scores and cost", scores_section),
        ("significance", "Pairwise significance per dataset", significance_section),
        ("shap", "Why models decide as they do (SHAP)", shap_section),
        ("tuning", "Tuning", tuning_section),
        ("learning-curves", "MLP learning curves", learning_curves_section),
        ("robustness", "Robustness to noisy inputs", robustness_section),
        ("stability", "Stability across seeds", stability_section),
        ("data-checks", "Data checks", data_checks_section),
        ("failures", "Failures", failures_section),
        ("method", "Method: tests, rope and failure policy", method_section),
        ("environment", "Environment", environment_section),
    ]
    sections = []
    for sid, title, build in builders:
        try:
            blocks = build(data)
        except Exception as exc:  # one broken section must not hide the others
            blocks = [para(f"{SECTION_ERROR}: {type(exc).__name__}: {exc}", "note")]
        if blocks is not None:
            sections.append({"id": sid, "title": title, "blocks": blocks})
    run = data.boards.run
    subtitle = f"Run {run.get('run_id', '?')} ({run.get('status', '?')}), started {_date(run.get('started'))}."
    if data.suite.get("description"):
        subtitle += f" {data.suite['description']}"
    env = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    page = env.from_string(TEMPLATE).render(
        title=f"Benchmark report: {data.boards.suite}", subtitle=subtitle, sections=sections, version=__version__
    )
    return page


def _date(ts: Any) -> str:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts)))


def _datasets(data: ReportData) -> list[str]:
    return list(data.boards.per_dataset)


def _ds_stats(data: ReportData, ds: str) -> dict[str, Any]:
    return data.stats.get("per_dataset", {}).get(ds, {})


def _primary(data: ReportData, ds: str) -> str:
    return data.boards.primary_for(ds) if ds in data.boards.datasets else _ds_stats(data, ds).get("primary", "")


def _ran(board: pd.DataFrame) -> pd.DataFrame:
    return board[board["n_skipped"] < board["folds"]]


# ---------------------------------------------------------------- summary


def summary_section(data: ReportData) -> list[Block]:
    folds = data.folds
    counts = folds["status"].value_counts().to_dict()
    n_models = folds["estimator"].nunique()
    blocks = [
        para(
            f"{len(_datasets(data))} dataset(s), {n_models} estimator(s), {len(folds)} fold results: "
            f"{counts.get(OK, 0)} ok, {sum(counts.get(s, 0) for s in FAILED)} failed, "
            f"{counts.get('skipped', 0)} skipped."
        )
    ]
    rows = []
    for ds in _datasets(data):
        st = _ds_stats(data, ds)
        board = data.boards.per_dataset[ds].set_index("estimator")
        best = st.get("best")
        metric = st.get("metric", _primary(data, ds))
        score = fmt(board.loc[best, f"{metric}_mean"], board.loc[best, f"{metric}_std"]) if best in board.index else "—"
        tied = [m for m in st.get("not_significantly_worse_than_best", []) if m != best]
        pairs = st.get("pairs", [])
        n_sig = sum(1 for p in pairs if p.get("significant"))
        rows.append([ds, metric, best or "—", score, ", ".join(tied) or "none", f"{n_sig} of {len(pairs)}"])
    blocks.append(para("Best model per dataset (by mean primary metric) and the models not significantly worse than it "
                       "(corrected t-test, Holm-adjusted within the dataset)."))  # fmt: skip
    blocks.append(
        table(
            ["dataset", "primary metric", "best", "mean ± std", "not significantly worse", "significant pairs"],
            rows,
            left=3,
        )
    )
    blocks += champion_lines(data)
    blocks.append(para("Overall ranking."))
    blocks.append(overall_table(data))
    blocks += across_verdict(data)
    sig = significant_pairs(data)
    if sig:
        blocks.append(para("Significant differences within datasets (Holm-adjusted corrected t-test):"))
        blocks.append({"kind": "list", "content": sig})
    else:
        blocks.append(para("No pair of models differs significantly on any dataset (Holm-adjusted corrected t-test)."))
    return blocks


def champion_lines(data: ReportData) -> list[Block]:
    """Where the suite names its production model: is it still the best, or at least not significantly worse?"""
    champion = data.suite.get("champion")
    if not champion:
        return []
    parts = []
    for ds in _datasets(data):
        st = _ds_stats(data, ds)
        verdict = champion_verdict(champion, st)
        parts.append(f"{ds}: {verdict}" + (f" than {st.get('best')}" if verdict.endswith("worse") else ""))
    return [para(f"Champion (the suite's production model) {champion}: " + "; ".join(parts) + ".", "note")]


def overall_table(data: ReportData) -> Block:
    across = data.stats.get("across", {})
    avg = across.get("average_ranks") or {}
    dropped = (across.get("failure_handling") or {}).get("dropped_models", {})
    rows = []
    for rec in data.boards.overall.to_dict("records"):
        est = rec["estimator"]
        rank = "—" if math.isnan(rec["mean_rank"]) else f"{rec['mean_rank']:.2f}"
        analysed = f"{avg[est]:.2f}" if est in avg else ("left out" if est in dropped else "—")
        rows.append(
            [est, rank, str(rec["datasets_ranked"]), analysed, str(rec["failed_folds"]), str(rec["skipped_on"])]
        )
    return table(
        [
            "estimator",
            "mean rank",
            "datasets ranked",
            "average rank (failure policy applied)",
            "failed folds",
            "skipped on",
        ],
        rows,
        left=1,
    )


def across_verdict(data: ReportData) -> list[Block]:
    across = data.stats.get("across", {})
    blocks: list[Block] = []
    if not across.get("meaningful"):
        blocks.append(
            para(
                f"No across-dataset test is meaningful here ({across.get('n_datasets', 0)} dataset(s); at least "
                f"{data.stats.get('settings', {}).get('min_datasets', 5)} are needed): the ranks above are descriptive.",
                "note",
            )
        )
    else:
        fr = across.get("friedman") or {}
        blocks.append(
            para(
                f"Across {across.get('n_datasets')} datasets: Friedman χ² = {fmt_num(fr.get('chi2'), 3)} "
                f"(p = {fmt_p(fr.get('p_chi2'))}), Iman–Davenport F = {fmt_num(fr.get('f'), 3)} "
                f"(p = {fmt_p(fr.get('p_f'))}), Kendall's W = {fmt_num(fr.get('kendall_w'), 3)}."
            )
        )
        sig = [p for p in across.get("wilcoxon_holm") or [] if p.get("significant")]
        if sig:
            items = [f"{p['better']} better than {p['b'] if p['better'] == p['a'] else p['a']} "
                     f"(Wilcoxon–Holm p = {fmt_p(p['p_holm'])})" for p in sig]  # fmt: skip
            blocks.append({"kind": "list", "content": items})
        else:
            blocks.append(para("No pair of models differs significantly across datasets (Wilcoxon signed-rank, Holm)."))
    for note in across.get("notes", []):
        blocks.append(para(note, "muted"))
    return blocks


def significant_pairs(data: ReportData) -> list[str]:
    out = []
    for ds in _datasets(data):
        for p in _ds_stats(data, ds).get("pairs", []):
            if p.get("significant"):
                winner, loser = (p["a"], p["b"]) if p["verdict"] == "A better" else (p["b"], p["a"])
                out.append(
                    f"{ds}: {winner} better than {loser} by {fmt_num(abs(p['mean_diff']))} "
                    f"{_ds_stats(data, ds).get('metric', '')} (Holm p = {fmt_p(p['p_holm'])})"
                )
    return out


# ---------------------------------------------------------------- leaderboards


def leaderboard_section(data: ReportData) -> list[Block]:
    blocks = [
        para(
            Markup(
                "Mean ± sample standard deviation over successful folds; rank by the primary metric (1 = best, ties "
                "averaged); times in seconds per fold. {} the best model, {} not significantly worse than it, "
                "{} more than {:.0%} of its folds failed."
            ).format(
                badge("best", "best"),
                badge("≈ best", "tied"),
                badge("failures", "flag"),
                data.stats.get("settings", {}).get("flag_failure_rate", 0.1),
            )
        )
    ]
    for ds in _datasets(data):
        blocks += dataset_leaderboard(data, ds)
    return blocks


def dataset_leaderboard(data: ReportData, ds: str) -> list[Block]:
    info = data.boards.datasets.get(ds, {})
    task = info.get("task", "")
    primary = _primary(data, ds)
    metrics = data.boards.metrics.get(task, [primary])
    st = _ds_stats(data, ds)
    status = st.get("models", {})
    best, tied = st.get("best"), set(st.get("not_significantly_worse_than_best", []))
    full = data.boards.per_dataset[ds]
    ran = _ran(full)
    tuned = ran["tune_mode"].notna().any()
    header = ["rank", "estimator", *metrics, "fit time", *(["tune time"] if tuned else []), "predict time",
              "folds ok/failed", "failed share"]  # fmt: skip
    rows, classes = [], []
    for rec in ran.to_dict("records"):
        est = rec["estimator"]
        failed = sum(rec[f"n_{s}"] for s in FAILED)
        flagged = status.get(est, {}).get("flagged", False)
        name = Markup("{}{}").format(est, TUNE_LABEL.get(rec["tune_mode"], ""))
        if est == best:
            name += Markup(" ") + badge("best", "best")
        elif est in tied:
            name += Markup(" ") + badge("≈ best", "tied")
        if rec["tune_mode"] == "tune_then_cv":
            name += Markup(" ") + badge("optimistic", "opt")
        if flagged:
            name += Markup(" ") + badge("failures", "flag")
        attempted = rec["folds"] - rec["n_skipped"]
        rows.append(
            [
                "—" if math.isnan(rec["rank"]) else f"{rec['rank']:g}",
                name,
                *[fmt(rec[f"{m}_mean"], rec[f"{m}_std"]) for m in metrics],
                fmt_time(rec["fit_time"]),
                *([fmt_time(rec["tune_time"])] if tuned else []),
                fmt_time(rec["predict_time"]),
                f"{rec['n_ok']}/{failed}",
                f"{failed / attempted:.0%}" if attempted else "—",
            ]
        )
        classes.append("flag" if flagged else "best" if est == best else "tied" if est in tied else "")
    notes = "".join(f" Note: {n}." for n in info.get("notes", []))
    blocks = [
        heading(ds, anchor("lb", ds)),
        para(
            f"{task}, {info.get('n_rows', '?')} rows × {info.get('n_features', '?')} features; ranked by {primary} "
            f"({_better(data.direction(primary))} is better).{notes}"
        ),
        table(header, rows, classes),
    ]
    for rec in full[full["n_skipped"] == full["folds"]].to_dict("records"):
        blocks.append(para(f"Skipped: {rec['estimator']} ({rec['skip_reason']}).", "muted"))
    if tuned:
        blocks.append(
            para(
                "Tuned estimators: nested scores are honest estimates (each outer fold tuned on its own training "
                "part); tune_then_cv scores are optimistic (tuned on all rows, test folds included).",
                "muted",
            )
        )
    return blocks


# ---------------------------------------------------------------- ranks across datasets


def ranks_section(data: ReportData) -> list[Block]:
    across = data.stats.get("across", {})
    blocks: list[Block] = []
    avg = pd.Series(across.get("average_ranks") or {}, dtype=float)
    if across.get("meaningful") and len(avg) >= 2:
        pvalues = wilcoxon_matrix(across.get("wilcoxon_holm") or [], list(avg.index))
        cd = across.get("nemenyi_cd")
        blocks.append(
            figure(
                plots.cd_diagram(avg, pvalues, cd, float(across.get("alpha", 0.05))),
                f"Critical-difference diagram: average ranks (1 = best); bars join models whose Wilcoxon–Holm "
                f"tests are not significant at α = {across.get('alpha', 0.05)}"
                + (f"; the Nemenyi critical difference is {cd:.3f}." if cd is not None else "."),
            )
        )
        wh = across.get("wilcoxon_holm") or []
        blocks.append(
            table(
                ["A", "B", "datasets", "non-zero", "median difference (positive = A better)", "p", "Holm p", "better"],
                [
                    [
                        p["a"],
                        p["b"],
                        p["n"],
                        p["n_nonzero"],
                        fmt_num(p["median_diff"]),
                        fmt_p(p["p"]),
                        fmt_p(p["p_holm"]),
                        p.get("better") or "—",
                    ]
                    for p in wh
                ],
            )
        )
    else:
        blocks.append(
            para(
                "No critical-difference diagram: too few datasets for an across-dataset test. The ranks below are "
                "descriptive.",
                "note",
            )
        )
    rank_rows, names = [], list(data.boards.overall["estimator"]) if len(data.boards.overall) else []
    for ds in _datasets(data):
        ranks = data.boards.per_dataset[ds].set_index("estimator")["rank"]
        rank_rows.append([ds, *[fmt_num(ranks.get(n, math.nan), 1) for n in names]])
    if len(avg):
        rank_rows.append(["average (failure policy applied)", *[fmt_num(avg.get(n, math.nan), 2) for n in names]])
    blocks.append(para("Rank of each model on each dataset by its primary metric (1 = best)."))
    blocks.append(table(["dataset", *names], rank_rows, left=1))
    wtl = across.get("win_tie_loss") or []
    if wtl:
        blocks.append(para("Wins, ties (within the rope) and losses of A against B over datasets."))
        blocks.append(table(["A", "B", "wins", "ties", "losses"], [[w["a"], w["b"], w["wins"], w["ties"],
                                                                   w["losses"]] for w in wtl]))  # fmt: skip
    return blocks


def wilcoxon_matrix(pairs: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """Symmetric Holm-adjusted p-value matrix (1 on the diagonal) for the CD diagram."""
    out = pd.DataFrame(1.0, index=names, columns=names)
    for p in pairs:
        if p["a"] in out.index and p["b"] in out.index:
            value = p["p_holm"] if p["p_holm"] is not None else 1.0
            out.loc[p["a"], p["b"]] = out.loc[p["b"], p["a"]] = value
    return out


# ---------------------------------------------------------------- fold scores and cost


def scores_section(data: ReportData) -> list[Block]:
    blocks = [
        para("Each model's score on every fold (box: quartiles; points: folds) and its mean score against its mean fit "
             "time; models on the Pareto front (no other model is both faster and better) are outlined and joined.")
    ]  # fmt: skip
    folds = data.folds
    for ds in _datasets(data):
        primary = _primary(data, ds)
        greater = data.direction(primary)
        ran = _ran(data.boards.per_dataset[ds])
        rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)]
        scores = {
            m: pd.to_numeric(rows.loc[rows["estimator"] == m, primary], errors="coerce").to_numpy(dtype=float)
            if primary in rows
            else np.array([])
            for m in ran["estimator"]
        }
        # a tuned model's cost includes its tuning: the search is part of what it takes to get that score
        cost = ran["fit_time"] + ran["tune_time"].fillna(0.0)
        points = pd.DataFrame({"model": ran["estimator"], "score": ran[f"{primary}_mean"], "fit_time": cost})
        points = points.reset_index(drop=True)
        blocks.append(heading(ds, anchor("scores", ds)))
        figs = [figure(plots.fold_scores(scores, primary, greater), f"{ds}: {primary} per fold.")]
        if points.dropna().shape[0]:
            front = plots.pareto_front(points, greater)
            figs.append(figure(plots.pareto(points, primary, greater),
                               f"{ds}: score vs fit (+ tuning) time. Pareto front: {', '.join(front)}."))  # fmt: skip
        blocks.append(row(figs))
    return blocks


# ---------------------------------------------------------------- pairwise significance


def significance_section(data: ReportData) -> list[Block]:
    settings = data.stats.get("settings", {})
    alpha = float(settings.get("alpha", 0.05))
    blocks = [
        para(
            f"Every pair of models on each dataset's primary metric. Difference = A − B oriented so that positive means "
            f"A is better; {1 - alpha:.0%} confidence interval and p from the Nadeau–Bengio corrected resampled t-test "
            "(folds overlap, so the plain t-test would be overconfident), Holm-adjusted over the pairs of the dataset. "
            "P(A better), P(equivalent) and P(B better) are posterior probabilities of the Bayesian correlated t-test "
            "with the rope stated per dataset."
        )
    ]
    for ds in _datasets(data):
        st = _ds_stats(data, ds)
        pairs = st.get("pairs", [])
        blocks.append(heading(ds, anchor("sig", ds)))
        blocks.append(para(f"Metric {st.get('metric', '?')}; rope: {st.get('rope_rule', '?')}.", "muted"))
        if not pairs:
            blocks.append(para("Fewer than two models have scores here: nothing to compare."))
            continue
        rows, classes = [], []
        for p in pairs:
            rows.append(
                [
                    p["a"],
                    p["b"],
                    p["n"],
                    fmt_num(p["mean_diff"]),
                    f"[{fmt_num(p['ci_low'])}, {fmt_num(p['ci_high'])}]",
                    fmt_p(p["p"]),
                    fmt_p(p["p_holm"]),
                    fmt_num(p["rope"]),
                    fmt_num(p["p_a_better"], 3),
                    fmt_num(p["p_rope"], 3),
                    fmt_num(p["p_b_better"], 3),
                    p["verdict"],
                    p["bayes_decision"],
                ]
            )
            classes.append("best" if p.get("significant") else "")
        blocks.append(
            table(
                [
                    "A",
                    "B",
                    "folds",
                    "difference",
                    "CI",
                    "p",
                    "Holm p",
                    "rope",
                    "P(A better)",
                    "P(equivalent)",
                    "P(B better)",
                    "verdict",
                    "Bayesian decision",
                ],
                rows,
                classes,
            )
        )
        for p in pairs:
            if p.get("reason"):
                blocks.append(para(f"{p['a']} vs {p['b']}: {p['reason']}.", "muted"))
    return blocks


# ---------------------------------------------------------------- SHAP


def shap_section(data: ReportData) -> list[Block]:
    if not data.explanations:
        blocks = [para("No SHAP values are stored for this run (explain disabled, or no model could be explained).")]
        return blocks + _explain_failures(data, None)
    blocks = [
        para(
            "Mean |SHAP| per original feature (one-hot children summed back to their column), averaged over explained "
            "rows and outputs in each fold; bars show the mean over folds, error bars the standard deviation across "
            "folds. Models of a fold explain prefixes of the same seeded row order: importances and their agreement "
            "are computed on the rows every model explained. Values are in each model's output space (stated per "
            "model): magnitudes compare within a model, rankings across models."
        )
    ]
    for ds in _datasets(data):
        per_model = data.explanations.get(ds)
        if not per_model:
            continue
        blocks.append(heading(ds, anchor("shap", ds)))
        blocks += dataset_shap(data, ds, per_model)
        blocks += _explain_failures(data, ds)
    return blocks


def _explain_failures(data: ReportData, ds: str | None) -> list[Block]:
    items = []
    for name, per_est in data.explain_failures.items():
        if ds is not None and name != ds:
            continue
        for est, reasons in per_est.items():
            items += [f"{name} / {est}: {r}" for r in reasons]
    return [para("Not explained:"), {"kind": "list", "content": items}] if items else []


def common_prefix(per_model: dict[str, list[FoldExplanation]]) -> dict[str, list[FoldExplanation]]:
    """Each fold's explanations cut to the rows every model explained in that fold."""
    rows: dict[tuple[int, int, int], int] = {}
    for items in per_model.values():
        for f in items:
            ident = (f.seed, f.repeat, f.fold)
            rows[ident] = min(rows.get(ident, f.explanation.n_rows), f.explanation.n_rows)
    return {
        m: [FoldExplanation(f.fold, f.repeat, f.seed, f.explanation.head(rows[(f.seed, f.repeat, f.fold)]))
            for f in items if rows[(f.seed, f.repeat, f.fold)] > 0]
        for m, items in per_model.items()
    }  # fmt: skip


def dataset_shap(data: ReportData, ds: str, per_model: dict[str, list[FoldExplanation]]) -> list[Block]:
    order = [m for m in _ds_stats(data, ds).get("means", {}) if m in per_model]
    order += [m for m in per_model if m not in order]
    blocks: list[Block] = []
    rows = []
    for m in order:
        ex = [f.explanation for f in per_model[m]]
        e0 = ex[0]
        rows.append([m, e0.model, e0.explainer, e0.output_space, ", ".join(e0.output_names), len(ex),
                     " / ".join(str(e.n_rows) for e in ex), fmt_num(float(np.mean([e.seconds for e in ex])), 2),
                     f"{max(e.additivity_gap for e in ex):.2g}", "; ".join(sorted({e.note for e in ex if e.note}))])  # fmt: skip
    blocks.append(table(["estimator", "model", "explainer", "output space", "outputs", "folds", "rows per fold",
                         "seconds per fold", "additivity gap", "note"], rows, left=5))  # fmt: skip
    common = common_prefix(per_model)
    common = {m: common[m] for m in order if common.get(m)}
    importances = {m: mean_abs_importance([f.explanation for f in items], [f.label for f in items])
                   for m, items in common.items()}  # fmt: skip
    if importances:
        n_common = sum(items[0].explanation.n_rows for items in [common[next(iter(common))]])
        spaces = {m: common[m][0].explanation.output_space for m in common}
        blocks.append(figure(plots.shap_bars(importances, spaces),
                             f"{ds}: mean |SHAP| per feature (top features), error bars = std across folds; "
                             f"{n_common} common row(s) in the first fold."))  # fmt: skip
        top = pd.DataFrame({m: t["mean"] for m, t in importances.items()})
        top = top.loc[top.mean(axis=1).sort_values(ascending=False, kind="stable").index]
        blocks.append(details("Mean |SHAP| per feature and model (table)",
                              [table(["feature", *top.columns], [[f, *[fmt_num(v) for v in r]] for f, r in
                                                                top.iterrows()], left=1)]))  # fmt: skip
    figs = []
    if len(importances) >= 2:
        tau = rank_agreement({m: t["mean"] for m, t in importances.items()})
        figs.append(figure(plots.heatmap(tau, "Kendall τ"),
                           f"{ds}: agreement of the models' feature rankings (Kendall τ-b of mean |SHAP|)."))  # fmt: skip
    figs += _beeswarm(data, ds, order, per_model)
    blocks.append(row(figs))
    return blocks


def beeswarm_values(items: list[FoldExplanation]) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows × features SHAP values over all folds; for several outputs, each row's predicted output's values."""
    values, raw = [], []
    for f in items:
        e = f.explanation
        if e.n_outputs == 1:
            values.append(e.values[:, :, 0].astype(float))
        else:
            scores = e.values.sum(axis=1) + e.base_values[None, :]
            pick = np.argmax(scores, axis=1)
            values.append(e.values[np.arange(e.n_rows), :, pick].astype(float))
        raw.append(e.data)
    e0 = items[0].explanation
    what = "the positive class" if e0.n_outputs == 1 and len(e0.output_names) == 1 else "each row's predicted class"
    if e0.n_outputs == 1 and e0.output_names == ["prediction"]:
        what = "the prediction"
    return np.concatenate(values), np.concatenate(raw), what


def _beeswarm(data: ReportData, ds: str, order: list[str], per_model: dict[str, list[FoldExplanation]]) -> list[Block]:
    best = _ds_stats(data, ds).get("best")
    model = best if best in per_model else order[0]
    items = per_model[model]
    values, raw, what = beeswarm_values(items)
    e0 = items[0].explanation
    caption = (
        f"{ds}: SHAP values of {model} ({'the best model' if model == best else 'the best explained model'}; "
        f"{e0.explainer} explainer, {e0.output_space} space, values for {what}), {values.shape[0]} rows over "
        f"{len(items)} fold(s). Colour: the feature's value."
    )
    return [figure(plots.beeswarm(values, raw, e0.features, f"SHAP value ({e0.output_space})"), caption)]


# ---------------------------------------------------------------- tuning


def _extras(data: ReportData, key: str) -> dict[str, dict[str, list[tuple[str, Any]]]]:
    """dataset -> estimator -> [(fold label, extra[key])] for ok folds that carry `key`."""
    out: dict[str, dict[str, list[tuple[str, Any]]]] = {}
    folds = data.folds
    multi_seed = "seed" in folds and folds["seed"].nunique() > 1
    for rec in folds[folds["status"] == OK].to_dict("records"):
        extra = rec.get("extra")
        if isinstance(extra, dict) and extra.get(key) is not None:
            label = f"fold {rec['fold']}" if rec["repeat"] == 0 else f"r{rec['repeat']} f{rec['fold']}"
            if multi_seed:
                label = f"seed {rec['seed']} {label}"
            out.setdefault(str(rec["dataset"]), {}).setdefault(str(rec["estimator"]), []).append((label, extra[key]))
    return out


def tuning_section(data: ReportData) -> list[Block] | None:
    tuned = _extras(data, "tuning")
    if not tuned:
        return None
    blocks: list[Block] = []
    for ds in _datasets(data):
        for est, items in tuned.get(ds, {}).items():
            spec = data.estimator_spec(est)
            task = data.boards.datasets.get(ds, {}).get("task", "")
            metric = (spec.get("tune") or {}).get("metric") or data.boards.primary.get(task, "")
            greater = data.direction(metric)
            mode = items[0][1].get("mode", "nested")
            blocks.append(heading(f"{ds} / {est}", anchor("tune", ds, est)))
            blocks.append(para(f"Mode {mode}; inner-CV metric {metric} ({_better(greater)} is better).", "muted"))
            rows = [[label, json.dumps(t.get("best_params", {}), sort_keys=True), fmt_num(t.get("best_value")),
                     t.get("n_complete", "—"), t.get("n_pruned", "—"), t.get("n_failed", "—"),
                     fmt_time(t.get("wall_s", math.nan))] for label, t in items]  # fmt: skip
            blocks.append(table(["fold", "best parameters", "best inner score", "trials complete", "pruned", "failed",
                                 "tuning time (s)"], rows))  # fmt: skip
            histories = {label: t.get("history") or [] for label, t in items}
            if any(histories.values()):
                blocks.append(figure(plots.tuning_history(histories, metric, greater),
                                     f"{ds} / {est}: optimisation history per fold."))  # fmt: skip
            imp = pd.DataFrame({label: t.get("importances") or {} for label, t in items})
            if not imp.empty:
                summary = pd.DataFrame({"mean": imp.mean(axis=1), "std": imp.std(axis=1, ddof=1)})
                summary = summary.sort_values("mean", ascending=False)
                blocks.append(figure(plots.importances_bar(summary, "parameter importance (fANOVA)"),
                                     f"{ds} / {est}: Optuna parameter importances, mean ± std across folds."))  # fmt: skip
    return blocks


# ---------------------------------------------------------------- MLP learning curves


def learning_curves_section(data: ReportData) -> list[Block] | None:
    histories = _extras(data, "history")
    if not histories:
        return None
    blocks = [para("Training loss (solid) and validation loss (dashed) per epoch for every fold; validation is the "
                   "MLP's own early-stopping split of the fold's training part.")]  # fmt: skip
    for ds in _datasets(data):
        for est, items in histories.get(ds, {}).items():
            curves = {label: h for label, h in items if isinstance(h, list) and h}
            if not curves:
                continue
            blocks.append(heading(f"{ds} / {est}", anchor("mlp", ds, est)))
            blocks.append(figure(plots.learning_curves(curves), f"{ds} / {est}: loss per epoch."))
    return blocks


# ---------------------------------------------------------------- robustness


def robustness_curves(data: ReportData, ds: str) -> tuple[dict[str, pd.Series], str]:
    """Per model, mean primary score over folds at each noise level (0 = the clean score of the same folds)."""
    primary = _primary(data, ds)
    folds = data.folds
    rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)]
    curves: dict[str, pd.Series] = {}
    for est, g in rows.groupby("estimator", sort=False):
        per_level: dict[float, list[float]] = {}
        for rec in g.to_dict("records"):
            extra = rec.get("extra")
            robust = extra.get("robustness") if isinstance(extra, dict) else None
            if not robust:
                continue
            per_level.setdefault(0.0, []).append(rec.get(primary))
            for level, scores in robust.items():
                per_level.setdefault(float(level), []).append((scores or {}).get(primary))
        if per_level:
            means = {lv: float(np.nanmean([np.nan if v is None else v for v in vs])) for lv, vs in per_level.items()}
            curves[str(est)] = pd.Series(means).sort_index()
    return curves, primary


def robustness_section(data: ReportData) -> list[Block] | None:
    blocks: list[Block] = []
    for ds in _datasets(data):
        curves, primary = robustness_curves(data, ds)
        if not curves:
            continue
        greater = data.direction(primary)
        blocks.append(heading(ds, anchor("robust", ds)))
        blocks.append(figure(plots.robustness(curves, primary, greater),
                             f"{ds}: mean {primary} on test rows with noise added (same folds, models not refitted)."))  # fmt: skip
        levels = sorted({lv for c in curves.values() for lv in c.index})
        blocks.append(table(["estimator", *[f"noise {lv:g}" for lv in levels]],
                            [[m, *[fmt_num(c.get(lv, math.nan)) for lv in levels]] for m, c in curves.items()],
                            left=1))  # fmt: skip
    if not blocks:
        return None
    intro = para("Each fold's fitted model scored again on copies of its test rows with noise: numeric columns get "
                 "Gaussian noise of level × the training standard deviation, a share `level` of categorical values is "
                 "swapped for another training category.")  # fmt: skip
    return [intro, *blocks]


# ---------------------------------------------------------------- data checks


def data_checks_section(data: ReportData) -> list[Block] | None:
    """Each dataset with a `reference:`: the shift verdict and the most shifted features."""
    if not data.checks:
        return None
    blocks: list[Block] = [para("Datasets checked against their reference dataset before their results are trusted "
                                "(`reference:` in the suite; the same checks as `harness check-data`).")]  # fmt: skip
    for ds, check in data.checks.items():
        blocks.append(heading(f"{ds} vs {check.get('reference_dataset', '?')}", anchor("check", ds)))
        blocks.append(para(badge("shift", "flag") if check.get("shift") else badge("no shift", "best")))
        blocks.append(para(str(check.get("verdict", ""))))
        adv = check.get("adversarial") or {}
        if adv:
            blocks.append(para(f"Adversarial validation ROC AUC {fmt_num(adv.get('auc_mean'), 3)} ± "
                               f"{fmt_num(adv.get('auc_std'), 3)} (permuted labels: "
                               f"{fmt_num(adv.get('null_auc_mean'), 3)}); 0.5 means the rows cannot be told apart."))  # fmt: skip
        rows = [[f.get("column", ""), f.get("kind", ""), f.get("test", ""), fmt_num(f.get("distance"), 3),
                 fmt_p(f.get("p_holm", f.get("p_value")))] for f in (check.get("features") or [])[:10]]  # fmt: skip
        if rows:
            blocks.append(table(["feature", "kind", "test", "distance", "p (Holm)"], rows, left=3))
    return blocks


# ---------------------------------------------------------------- seeds


def stability_section(data: ReportData) -> list[Block] | None:
    stability = data.stats.get("stability")
    if not stability:
        return None
    blocks = [para("With several seeds every split and random_state is redrawn: the spread of the per-seed means shows "
                   "how much a ranking owes to one lucky draw.")]  # fmt: skip
    rows = []
    for ds, per_model in stability.items():
        for model, st in per_model.items():
            means = ", ".join(f"{seed}: {fmt_num(v)}" for seed, v in st.get("seed_means", {}).items())
            rows.append([ds, model, st.get("metric", ""), st.get("n_seeds", ""), fmt_num(st.get("std_of_seed_means")),
                         fmt_num(st.get("mean_within_seed_std")), means])  # fmt: skip
    blocks.append(table(["dataset", "estimator", "metric", "seeds", "std of seed means", "mean within-seed std",
                         "mean per seed"], rows, left=3))  # fmt: skip
    return blocks


# ---------------------------------------------------------------- failures, method, environment


def failures_section(data: ReportData) -> list[Block]:
    folds = data.folds
    failed = folds[folds["status"].isin(FAILED)]
    if failed.empty:
        return [para("No fold failed or timed out.")]
    groups = failed.groupby(["dataset", "estimator", "status", "error"], sort=True, dropna=False).size()
    rows = [[ds, est, status, n, "" if not isinstance(err, str) else err] for (ds, est, status, err), n in
            groups.items()]  # fmt: skip
    blocks = [para("Failed folds grouped by identical error message."),
              table(["dataset", "estimator", "status", "folds", "error"], rows, left=3)]  # fmt: skip
    flagged = [f"{ds} / {m}" for ds in _datasets(data) for m in _ds_stats(data, ds).get("flagged", [])]
    if flagged:
        rate = data.stats.get("settings", {}).get("flag_failure_rate", 0.1)
        blocks.append(para(f"More than {rate:.0%} of the folds failed for: {', '.join(flagged)}.", "note"))
    return blocks


def method_section(data: ReportData) -> list[Block]:
    settings = data.stats.get("settings", {})
    across = data.stats.get("across", {})
    handling = across.get("failure_handling") or {}
    policy = settings.get("failures", "dummy")
    policy_text = {
        "dummy": "dummy-imputed: a model with no score on a dataset (every fold failed) is ranked there with the dummy "
        "baseline's score (class prior or mean, computed from the stored labels), so a failure counts as the worst "
        "sensible model instead of being ignored",
        "drop": "dropped: a model that failed on a dataset is left out of the across-dataset comparison",
    }.get(policy, policy)
    user_rope = settings.get("rope") or {}
    items = [
        f"Significance level α = {settings.get('alpha', 0.05)}.",
        f"Per dataset: {settings.get('test_per_dataset', '')}; {settings.get('bayesian_per_dataset', '')}.",
        f"Failures policy: {policy_text}.",
        "Rope (region of practical equivalence): "
        + (
            ", ".join(f"{k} = {v:g}" for k, v in user_rope.items()) + " (suite setting); otherwise "
            if user_rope
            else ""
        )
        + f"{settings.get('default_rope', 0.01):g} for bounded metrics and {settings.get('default_rope', 0.01):g} × the "
        "mean |score| of the two models compared for unbounded ones (errors, log loss).",
        f"Fold identity for pairing: {', '.join(settings.get('fold_identity', []))}; a fold that failed for either "
        "model is dropped for that pair only.",
        f"Orientation: {settings.get('orientation', '')}.",
        f"Across datasets: tests run only with at least {settings.get('min_datasets', 5)} datasets (Friedman / "
        "Iman–Davenport, Kendall's W, Wilcoxon signed-rank with Holm, Nemenyi critical difference).",
    ]
    for ds in _datasets(data):
        st = _ds_stats(data, ds)
        items.append(f"{ds}: rope for {st.get('metric', '?')}: {st.get('rope_rule', '?')}.")
    for model, dsets in (handling.get("dummy_substituted") or {}).items():
        items.append(f"{model} was given the dummy baseline's score on: {', '.join(dsets)}.")
    for model, why in (handling.get("dropped_models") or {}).items():
        items.append(f"{model} is left out of the across-dataset comparison: {why}.")
    return [{"kind": "list", "content": items}]


def environment_section(data: ReportData) -> list[Block]:
    run = data.boards.run
    s = data.settings
    env = s.get("environment") or {}
    started, finished = run.get("started"), run.get("finished")
    wall = f"{finished - started:.1f} s" if started is not None and finished is not None else "—"
    try:
        argv = " ".join(json.loads(run.get("argv") or "[]"))
    except (TypeError, json.JSONDecodeError):
        argv = str(run.get("argv"))
    rows = [
        ["suite", data.boards.suite],
        ["run", f"{run.get('run_id')} ({run.get('status')})"],
        ["started", _date(started)],
        ["finished", _date(finished)],
        ["wall time of the latest run", wall],
        ["command", argv or "—"],
        ["git revision of the suite", env.get("git_revision") or "unknown (suite not in a git repository)"],
        ["seed(s)", ", ".join(str(x) for x in s.get("seeds") or [s.get("seed")])],
        ["cross-validation", json.dumps(s.get("cv", {}), sort_keys=True)],
        [
            "parallel jobs × threads per fit",
            f"{s.get('n_jobs', '?')} × {s.get('threads', '?')} ({s.get('executor', s.get('backend', '?'))})",
        ],
        ["platform", env.get("platform", "—")],
        ["CPU", f"{env.get('processor') or '—'} ({env.get('cpus', '?')} logical cores)"],
        ["GPU", env.get("gpu") or "none"],
    ]
    versions = [[k, str(v)] for k, v in sorted(data.versions.items())]
    blocks = [table(["setting", "value"], rows, left=2), para("Package versions."),
              table(["package", "version"], versions, left=2)]  # fmt: skip
    if s.get("workers"):
        blocks += [para(f"Dask workers of {s.get('cluster', 'the cluster')}."), workers_table(s["workers"])]
    return blocks


def workers_table(workers: list[dict]) -> Block:
    """Where the folds ran on a cluster: each worker's host, cores, memory and key versions."""
    rows = []
    for w in workers:
        memory = w.get("memory_bytes")
        v = w.get("versions") or {}
        rows.append(
            [
                f"{w.get('name', '?')} ({w.get('address', '?')})",
                str(w.get("host", "?")),
                f"{w.get('nthreads', '?')} / {w.get('cores', '?')}",
                f"{memory / 2**30:.1f} GiB" if memory else "—",
                ", ".join(f"{k} {v[k]}" for k in ("harness", "scikit-learn", "lightgbm", "xgboost", "torch") if k in v),
            ]
        )
    return table(["worker", "host", "threads / cores", "memory", "versions"], rows, left=5)
