"""report.html: one self-contained page answering who wins, whether it is real, and why models decide as they do.

Why it is built this way: every number comes from `ReportData` (the store and the analysis
dict that is also stats.json), or is derived from it in `report.views`, so the page,
stats.json and summary.md never disagree and this package only formats. Sections are
small functions returning plain blocks (`blocks`), grouped by what they show
(`results`: who wins; `models`: why and how models behave; `run`: what the results rest
on); the template (`template`) only lays them out. A section that fails to build shows
its error in place instead of losing the whole report: its results are still in the store.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Environment

from harness import __version__
from harness.report import plots
from harness.report.context import ReportData
from harness.report.html.blocks import Block, fmt_date, para
from harness.report.html.curves import learning_curves_by_size_section, validation_curves_section
from harness.report.html.lime import lime_section, resample_section
from harness.report.html.models import (
    learning_curves_section,
    shap_section,
    stability_section,
    tuning_section,
)
from harness.report.html.results import (
    leaderboard_section,
    ranks_section,
    scores_section,
    significance_section,
    summary_section,
)
from harness.report.html.robustness import robustness_section
from harness.report.html.run import data_checks_section, environment_section, failures_section, method_section
from harness.report.html.template import TEMPLATE

__all__ = ["SECTIONS", "SECTION_ERROR", "render_html"]

SECTION_ERROR = "This section could not be built"

# (anchor, title, builder) in page order; a builder returning None leaves its section out
SECTIONS: list[tuple[str, str, Callable[[ReportData], list[Block] | None]]] = [
    ("summary", "Summary", summary_section),
    ("leaderboards", "Leaderboards per dataset", leaderboard_section),
    ("ranks", "Ranks across datasets", ranks_section),
    ("scores", "Fold scores and cost", scores_section),
    ("significance", "Pairwise significance per dataset", significance_section),
    ("shap", "Why models decide as they do (SHAP)", shap_section),
    ("lime", "LIME, and its agreement with SHAP", lime_section),
    ("resampling", "Resampling of imbalanced classes", resample_section),
    ("tuning", "Tuning", tuning_section),
    ("learning-curves", "MLP learning curves", learning_curves_section),
    ("training-size", "Learning curves over training-set size", learning_curves_by_size_section),
    ("validation-curves", "Validation curves", validation_curves_section),
    ("robustness", "Robustness to noisy inputs", robustness_section),
    ("stability", "Stability across seeds", stability_section),
    ("data-checks", "Data checks", data_checks_section),
    ("failures", "Failures", failures_section),
    ("method", "Method: tests, rope and failure policy", method_section),
    ("environment", "Environment", environment_section),
]


def render_html(data: ReportData) -> str:
    """The whole page as one string (deterministic for a given store)."""
    plots.reset_ids()
    sections = []
    for sid, title, build in SECTIONS:
        try:
            blocks = build(data)
        except Exception as exc:  # one broken section must not hide the others
            blocks = [para(f"{SECTION_ERROR}: {type(exc).__name__}: {exc}", "note")]
        if blocks is not None:
            sections.append({"id": sid, "title": title, "blocks": blocks})
    run = data.boards.run
    subtitle = f"Run {run.get('run_id', '?')} ({run.get('status', '?')}), started {fmt_date(run.get('started'))}."
    if data.suite.get("description"):
        subtitle += f" {data.suite['description']}"
    env = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    return env.from_string(TEMPLATE).render(
        title=f"Benchmark report: {data.boards.suite}", subtitle=subtitle, sections=sections, version=__version__
    )
