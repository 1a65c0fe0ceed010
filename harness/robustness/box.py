"""The L∞ box an attack may move a test row in, in the raw feature space of the fold.

Why a box per element rather than one epsilon: a budget of `level` means "each numeric
column may move by level × its TRAINING standard deviation", so columns on different
scales get comparable budgets; the moved value must also stay inside the training range
(a model is not asked about values it never saw), yet a clean test value already outside
that range is allowed to stay where it is, so the box always contains the clean row.
Categorical columns, missing values and columns with no training spread never move.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Box:
    """Per-element bounds `lo <= x <= hi` around the clean numeric values `x0` of some test rows."""

    rows: pd.DataFrame  # the attacked rows as the model sees them (every column)
    columns: list[str]  # the numeric columns that may move
    x0: np.ndarray  # n × p clean values, missing values filled with 0 (they never move)
    missing: np.ndarray  # n × p: where the clean value is missing
    lo: np.ndarray
    hi: np.ndarray
    eps: np.ndarray  # p: level × training std (0 where a column cannot move)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, rows: pd.DataFrame, train: pd.DataFrame, categorical: Sequence[str], level: float) -> Box:
        """The box of budget `level`, calibrated on `train` only."""
        cats = set(categorical)
        columns = [c for c in rows.columns if c not in cats]
        raw = rows[columns].to_numpy(dtype=np.float64, na_value=np.nan).reshape(len(rows), len(columns))
        spread = train[columns].to_numpy(dtype=np.float64, na_value=np.nan).reshape(len(train), len(columns))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing training columns: no spread, no move
            enough = (~np.isnan(spread)).sum(axis=0) > 1
            std = np.where(enough, np.nanstd(spread, axis=0, ddof=1), 0.0)
            tmin, tmax = np.nanmin(spread, axis=0, initial=np.inf), np.nanmax(spread, axis=0, initial=-np.inf)
        eps = level * np.where(np.isfinite(std), std, 0.0)
        missing = np.isnan(raw)
        x0 = np.where(missing, 0.0, raw)
        lo = np.where(missing, x0, np.maximum(x0 - eps, np.minimum(x0, tmin)))
        hi = np.where(missing, x0, np.minimum(x0 + eps, np.maximum(x0, tmax)))
        return cls(rows, columns, x0, missing, lo, hi, eps)

    @property
    def movable(self) -> np.ndarray:
        """n × p: elements an attack can change at all."""
        return self.hi > self.lo

    def clip(self, values: np.ndarray) -> np.ndarray:
        """`values` projected onto the box."""
        return np.clip(values, self.lo, self.hi)

    def frame(self, values: np.ndarray) -> pd.DataFrame:
        """The attacked rows with their numeric columns set to `values` (missing values stay missing).

        `values` may stack several candidates per row (k·n rows: candidate-major), so a whole batch
        of queries costs one model call.
        """
        k = len(values) // max(1, len(self.rows))
        fixed, index = self._fixed(k)
        filled = np.where(np.tile(self.missing, (k, 1)) if k > 1 else self.missing, np.nan, values)
        moved = {col: filled[:, j] for j, col in enumerate(self.columns)}
        return pd.DataFrame({col: moved[col] if col in moved else fixed[col] for col in self.rows.columns}, index=index)

    def _fixed(self, k: int) -> tuple[dict[str, pd.Series], pd.Index]:
        """The columns that never move, repeated k times (cached: every query of a batch size reuses them)."""
        if k not in self._cache:
            base = self.rows if k == 1 else self.rows.take(np.tile(np.arange(len(self.rows)), k))
            moving = set(self.columns)
            fixed = {col: base[col].array for col in base.columns if col not in moving}  # keeps every dtype
            self._cache[k] = (fixed, base.index)
        return self._cache[k]
