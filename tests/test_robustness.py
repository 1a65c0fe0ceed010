"""harness/robustness.py: perturbed test rows, calibrated on the training part only.

Properties are checked against the definition (noise spread = level × TRAINING std,
an exact fraction of categories swapped to training categories), on samples large
enough that the sampling error is far below the tolerances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.robustness import noise_levels_default, perturb

N = 20_000


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train spread (std 3) differs from test spread (std 1), so a test-calibrated noise would show."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "num": rng.normal(10, 3, N),
            "flat": np.full(N, 4.0),
            "colour": rng.choice(["red", "green", "blue"], N),
        }
    )
    test = pd.DataFrame(
        {
            "num": rng.normal(10, 1, N),
            "flat": rng.normal(0, 5, N),
            "colour": rng.choice(["red", "green", "blue", "mauve"], N),  # mauve: never seen in training
        },
        index=np.arange(N) + 1000,  # a fold's rows keep their original index
    )
    test.loc[test.index[:100], "num"] = np.nan
    test.loc[test.index[100:200], "colour"] = np.nan
    return train, test


def test_default_levels() -> None:
    assert noise_levels_default == (0.0, 0.1, 0.25, 0.5)


def test_level_zero_is_an_identical_copy(frames) -> None:
    train, test = frames
    out = perturb(test, train, 0.0, seed=1, categorical=["colour"])
    pd.testing.assert_frame_equal(out, test)
    assert out is not test


@pytest.mark.parametrize("level", [0.1, 0.5])
def test_noise_spread_is_level_times_train_std(frames, level: float) -> None:
    train, test = frames
    out = perturb(test, train, level, seed=1, categorical=["colour"])
    noise = (out["num"] - test["num"]).dropna()
    train_std = float(np.std(train["num"], ddof=1))
    assert noise.std() == pytest.approx(level * train_std, rel=0.03)
    assert abs(noise.mean()) < 4 * level * train_std / np.sqrt(len(noise))
    assert out["num"].isna().equals(test["num"].isna())  # NaN stays NaN, nothing else becomes NaN
    # no spread in training: no noise, whatever the test column looks like
    pd.testing.assert_series_equal(out["flat"], test["flat"])
    pd.testing.assert_index_equal(out.index, test.index)


@pytest.mark.parametrize("level", [0.1, 0.25, 1.0])
def test_categories_swapped_to_known_ones(frames, level: float) -> None:
    train, test = frames
    out = perturb(test, train, level, seed=2, categorical=["colour"])
    before, after = test["colour"], out["colour"]
    present = before.notna()
    changed = present & (before != after)
    assert after[~present].isna().all() and after[present].notna().all()
    assert changed.sum() == round(level * present.sum())
    assert set(after[changed]) <= {"red", "green", "blue"}
    # each known category is a target of about the same share of swaps (uniform over the others)
    if level == 1.0:
        shares = after[changed].value_counts(normalize=True)
        assert shares.min() > 0.25


def test_deterministic_and_seed_dependent(frames) -> None:
    train, test = frames
    a = perturb(test, train, 0.25, seed=7, categorical=["colour"])
    b = perturb(test, train, 0.25, seed=7, categorical=["colour"])
    c = perturb(test, train, 0.25, seed=8, categorical=["colour"])
    pd.testing.assert_frame_equal(a, b)
    assert not a["num"].equals(c["num"]) and not a["colour"].equals(c["colour"])


def test_inputs_not_mutated(frames) -> None:
    train, test = frames
    train_copy, test_copy = train.copy(deep=True), test.copy(deep=True)
    perturb(test, train, 0.5, seed=3, categorical=["colour"])
    pd.testing.assert_frame_equal(train, train_copy)
    pd.testing.assert_frame_equal(test, test_copy)


def test_pandas_categorical_dtype_and_integers() -> None:
    train = pd.DataFrame({"k": pd.Categorical(["a", "b", "c"] * 10), "i": np.arange(30)})
    test = pd.DataFrame({"k": pd.Categorical(["a"] * 10, categories=["a"]), "i": np.arange(10)})
    out = perturb(test, train, 0.5, seed=0, categorical=["k"])
    assert isinstance(out["k"].dtype, pd.CategoricalDtype)
    assert (out["k"] != "a").sum() == 5 and set(out["k"]) <= {"a", "b", "c"}
    assert out["i"].dtype == np.float64 and not np.allclose(out["i"], test["i"])


def test_bad_level_is_refused(frames) -> None:
    train, test = frames
    with pytest.raises(ValueError, match="level"):
        perturb(test, train, -0.1, seed=0, categorical=["colour"])


def test_single_known_category_is_left_alone() -> None:
    train = pd.DataFrame({"k": ["only"] * 5})
    test = pd.DataFrame({"k": ["only", "only", "other", "other"]})
    out = perturb(test, train, 1.0, seed=0, categorical=["k"])
    assert list(out["k"]) == ["only", "only", "only", "only"]  # unseen values go to the known one
