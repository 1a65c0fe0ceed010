"""What the results rest on: data checks, failures, the statistical method and the environment.

These sections format the stored check-data results, the grouped failures (`report.views`),
the analysis settings and the run's settings and package versions.
"""

from __future__ import annotations

import json

from harness.report import views
from harness.report.context import ReportData
from harness.report.format import fmt_num, fmt_p
from harness.report.html.blocks import Block, anchor, badge, bullets, fmt_date, heading, para, table

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


# ---------------------------------------------------------------- failures, method, environment


def failures_section(data: ReportData) -> list[Block]:
    groups = views.failure_groups(data)
    if not groups:
        return [para("No fold failed or timed out.")]
    blocks = [para("Failed folds grouped by identical error message."),
              table(["dataset", "estimator", "status", "folds", "error"], [list(g) for g in groups], left=3)]  # fmt: skip
    flagged = [f"{ds} / {m}" for ds in data.datasets for m in data.dataset_stats(ds).get("flagged", [])]
    if flagged:
        rate = data.stats.get("settings", {}).get("flag_failure_rate", 0.1)
        blocks.append(para(f"More than {rate:.0%} of the folds failed for: {', '.join(flagged)}.", "note"))
    return blocks


_POLICY_TEXT = {
    "dummy": "dummy-imputed: a model with no score on a dataset (every fold failed) is ranked there with the dummy "
    "baseline's score (class prior or mean, computed from the stored labels), so a failure counts as the worst "
    "sensible model instead of being ignored",
    "drop": "dropped: a model that failed on a dataset is left out of the across-dataset comparison",
}


def method_section(data: ReportData) -> list[Block]:
    settings = data.stats.get("settings", {})
    handling = data.stats.get("across", {}).get("failure_handling") or {}
    policy = settings.get("failures", "dummy")
    user_rope = settings.get("rope") or {}
    default_rope = settings.get("default_rope", 0.01)
    items = [
        f"Significance level α = {settings.get('alpha', 0.05)}.",
        f"Per dataset: {settings.get('test_per_dataset', '')}; {settings.get('bayesian_per_dataset', '')}.",
        f"Failures policy: {_POLICY_TEXT.get(policy, policy)}.",
        "Rope (region of practical equivalence): "
        + (
            ", ".join(f"{k} = {v:g}" for k, v in user_rope.items()) + " (suite setting); otherwise "
            if user_rope
            else ""
        )
        + f"{default_rope:g} for bounded metrics and {default_rope:g} × the "
        "mean |score| of the two models compared for unbounded ones (errors, log loss).",
        f"Fold identity for pairing: {', '.join(settings.get('fold_identity', []))}; a fold that failed for either "
        "model is dropped for that pair only.",
        f"Orientation: {settings.get('orientation', '')}.",
        f"Across datasets: tests run only with at least {settings.get('min_datasets', 5)} datasets (Friedman / "
        "Iman–Davenport, Kendall's W, Wilcoxon signed-rank with Holm, Nemenyi critical difference).",
    ]
    for ds in data.datasets:
        st = data.dataset_stats(ds)
        items.append(f"{ds}: rope for {st.get('metric', '?')}: {st.get('rope_rule', '?')}.")
    for model, dsets in (handling.get("dummy_substituted") or {}).items():
        items.append(f"{model} was given the dummy baseline's score on: {', '.join(dsets)}.")
    for model, why in (handling.get("dropped_models") or {}).items():
        items.append(f"{model} is left out of the across-dataset comparison: {why}.")
    return [bullets(items)]


def environment_section(data: ReportData) -> list[Block]:
    run = data.boards.run
    s = data.settings
    env = s.get("environment") or {}
    wall = views.wall_seconds(run)
    try:
        argv = " ".join(json.loads(run.get("argv") or "[]"))
    except (TypeError, json.JSONDecodeError):
        argv = str(run.get("argv"))
    rows = [
        ["suite", data.boards.suite],
        ["run", f"{run.get('run_id')} ({run.get('status')})"],
        ["started", fmt_date(run.get("started"))],
        ["finished", fmt_date(run.get("finished"))],
        ["wall time of the latest run", f"{wall:.1f} s" if wall is not None else "—"],
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
    if s.get("skipped_datasets"):
        blocks += [para("Datasets of OpenML suites left out (outside the entry's limits, or already in the suite)."),
                   table(["dataset"], [[line] for line in s["skipped_datasets"]], left=1)]  # fmt: skip
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
