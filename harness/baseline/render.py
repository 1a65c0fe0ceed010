"""A check's result as text: check.md for a pull-request comment, a rich table for the terminal.

Formatting only: every number, verdict and reason comes from the `CheckResult` the gate
returned; numbers, p-values and Markdown tables go through `harness.report.format`, so
check.md writes a value exactly as the other reports do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.baseline.result import IMPROVED, NOT_COMPARED, REGRESSED, UNCHANGED, VERDICTS, CheckResult, Comparison
from harness.report.format import DASH, fmt_num, fmt_p, md_table

if TYPE_CHECKING:
    from rich.table import Table

HEADER = ["dataset", "estimator", "metric", "baseline", "run", "diff (+ = better)", "p (one-sided)", "test", "verdict"]
_SECTIONS = {REGRESSED: "Regressions", IMPROVED: "Improvements", UNCHANGED: "Unchanged", NOT_COMPARED: "Not compared"}
_COLOUR = {REGRESSED: "bold red", IMPROVED: "green", UNCHANGED: "", NOT_COMPARED: "yellow"}


def _row(c: Comparison) -> list[str]:
    """One comparison's cells: HEADER's columns, then the reason ("why")."""
    return [
        c.dataset,
        c.estimator,
        c.metric + ("" if c.greater_is_better else " ↓"),
        fmt_num(c.baseline_mean),
        fmt_num(c.current_mean),
        DASH if c.mean_diff is None else f"{c.mean_diff:+.4f}",
        fmt_p(c.p_worse if (c.mean_diff or 0) < 0 else c.p_better),
        c.test,
        c.verdict,
        c.reason,
    ]


def check_markdown(result: CheckResult) -> str:
    """For a pull-request comment: verdict, regressions first, then improvements, unchanged, mismatches."""
    o = result.options
    lines = [
        f"## harness check: {result.suite}",
        "",
        f"**{result.verdict_line}**",
        "",
        f"Baseline `{result.baseline_file}`; alpha {o.alpha:g} (one-sided corrected resampled t-test on paired folds); "
        f"tolerance: {result.tolerance_rule}. Differences are run − baseline, oriented so that + is better "
        "(↓ marks lower-is-better metrics).",
    ]
    for verdict in VERDICTS:
        rows = result.by_verdict(verdict)
        if rows:
            lines += ["", f"### {_SECTIONS[verdict]} ({len(rows)})", ""]
            lines += md_table([*HEADER, "why"], [_row(c) for c in rows])
    if result.champion:
        lines += ["", f"### Champion: {o.champion}", ""]
        lines += md_table(
            ["dataset", "status", "best", "detail"],
            [[c.dataset, c.status, c.best or DASH, c.detail] for c in result.champion],
        )
    lines += ["", f"### Mismatches ({len(result.mismatches)})", ""]
    if not result.mismatches:
        lines.append("None: same data, splits, configurations and package versions.")
    for m in result.mismatches:
        where = "/".join(x for x in (m.dataset, m.estimator) if x)
        lines.append(f"- **{m.kind}** ({m.severity}){' ' + where if where else ''}: {m.detail}")
    return "\n".join(lines) + "\n"


def check_table(result: CheckResult) -> Table:
    """The terminal view: one row per comparison, regressions first, coloured by verdict."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"check: {result.suite} vs {escape(result.baseline_file)}")
    for col in HEADER:
        table.add_column(col, justify="right" if col in ("baseline", "run", "diff (+ = better)") else "left")
    for verdict in VERDICTS:
        for c in result.by_verdict(verdict):
            cells = [escape(x) for x in _row(c)[:-1]]
            style = _COLOUR[verdict]
            cells[-1] = f"[{style}]{cells[-1]}[/]" if style else cells[-1]
            table.add_row(*cells)
    return table
