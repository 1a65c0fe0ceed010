"""The plain objects of a check: options in, comparisons, mismatches and champion checks out.

The gate (`gate.py`) fills them and the renderers (`render.py`, the CLI) only read them,
so neither imports the other. `to_dict` is the content of check.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED = "regressed", "improved", "unchanged", "not compared"
VERDICTS = (REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED)  # the order every view lists them in


class BaselineError(HarnessError):
    """A baseline file or check argument is unusable (missing, not a baseline, unknown metric)."""


def finite_or_none(value: Any) -> float | None:
    """A JSON-safe float: NaN, inf, missing and non-numbers become None (baseline files and results hold no NaN)."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


@dataclass
class CheckOptions:
    """`metric`: None = each task's primary metric; `tolerance`: None = the per-metric default (see `gate`);
    `alpha`: None = the run's `analysis.alpha`, the level its summary uses (0.05 unless the suite sets it)."""

    metric: str | None = None
    tolerance: float | None = None
    alpha: float | None = None
    champion: str | None = None
    write: bool = True  # write DIR/check.md and DIR/check.json


@dataclass
class Mismatch:
    """Something that differs between baseline and run besides the scores; severity info | warning | error."""

    kind: str
    severity: str
    detail: str
    dataset: str | None = None
    estimator: str | None = None


@dataclass
class Comparison:
    """One (dataset, estimator): the inputs (per-fold values) and outputs of its test, and the verdict."""

    dataset: str
    estimator: str
    metric: str
    greater_is_better: bool
    test: str
    verdict: str
    reason: str
    tolerance: float
    alpha: float
    baseline_mean: float | None = None
    current_mean: float | None = None
    mean_diff: float | None = None  # oriented: positive = current better
    std: float | None = None
    t: float | None = None
    df: float | None = None
    p_two_sided: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    n_pairs: int = 0
    newly_failed: int = 0
    n_train: float | None = None
    n_test: float | None = None
    folds: list[dict[str, Any]] = field(default_factory=list)
    baseline_values: list[float] = field(default_factory=list)
    current_values: list[float] = field(default_factory=list)


@dataclass
class ChampionCheck:
    """Is the champion still best or tied-best (not significantly worse than the best) on a dataset?"""

    dataset: str
    champion: str
    metric: str
    status: str  # best | tied-best | worse | failed | not applicable
    best: str | None = None
    champion_mean: float | None = None
    best_mean: float | None = None
    mean_diff: float | None = None  # oriented champion − best (≤ 0)
    t: float | None = None
    df: float | None = None
    p_worse: float | None = None
    n_pairs: int = 0
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("worse", "failed")


@dataclass
class CheckResult:
    """Everything `check` found; `exit_code` is 1 when something regressed or the champion lost."""

    suite: str
    baseline_file: str
    comparisons: list[Comparison]
    mismatches: list[Mismatch]
    champion: list[ChampionCheck]
    options: CheckOptions  # as applied: the suite's champion and alpha filled in
    tolerance_rule: str
    md_path: Path | None = None
    json_path: Path | None = None

    def by_verdict(self, verdict: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == verdict]

    @property
    def regressed(self) -> bool:
        return bool(self.by_verdict(REGRESSED)) or any(c.failed for c in self.champion)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    @property
    def verdict_line(self) -> str:
        """The one-line summary (check.md's headline, check.json's "summary", the CLI's last line)."""
        n = {v: len(self.by_verdict(v)) for v in VERDICTS}
        lost = [c.dataset for c in self.champion if c.failed]
        regressed = n[REGRESSED] > 0
        head = "REGRESSED" if regressed else ("FAILED: champion lost" if self.regressed else "OK: no regressions")
        parts = [f"{n[REGRESSED]} regressed", f"{n[IMPROVED]} improved", f"{n[UNCHANGED]} unchanged"]
        if n[NOT_COMPARED]:
            parts.append(f"{n[NOT_COMPARED]} not compared")
        parts.append(f"{len(self.mismatches)} mismatches")
        tail = f"; champion '{self.options.champion}' lost on {', '.join(lost)}" if lost else ""
        return f"{head} ({', '.join(parts)}){tail}"

    def to_dict(self) -> dict[str, Any]:
        """check.json's content: plain JSON types (the writer makes NaN strict)."""
        return {
            "suite": self.suite,
            "baseline": self.baseline_file,
            "verdict": "regressed" if self.regressed else "ok",
            "summary": self.verdict_line,
            "exit_code": self.exit_code,
            "options": asdict(self.options),
            "tolerance_rule": self.tolerance_rule,
            "comparisons": [asdict(c) for c in self.comparisons],
            "mismatches": [asdict(m) for m in self.mismatches],
            "champion": [asdict(c) | {"failed": c.failed} for c in self.champion],
        }
