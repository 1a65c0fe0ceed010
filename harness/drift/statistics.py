"""Two-sample tests per column and for the label: how far each distribution moved, and how surely.

Numeric columns: Kolmogorov–Smirnov. Categorical columns: population stability index
and chi-square, with total variation as the distance so both kinds rank on one 0..1
scale. Per-feature p-values are Holm-adjusted together (many columns, many tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.drift.result import MISSING_BIN, PSI_EPS, FeatureDrift, LabelShift
from harness.drift.sides import Side
from harness.metrics import CLASSIFICATION
from harness.stats import holm


def ks_test(old: np.ndarray | pd.Series, new: np.ndarray | pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value on the non-missing values.

    Missing values are compared by the missing-rate columns instead; a side with no values
    at all gives (nan, nan): nothing to test. inf/-inf are kept, as the largest/smallest
    values (their share is also compared on its own, see `schema_diff`).
    """
    from scipy.stats import ks_2samp

    a = pd.Series(old, dtype=float).dropna().to_numpy()
    b = pd.Series(new, dtype=float).dropna().to_numpy()
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def psi(old_counts: Sequence[float], new_counts: Sequence[float], eps: float = PSI_EPS) -> float:
    """Population stability index Σ (q − p)·ln(q / p) over aligned bins (p old, q new).

    Proportions below `eps` are raised to `eps`, so a category present on one side only
    adds a large but finite term. Rules of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 major.
    """
    p = np.asarray(old_counts, dtype=float)
    q = np.asarray(new_counts, dtype=float)
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def category_counts(old: pd.Series, new: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bins (sorted union of categories, plus a missing bin if either side has missing) and counts."""
    a = old.astype(object).where(old.notna(), MISSING_BIN)
    b = new.astype(object).where(new.notna(), MISSING_BIN)
    bins = sorted(set(a) | set(b), key=str)
    ca = a.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    cb = b.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    return [str(x) for x in bins], ca, cb


def categorical_test(old: pd.Series, new: pd.Series) -> tuple[float, float, float]:
    """(PSI, total variation distance, chi-square p) of one categorical column.

    Total variation (½ Σ |p − q|, the largest difference in probability of any set of
    categories) is the categorical counterpart of the KS statistic: both lie in [0, 1], so
    numeric and categorical features can be ranked on one scale.
    """
    from scipy.stats import chi2_contingency

    _, ca, cb = category_counts(old, new)
    if ca.sum() == 0 or cb.sum() == 0:
        return math.nan, math.nan, math.nan
    tvd = 0.5 * float(np.abs(ca / ca.sum() - cb / cb.sum()).sum())
    if len(ca) < 2:
        return 0.0, tvd, 1.0  # one category on both sides: nothing can differ
    p_value = float(chi2_contingency(np.vstack([ca, cb])).pvalue)
    return psi(ca, cb), tvd, p_value


def feature_drift(ref: pd.DataFrame, new: pd.DataFrame, categorical: Sequence[str]) -> list[FeatureDrift]:
    """Per-column tests on shared, same-typed columns, Holm-adjusted together, largest distance first."""
    rows = []
    for col in ref.columns:
        if col in categorical:
            value, tvd, p = categorical_test(ref[col], new[col])
            rows.append(FeatureDrift(col, "categorical", "psi+chi2", value, tvd, p))
        else:
            d, p = ks_test(ref[col], new[col])
            rows.append(FeatureDrift(col, "numeric", "ks", d, d, p))
    for row, adj in zip(rows, holm([r.p_value for r in rows]), strict=True):
        row.p_holm = float(adj)
    return ranked(rows)


def ranked(rows: list[FeatureDrift]) -> list[FeatureDrift]:
    """Largest distance first; then smaller adjusted p; then larger adversarial gain breaks ties."""

    def key(r: FeatureDrift) -> tuple[float, float, float]:
        d = r.distance if np.isfinite(r.distance) else -1.0
        p = r.p_holm if np.isfinite(r.p_holm) else 2.0
        return (-d, p, -r.importance)

    return sorted(rows, key=key)


def label_shift(ref: Side, new: Side) -> LabelShift | None:
    """The target's own shift: class shares (PSI, total variation, chi-square) or KS for regression."""
    if ref.target is None or new.target is None:
        return None
    if CLASSIFICATION in (ref.task, new.task):
        old, now = ref.target.astype(str), new.target.astype(str)
        value, tvd, p = categorical_test(old, now)
        return LabelShift(
            CLASSIFICATION,
            "psi+chi2",
            value,
            tvd,
            p,
            old={str(k): float(v) for k, v in old.value_counts(normalize=True).sort_index().items()},
            new={str(k): float(v) for k, v in now.value_counts(normalize=True).sort_index().items()},
        )
    d, p = ks_test(ref.target, new.target)
    return LabelShift("regression", "ks", d, d, p)
