"""report.views: the numbers report.html shows, computed from a tiny read model (no HTML, no store)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from harness.explain import Explanation
from harness.report import views
from harness.report.context import FoldExplanation, ReportData


def report_data(rows: list[dict], greater: bool = True, suite: dict | None = None) -> ReportData:
    """A read model over fold rows only: one regression dataset "d" whose primary metric is "m"."""
    boards = SimpleNamespace(
        folds=pd.DataFrame(rows),
        per_dataset={"d": pd.DataFrame()},
        datasets={"d": {"task": "regression"}},
        primary={"regression": "m"},
        directions={"m": greater},
        primary_for=lambda ds: "m",
    )
    return ReportData(boards, {}, suite or {}, {}, {})  # type: ignore[arg-type]


def fold(est: str, k: int, m: float | None, repeat: int = 0, seed: int = 0, **extra) -> dict:
    return {"dataset": "d", "estimator": est, "fold": k, "repeat": repeat, "seed": seed, "status": "ok", "m": m,
            "extra": extra}  # fmt: skip


@pytest.mark.parametrize(
    ("greater", "front"),
    [(True, ["fast", "slow_best"]), (False, ["fast", "mid", "slow_worse"])],  # names read for higher-is-better
)
def test_pareto_front_keeps_the_models_nothing_beats_on_time_and_score(greater: bool, front: list[str]):
    points = pd.DataFrame(
        {
            "model": ["fast", "mid", "slow_best", "slow_worse", "no_time"],
            "score": [0.5, 0.4, 0.9, 0.3, 1.0],
            "fit_time": [1.0, 2.0, 3.0, 4.0, math.nan],
        }
    )
    assert views.pareto_front(points, greater) == front


def test_fold_labels_name_the_repeat_and_the_seed_only_when_the_run_has_several():
    one_seed = report_data([fold("a", 0, 1.0, tuning={"x": 1}), fold("a", 2, 1.0, repeat=1, tuning={"x": 2})])
    assert views.fold_extras(one_seed, "tuning") == {"d": {"a": [("fold 0", {"x": 1}), ("r1 f2", {"x": 2})]}}
    two_seeds = report_data([fold("a", 0, 1.0, seed=0, tuning={}), fold("a", 0, 1.0, seed=7, tuning={})])
    labels = [label for label, _ in views.fold_extras(two_seeds, "tuning")["d"]["a"]]
    assert labels == ["seed 0 fold 0", "seed 7 fold 0"]


def test_robustness_curve_is_the_mean_over_folds_per_level_with_the_clean_score_at_zero():
    data = report_data(
        [
            fold("a", 0, 0.9, robustness={"0.5": {"m": 0.7}, "0.1": {"m": 0.8}}),
            fold("a", 1, 0.7, robustness={"0.5": {"m": None}, "0.1": {"m": 0.6}}),  # a missing score is left out
            fold("b", 0, 0.5),  # no robustness scores: no curve
        ]
    )
    curves, primary = views.robustness_curves(data, "d")
    assert primary == "m" and list(curves) == ["a"]
    assert curves["a"].to_dict() == pytest.approx({0.0: 0.8, 0.1: 0.7, 0.5: 0.7})
    assert views.noise_levels(curves) == [0.0, 0.1, 0.5]


def test_tuning_view_uses_the_tune_metric_and_summarises_importances_across_folds():
    suite = {"estimators": [{"name": "a", "tune": {"metric": "r2"}}]}
    data = report_data(
        [
            fold("a", 0, 1.0, tuning={"mode": "nested", "importances": {"p": 0.2, "q": 0.8}}),
            fold("a", 1, 1.0, tuning={"mode": "nested", "importances": {"p": 0.4, "q": 0.6}}),
        ],
        suite=suite,
    )
    (v,) = views.tuning_views(data)
    assert (v.metric, v.mode, list(v.histories)) == ("r2", "nested", ["fold 0", "fold 1"])
    assert list(v.importances.index) == ["q", "p"]
    assert v.importances.loc["p", "mean"] == pytest.approx(0.3)
    assert v.importances.loc["p", "std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))


def explanation(n_rows: int) -> Explanation:
    return Explanation(
        values=np.ones((n_rows, 2, 1), dtype=np.float32), base_values=np.zeros(1), features=["x", "y"],
        data=np.zeros((n_rows, 2)), row_index=np.arange(n_rows), explainer="tree", output_space="raw",
        output_names=["prediction"], model="M", seconds=1.0, budget_s=1.0, n_model_features=2, additivity_gap=0.0,
    )  # fmt: skip


def test_common_prefix_cuts_each_fold_to_the_rows_every_model_explained():
    per_model = {
        "a": [FoldExplanation(0, 0, 0, explanation(5)), FoldExplanation(1, 0, 0, explanation(3))],
        "b": [FoldExplanation(0, 0, 0, explanation(2))],  # fold 1 not explained by b: a keeps its 3 rows there
    }
    common = views.common_prefix(per_model)
    assert [f.explanation.n_rows for f in common["a"]] == [2, 3]
    assert [f.explanation.n_rows for f in common["b"]] == [2]


def _toy(values: list, features: list[str]) -> Explanation:
    v = np.asarray(values, dtype=np.float32)
    return Explanation(
        values=v,
        base_values=np.zeros(v.shape[2]),
        features=features,
        data=np.zeros(v.shape[:2]),
        row_index=np.arange(v.shape[0]),
        explainer="linear",
        output_space="raw",
        output_names=[f"o{k}" for k in range(v.shape[2])],
        model="Toy",
        seconds=0.1,
        budget_s=1.0,
        n_model_features=v.shape[1],
        additivity_gap=0.0,
    )


def test_mean_abs_importance_matches_a_hand_computation():
    fold0 = _toy([[[1, -3], [0, 2]], [[-1, 1], [4, 0]]], ["x", "y"])  # 2 rows, 2 features, 2 outputs
    fold1 = _toy([[[2, 2], [0, 0]]], ["x", "y"])
    table = views.mean_abs_importance([fold0, fold1])
    # x: fold0 (1+3+1+1)/4 = 1.5, fold1 2; y: fold0 (0+2+4+0)/4 = 1.5, fold1 0
    assert table.loc["x", "fold_0"] == 1.5 and table.loc["x", "fold_1"] == 2.0
    assert table.loc["y", "fold_0"] == 1.5 and table.loc["y", "fold_1"] == 0.0
    assert table.loc["x", "mean"] == 1.75 and table.loc["y", "mean"] == 0.75
    assert table.loc["x", "std"] == pytest.approx(np.sqrt(0.125)) and table.loc["y", "std"] == pytest.approx(
        np.sqrt(1.125)
    )
    assert list(table.index) == ["x", "y"]


def test_rank_agreement_matches_hand_computed_kendall_tau():
    feats = ["f1", "f2", "f3", "f4"]
    imp = {
        "m1": pd.Series([4.0, 3.0, 2.0, 1.0], index=feats),
        "m2": pd.Series([0.4, 0.3, 0.1, 0.2], index=feats),  # one swapped pair: 5 concordant, 1 discordant
        "m3": pd.Series([1.0, 2.0, 3.0, 4.0], index=feats),  # reversed
        "m4": pd.Series([9.0, 1.0], index=["f4", "f1"]),  # common features with m1: f1, f4, opposite order
    }
    tau = views.rank_agreement(imp)
    assert tau.loc["m1", "m2"] == pytest.approx(4 / 6) and tau.loc["m2", "m1"] == pytest.approx(4 / 6)
    assert tau.loc["m1", "m3"] == pytest.approx(-1.0)
    assert tau.loc["m1", "m4"] == pytest.approx(-1.0)
    assert tau.loc["m1", "m1"] == pytest.approx(1.0)
