"""Reports: files a person or a CI job reads, rebuilt from the results store alone (never refitted).

`write_outputs(DIR)` writes, from `DIR/results.db`:

- `results.csv` (one row per fold) and `leaderboard.md` (ranked tables, failures, overall rank);
- `stats.json`: the statistical analysis (`harness.analysis`), strict JSON;
- `summary.md`: winners, rankings and significance verdicts for a pull-request comment;
- `report.html`: one self-contained page (inline CSS and SVG figures, no script, no URL).

The plain files are written first: a problem in the analysis or the page never costs the
CSV and the leaderboard.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.leaderboard import Leaderboards
from harness.report.markdown import failures_markdown, fmt, leaderboard_markdown, results_frame, summary_markdown
from harness.store import Store

OUTPUT_FILES = ("results.csv", "leaderboard.md", "stats.json", "summary.md", "report.html")

__all__ = [
    "OUTPUT_FILES",
    "failures_markdown",
    "fmt",
    "leaderboard_markdown",
    "results_frame",
    "stats_json",
    "summary_markdown",
    "write_outputs",
]


def stats_json(stats: dict) -> str:
    """stats.json text: strict JSON (NaN is already null in the analysis dict), stable key order."""
    return json.dumps(stats, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_outputs(out_dir: str | Path) -> Leaderboards:
    """(Re)write every output file in `out_dir` from its results.db; returns the leaderboards."""
    from harness.report.context import load_report_data
    from harness.report.html import render_html

    out_dir = Path(out_dir)
    with Store(out_dir / "results.db", create=False) as store:
        from harness.leaderboard import load_leaderboards

        boards = load_leaderboards(store)
        results_frame(boards).to_csv(out_dir / "results.csv", index=False)
        (out_dir / "leaderboard.md").write_text(leaderboard_markdown(boards), encoding="utf-8")
        data = load_report_data(store)
    (out_dir / "stats.json").write_text(stats_json(data.stats), encoding="utf-8")
    (out_dir / "summary.md").write_text(summary_markdown(data), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(data), encoding="utf-8")
    return boards
