"""Baselines and the regression gate (`harness baseline save`, `harness check`), one job per module.

- `file`: the baseline file: built from the store, written as JSON or Parquet, read back;
- `schema`: its schema, checked whole before use (one line naming the key path);
- `gate`: the comparison: pure statistics on two baseline dicts (corrected t-test, verdicts, champion);
- `result`: the plain objects the gate returns (options, comparisons, mismatches, the check result);
- `render`: check.md and the terminal table, formatting those objects only;
- `check`: `check_run`, composing the above for a run's output folder.
"""

from harness.baseline.check import CHECK_FILES, check_run
from harness.baseline.file import baseline_from_store, dumps_sorted, load_baseline, save_baseline, write_baseline
from harness.baseline.gate import DEFAULT_TOLERANCE, compare
from harness.baseline.render import check_markdown, check_table
from harness.baseline.result import (
    IMPROVED,
    NOT_COMPARED,
    REGRESSED,
    UNCHANGED,
    BaselineError,
    ChampionCheck,
    CheckOptions,
    CheckResult,
    Comparison,
    Mismatch,
)
from harness.baseline.schema import FORMAT, FORMAT_VERSION

__all__ = [
    "CHECK_FILES",
    "DEFAULT_TOLERANCE",
    "FORMAT",
    "FORMAT_VERSION",
    "IMPROVED",
    "NOT_COMPARED",
    "REGRESSED",
    "UNCHANGED",
    "BaselineError",
    "ChampionCheck",
    "CheckOptions",
    "CheckResult",
    "Comparison",
    "Mismatch",
    "baseline_from_store",
    "check_markdown",
    "check_run",
    "check_table",
    "compare",
    "dumps_sorted",
    "load_baseline",
    "save_baseline",
    "write_baseline",
]
