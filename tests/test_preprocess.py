"""Preprocessing is fitted on the training part of each fold only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from harness.preprocess import CategoricalDtypeEncoder, Columns, Tags, make_pipeline, make_preprocessor


def _frame():
    return pd.DataFrame(
        {"x": [1.0, np.nan, 3.0, 100.0, np.nan, 200.0], "c": np.array(["a", "b", np.nan, "a", "z", "b"], dtype=object)}
    )


def test_imputation_and_scaling_learn_from_training_rows_only():
    X = _frame()
    train = X.iloc[:3]
    prep = make_preprocessor(Tags(scale=True, impute=True), Columns(["x"], ["c"], True)).fit(train)
    imputer, scaler = prep.named_transformers_["num"].steps[0][1], prep.named_transformers_["num"].steps[1][1]
    assert imputer.statistics_.tolist() == [2.0]  # median of 1 and 3, not of all rows
    assert scaler.mean_.tolist() == [2.0]
    out = prep.transform(X.iloc[3:])
    assert list(out.columns) == ["x", "c_a", "c_b", "c_nan"]
    assert out.loc[4, ["c_a", "c_b", "c_nan"]].tolist() == [0.0, 0.0, 0.0]  # 'z' unseen: all zeros


def test_native_encoder_fixes_categories_on_training_rows():
    X = _frame()
    enc = CategoricalDtypeEncoder().fit(X.iloc[:3][["c"]])
    out = enc.transform(X[["c"]])
    assert list(out["c"].cat.categories) == ["a", "b"]
    assert out["c"].isna().tolist() == [False, False, True, False, True, False]  # NaN and unseen 'z' are missing


def test_ordinal_encoding_for_trees_keeps_nan_when_the_model_handles_it():
    X = _frame()
    prep = make_preprocessor(Tags(impute=False, categorical="ordinal"), Columns(["x"], ["c"], True)).fit(X.iloc[:3])
    out = prep.transform(X)
    assert np.isnan(out["x"].iloc[1]) and np.isnan(out["c"].iloc[2])
    assert out["c"].iloc[4] == -1  # unseen category


def test_no_preprocessing_when_none_is_needed():
    model = LogisticRegression()
    assert make_pipeline(model, Tags(scale=False, impute=True), Columns(["x"], [], False)) is model
    assert make_pipeline(model, Tags(scale=True), Columns(["x"], [], False)) is not model
