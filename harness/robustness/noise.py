"""The `noise` attack: random perturbed copies of a test fold (how a fitted model degrades under noise).

A leaderboard ranks models on clean held-out rows; production rows are noisier. Scoring
each fold's model again on perturbed copies of its test rows, at increasing `level`,
shows which models degrade gracefully. The perturbation is calibrated on the fold's
TRAINING part only (spread, known categories), so no test information leaks into it and
every estimator of a fold sees the very same perturbed rows (same seed).

Numpy and pandas only: the engine calls it per fold, for every level, on all the fold's test rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Levels a robustness curve is evaluated at by default; 0.0 is the clean baseline.
noise_levels_default: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)


def perturb(
    X_test: pd.DataFrame,
    X_train: pd.DataFrame,
    level: float,
    seed: int,
    categorical: Sequence[str],
) -> pd.DataFrame:
    """A perturbed copy of `X_test`; the inputs are never modified.

    - numeric columns: + Normal(0, level × std of the column on `X_train`); a column with
      no spread in training (or no training values) gets no noise, and NaN stays NaN;
    - categorical columns: a fraction `level` (at most 1) of the non-missing values,
      chosen at random, is replaced by a different category seen in training (uniformly);
      missing values stay missing.

    Deterministic for a given seed: columns are processed in order from one generator.
    """
    if not np.isfinite(level) or level < 0:
        raise ValueError(f"perturb: level must be a finite number >= 0, got {level!r}")
    out = X_test.copy()
    if level == 0 or len(out) == 0:
        return out
    cats = set(categorical)
    rng = np.random.default_rng(seed)
    for col in out.columns:
        if col in cats:
            out[col] = _swap_categories(out[col], X_train[col], min(level, 1.0), rng)
        else:
            out[col] = _add_noise(out[col], X_train[col], level, rng)
    return out


def _add_noise(test: pd.Series, train: pd.Series, level: float, rng: np.random.Generator) -> pd.Series:
    values = test.to_numpy(dtype=np.float64, na_value=np.nan)
    noise = rng.normal(0.0, 1.0, size=len(values))  # drawn even if unused: later columns keep their draws
    std = (
        float(np.nanstd(train.to_numpy(dtype=np.float64, na_value=np.nan), ddof=1)) if train.notna().sum() > 1 else 0.0
    )
    if not np.isfinite(std) or std == 0:
        return pd.Series(values, index=test.index, name=test.name)
    return pd.Series(values + noise * (level * std), index=test.index, name=test.name)


def _swap_categories(test: pd.Series, train: pd.Series, fraction: float, rng: np.random.Generator) -> pd.Series:
    known = sorted(pd.unique(train.dropna().astype(object)), key=str)
    values = test.to_numpy(dtype=object, na_value=np.nan).copy()
    eligible = np.flatnonzero(test.notna().to_numpy())
    k = round(fraction * len(eligible))
    chosen = rng.choice(eligible, size=k, replace=False) if k else np.array([], dtype=int)
    picks = rng.random(len(chosen))  # one uniform per swap: the choice among the other categories
    if known and len(chosen):
        # position of the current value among the known ones (-1: unseen in training), then a
        # uniform pick among the known categories other than it, without a Python loop
        where = {c: i for i, c in enumerate(known)}
        pos = np.array([where.get(v, -1) for v in values[chosen]])
        n_other = np.where(pos >= 0, len(known) - 1, len(known))
        j = np.floor(picks * n_other).astype(int)
        j += (pos >= 0) & (j >= pos)
        ok = n_other > 0  # a single known category cannot be swapped for another
        values[chosen[ok]] = np.asarray(known, dtype=object)[j[ok]]
    if isinstance(test.dtype, pd.CategoricalDtype):
        categories = list(test.cat.categories) + [c for c in known if c not in set(test.cat.categories)]
        return pd.Series(
            pd.Categorical(values, categories=categories, ordered=test.cat.ordered), index=test.index, name=test.name
        )
    return pd.Series(values, index=test.index, name=test.name, dtype=test.dtype)
