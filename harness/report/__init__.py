"""Reports: files a person or a CI job reads, rebuilt from the results store alone (never refitted).

`write_outputs(DIR)` writes, from `DIR/results.db`:

- `results.csv` (one row per fold) and `leaderboard.md` (ranked tables, failures, overall rank);
- `stats.json`: the statistical analysis (`harness.analysis`), strict JSON;
- `summary.md`: winners, rankings and significance verdicts for a pull-request comment;
- `report.html`: one self-contained page (inline CSS and SVG figures, no script, no URL).

They are written as a set (`harness.fileio.write_set`): every file is built in memory
first and only then are they all moved into place, each atomically. When building fails
(a damaged store, a bug in the analysis) the previous set is left whole, never half old
and half new, and the error says so. An existing file is written over only when it is
the harness's own output (`harness.fileio.is_own_output`) or `force` is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.report.format import dumps

# The report stack (markdown, html, the read model, the store) is imported where it is used, so
# that `harness.report.format`, a leaf, can be imported by the store without a cycle.
if TYPE_CHECKING:
    from harness.report.context import ReportData

# Written by every build.
OUTPUT_FILES = ("results.csv", "results.parquet", "leaderboard.md", "stats.json", "summary.md", "report.html")
# Written only when some fold stored what they hold (curves; noise or attack scores); a build
# without them removes the copy an earlier build of the folder left, so no file goes stale.
OPTIONAL_OUTPUT_FILES = ("learning_curves.csv", "validation_curves.csv", "robustness.csv")
ALL_OUTPUT_FILES = OUTPUT_FILES + OPTIONAL_OUTPUT_FILES

__all__ = [
    "ALL_OUTPUT_FILES",
    "OPTIONAL_OUTPUT_FILES",
    "OUTPUT_FILES",
    "build_outputs",
    "read_outputs_data",
    "stats_json",
    "write_outputs",
    "written_outputs",
]


def written_outputs(out_dir: str | Path) -> list[str]:
    """The output files a build left in `out_dir` (the optional ones only when written)."""
    return [name for name in ALL_OUTPUT_FILES if (Path(out_dir) / name).exists()]


def stats_json(stats: dict) -> str:
    """stats.json text: strict JSON (NaN is already null in the analysis dict), stable key order."""
    return dumps(stats, ensure_ascii=False) + "\n"


def build_outputs(out_dir: str | Path, data: ReportData | None = None) -> tuple[ReportData, dict[str, str | bytes]]:
    """Every output file's text, in memory, from `out_dir`/results.db (nothing is written).

    The store is read once (`load_report_data`: leaderboards, statistics, explanations),
    or not at all when the caller already holds that read model (`data`), and every file
    is formatted from it.
    """
    from harness.export.results import results_parquet
    from harness.report.curves import curve_files
    from harness.report.html import render_html
    from harness.report.markdown import leaderboard_markdown, results_frame, summary_markdown
    from harness.report.robustness import robustness_csv

    if data is None:
        data = read_outputs_data(out_dir)
    files = {
        "results.csv": results_frame(data.boards).to_csv(index=False),
        "results.parquet": results_parquet(results_frame(data.boards)),
        "leaderboard.md": leaderboard_markdown(data.boards),
        "stats.json": stats_json(data.stats),
        "summary.md": summary_markdown(data),
        "report.html": render_html(data),
    }
    files |= {name: text for name, text in curve_files(data).items() if text is not None}
    files |= robustness_csv(data)  # harness.report.robustness
    return data, files


def read_outputs_data(out_dir: str | Path) -> ReportData:
    """The read model every output is formatted from, read from `out_dir`/results.db."""
    from harness.report.context import load_report_data
    from harness.store import Store

    with Store(Path(out_dir) / "results.db", create=False) as store:
        return load_report_data(store)


def write_outputs(out_dir: str | Path, force: bool = False, data: ReportData | None = None) -> ReportData:
    """(Re)write every output file in `out_dir` from its results.db, as a set; returns the read model.

    `data` is that read model when the caller holds it already (the Python API's Results).

    Refuses (exit 2) before building when an output path is taken by a file that is not
    the harness's own output, unless `force`. When building fails the previous outputs
    are unchanged: a HarnessError keeps its exit code and gains that note; any other
    exception (a bug) becomes a `BuildError` (exit 3) saying so.
    """
    from harness.errors import HarnessError
    from harness.fileio import BuildError, check_set_targets, read_manifest, unchanged_note, write_set

    out_dir = check_set_targets(out_dir, ALL_OUTPUT_FILES, force)
    try:
        data, files = build_outputs(out_dir, data)
    except HarnessError as exc:
        note = unchanged_note(out_dir, OUTPUT_FILES)
        if not note:
            raise
        err = HarnessError(f"{exc}{note}")
        err.exit_code = exc.exit_code
        raise err from exc
    except Exception as exc:
        if os.environ.get("HARNESS_DEBUG"):  # the CLI's switch for the traceback of a bug
            raise
        raise BuildError(
            f"building the reports failed ({type(exc).__name__}: {' '.join(str(exc).splitlines())}; "
            "a bug, please report it)"
            + (unchanged_note(out_dir, OUTPUT_FILES) or f"; nothing was written in {out_dir}")
        ) from exc
    listed = read_manifest(out_dir) or set()
    write_set(out_dir, files, force)
    for name in OPTIONAL_OUTPUT_FILES:
        if name not in files and name in listed:  # ours, from an earlier build that had it
            (out_dir / name).unlink(missing_ok=True)
    return data
