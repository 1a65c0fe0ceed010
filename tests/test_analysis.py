"""harness.analysis: fold table -> stats.json, checked against computations written out in the tests."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import log_loss, root_mean_squared_error
from sklearn.model_selection import KFold
from statsmodels.stats.multitest import multipletests

from harness.analysis import AnalysisOptions, analyse, analyse_store, dummy_scores_from_store
from harness.store import FoldResult, Store

METRICS = {"classification": ["accuracy", "log_loss"], "regression": ["rmse", "r2"]}
PRIMARY = {"classification": "accuracy", "regression": "rmse"}
DIRECTIONS = {"accuracy": True, "log_loss": False, "rmse": False, "r2": True}


def rows(dataset, task, scores, *, seeds=(0,), folds=5, metric=None, n_train=80, n_test=20, status=None):
    """Fold rows as Store.results gives them; scores[model] is a flat list over (seed, repeat, fold).

    A value None means the fold failed (status error) unless `status` says otherwise for that model.
    """
    metric = metric or PRIMARY[task]
    out = []
    for model, values in scores.items():
        per_seed = len(values) // len(seeds)
        for i, v in enumerate(values):
            seed, pos = seeds[i // per_seed], i % per_seed
            st = (status or {}).get(model, "ok" if v is not None else "error")
            out.append(
                {
                    "dataset": dataset,
                    "estimator": model,
                    "task": task,
                    "seed": seed,
                    "repeat": pos // folds,
                    "fold": pos % folds,
                    "status": st,
                    "n_train": n_train,
                    "n_test": n_test,
                    "fit_time": 0.1,
                    "extra": {},
                    metric: (np.nan if v is None else v) if st == "ok" else np.nan,
                }
            )
    return pd.DataFrame(out)


def hand_nb(d, ratio):
    """Nadeau–Bengio t and p, written out."""
    d = np.asarray(d, dtype=float)
    j = len(d)
    t = d.mean() / math.sqrt((1 / j + ratio) * d.var(ddof=1))
    return t, 2 * sps.t.sf(abs(t), j - 1)


def run(folds, **opts):
    return analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(**opts))


def pair(result, dataset, a, b):
    return next(p for p in result["per_dataset"][dataset]["pairs"] if {p["a"], p["b"]} == {a, b})


A = [0.81, 0.84, 0.79, 0.86, 0.83, 0.82, 0.85, 0.80, 0.84, 0.83]
B = [0.80, 0.82, 0.80, 0.83, 0.81, 0.80, 0.84, 0.81, 0.81, 0.82]
C = [0.70, 0.72, 0.69, 0.71, 0.73, 0.70, 0.74, 0.71, 0.69, 0.72]


def test_failed_folds_and_missing_values_are_dropped_pairwise_only():
    b = list(B)
    b[2] = None  # fold (0, 0, 2) failed for b
    folds = rows("d", "classification", {"a": A, "b": b, "c": C})
    folds.loc[(folds["estimator"] == "a") & (folds["repeat"] == 1) & (folds["fold"] == 3), "accuracy"] = np.nan
    res = run(folds)
    ab, ac, bc = pair(res, "d", "a", "b"), pair(res, "d", "a", "c"), pair(res, "d", "b", "c")
    keep_ab = [i for i in range(10) if i not in (2, 8)]
    assert (ab["n"], ab["n_dropped"], ac["n"], bc["n"]) == (8, 2, 9, 9)
    t, p = hand_nb([A[i] - B[i] for i in keep_ab], 20 / 80)
    assert (ab["a"], ab["b"]) == ("a", "b") and ab["t"] == pytest.approx(t) and ab["p"] == pytest.approx(p)
    assert ab["mean_diff"] == pytest.approx(np.mean([A[i] - B[i] for i in keep_ab]))
    _, p_bc = hand_nb([B[i] - C[i] for i in range(10) if i != 2], 0.25)
    assert bc["p"] == pytest.approx(p_bc)
    holm = multipletests([ab["p"], ac["p"], bc["p"]], method="holm")[1]
    assert [ab["p_holm"], ac["p_holm"], bc["p_holm"]] == pytest.approx(list(holm))
    d = res["per_dataset"]["d"]
    assert d["best"] == "a" and d["models"]["b"]["n_failed"] == 1 and d["ok_folds_without_value"] == {"a": 1}
    # a vs c is clear; a vs b is not: b is "not significantly worse" than the best.
    assert ac["verdict"] == "A better" and ab["verdict"] == "no significant difference"
    assert d["not_significantly_worse_than_best"] == ["a", "b"]


def test_lower_is_better_metrics_are_oriented():
    good = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 1.01, 0.99]
    bad = [v + 0.5 + 0.01 * i for i, v in enumerate(good)]
    res = run(rows("reg", "regression", {"bad": bad, "good": good}))
    d = res["per_dataset"]["reg"]
    assert d["best"] == "good" and d["greater_is_better"] is False
    p = d["pairs"][0]
    assert (p["a"], p["b"]) == ("good", "bad")
    assert p["mean_diff"] > 0 and p["mean_diff_raw"] == pytest.approx(-p["mean_diff"]) and p["verdict"] == "A better"
    assert p["ci_low"] > 0 and p["p_a_better"] > 0.95 > p["p_b_better"]
    assert p["rope"] == pytest.approx(0.01 * np.mean(np.abs(good + bad)))
    assert "unbounded" in d["rope_rule"]


def test_log_loss_is_oriented_and_all_metrics_optional():
    folds = rows("clf", "classification", {"a": A, "c": C})
    folds["log_loss"] = np.where(folds["estimator"] == "a", 0.3, 0.6) + folds["fold"] * 0.01
    res = run(folds, all_metrics=True, rope={"log_loss": 0.05})
    other = res["per_dataset"]["clf"]["other_metrics"]["log_loss"]
    assert other["best"] == "a" and other["pairs"][0]["mean_diff"] == pytest.approx(0.3)
    assert other["pairs"][0]["rope"] == 0.05 and "user setting" in other["rope_rule"]


def test_seeds_act_as_repeats_and_stability_is_reported():
    a = A[:5] + [v + 0.01 for v in A[:5]]  # seed 0 folds 0..4, then seed 1 folds 0..4 (same repeat/fold ids)
    b = B[:5] + B[5:]
    res = run(rows("d", "classification", {"a": a, "b": b}, seeds=(0, 1)))
    p = res["per_dataset"]["d"]["pairs"][0]
    assert p["n"] == 10 and p["df"] == 9
    assert p["p"] == pytest.approx(hand_nb(np.subtract(a, b), 0.25)[1])
    st = res["stability"]["d"]["a"]
    means = [np.mean(a[:5]), np.mean(a[5:])]
    assert st["n_seeds"] == 2 and st["std_of_seed_means"] == pytest.approx(np.std(means, ddof=1))
    assert st["mean_within_seed_std"] == pytest.approx(np.mean([np.std(a[:5], ddof=1), np.std(a[5:], ddof=1)]))
    assert run(rows("d", "classification", {"a": A, "b": B}))["stability"] is None


def test_failure_flag_is_more_than_ten_percent_of_folds():
    one = list(A)
    one[0] = None
    two = list(B)
    two[0] = two[1] = None
    models = run(rows("d", "classification", {"one": one, "two": two}))["per_dataset"]["d"]["models"]
    assert models["one"]["failure_rate"] == pytest.approx(0.1) and not models["one"]["flagged"]
    assert models["two"]["failure_rate"] == pytest.approx(0.2) and models["two"]["flagged"]


def _suite(n_datasets, shift=0.02):
    """n datasets (the last two regression/rmse), models x > y > z by a margin."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n_datasets):
        task = "regression" if i >= n_datasets - 2 else "classification"
        base = 0.8 if task == "classification" else 5.0
        sign = 1 if task == "classification" else -1
        scores = {
            m: list(base + sign * s + rng.normal(0, 0.005, 5)) for m, s in {"x": 2 * shift, "y": shift, "z": 0}.items()
        }
        frames.append(rows(f"d{i}", task, scores))
    return pd.concat(frames, ignore_index=True)


DUMMY = {"classification": 0.5, "regression": 10.0}  # a prior classifier's accuracy, a mean predictor's rmse


def _dummy(folds):
    return {d: DUMMY[t] for d, t in folds.groupby("dataset")["task"].first().items()}


def _means(folds):
    ok = folds[folds["status"] == "ok"]
    value = ok["accuracy"].fillna(ok["rmse"]) if "rmse" in ok else ok["accuracy"]
    return ok.assign(v=value).pivot_table("v", "dataset", "estimator", aggfunc="mean")


def _expected_wilcoxon(table):
    """scipy's wilcoxon per pair (zeros discarded) and statsmodels' Holm over the pairs, in wilcoxon_holm's order."""
    pairs = [(a, b) for i, a in enumerate(table.columns) for b in table.columns[i + 1 :]]
    p = [sps.wilcoxon((table[a] - table[b]).round(12), zero_method="wilcox").pvalue for a, b in pairs]
    return pairs, p, list(multipletests(p, method="holm")[1])


def test_across_datasets_against_direct_computations():
    folds = _suite(7)
    res = analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(), _dummy(folds))
    across = res["across"]
    assert across["meaningful"] is True and across["n_datasets"] == 7 and across["n_models"] == 3
    ok = folds[folds["status"] == "ok"]
    means = ok.assign(v=ok["accuracy"].fillna(-ok["rmse"])).pivot_table("v", "dataset", "estimator", aggfunc="mean")
    got = pd.DataFrame(across["matrix"]).T.loc[means.index, means.columns]
    assert np.allclose(got.to_numpy(), means.to_numpy())
    assert across["matrix_raw"]["d6"]["x"] == pytest.approx(-means.loc["d6", "x"])
    assert list(across["average_ranks"]) == ["x", "y", "z"] and across["average_ranks"]["x"] == 1.0
    ref = sps.friedmanchisquare(*means.to_numpy().T)
    assert across["friedman"]["chi2"] == pytest.approx(ref.statistic) and across["friedman"]["p_chi2"] == pytest.approx(
        ref.pvalue
    )
    assert across["friedman"]["f"] is None and across["friedman"]["p_f"] == 0.0  # perfect agreement: F = inf
    xz = next(r for r in across["wilcoxon_holm"] if (r["a"], r["b"]) == ("x", "z"))
    assert xz["p"] == pytest.approx(2 / 2**7)
    assert across["nemenyi_cd"] == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 7)), abs=1e-3)
    assert any("different primary metrics" in n for n in across["notes"])
    assert any("ranks within each dataset, which are unit-free" in n for n in across["notes"])
    assert across["min_attainable_p"]["wilcoxon_p"] == pytest.approx(2 / 2**7)


def test_mixed_metrics_pool_skill_scores_and_test_each_metric_apart():
    """Accuracy and rmse datasets: the pooled test compares skill scores, each metric gets its own family."""
    rng = np.random.default_rng(1)
    frames = []
    for i in range(9):  # 6 accuracy datasets, 3 rmse datasets on very different scales
        task, scale = ("classification", 1.0) if i < 6 else ("regression", 10.0 ** (i - 5))
        base = {"x": 0.80, "y": 0.79, "z": 0.70} if task == "classification" else {"x": 0.5, "y": 0.6, "z": 0.4}
        scores = {m: list(scale * v + scale * rng.normal(0, 0.01, 5)) for m, v in base.items()}
        frames.append(rows(f"d{i}", task, scores))
    folds = pd.concat(frames, ignore_index=True)
    dummy = {f"d{i}": (0.5 if i < 6 else 10.0 ** (i - 5)) for i in range(9)}
    across = analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(), dummy)["across"]
    means = _means(folds)
    # Skill = (score - dummy) / (perfect - dummy): perfect accuracy 1, perfect rmse 0.
    perfect = pd.Series({d: 1.0 if d < "d6" else 0.0 for d in means.index})
    skill = means.sub(pd.Series(dummy), axis=0).div(perfect - pd.Series(dummy), axis=0)
    assert across["wilcoxon_scale"] == "skill" and "skill scores over the dummy baseline" in across["wilcoxon_quantity"]
    assert np.allclose(pd.DataFrame(across["skill"]["scores"]).T.loc[skill.index, skill.columns], skill)
    pairs, p, p_holm = _expected_wilcoxon(skill)
    got = {(r["a"], r["b"]): r for r in across["wilcoxon_holm"]}
    assert [got[k]["p"] for k in pairs] == pytest.approx(p, rel=1e-10)
    assert [got[k]["p_holm"] for k in pairs] == pytest.approx(p_holm, rel=1e-10)
    # rmse differences of 100 vs 0.1 would dominate raw ranks; on skill scores z (lowest rmse) is not singled out.
    acc = across["wilcoxon_per_metric"]["accuracy"]
    assert acc["scale"] == "raw" and acc["n_datasets"] == 6
    pairs, p, p_holm = _expected_wilcoxon(means.loc[[f"d{i}" for i in range(6)]])
    got = {(r["a"], r["b"]): r for r in acc["pairs"]}
    assert [got[k]["p"] for k in pairs] == pytest.approx(p)
    assert [got[k]["p_holm"] for k in pairs] == pytest.approx(p_holm)
    rmse = across["wilcoxon_per_metric"]["rmse"]
    assert rmse["scale"] == "skill" and rmse["pairs"] is None and "not run: 3 dataset(s)" in rmse["note"]


def test_one_bounded_metric_pools_raw_differences_and_needs_no_dummy():
    frames = [rows(f"d{i}", "classification", {"x": [0.8 + i / 100] * 4 + [0.81], "y": [0.7] * 5}) for i in range(6)]
    folds = pd.concat(frames, ignore_index=True)
    across = run(folds)["across"]
    assert across["wilcoxon_scale"] == "raw" and across["wilcoxon_quantity"].startswith("accuracy differences")
    assert across["skill"] is None and across["wilcoxon_per_metric"] == {}
    (xy,) = across["wilcoxon_holm"]
    assert xy["p"] == pytest.approx(sps.wilcoxon(_means(folds)["x"] - _means(folds)["y"]).pvalue)


def test_skill_needs_the_dummy_score_and_says_which_datasets_it_left_out():
    folds = _suite(7)
    dummy = _dummy(folds)
    del dummy["d0"], dummy["d1"]
    across = analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(), dummy)["across"]
    assert across["wilcoxon_datasets"] == ["d2", "d3", "d4", "d5", "d6"]
    assert across["wilcoxon_holm"] is not None and across["meaningful"] is True
    del dummy["d2"]
    across = analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(), dummy)["across"]
    assert across["wilcoxon_holm"] is None and across["friedman"] is not None  # ranks need no dummy
    assert any("left out (no dummy-baseline score" in n and "not run: 4 dataset(s)" in n for n in across["notes"])


def test_not_significantly_worse_reads_the_pairs_family_so_the_two_never_contradict():
    """The best's pairs in the Holm family of all k(k-1)/2 pairs: the list agrees with the pairs table."""
    base = np.array([0.80, 0.83, 0.79, 0.85, 0.82, 0.81, 0.84, 0.80, 0.83, 0.82])
    scores = {"a": base, "b": base - 0.012 + np.tile([0.03, -0.03], 5), "c": base - 0.011 + np.tile([0.003, -0.003], 5),
              "d": base - 0.2 + np.tile([0.05, -0.05], 5)}  # fmt: skip
    d = run(rows("d", "classification", {m: list(v) for m, v in scores.items()}))["per_dataset"]["d"]
    order = ["a", "c", "b", "d"]  # by mean
    assert d["best"] == "a" and list(d["means"]) == order
    pairs = [(x, y) for i, x in enumerate(order) for y in order[i + 1 :]]
    p = [hand_nb(scores[x] - scores[y], 0.25)[1] for x, y in pairs]
    p_holm = dict(zip(pairs, multipletests(p, method="holm")[1], strict=True))
    vs = {r["model"]: r for r in d["versus_best"]["comparisons"]}
    assert d["versus_best"]["family"] == 6 and [vs[m]["p_holm"] for m in "cbd"] == pytest.approx(
        [p_holm[("a", m)] for m in "cbd"]
    )
    table = {(q["a"], q["b"]): q for q in d["pairs"]}
    assert [vs[m]["p_holm"] for m in "cbd"] == [table[("a", m)]["p_holm"] for m in "cbd"]  # the very same numbers
    assert d["not_significantly_worse_than_best"] == ["a", "b"] and table[("a", "b")]["verdict"] != "A better"
    assert table[("a", "c")]["verdict"] == table[("a", "d")]["verdict"] == "A better"


def test_fewer_than_min_datasets_is_not_meaningful():
    across = run(_suite(4))["across"]
    assert across["meaningful"] is False and across["friedman"] is None and across["wilcoxon_holm"] is None
    assert across["nemenyi_cd"] is None and list(across["average_ranks"]) == ["x", "y", "z"]
    assert any("no across-dataset test is run" in n and "Friedman" in n for n in across["notes"])
    assert across["min_attainable_p"]["wilcoxon_p"] == 2 / 2**4


def test_failure_policies_dummy_drop_and_skipped():
    folds = _suite(5)
    dead = (folds["dataset"] == "d0") & (folds["estimator"] == "x")
    folds.loc[dead, "status"], folds.loc[dead, "accuracy"] = "error", np.nan
    skipped = rows("d1", "classification", {"knn": [None] * 5}, status={"knn": "skipped"})
    knn_ok = pd.concat([rows(f"d{i}", "classification", {"knn": [0.5] * 5}) for i in (0, 2)])
    folds = pd.concat([folds, skipped, knn_ok], ignore_index=True)

    dummy = analyse(folds, METRICS, PRIMARY, DIRECTIONS, AnalysisOptions(), {"d0": 0.5})["across"]
    assert dummy["matrix_raw"]["d0"]["x"] == 0.5 and dummy["failure_handling"]["dummy_substituted"] == {"x": ["d0"]}
    assert "knn" in dummy["failure_handling"]["dropped_models"] and "knn" not in dummy["average_ranks"]
    assert dummy["failure_counts"]["x"]["failed_folds"] == 5 and dummy["failure_counts"]["x"]["flagged_datasets"] == [
        "d0"
    ]
    assert any("skipped" in n for n in dummy["notes"])

    no_dummy = run(folds)["across"]  # dummy policy but no dummy scores given: x is dropped, and it says why
    assert "x" in no_dummy["failure_handling"]["dropped_models"] and "x" not in no_dummy["average_ranks"]
    dropped = run(folds, failures="drop")["across"]
    assert sorted(dropped["average_ranks"]) == ["y", "z"]
    assert "failures='drop'" in dropped["failure_handling"]["dropped_models"]["x"]


def test_json_round_trip_with_degenerate_results():
    folds = pd.concat(
        [
            rows("flat", "classification", {"a": [0.9] * 5, "b": [0.8] * 5}),  # t = inf, p = 0
            rows("one", "classification", {"a": [0.9], "b": [0.8]}, folds=1),  # J = 1: p NaN
        ],
        ignore_index=True,
    )
    res = run(folds)
    text = json.dumps(res, allow_nan=False)
    assert json.loads(text) == res
    flat, one = res["per_dataset"]["flat"]["pairs"][0], res["per_dataset"]["one"]["pairs"][0]
    assert flat["t"] is None and flat["p"] == 0.0 and flat["verdict"] == "A better"
    assert one["p"] is None and one["verdict"] == "not tested" and "at least 2" in one["reason"]


# ---------------------------------------------------------------- from a real store


def _store_with_predictions(tmp_path):
    """A store holding 3-fold results of two models on a classification and a regression dataset."""
    rng = np.random.default_rng(1)
    y_clf = np.array([0] * 20 + [1] * 7 + [2] * 3)
    rng.shuffle(y_clf)
    y_reg = rng.normal(10, 3, 30)
    store = Store(tmp_path / "results.db")
    settings = {"metrics": {"classification": ["log_loss"], "regression": ["rmse"]}, "primary": {}}
    settings["primary"] = {"classification": "log_loss", "regression": "rmse"}
    store.start_run("r1", "t", "{}", [], {}, settings)
    store.record_metrics([("log_loss", "classification", False), ("rmse", "regression", False)])
    splits = list(KFold(3, shuffle=True, random_state=0).split(np.zeros(30)))
    keys = []
    for name, task, y, metric in (("clf", "classification", y_clf, "log_loss"), ("reg", "regression", y_reg, "rmse")):
        store.record_datasets([{"name": name, "fingerprint": f"fp-{name}", "task": task}])
        for model in ("good", "broken"):
            for fold, (_, test) in enumerate(splits):
                key = f"{name}-{model}-{fold}"
                keys.append(key)
                if model == "broken" and name == "clf":
                    result = FoldResult(key, name, model, task, 0, fold, "error", error="boom")
                else:
                    value = 0.1 + fold if model == "good" else 20.0 + fold
                    result = FoldResult(
                        key, name, model, task, 0, fold, "ok", {metric: value}, n_train=20, n_test=10,
                        test_index=test, y_true=y[test], y_pred=y[test],
                    )  # fmt: skip
                store.add(replace(result, seed=0, config={}, versions={}, fingerprint=f"fp-{name}"), "r1")
    store.record_plan("r1", keys)
    return store, y_clf, y_reg, splits


def test_dummy_scores_from_stored_labels_equal_sklearn_dummies(tmp_path):
    store, y_clf, y_reg, splits = _store_with_predictions(tmp_path)
    folds = store.results(store.current_keys())
    got = dummy_scores_from_store(store, folds, {"classification": "log_loss", "regression": "rmse"})
    ll, rmse = [], []
    for train, test in splits:
        clf = DummyClassifier(strategy="prior").fit(np.zeros((len(train), 1)), y_clf[train])
        ll.append(log_loss(y_clf[test], clf.predict_proba(np.zeros((len(test), 1))), labels=[0, 1, 2]))
        reg = DummyRegressor().fit(np.zeros((len(train), 1)), y_reg[train])
        rmse.append(root_mean_squared_error(y_reg[test], reg.predict(np.zeros((len(test), 1)))))
    assert got["clf"] == pytest.approx(np.mean(ll), rel=1e-12) and got["reg"] == pytest.approx(np.mean(rmse))

    res = analyse_store(store, AnalysisOptions(min_datasets=2))
    across = res["across"]
    assert across["matrix_raw"]["clf"]["broken"] == pytest.approx(np.mean(ll))
    assert across["failure_handling"]["dummy_substituted"] == {"broken": ["clf"]}
    assert res["per_dataset"]["clf"]["flagged"] == ["broken"] and res["per_dataset"]["reg"]["best"] == "good"
    json.dumps(res, allow_nan=False)
    store.close()
