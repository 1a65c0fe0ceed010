"""What check-data finds, as plain records, and the thresholds that turn them into a verdict.

The leaf of `harness.drift`: the computation fills these records, the renderer and the
store read them, and neither needs the other. `DriftReport.to_json` is the record's own
plain form (check-data.json, and the payload a suite run stores), not a rendering.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.report.format import jsonable

# Adversarial ROC AUC at or above this means "the model can tell the datasets apart": a
# shift. 0.5 is chance; 0.6 is a common, deliberately lenient cut-off that small samples do
# not reach by luck (the permuted-label null reported beside it shows the noise level).
AUC_THRESHOLD = 0.6
# The target counts as shifted when its distribution distance (KS D, or total variation
# for labels) is at least this large AND significant at ALPHA.
LABEL_DISTANCE_THRESHOLD = 0.1
ALPHA = 0.05
# Adversarial validation subsamples each side to at most this many rows (seeded).
MAX_ROWS = 20_000
# PSI takes the log of a ratio of proportions: an empty bin gets this proportion instead of 0.
PSI_EPS = 1e-4
MISSING_BIN = "<missing>"
# A column's share of infinite values (inf/-inf) moving by at least this much is a shift; so is
# any infinite value on one side only.
INF_SHARE_CHANGE = 0.01


@dataclass
class ColumnMissing:
    """One column's share of some kind of value (missing, or infinite) on each side; None where it is absent."""

    column: str
    old: float | None
    new: float | None
    change: float | None


@dataclass
class SchemaDiff:
    """What changed in the columns themselves, before any statistics."""

    added: list[str]  # in NEW only
    missing: list[str]  # in the reference only
    retyped: list[dict[str, str]]  # {"column", "old", "new"}: numeric <-> categorical
    new_categories: dict[str, list[str]]
    vanished_categories: dict[str, list[str]]
    missing_rates: list[ColumnMissing]
    # share of inf/-inf per numeric column, only columns with an infinite value on some side
    infinite_rates: list[ColumnMissing] = field(default_factory=list)

    @property
    def columns_changed(self) -> bool:
        return bool(self.added or self.missing or self.retyped)

    @property
    def infinite_changed(self) -> list[ColumnMissing]:
        """Shared columns whose infinite values appeared, vanished, or changed share by INF_SHARE_CHANGE."""
        return [
            r
            for r in self.infinite_rates
            if r.old is not None
            and r.new is not None
            and ((r.old == 0) != (r.new == 0) or abs(r.new - r.old) >= INF_SHARE_CHANGE)
        ]


@dataclass
class FeatureDrift:
    """One shared column's shift; `distance` (KS D or total variation) ranks all columns on one scale."""

    column: str
    kind: str  # numeric | categorical
    test: str  # ks | psi+chi2
    statistic: float  # KS D (numeric) or PSI (categorical)
    distance: float
    p_value: float
    p_holm: float = math.nan
    importance: float = 0.0  # share of the adversarial model's gain

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p_holm) and self.p_holm < ALPHA)


@dataclass
class Adversarial:
    """Cross-validated old-vs-new classifier: how well can the two datasets be told apart?"""

    auc_mean: float
    auc_std: float
    fold_aucs: list[float]
    null_auc_mean: float | None  # same CV with permuted old/new labels: the chance level here
    null_auc_std: float | None
    n_old: int  # rows used (after subsampling)
    n_new: int
    subsampled: bool
    folds: int
    n_estimators: int
    features: list[str]
    importance: dict[str, float]  # column -> share of total gain, largest first


@dataclass
class LabelShift:
    """The target's own shift; class shares on both sides for classification."""

    kind: str  # classification | regression
    test: str
    statistic: float  # KS D or PSI
    distance: float  # KS D or total variation
    p_value: float
    old: dict[str, float] | None = None  # class -> share (classification)
    new: dict[str, float] | None = None

    @property
    def shifted(self) -> bool:
        return bool(self.p_value < ALPHA and self.distance >= LABEL_DISTANCE_THRESHOLD)


@dataclass
class DriftReport:
    """Everything check-data found; `shift` is the verdict and `reasons` says why."""

    reference: str
    new: str
    target: str | None
    n_reference: int
    n_new: int
    seed: int
    schema: SchemaDiff
    adversarial: Adversarial | None
    features: list[FeatureDrift]  # most shifted first
    label: LabelShift | None
    shift: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)
    threshold: float = AUC_THRESHOLD

    @property
    def exit_code(self) -> int:
        return 1 if self.shift else 0

    @property
    def verdict(self) -> str:
        return ("SHIFT: " if self.shift else "no shift: ") + "; ".join(self.reasons)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, with the derived flags and the thresholds; NaN becomes null (JSON has no NaN)."""
        out = asdict(self)
        out["verdict"] = self.verdict
        out["exit_code"] = self.exit_code
        for row, feat in zip(out["features"], self.features, strict=True):
            row["significant"] = feat.significant
        if self.label is not None:
            out["label"]["shifted"] = self.label.shifted
        out["thresholds"] = {
            "adversarial_auc": self.threshold,
            "label_distance": LABEL_DISTANCE_THRESHOLD,
            "alpha": ALPHA,
            "psi_eps": PSI_EPS,
            "max_rows": MAX_ROWS,
        }
        return jsonable(out)


def listing(values: list[str], n: int = 20) -> str:
    """The first `n` names and how many there are in all: a verdict's reasons and check-data.md shorten alike."""
    return ", ".join(values[:n]) + (f", ... ({len(values)} in all)" if len(values) > n else "")
