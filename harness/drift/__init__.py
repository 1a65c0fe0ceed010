"""Distribution shift between a reference dataset and a new one (`harness check-data`).

A benchmark result only transfers to new data if the new data looks like the old. This
package says, before anyone trusts a leaderboard on a fresh batch, whether it does. One
module per job, computation apart from rendering:

- `sides`: both datasets loaded with `harness.datasets`, exactly as a suite's dataset is,
  so types, categorical detection and error messages are those of a run;
- `schema`: columns added, missing or retyped (numeric vs categorical), categories that
  appeared or vanished, missing-value rates on both sides, and the share of infinite values
  (inf/-inf) per numeric column: infinities that appear, vanish, or change share by at
  least INF_SHARE_CHANGE are a shift (a run refuses them unless the dataset says `inf: missing`);
- `adversarial`: a small LightGBM classifier learns to tell old rows (0) from new rows (1)
  on the shared columns; its cross-validated ROC AUC is ~0.5 when the two cannot be told
  apart and approaches 1 when they differ;
- `statistics`: per-feature drift (Kolmogorov–Smirnov for numeric columns, population
  stability index and chi-square for categorical ones, p-values Holm-adjusted over all
  features) and label shift (the target compared on its own, never a feature);
- `check`: all of the above and the verdict; `result`: the records it returns;
- `render`: check-data.md, check-data.json and the terminal table, from a finished report.
"""

from __future__ import annotations

from harness.drift.check import check_data, compare
from harness.drift.render import rich_table, to_markdown, write_report
from harness.drift.result import DriftReport
from harness.drift.sides import Side, load_side, side_from_dataset

__all__ = [
    "DriftReport",
    "Side",
    "check_data",
    "compare",
    "load_side",
    "rich_table",
    "side_from_dataset",
    "to_markdown",
    "write_report",
]
