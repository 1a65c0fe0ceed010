"""Adversarial validation: can a small classifier tell reference rows from new ones?

A LightGBM classifier learns old (0) against new (1) on the shared columns; its
cross-validated ROC AUC is ~0.5 when the two cannot be told apart and approaches 1 when
they differ. One number for all columns and their interactions, unlike per-column tests;
its gain per feature says where to look.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.drift.result import MAX_ROWS, Adversarial
from harness.errors import DatasetError


def _adversarial_frame(ref: pd.DataFrame, new: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    """Rows of both sides stacked; categoricals as pandas Categorical over the union of categories.

    LightGBM then splits on categories natively, and a category seen on one side only is
    one more level rather than an error.
    """
    both = pd.concat([ref, new], ignore_index=True)
    for col in both.columns:
        if col in categorical:
            cats = sorted(both[col].dropna().astype(str).unique())
            both[col] = pd.Categorical(both[col].astype(object).where(both[col].notna(), None), categories=cats)
        else:
            both[col] = both[col].astype(np.float64)
    return both


def _subsample(X: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(X) <= max_rows:
        return X
    idx = np.sort(rng.choice(len(X), size=max_rows, replace=False))
    return X.iloc[idx]


def _cv_auc(
    X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, n_estimators: int, threads: int
) -> tuple[list[float], np.ndarray]:
    """Per-fold ROC AUC of a small LightGBM classifier, and its total gain per feature."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    # LightGBM refuses column names with JSON characters (',', ':', '"', brackets), which a
    # CSV header may hold ('Unnamed: 3'); gain is positional, so the model sees f0, f1, ...
    X = X.set_axis([f"f{i}" for i in range(X.shape[1])], axis=1)
    aucs, gain = [], np.zeros(X.shape[1])
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        # Small and regularised on purpose: a flexible model fits noise columns too, which
        # blurs the importances that point at the shifted columns.
        model = lgb.LGBMClassifier(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=7,
            min_child_samples=min(50, max(5, len(train) // 20)),
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            n_jobs=threads,
            verbose=-1,
        )
        model.fit(X.iloc[train], y[train])
        aucs.append(float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1])))
        gain += model.booster_.feature_importance(importance_type="gain")
    return aucs, gain


def adversarial_validation(
    ref: pd.DataFrame,
    new: pd.DataFrame,
    categorical: Sequence[str],
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    folds: int = 5,
    n_estimators: int = 100,
    null: bool = True,
    threads: int = 1,
) -> Adversarial:
    """Old (0) vs new (1) classifier, StratifiedKFold-CV ROC AUC, and a permuted-label null.

    Each side is subsampled to `max_rows` first (seeded): AUC needs no more to be precise
    to about ±0.01, and the cost stays bounded on large files.
    """
    rng = np.random.default_rng(seed)
    a, b = _subsample(ref, max_rows, rng), _subsample(new, max_rows, rng)
    folds = min(folds, len(a), len(b))
    if folds < 2:
        raise DatasetError("check-data: adversarial validation needs at least 2 rows in each dataset")
    X = _adversarial_frame(a, b, categorical)
    y = np.r_[np.zeros(len(a), dtype=int), np.ones(len(b), dtype=int)]
    aucs, gain = _cv_auc(X, y, folds, seed, n_estimators, threads)
    null_aucs = _cv_auc(X, rng.permutation(y), folds, seed, n_estimators, threads)[0] if null else None
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share, kind="stable")
    return Adversarial(
        auc_mean=float(np.mean(aucs)),
        auc_std=float(np.std(aucs)),
        fold_aucs=aucs,
        null_auc_mean=None if null_aucs is None else float(np.mean(null_aucs)),
        null_auc_std=None if null_aucs is None else float(np.std(null_aucs)),
        n_old=len(a),
        n_new=len(b),
        subsampled=len(a) < len(ref) or len(b) < len(new),
        folds=folds,
        n_estimators=n_estimators,
        features=list(X.columns),
        importance={str(X.columns[i]): float(share[i]) for i in order},
    )
