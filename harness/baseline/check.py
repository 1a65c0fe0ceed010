"""`harness check`'s work: read the baseline file and the run's store, compare, write check.md and check.json.

The one place of the package that composes the others (file → gate → render) and
touches the output folder; every argument is checked before anything is compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.baseline.file import baseline_from_run, baseline_from_store, dumps_sorted, load_baseline
from harness.baseline.gate import check_options, compare
from harness.baseline.render import check_markdown
from harness.baseline.result import CheckOptions, CheckResult
from harness.fileio import check_set_targets, write_set
from harness.store import Store

if TYPE_CHECKING:
    from harness.report.context import ReportData

CHECK_FILES = ("check.md", "check.json")


def check_run(
    out_dir: str | Path,
    baseline_file: str | Path,
    options: CheckOptions | None = None,
    force: bool = False,
    data: ReportData | None = None,
) -> CheckResult:
    """Compare the run in `out_dir` with a baseline file; write DIR/check.md and DIR/check.json (as a set).

    An existing check.md/check.json that is not the harness's own output is refused (exit 2)
    before anything is compared, unless `force`. `data` is the run's read model when the
    caller holds it already (`harness run --baseline`): the store is then not read again.
    """
    options = options or CheckOptions()
    check_options(options)
    baseline = load_baseline(baseline_file)
    out_dir = Path(out_dir)
    if options.write:
        check_set_targets(out_dir, CHECK_FILES, force)
    if data is not None:
        current = baseline_from_run(data.boards.run, data.boards.folds, out_dir / "results.db")
    else:
        with Store(out_dir / "results.db", create=False) as store:
            current = baseline_from_store(store)
    result = compare(baseline, current, options, baseline_file=str(baseline_file))
    if options.write:
        files = {"check.md": check_markdown(result), "check.json": dumps_sorted(result.to_dict()) + "\n"}
        result.md_path, result.json_path = write_set(out_dir, files, force)
    return result
