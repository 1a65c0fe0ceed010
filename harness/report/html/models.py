"""Why models decide as they do and how they behave: SHAP, tuning, learning curves, robustness, seeds.

The numbers (importances on common rows, rank agreement, tuning summaries, robustness
means, fold labels) come from `report.views`; these functions only format them.
"""

from __future__ import annotations

import json
import math

from harness.report import plots, views
from harness.report.context import ReportData
from harness.report.format import fmt_num, fmt_time
from harness.report.html.blocks import Block, anchor, better, bullets, details, figure, heading, para, row, table

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
    for ds in data.datasets:
        if not data.explanations.get(ds):
            continue
        blocks.append(heading(ds, anchor("shap", ds)))
        blocks += dataset_shap(ds, views.shap_view(data, ds))
        blocks += _explain_failures(data, ds)
    return blocks


def _explain_failures(data: ReportData, ds: str | None) -> list[Block]:
    items = views.explain_failures(data, ds)
    return [para("Not explained:"), bullets(items)] if items else []


def dataset_shap(ds: str, v: views.ShapView) -> list[Block]:
    rows = [[s.estimator, s.first.model, s.first.explainer, s.first.output_space, ", ".join(s.first.output_names),
             len(s.rows_per_fold), " / ".join(str(n) for n in s.rows_per_fold), fmt_num(s.mean_seconds, 2),
             f"{s.max_additivity_gap:.2g}", "; ".join(s.notes)] for s in v.explainers]  # fmt: skip
    blocks = [table(["estimator", "model", "explainer", "output space", "outputs", "folds", "rows per fold",
                     "seconds per fold", "additivity gap", "note"], rows, left=5)]  # fmt: skip
    if v.importances:
        blocks.append(figure(plots.shap_bars(v.importances, v.spaces),
                             f"{ds}: mean |SHAP| per feature (top features), error bars = std across folds; "
                             f"{v.n_common} common row(s) in the first fold."))  # fmt: skip
        blocks.append(details("Mean |SHAP| per feature and model (table)",
                              [table(["feature", *v.table.columns], [[f, *[fmt_num(x) for x in r]] for f, r in
                                                                    v.table.iterrows()], left=1)]))  # fmt: skip
    figs = []
    if v.agreement is not None:
        figs.append(figure(plots.heatmap(v.agreement, "Kendall τ"),
                           f"{ds}: agreement of the models' feature rankings (Kendall τ-b of mean |SHAP|)."))  # fmt: skip
    figs.append(_beeswarm(ds, v.beeswarm))
    blocks.append(row(figs))
    return blocks


def _beeswarm(ds: str, b: views.Beeswarm) -> Block:
    e0 = b.first
    caption = (
        f"{ds}: SHAP values of {b.model} ({'the best model' if b.is_best else 'the best explained model'}; "
        f"{e0.explainer} explainer, {e0.output_space} space, values for {b.what}), {b.values.shape[0]} rows over "
        f"{b.n_folds} fold(s). Colour: the feature's value."
    )
    return figure(plots.beeswarm(b.values, b.raw, e0.features, f"SHAP value ({e0.output_space})"), caption)


# ---------------------------------------------------------------- tuning


def tuning_section(data: ReportData) -> list[Block] | None:
    tuned = views.tuning_views(data)
    if not tuned:
        return None
    blocks: list[Block] = []
    for v in tuned:
        ds, est = v.dataset, v.estimator
        blocks.append(heading(f"{ds} / {est}", anchor("tune", ds, est)))
        blocks.append(para(f"Mode {v.mode}; inner-CV metric {v.metric} ({better(v.greater)} is better).", "muted"))
        rows = [[label, json.dumps(t.get("best_params", {}), sort_keys=True), fmt_num(t.get("best_value")),
                 t.get("n_complete", "—"), t.get("n_pruned", "—"), t.get("n_failed", "—"),
                 fmt_time(t.get("wall_s", math.nan))] for label, t in v.studies]  # fmt: skip
        blocks.append(table(["fold", "best parameters", "best inner score", "trials complete", "pruned", "failed",
                             "tuning time (s)"], rows))  # fmt: skip
        if any(v.histories.values()):
            blocks.append(figure(plots.tuning_history(v.histories, v.metric, v.greater),
                                 f"{ds} / {est}: optimisation history per fold."))  # fmt: skip
        if not v.importances.empty:
            blocks.append(figure(plots.importances_bar(v.importances, "parameter importance (fANOVA)"),
                                 f"{ds} / {est}: Optuna parameter importances, mean ± std across folds."))  # fmt: skip
    return blocks


# ---------------------------------------------------------------- MLP learning curves


def learning_curves_section(data: ReportData) -> list[Block] | None:
    if not views.fold_extras(data, "history"):
        return None
    blocks = [para("Training loss (solid) and validation loss (dashed) per epoch for every fold; validation is the "
                   "MLP's own early-stopping split of the fold's training part.")]  # fmt: skip
    for ds, est, curves in views.learning_curves(data):
        blocks.append(heading(f"{ds} / {est}", anchor("mlp", ds, est)))
        blocks.append(figure(plots.learning_curves(curves), f"{ds} / {est}: loss per epoch."))
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
