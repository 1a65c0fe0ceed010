"""Who wins and whether it is real: the summary, leaderboards, ranks, fold scores and pairwise tests.

Every number comes from `ReportData` (the analysis dict that is also stats.json, the
leaderboards) or from `report.views`; these functions only format it into blocks.
"""

from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup

from harness import stats
from harness.report import plots, views
from harness.report.context import ReportData
from harness.report.format import fmt_mean, fmt_num, fmt_p, fmt_time
from harness.report.html.blocks import Block, anchor, badge, better, bullets, figure, heading, para, row, table
from harness.report.markdown import TUNE_LABEL

# ---------------------------------------------------------------- summary


def summary_section(data: ReportData) -> list[Block]:
    n = views.fold_counts(data)
    blocks = [
        para(
            f"{n.datasets} dataset(s), {n.estimators} estimator(s), {n.folds} fold results: "
            f"{n.ok} ok, {n.failed} failed, {n.skipped} skipped."
        )
    ]
    rows = []
    for ds in data.datasets:
        st = data.dataset_stats(ds)
        board = data.boards.per_dataset[ds].set_index("estimator")
        best = st.get("best")
        metric = st.get("metric", data.primary(ds))
        score = (
            fmt_mean(board.loc[best, f"{metric}_mean"], board.loc[best, f"{metric}_std"])
            if best in board.index
            else "—"
        )
        tied = [m for m in st.get("not_significantly_worse_than_best", []) if m != best]
        pairs = st.get("pairs", [])
        n_sig = sum(1 for p in pairs if p.get("significant"))
        rows.append([ds, metric, best or "—", score, ", ".join(tied) or "none", f"{n_sig} of {len(pairs)}"])
    blocks.append(para("Best model per dataset (by mean primary metric) and the models not significantly worse than it "
                       "(corrected t-test, Holm-adjusted within the dataset: the rule `harness check` applies to the "
                       "champion)."))  # fmt: skip
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
        blocks.append(bullets(sig))
    else:
        blocks.append(para("No pair of models differs significantly on any dataset (Holm-adjusted corrected t-test)."))
    return blocks


def champion_lines(data: ReportData) -> list[Block]:
    """Where the suite names its production model: is it still the best, or at least not significantly worse?"""
    champion = data.suite.get("champion")
    if not champion:
        return []
    parts = []
    for ds in data.datasets:
        st = data.dataset_stats(ds)
        verdict = views.champion_verdict(champion, st)
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
        if across.get("wilcoxon_holm") is None:
            blocks.append(para(f"No Wilcoxon test across datasets ({across.get('wilcoxon_note') or 'not run'})."))
        elif sig:
            blocks.append(bullets([f"{p['better']} better than {p['b'] if p['better'] == p['a'] else p['a']} "
                                   f"(Wilcoxon–Holm p = {fmt_p(p['p_holm'])})" for p in sig]))  # fmt: skip
        else:
            blocks.append(para("No pair of models differs significantly across datasets (Wilcoxon signed-rank, Holm)."))
    for note in across.get("notes", []):
        blocks.append(para(note, "muted"))
    return blocks


def significant_pairs(data: ReportData) -> list[str]:
    out = []
    for ds in data.datasets:
        st = data.dataset_stats(ds)
        for p in st.get("pairs", []):
            if p.get("significant"):
                winner, loser = (p["a"], p["b"]) if p["verdict"] == "A better" else (p["b"], p["a"])
                out.append(
                    f"{ds}: {winner} better than {loser} by {fmt_num(abs(p['mean_diff']))} "
                    f"{st.get('metric', '')} (Holm p = {fmt_p(p['p_holm'])})"
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
    for ds in data.datasets:
        blocks += dataset_leaderboard(data, ds)
    return blocks


def _name_cell(rec: dict, best: str | None, tied: set[str], flagged: bool) -> Markup:
    """The estimator's name with its tuning label and badges (best, ≈ best, optimistic, failures)."""
    est = rec["estimator"]
    name = Markup("{}{}").format(est, TUNE_LABEL.get(rec["tune_mode"], ""))
    if est == best:
        name += Markup(" ") + badge("best", "best")
    elif est in tied:
        name += Markup(" ") + badge("≈ best", "tied")
    if rec["tune_mode"] == "tune_then_cv":
        name += Markup(" ") + badge("optimistic", "opt")
    if flagged:
        name += Markup(" ") + badge("failures", "flag")
    return name


def dataset_leaderboard(data: ReportData, ds: str) -> list[Block]:
    info = data.boards.datasets.get(ds, {})
    task = info.get("task", "")
    primary = data.primary(ds)
    metrics = data.boards.metrics.get(task, [primary])
    st = data.dataset_stats(ds)
    status = st.get("models", {})
    best, tied = st.get("best"), set(st.get("not_significantly_worse_than_best", []))
    records = views.leaderboard_rows(data, ds)
    tuned = any(pd.notna(rec["tune_mode"]) for rec in records)
    header = ["rank", "estimator", *metrics, "fit time", *(["tune time"] if tuned else []), "predict time",
              "folds ok/failed", "failed share"]  # fmt: skip
    rows, classes = [], []
    for rec in records:
        est = rec["estimator"]
        flagged = status.get(est, {}).get("flagged", False)
        share = rec["failed_share"]
        rows.append(
            [
                "—" if math.isnan(rec["rank"]) else f"{rec['rank']:g}",
                _name_cell(rec, best, tied, flagged),
                *[fmt_mean(rec[f"{m}_mean"], rec[f"{m}_std"]) for m in metrics],
                fmt_time(rec["fit_time"]),
                *([fmt_time(rec["tune_time"])] if tuned else []),
                fmt_time(rec["predict_time"]),
                f"{rec['n_ok']}/{rec['n_failed']}",
                f"{share:.0%}" if share is not None else "—",
            ]
        )
        classes.append("flag" if flagged else "best" if est == best else "tied" if est in tied else "")
    notes = "".join(f" Note: {n}." for n in info.get("notes", []))
    blocks = [
        heading(ds, anchor("lb", ds)),
        para(
            f"{task}, {info.get('n_rows', '?')} rows × {info.get('n_features', '?')} features; ranked by {primary} "
            f"({better(data.direction(primary))} is better).{notes}"
        ),
        table(header, rows, classes),
    ]
    for rec in views.skipped_estimators(data, ds):
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
        wh = across.get("wilcoxon_holm") or []
        cd = across.get("nemenyi_cd")
        if wh or cd is None:
            pvalues = views.wilcoxon_matrix(wh, list(avg.index))
            bars = (f"bars join models whose Wilcoxon–Holm tests are not significant at α = "
                    f"{across.get('alpha', 0.05)} (they compare {across.get('wilcoxon_quantity')})")  # fmt: skip
        else:  # no Wilcoxon test (no comparable quantity): the bars are Demšar's, from the ranks alone
            pvalues = stats.nemenyi_matrix(avg, cd)
            bars = (f"bars join models whose average ranks differ by at most the critical difference (no Wilcoxon "
                    f"test: {across.get('wilcoxon_note')})")  # fmt: skip
        blocks.append(
            figure(
                plots.cd_diagram(avg, pvalues, cd, float(across.get("alpha", 0.05))),
                f"Critical-difference diagram: average ranks (1 = best); {bars}"
                + (f"; the Nemenyi critical difference is {cd:.3f}." if cd is not None else "."),
            )
        )
        rows = [[p["a"], p["b"], p["n"], p["n_nonzero"], fmt_num(p["median_diff"]), fmt_p(p["p"]),
                 fmt_p(p["p_holm"]), p.get("better") or "—"] for p in wh]  # fmt: skip
        median = f"median {across.get('wilcoxon_scale') or ''} difference (positive = A better)"
        blocks.append(table(["A", "B", "datasets", "non-zero", median, "p", "Holm p", "better"], rows))
    else:
        blocks.append(
            para(
                "No critical-difference diagram: too few datasets for an across-dataset test. The ranks below are "
                "descriptive.",
                "note",
            )
        )
    rank_rows, names = [], list(data.boards.overall["estimator"]) if len(data.boards.overall) else []
    for ds in data.datasets:
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


# ---------------------------------------------------------------- fold scores and cost


def scores_section(data: ReportData) -> list[Block]:
    blocks = [
        para("Each model's score on every fold (box: quartiles; points: folds) and its mean score against its mean fit "
             "time; models on the Pareto front (no other model is both faster and better) are outlined and joined.")
    ]  # fmt: skip
    for ds in data.datasets:
        v = views.scores_view(data, ds)
        blocks.append(heading(ds, anchor("scores", ds)))
        figs = [figure(plots.fold_scores(v.scores, v.primary, v.greater), f"{ds}: {v.primary} per fold.")]
        if v.front is not None:
            figs.append(figure(plots.pareto(v.points, v.front, v.primary, v.greater),
                               f"{ds}: score vs fit (+ tuning) time. Pareto front: {', '.join(v.front)}."))  # fmt: skip
        blocks.append(row(figs))
    return blocks


# ---------------------------------------------------------------- pairwise significance

_PAIR_HEADER = ["A", "B", "folds", "difference", "CI", "p", "Holm p", "rope", "P(A better)", "P(equivalent)",
                "P(B better)", "verdict", "Bayesian decision"]  # fmt: skip


def significance_section(data: ReportData) -> list[Block]:
    alpha = float(data.stats.get("settings", {}).get("alpha", 0.05))
    blocks = [
        para(
            f"Every pair of models on each dataset's primary metric. Difference = A − B oriented so that positive means "
            f"A is better; {1 - alpha:.0%} confidence interval and p from the Nadeau–Bengio corrected resampled t-test "
            "(folds overlap, so the plain t-test would be overconfident), Holm-adjusted over the pairs of the dataset. "
            "P(A better), P(equivalent) and P(B better) are posterior probabilities of the Bayesian correlated t-test "
            "with the rope stated per dataset."
        )
    ]
    for ds in data.datasets:
        st = data.dataset_stats(ds)
        pairs = st.get("pairs", [])
        blocks.append(heading(ds, anchor("sig", ds)))
        blocks.append(para(f"Metric {st.get('metric', '?')}; rope: {st.get('rope_rule', '?')}.", "muted"))
        if not pairs:
            blocks.append(para("Fewer than two models have scores here: nothing to compare."))
            continue
        rows = [[p["a"], p["b"], p["n"], fmt_num(p["mean_diff"]), f"[{fmt_num(p['ci_low'])}, {fmt_num(p['ci_high'])}]",
                 fmt_p(p["p"]), fmt_p(p["p_holm"]), fmt_num(p["rope"]), fmt_num(p["p_a_better"], 3),
                 fmt_num(p["p_rope"], 3), fmt_num(p["p_b_better"], 3), p["verdict"], p["bayes_decision"]]
                for p in pairs]  # fmt: skip
        blocks.append(table(_PAIR_HEADER, rows, ["best" if p.get("significant") else "" for p in pairs]))
        for p in pairs:
            if p.get("reason"):
                blocks.append(para(f"{p['a']} vs {p['b']}: {p['reason']}.", "muted"))
    return blocks
