"""The robustness section: score against budget per attack (noise, pgd, blackbox), per dataset.

The numbers come from `report.robustness` (the same frame as robustness.csv); this module only
formats them: one figure per dataset with a panel per attack, a table of the means, and what the
attacks could not do (not applicable, failed) and what they spent.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from harness.report import plots, views
from harness.report.context import ReportData
from harness.report.format import fmt_num
from harness.report.html.blocks import Block, anchor, bullets, figure, heading, para, table
from harness.report.robustness import attack_curves, attack_notes, robustness_frame

TITLES = {
    "noise": "noise (Gaussian, categories swapped; all test rows)",
    "pgd": "pgd (gradient attack)",
    "blackbox": "blackbox (query attack)",
}


def robustness_section(data: ReportData) -> list[Block] | None:
    frame = robustness_frame(data)
    if frame.empty:
        return None
    if set(frame["attack"]) == {"noise"}:  # a noise-only run: the page it always had
        return noise_section(data)
    blocks: list[Block] = []
    for ds in data.datasets:
        primary = data.primary(ds)
        curves = attack_curves(frame, ds, primary)
        if not curves:
            continue
        blocks.append(heading(ds, anchor("robust", ds)))
        blocks.append(figure(budget_plot(curves, primary, data.direction(primary)),
                             f"{ds}: mean {primary} against the budget, per attack (same folds, models not "
                             "refitted; 0 = the clean rows)."))  # fmt: skip
        columns = [(attack, lv) for attack, per in curves.items() for lv in _levels(per)]
        models = list(dict.fromkeys(est for per in curves.values() for est in per))
        blocks.append(table(["estimator", *[f"{attack} {lv:g}" for attack, lv in columns]],
                            [[m, *[fmt_num(curves[a].get(m, pd.Series(dtype=float)).get(lv, math.nan))
                                   for a, lv in columns]] for m in models], left=1))  # fmt: skip
        blocks += _notes(data, ds)
    if not blocks:
        return None
    intro = para("Each fold's fitted model scored again on perturbed test rows. A level is a budget in units of each "
                 "numeric column's training standard deviation. noise: Gaussian noise of level × that deviation, and a "
                 "share `level` of categorical values swapped for another training category. pgd and blackbox: the "
                 "worst rows found within an L∞ box of level × that deviation, inside the training range, categorical "
                 "and missing values fixed (pgd follows the loss gradient of the MLP and linear models; blackbox "
                 "searches with model queries only, for every model), on a seeded sample of the test rows.")  # fmt: skip
    return [intro, *blocks]


def _levels(per: dict[str, pd.Series]) -> list[float]:
    return sorted({float(lv) for c in per.values() for lv in c.index})


def _notes(data: ReportData, ds: str) -> list[Block]:
    notes = attack_notes(data, ds)
    if not notes:
        return []
    spent = (f"Attacks spent {notes['seconds']:.2f} s per fold on average ({notes['total_s']:.1f} s in all) on at most "
             f"{notes['rows']} rows per fold; budget per fold: {notes.get('max_s', 0):g} s, {notes.get('queries', 0)} "
             f"queries per row and level (blackbox), {notes.get('steps', 0)} steps per level (pgd).")  # fmt: skip
    if notes["stopped"]:
        spent += f" The time budget cut {notes['stopped']} attack(s) short (their rows are the worst found by then)."
    blocks = [para(spent, "note")]
    if notes["skipped"]:
        blocks.append(bullets([f"{k}: {v}" for k, v in sorted(notes["skipped"].items())]))
    return blocks


def budget_plot(curves: dict[str, dict[str, pd.Series]], metric: str, greater: bool) -> str:
    """One panel per attack: mean score against the budget, one line per model (same colour in every panel)."""
    models = list(dict.fromkeys(est for per in curves.values() for est in per))
    fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves) + 0.6, 3.4), layout="constrained",
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, (attack, per) in zip(axes[0], curves.items(), strict=True):
        for model, curve in per.items():
            ax.plot(curve.index.to_numpy(dtype=float), curve.to_numpy(dtype=float), marker="o",
                    color=plots.color(models.index(model)), label=model)  # fmt: skip
        ax.set_title(TITLES.get(attack, attack), fontsize=8)
        ax.set_xlabel("budget (× training standard deviation)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"mean {metric} ({'higher' if greater else 'lower'} is better)")
    axes[0][-1].legend(fontsize=7)
    return plots.to_svg(fig)


def noise_section(data: ReportData) -> list[Block] | None:
    """The section of a run with noise only (`robustness: {levels: [...]}`), as before attacks existed."""
    blocks: list[Block] = []
    for ds in data.datasets:
        curves, primary = views.robustness_curves(data, ds)
        if not curves:
            continue
        blocks.append(heading(ds, anchor("robust", ds)))
        blocks.append(figure(plots.robustness(curves, primary, data.direction(primary)),
                             f"{ds}: mean {primary} on test rows with noise added (same folds, models not refitted)."))  # fmt: skip
        levels = views.noise_levels(curves)
        blocks.append(table(["estimator", *[f"noise {lv:g}" for lv in levels]],
                            [[m, *[fmt_num(c.get(lv, math.nan)) for lv in levels]] for m, c in curves.items()],
                            left=1))  # fmt: skip
    if not blocks:
        return None
    intro = para("Each fold's fitted model scored again on copies of its test rows with noise: numeric columns get "
                 "Gaussian noise of level × the training standard deviation, a share `level` of categorical values is "
                 "swapped for another training category.")  # fmt: skip
    return [intro, *blocks]
