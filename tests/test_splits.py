"""Splits come from scikit-learn's splitters, identical for every estimator, reproducible by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import model_selection as ms

from harness.datasets import Dataset
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.spec import CVSpec
from harness.splits import make_splits


def _ds(task: str, n: int = 60, groups: bool = False) -> Dataset:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n)})
    y = rng.integers(0, 3, n) if task == CLASSIFICATION else rng.normal(size=n)
    return Dataset("d", X, y, task, [], "test", groups=np.repeat(np.arange(n // 4), 4) if groups else None)


def _pairs(splits):
    return [(s.train.tolist(), s.test.tolist()) for s in splits]


@pytest.mark.parametrize(
    ("cv", "task", "splitter"),
    [
        (
            CVSpec(scheme="stratified_kfold", folds=4),
            CLASSIFICATION,
            ms.StratifiedKFold(4, shuffle=True, random_state=3),
        ),
        (CVSpec(scheme="stratified_kfold", folds=4), REGRESSION, ms.KFold(4, shuffle=True, random_state=3)),
        (CVSpec(scheme="kfold", folds=5), CLASSIFICATION, ms.KFold(5, shuffle=True, random_state=3)),
        (
            CVSpec(scheme="stratified_kfold", folds=3, repeats=2),
            CLASSIFICATION,
            ms.RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=3),
        ),
        (
            CVSpec(scheme="kfold", folds=3, repeats=2),
            REGRESSION,
            ms.RepeatedKFold(n_splits=3, n_repeats=2, random_state=3),
        ),
        (
            CVSpec(scheme="holdout", test_size=0.25, repeats=2),
            CLASSIFICATION,
            ms.StratifiedShuffleSplit(2, test_size=0.25, random_state=3),
        ),
    ],
)
def test_splits_equal_the_scikit_learn_splitter(cv, task, splitter):
    ds = _ds(task)
    splits = make_splits(ds, cv, seed=3)
    assert _pairs(splits) == [(a.tolist(), b.tolist()) for a, b in splitter.split(ds.X, ds.y)]
    per_repeat = 1 if cv.scheme == "holdout" else cv.folds
    assert [(s.repeat, s.fold) for s in splits] == [divmod(i, per_repeat) for i in range(len(splits))]


def test_group_kfold_keeps_groups_together_and_repeats_differ():
    ds = _ds(CLASSIFICATION, groups=True)
    splits = make_splits(ds, CVSpec(scheme="group_kfold", folds=3, repeats=2, group="g"), seed=0)
    assert len(splits) == 6
    for s in splits:
        assert not set(ds.groups[s.train]) & set(ds.groups[s.test])
    assert _pairs(splits[:3]) != _pairs(splits[3:])


def test_holdout_validation_part_is_carved_from_training_rows():
    ds = _ds(CLASSIFICATION, n=100)
    (split,) = make_splits(ds, CVSpec(scheme="holdout", test_size=0.2, valid_size=0.2), seed=0)
    assert len(split.test) == 20 and len(split.valid) == 20 and len(split.train) == 60
    assert not (set(split.train) & set(split.valid)) and not (set(split.valid) & set(split.test))


def test_seed_changes_splits_and_same_seed_repeats_them():
    ds = _ds(CLASSIFICATION)
    cv = CVSpec(folds=3)
    assert _pairs(make_splits(ds, cv, 0)) == _pairs(make_splits(ds, cv, 0))
    assert _pairs(make_splits(ds, cv, 0)) != _pairs(make_splits(ds, cv, 1))
