"""Cross-validation specs become scikit-learn splitters and fold indices.

Splits depend only on (rows in file order, target, groups, cv spec, seed), never on
the estimator, so every estimator on a dataset sees exactly the same folds and
comparisons are paired. Anyone can reproduce them with the splitter `make_splitter`
returns: e.g. `StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn import model_selection as ms

from harness.datasets import Dataset
from harness.metrics import CLASSIFICATION
from harness.spec import CVSpec


@dataclass(frozen=True)
class Split:
    """One fold: row positions (into the dataset, file order) for each part."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    valid: np.ndarray | None = None


def effective_scheme(cv: CVSpec, task: str) -> str:
    """Stratified schemes fall back to their plain form for regression targets."""
    if cv.scheme == "stratified_kfold" and task != CLASSIFICATION:
        return "kfold"
    return cv.scheme


def make_splitter(cv: CVSpec, task: str, seed: int, repeat: int = 0):
    """The scikit-learn splitter for a cv spec (for group_kfold: the one for `repeat`)."""
    scheme = effective_scheme(cv, task)
    stratify = task == CLASSIFICATION
    if scheme == "holdout":
        cls = ms.StratifiedShuffleSplit if stratify else ms.ShuffleSplit
        return cls(n_splits=cv.repeats, test_size=cv.test_size, random_state=seed)
    if scheme == "group_kfold":
        # No Repeated* variant exists for groups: each repeat reshuffles with seed + repeat.
        return ms.GroupKFold(n_splits=cv.folds, shuffle=True, random_state=seed + repeat)
    if cv.repeats > 1:
        cls = ms.RepeatedStratifiedKFold if scheme == "stratified_kfold" else ms.RepeatedKFold
        return cls(n_splits=cv.folds, n_repeats=cv.repeats, random_state=seed)
    cls = ms.StratifiedKFold if scheme == "stratified_kfold" else ms.KFold
    return cls(n_splits=cv.folds, shuffle=True, random_state=seed)


def make_splits(dataset: Dataset, cv: CVSpec, seed: int) -> list[Split]:
    """All folds of all repeats, in (repeat, fold) order."""
    return list(_iter_splits(dataset, cv, seed))


def _iter_splits(dataset: Dataset, cv: CVSpec, seed: int) -> Iterator[Split]:
    X, y, task = dataset.X, dataset.y, dataset.task
    scheme = effective_scheme(cv, task)
    if scheme == "group_kfold":
        for r in range(cv.repeats):
            splitter = make_splitter(cv, task, seed, r)
            for k, (train, test) in enumerate(splitter.split(X, y, dataset.groups)):
                yield Split(r, k, train, test)
        return
    splitter = make_splitter(cv, task, seed)
    per_repeat = 1 if scheme == "holdout" else cv.folds
    for i, (train, test) in enumerate(splitter.split(X, y)):
        r, k = divmod(i, per_repeat)
        valid = None
        if scheme == "holdout" and cv.valid_size > 0:
            train, valid = _carve_valid(train, y, cv, task, seed + r)
        yield Split(r, k, train, test, valid)


def _carve_valid(train: np.ndarray, y: np.ndarray, cv: CVSpec, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Holdout's validation part: valid_size of all rows, taken from the training part."""
    share = cv.valid_size / (1 - cv.test_size)
    stratify = y[train] if task == CLASSIFICATION else None
    fit, valid = ms.train_test_split(train, test_size=share, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(valid)


def cv_definition(cv: CVSpec, task: str, seed: int) -> dict:
    """What identifies the splits (enters result keys and baselines)."""
    scheme = effective_scheme(cv, task)
    out = {"scheme": scheme, "repeats": cv.repeats, "seed": seed}
    if scheme == "holdout":
        out |= {"test_size": cv.test_size, "valid_size": cv.valid_size}
    else:
        out["folds"] = cv.folds
    if scheme == "group_kfold":
        out["group"] = cv.group
    return out


def inner_splits(dataset: Dataset, rows: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds over `rows` only (for tuning), as absolute row positions.

    Stratified for classification, grouped when the dataset has groups, shuffled with
    `seed`; the outer test rows can never appear because only `rows` are split.
    """
    y = dataset.y[rows]
    if dataset.groups is not None:
        splitter = ms.GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(rows, y, dataset.groups[rows])
    elif dataset.task == CLASSIFICATION:
        parts = ms.StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, y)
    else:
        parts = ms.KFold(folds, shuffle=True, random_state=seed).split(rows)
    return [(rows[train], rows[test]) for train, test in parts]


def validation_rows(dataset: Dataset, rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` into (fit, validation) for early stopping; stratified when every class allows it."""
    y = dataset.y[rows]
    stratify = None
    if dataset.task == CLASSIFICATION:
        counts = np.unique(y, return_counts=True)[1]
        n_val = max(1, round(fraction * len(rows)))
        if counts.min() >= 2 and n_val >= len(counts) and len(rows) - n_val >= len(counts):
            stratify = y
    fit, val = ms.train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(val)
