"""LIME and resampling sections: what LIME says drives each model and whether SHAP agrees; classes rebalanced.

The numbers come from `report.views` (`lime_view`, `resample_counts`); these functions only format and plot.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.report import plots, views
from harness.report.context import ReportData
from harness.report.format import fmt_num
from harness.report.html.blocks import Block, anchor, figure, heading, para, table

_TOP = 15  # features per panel


def lime_section(data: ReportData) -> list[Block] | None:
    if not data.lime:
        return None
    blocks = [
        para(
            "LIME (lime_tabular on the raw columns: categories are drawn from the training frequencies, numbers from "
            "their training quartile bins, and the whole fitted pipeline scores the samples) explains the same rows "
            "as SHAP. Mean |LIME weight| per feature over rows and outputs, then folds. With explain.method: both, τ "
            "is the Kendall τ-b between the LIME and SHAP rankings of the features by mean |value|, computed on the "
            "rows both explained (1: the same order)."
        )
    ]
    for ds in data.datasets:
        models = views.lime_view(data, ds) if data.lime.get(ds) else []
        if not models:
            continue
        blocks.append(heading(ds, anchor("lime", ds)))
        rows = [[m.estimator, m.output_space, " / ".join(map(str, m.rows_per_fold)), fmt_num(m.mean_seconds, 2),
                 fmt_num(m.local_r2, 2), "—" if m.tau is None else fmt_num(m.tau, 2), m.common_rows,
                 ", ".join(m.importance.index[:3]), "; ".join(m.notes)] for m in models]  # fmt: skip
        blocks.append(table(["estimator", "output space", "rows per fold", "seconds per fold", "local R²",
                             "τ with SHAP", "common rows", "top features", "note"], rows, left=2))  # fmt: skip
        blocks.append(figure(lime_bars({m.estimator: m.importance for m in models}),
                             f"{ds}: mean |LIME weight| per feature (top {_TOP})."))  # fmt: skip
    return blocks


def lime_bars(importances: dict[str, pd.Series], per_row: int = 4) -> str:
    """One panel of horizontal bars per model: mean |LIME weight| per feature, largest on top."""
    names = list(importances)
    ncols = min(per_row, len(names))
    nrows = math.ceil(len(names) / ncols)
    shown = {n: importances[n].head(_TOP).iloc[::-1] for n in names}
    height = max(2.0, 0.22 * max(len(s) for s in shown.values()) + 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.0, 3.3 * ncols), height * nrows), layout="constrained",
                             squeeze=False)  # fmt: skip
    flat = axes.ravel()
    for i, name in enumerate(names):
        ax, s = flat[i], shown[name]
        ax.barh(np.arange(len(s)), s.to_numpy(), color=plots.color(i), alpha=0.85)
        ax.set_yticks(np.arange(len(s)), [str(f) for f in s.index], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("mean |LIME weight|", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in flat[len(names) :]:
        ax.set_visible(False)
    return plots.to_svg(fig)


def resample_section(data: ReportData) -> list[Block] | None:
    counts = views.resample_counts(data)
    if not counts:
        return None
    blocks = [
        para(
            "Estimators with resample: rebalance the training part of each fold (and of each inner tuning fold) "
            "with imbalanced-learn; test rows are never resampled. Training rows per class before and after the "
            "sampler, mean over folds."
        )
    ]
    for ds in data.datasets:
        if ds not in counts:
            continue
        blocks.append(heading(ds, anchor("resample", ds)))
        rows = []
        for est, c in counts[ds].items():
            before = ", ".join(f"{k}: {c['before'][k]:.0f}" for k in c["classes"])
            after = ", ".join(f"{k}: {c['after'][k]:.0f}" for k in c["classes"])
            rows.append([est, c["method"], c["folds"], before, after])
        blocks.append(table(["estimator", "method", "folds", "before (class: rows)", "after"], rows, left=2))
        blocks.append(figure(resample_bars(counts[ds]), f"{ds}: training rows per class before and after resampling."))
    return blocks


def resample_bars(per_est: dict[str, dict]) -> str:
    """Per estimator, bars of training rows per class: before (light) and after (dark) the sampler."""
    names = list(per_est)
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.0, 3.0 * len(names)), 2.6), layout="constrained",
                             squeeze=False)  # fmt: skip
    for i, (ax, name) in enumerate(zip(axes.ravel(), names, strict=True)):
        c = per_est[name]
        x = np.arange(len(c["classes"]))
        ax.bar(x - 0.2, [c["before"][k] for k in c["classes"]], 0.4, color=plots.color(i), alpha=0.4, label="before")
        ax.bar(x + 0.2, [c["after"][k] for k in c["classes"]], 0.4, color=plots.color(i), label="after")
        ax.set_xticks(x, [str(k) for k in c["classes"]], fontsize=7)
        ax.set_title(f"{name} ({c['method']})", fontsize=9)
        ax.set_ylabel("training rows", fontsize=8)
        ax.legend(fontsize=7)
    return plots.to_svg(fig)
