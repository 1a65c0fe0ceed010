"""report.html's learning-curve and validation-curve sections (training-set size; one parameter).

The numbers (means over folds, fit-time exponent, last-doubling gain and its corrected
interval, best value) come from `report.curves`; this module only draws and formats them.
The figures follow `report.plots`: matplotlib into inline SVG, no metadata.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from harness.report import curves, plots
from harness.report.context import ReportData
from harness.report.format import fmt_num, fmt_time
from harness.report.html.blocks import Block, anchor, better, figure, heading, para, table

# ---------------------------------------------------------------- learning curves


def learning_curves_by_size_section(data: ReportData) -> list[Block] | None:
    blocks: list[Block] = []
    for ds in data.datasets:
        summaries = curves.learning_summaries(data, ds)
        if not summaries:
            continue
        metric, greater = summaries[0].metric, summaries[0].greater
        blocks.append(heading(ds, anchor("size", ds)))
        blocks.append(figure(learning_figure(summaries),
                             f"{ds}: mean {metric} ({better(greater)} is better) on the whole test fold (bars: ± one "
                             f"standard deviation over folds) and median fit time (bars: quartiles) against "
                             f"training rows."))  # fmt: skip
        blocks.append(table(["estimator", "rows at full size", f"{metric} at full size", "fit-time exponent",
                             "gain per doubling (last step)", "95% CI (corrected)", "at full size"],
                            [_learning_row(s) for s in summaries], left=1))  # fmt: skip
    if not blocks:
        return None
    intro = para("Each fold's training part is subsampled (stratified for classification; every estimator gets the "
                 "same rows and each subset lies inside the larger ones) and each subset's model is scored on the "
                 "whole test fold; the full size is the fold's own fit. The fit-time exponent b fits "
                 "time ≈ c · rows^b through the median fit time at each size (± its standard error): 1 is linear. The gain per "
                 "doubling compares the full size with the largest smaller subset, fold by fold (positive = "
                 "better), with a Nadeau–Bengio corrected interval: 'still rising' means more rows would likely "
                 "still help.")  # fmt: skip
    return [intro, *blocks]


def _learning_row(s: curves.LearningSummary) -> list[Any]:
    full = s.points.loc[1.0] if 1.0 in s.points.index else None
    exponent = "—" if math.isnan(s.exponent) else f"{s.exponent:.2f}" + (
        "" if math.isnan(s.exponent_se) else f" ± {s.exponent_se:.2f}")  # fmt: skip
    t = s.last_doubling
    gain = "—" if t is None else fmt_num(t.mean)
    if t is not None and s.from_fraction is not None:
        gain += f" (from {s.from_fraction:g})"
    ci = "—" if t is None or not np.isfinite(t.ci_low) else f"[{fmt_num(t.ci_low)}, {fmt_num(t.ci_high)}]"
    return [s.estimator, "—" if full is None else f"{full['n_train']:.0f}",
            "—" if full is None else fmt_num(full["score_mean"]), exponent, gain, ci, s.verdict]  # fmt: skip


def learning_figure(summaries: list[curves.LearningSummary]) -> str:
    """Score (left) and fit time (right, log–log) against training rows, one colour per estimator."""
    fig, (score_ax, time_ax) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    for i, s in enumerate(summaries):
        p = s.points
        x = p["n_train"].to_numpy(float)
        score_ax.errorbar(x, p["score_mean"].to_numpy(float), yerr=_bars(p["score_std"]), marker="o", ms=3,
                          capsize=2, color=plots.color(i), label=s.estimator)  # fmt: skip
        times = p["time_median"].to_numpy(float)
        shown = np.isfinite(times) & (times > 0)
        spread = np.vstack([times - p["time_q1"].to_numpy(float), p["time_q3"].to_numpy(float) - times])
        time_ax.errorbar(x[shown], times[shown], yerr=np.clip(np.nan_to_num(spread), 0, None)[:, shown], marker="o",
                         ms=3, capsize=2, color=plots.color(i), label=s.estimator)  # fmt: skip
    metric, greater = summaries[0].metric, summaries[0].greater
    sizes = sorted({round(n) for s in summaries for n in s.points["n_train"]})
    score_ax.set_ylabel(f"{metric} ({better(greater)} is better)")
    time_ax.set_yscale("log")
    time_ax.set_ylabel("median fit time (s)")
    for ax in (score_ax, time_ax):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("training rows")
        ax.grid(alpha=0.3)
    score_ax.legend(fontsize=7)
    return plots.to_svg(fig)


def _bars(std: Any) -> np.ndarray:
    """Error bar half-lengths: a fold standard deviation, 0 where there is none (one fold)."""
    arr = np.asarray(std, dtype=float)
    return np.where(np.isfinite(arr), arr, 0.0)


# ---------------------------------------------------------------- validation curves


def validation_curves_section(data: ReportData) -> list[Block] | None:
    blocks: list[Block] = []
    for ds in data.datasets:
        for s in curves.validation_summaries(data, ds):
            blocks.append(heading(f"{ds} / {s.estimator}: {s.param}", anchor("vcurve", ds, s.estimator)))
            blocks.append(figure(validation_figure(s),
                                 f"{ds} / {s.estimator}: mean {s.metric} ({better(s.greater)} is better) on the "
                                 f"training rows (dashed) and the test fold (solid) for each {s.param}; bands: ± one "
                                 f"standard deviation over folds."))  # fmt: skip
            rows = [[value, fmt_num(r["train_mean"]), fmt_num(r["test_mean"]), fmt_num(r["test_std"]),
                     fmt_time(r["fit_time"])] for value, r in s.table.iterrows()]  # fmt: skip
            blocks.append(table([s.param, f"train {s.metric}", f"test {s.metric}", "test std", "fit time"], rows,
                                ["best" if value == s.best else "" for value in s.table.index], left=1))  # fmt: skip
    if not blocks:
        return None
    intro = para("Every value of one parameter fitted on each fold's whole training part and scored on its training "
                 "rows and its test fold (as scikit-learn's validation_curve); the other parameters are the "
                 "estimator's own. A wide train–test gap is overfitting; low scores on both, underfitting.")  # fmt: skip
    return [intro, *blocks]


def validation_figure(s: curves.ValidationSummary) -> str:
    """Train (dashed) and test (solid) mean score against the value, with ± std bands."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    x, labels = _positions(s.values)
    for i, (part, style) in enumerate((("train", "--"), ("test", "-"))):
        mean = s.table[f"{part}_mean"].to_numpy(float)
        std = _bars(s.table[f"{part}_std"])
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], mean[order], style, marker="o", ms=3, color=plots.color(i), label=part)
        ax.fill_between(x[order], (mean - std)[order], (mean + std)[order], color=plots.color(i), alpha=0.15)
    if labels is not None:
        ax.set_xticks(x, labels, fontsize=7, rotation=30 if max(len(t) for t in labels) > 6 else 0)
    elif np.all(x > 0) and x.max() / x.min() >= 100:
        ax.set_xscale("log")
    ax.set_xlabel(s.param)
    ax.set_ylabel(f"{s.metric} ({better(s.greater)} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.to_svg(fig)


def _positions(values: list[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Numbers stand where they are; anything else (None, strings, lists) at 0, 1, 2, ... with its text as label."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric:
        return np.asarray(values, dtype=float), None
    return np.arange(len(values), dtype=float), [curves.value_text(v) for v in values]
