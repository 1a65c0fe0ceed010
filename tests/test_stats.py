"""harness.stats against independent computations: hand formulas, scipy, statsmodels, baycomp, autorank, Demšar."""

from __future__ import annotations

import contextlib
import io
import math
import statistics

import baycomp
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from harness import stats

# 2 repeats x 5 folds of two models on one dataset (100 rows: n_train 80, n_test 20).
A = np.array([0.81, 0.84, 0.79, 0.86, 0.83, 0.82, 0.85, 0.80, 0.84, 0.83])
B = np.array([0.80, 0.82, 0.80, 0.83, 0.81, 0.80, 0.84, 0.81, 0.81, 0.82])


def hand_corrected_t(a, b, n_train, n_test, alpha=0.05):
    """Nadeau–Bengio written out from the paper with the standard library."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    j = len(d)
    mean = sum(d) / j
    var = sum((x - mean) ** 2 for x in d) / (j - 1)
    se = math.sqrt((1 / j + n_test / n_train) * var)
    t = mean / se
    p = 2 * (1 - sps.t.cdf(abs(t), j - 1))
    q = sps.t.ppf(1 - alpha / 2, j - 1)
    return mean, t, p, mean - q * se, mean + q * se


# ---------------------------------------------------------------- corrected t-test


def test_corrected_ttest_matches_hand_computation():
    res = stats.corrected_ttest(A - B, 80, 20)
    mean, t, p, lo, hi = hand_corrected_t(A, B, 80, 20)
    assert res.n == 10 and res.df == 9 and res.ratio == pytest.approx(0.25)
    assert res.mean == pytest.approx(mean, rel=1e-12)
    assert res.t == pytest.approx(t, rel=1e-10)
    assert res.p == pytest.approx(p, rel=1e-8)
    assert (res.ci_low, res.ci_high) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))
    assert res.std == pytest.approx(statistics.stdev((A - B).tolist()), rel=1e-12)
    assert res.reason is None


def test_corrected_ttest_matches_baycomp_posterior_and_is_not_the_plain_paired_t():
    res = stats.corrected_ttest(A - B, 80, 20)
    # baycomp computes y - x: (B, A) gives A - B. runs=2 -> 5 folds -> correction 1/(5-1) = 20/80.
    post = baycomp.CorrelatedTTest(B, A, rope=0.0, runs=2)
    assert post.mean == pytest.approx(res.mean, rel=1e-12)
    assert post.var == pytest.approx(res.se**2, rel=1e-12)
    assert post.df == res.df
    assert res.p == pytest.approx(2 * sps.t.sf(abs(post.mean) / math.sqrt(post.var), post.df), rel=1e-10)
    plain = sps.ttest_rel(A, B).pvalue
    assert res.p > plain * 2  # the correction must widen it


def test_corrected_ttest_per_fold_sizes_use_their_means():
    n_train = np.array([80, 80, 79, 81, 80, 80, 80, 79, 81, 80])
    n_test = np.array([20, 20, 21, 19, 20, 20, 20, 21, 19, 20])
    res = stats.corrected_ttest(A - B, n_train, n_test)
    _, t, p, _, _ = hand_corrected_t(A, B, n_train.mean(), n_test.mean())
    assert res.t == pytest.approx(t, rel=1e-10) and res.p == pytest.approx(p, rel=1e-8)


def test_corrected_ttest_edge_cases():
    same = stats.corrected_ttest(np.zeros(5), 80, 20)
    assert (same.t, same.p, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    shifted = stats.corrected_ttest(np.full(5, -0.02), 80, 20)
    assert shifted.t == -math.inf and shifted.p == 0.0 and shifted.ci_low == shifted.ci_high == pytest.approx(-0.02)
    assert "zero variance" in shifted.reason
    one = stats.corrected_ttest([0.1], 80, 20)
    assert math.isnan(one.p) and "at least 2" in one.reason and one.n == 1
    unknown = stats.corrected_ttest(A - B, np.nan, np.nan)
    assert math.isnan(unknown.p) and "sizes unknown" in unknown.reason


def test_corrected_ttest_drops_nan_differences_with_their_sizes():
    d = np.append(A - B, np.nan)
    sizes = np.append(np.full(10, 80), 1)  # the dropped fold's odd size must not enter the mean
    res = stats.corrected_ttest(d, sizes, np.full(11, 20))
    assert res.n == 10 and res.ratio == pytest.approx(0.25)
    assert res.p == pytest.approx(hand_corrected_t(A, B, 80, 20)[2], rel=1e-8)


# ---------------------------------------------------------------- Bayesian correlated t-test


@pytest.mark.parametrize(("rope", "runs"), [(0.01, 2), (0.005, 2), (0.02, 1)])
def test_bayesian_probabilities_match_baycomp(rope, runs):
    k = len(A) // runs  # k folds: n_test/n_train = 1/(k-1) equals baycomp's rho/(1-rho) with rho = 1/k
    ours = stats.bayes_correlated_ttest(A - B, k - 1, 1, rope)
    # ours: (B better, rope, A better) for A - B; baycomp(x=B, y=A) looks at A - B with the same left/right.
    theirs = baycomp.two_on_single(B, A, rope=rope, runs=runs)
    assert ours == pytest.approx(tuple(float(v) for v in theirs), abs=1e-12)
    assert sum(ours) == pytest.approx(1.0)
    mirrored = baycomp.two_on_single(A, B, rope=rope, runs=runs)
    assert ours[2] == pytest.approx(float(mirrored[0]), abs=1e-12)


def test_bayesian_orientation_and_zero_variance():
    left, _middle, right = stats.bayes_correlated_ttest(A - B, 80, 20, 0.001)
    assert right > 0.9 > left  # A is better in this table
    assert stats.bayes_correlated_ttest(np.full(4, 0.05), 80, 20, 0.01) == (0.0, 0.0, 1.0)
    assert stats.bayes_correlated_ttest(np.full(4, 0.005), 80, 20, 0.01) == (0.0, 1.0, 0.0)
    flat = np.full(4, 0.3)
    assert stats.bayes_correlated_ttest(-flat, 80, 20, 0.01) == pytest.approx(
        tuple(float(v) for v in baycomp.two_on_single(flat, np.zeros(4), rope=0.01))
    )
    assert all(math.isnan(v) for v in stats.bayes_correlated_ttest([0.1], 80, 20, 0.01))


# ---------------------------------------------------------------- Holm


def test_holm_by_hand_and_against_statsmodels_with_nan_passthrough():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    out = stats.holm(p)
    # sorted 0.01, 0.03, 0.04 -> 0.03, 0.06, max(0.04, 0.06) = 0.06
    assert out[0] == pytest.approx(0.03) and out[3] == pytest.approx(0.06) and out[2] == pytest.approx(0.06)
    assert math.isnan(out[1])
    assert np.allclose(out[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert stats.holm([]).size == 0


# ---------------------------------------------------------------- across datasets

# 8 datasets x 4 models, higher is better, with a tie in row 0 and row 5.
M = pd.DataFrame(
    [
        [0.80, 0.80, 0.75, 0.70],
        [0.91, 0.89, 0.90, 0.85],
        [0.66, 0.70, 0.61, 0.64],
        [0.75, 0.74, 0.77, 0.70],
        [0.88, 0.86, 0.84, 0.83],
        [0.93, 0.92, 0.92, 0.92],
        [0.71, 0.69, 0.72, 0.65],
        [0.82, 0.79, 0.80, 0.81],
    ],
    index=[f"d{i}" for i in range(8)],
    columns=["lgbm", "rf", "svm", "knn"],
)


def test_average_ranks_with_ties_by_hand():
    m = pd.DataFrame([[0.9, 0.8, 0.8], [0.7, 0.9, 0.8], [0.5, 0.5, 0.5]], columns=["a", "b", "c"])
    ranks = stats.average_ranks(m)
    assert ranks.to_dict() == pytest.approx({"a": 2.0, "b": 11 / 6, "c": 13 / 6})


def test_average_ranks_treat_float_noise_as_a_tie():
    m = pd.DataFrame([[0.1 + 0.2, 0.3, 0.2]], columns=["a", "b", "c"])
    assert stats.average_ranks(m).to_dict() == {"a": 1.5, "b": 1.5, "c": 3.0}


def test_lower_is_better_is_ranked_after_negation():
    rmse = pd.DataFrame([[1.0, 2.0, 3.0], [10.0, 30.0, 20.0]], columns=["good", "mid", "bad"])
    log_loss = pd.DataFrame([[0.2, 0.5, 0.9]], columns=["good", "mid", "bad"])
    assert stats.average_ranks(-rmse).to_dict() == {"good": 1.0, "mid": 2.5, "bad": 2.5}
    assert stats.average_ranks(-log_loss).idxmin() == "good"
    assert stats.win_tie_loss(-rmse, 0.0).iloc[0].to_dict() == {
        "a": "good",
        "b": "mid",
        "wins": 2,
        "ties": 0,
        "losses": 0,
    }


def test_friedman_matches_scipy_hand_formulas_and_autorank():
    res = stats.friedman(M)
    ref = sps.friedmanchisquare(*M.to_numpy().T)
    assert res.chi2 == pytest.approx(ref.statistic, rel=1e-12) and res.p_chi2 == pytest.approx(ref.pvalue, rel=1e-10)
    n, k = M.shape
    f = (n - 1) * ref.statistic / (n * (k - 1) - ref.statistic)
    assert (res.df1, res.df2) == (k - 1, (k - 1) * (n - 1))
    assert res.f == pytest.approx(f, rel=1e-12)
    assert res.p_f == pytest.approx(1 - sps.f.cdf(f, k - 1, (k - 1) * (n - 1)), rel=1e-8)
    assert res.kendall_w == pytest.approx(ref.statistic / (n * (k - 1)), rel=1e-12)
    import autorank

    with contextlib.redirect_stdout(io.StringIO()):
        ar = autorank.autorank(M.reset_index(drop=True), alpha=0.05, force_mode="nonparametric")
    assert ar.omnibus == "friedman"
    assert res.p_chi2 == pytest.approx(ar.pvalue, rel=1e-10)
    assert stats.average_ranks(M).to_dict() == pytest.approx(ar.rankdf["meanrank"].to_dict())
    assert stats.nemenyi_cd(k, n) == pytest.approx(ar.cd, rel=1e-4)  # autorank's q is statsmodels' approximation


def test_kendall_w_by_its_own_definition_without_ties():
    m = pd.DataFrame([[3, 2, 1, 0], [2, 3, 1, 0], [3, 1, 2, 0], [0, 3, 2, 1], [3, 2, 0, 1]], dtype=float)
    n, k = m.shape
    r = m.rank(axis=1, ascending=False).sum(axis=0).to_numpy()
    s = float(np.sum((r - r.mean()) ** 2))
    assert stats.friedman(m).kendall_w == pytest.approx(12 * s / (n**2 * (k**3 - k)), rel=1e-12)


def test_friedman_with_two_models_equals_sign_test_statistic():
    m = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "b": [0.8, 0.7, 0.6, 0.5, 0.4, 0.5]})
    res = stats.friedman(m)  # 5 wins, 1 loss: chi2 = (W - L)^2 / N
    assert res.chi2 == pytest.approx(16 / 6) and res.p_chi2 == pytest.approx(sps.chi2.sf(16 / 6, 1))


def test_friedman_edge_cases():
    perfect = pd.DataFrame([[3.0, 2.0, 1.0]] * 5, columns=list("abc"))
    res = stats.friedman(perfect)
    assert res.chi2 == pytest.approx(10.0) and res.f == math.inf and res.p_f == 0.0 and res.kendall_w == 1.0
    assert res.p_chi2 == pytest.approx(sps.chi2.sf(10.0, 2))
    ties = stats.friedman(pd.DataFrame([[1.0, 1.0, 1.0]] * 4))
    assert ties.p_chi2 == 1.0 and ties.reason
    few = stats.friedman(pd.DataFrame([[1.0, 2.0]]))
    assert math.isnan(few.p_chi2) and "2 datasets" in few.reason
    with pytest.raises(ValueError, match="complete"):
        stats.friedman(pd.DataFrame([[1.0, np.nan], [1.0, 2.0]]))


def test_wilcoxon_holm_matches_scipy_and_statsmodels():
    out = stats.wilcoxon_holm(M, alpha=0.05)
    assert len(out) == 6
    expected_p = []
    for _, row in out.iterrows():
        d = (M[row["a"]] - M[row["b"]]).round(12).to_numpy()
        ref = sps.wilcoxon(d, zero_method="wilcox")
        expected_p.append(ref.pvalue)
        assert row["p"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert row["statistic"] == pytest.approx(ref.statistic)
        assert row["n_nonzero"] == np.count_nonzero(d) and row["median_diff"] == pytest.approx(np.median(d))
    assert out["p_holm"].to_numpy() == pytest.approx(multipletests(expected_p, method="holm")[1])
    assert (out["significant"] == (out["p_holm"] < 0.05)).all()


def test_wilcoxon_all_zero_differences_and_direction():
    m = pd.DataFrame({"a": [0.5, 0.6, 0.7, 0.8, 0.9, 0.4], "b": [0.5, 0.6, 0.7, 0.8, 0.9, 0.4]})
    row = stats.wilcoxon_holm(m).iloc[0]
    assert row["p"] == 1.0 and not row["significant"] and row["n_nonzero"] == 0
    better = pd.DataFrame({"x": np.arange(8.0), "y": np.arange(8.0) + np.arange(1, 9) / 10})
    row = stats.wilcoxon_holm(better).iloc[0]
    assert row["p"] == pytest.approx(2 / 2**8) and row["better"] == "y" and row["median_diff"] < 0


def test_nemenyi_q_and_cd_against_demsar_table():
    # Demšar (2006), Table 5(a) and (b): q_alpha for k = 2..10, printed to 3 decimals (some truncated).
    q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    for k, (a, b) in enumerate(zip(q05, q10, strict=True), start=2):
        assert stats.nemenyi_q(k, 0.05) == pytest.approx(a, abs=1e-3)
        assert stats.nemenyi_q(k, 0.10) == pytest.approx(b, abs=1e-3)
    assert stats.nemenyi_cd(4, 10) == pytest.approx(2.569 * math.sqrt(4 * 5 / 60), abs=1e-3)
    assert math.isnan(stats.nemenyi_cd(1, 10))


def test_win_tie_loss_by_hand_with_scalar_series_and_callable_ropes():
    m = pd.DataFrame({"a": [0.90, 0.80, 0.70, 0.60], "b": [0.85, 0.795, 0.75, 0.60]}, index=list("wxyz"))
    assert stats.win_tie_loss(m, 0.01).iloc[0][["wins", "ties", "losses"]].tolist() == [1, 2, 1]
    assert stats.win_tie_loss(m, 0.0).iloc[0][["wins", "ties", "losses"]].tolist() == [2, 1, 1]
    per_dataset = pd.Series({"w": 0.1, "x": 0.0, "y": 0.0, "z": 0.0})
    assert stats.win_tie_loss(m, per_dataset).iloc[0][["wins", "ties", "losses"]].tolist() == [1, 2, 1]
    assert stats.win_tie_loss(m, lambda d, a, b: 1.0).iloc[0][["wins", "ties", "losses"]].tolist() == [0, 4, 0]


def test_min_attainable_p_is_what_an_exact_wilcoxon_reaches():
    for n in (4, 5, 6, 8):
        res = stats.min_attainable_p(n, k=2)
        extreme = sps.wilcoxon(np.arange(1.0, n + 1)).pvalue  # every difference positive, distinct
        assert res.wilcoxon_p == pytest.approx(extreme) == pytest.approx(2 / 2**n)
    five = stats.min_attainable_p(5, k=4)
    assert five.wilcoxon_p == 0.0625 and five.wilcoxon_p_holm == pytest.approx(6 * 0.0625)
    assert "no pair can be significant" in five.note and "Friedman" not in five.note
    assert "Friedman" in stats.min_attainable_p(4, k=3).note
    assert "no pair can be significant" not in stats.min_attainable_p(10, k=2).note


# ---------------------------------------------------------------- comparisons with the best, skill scores


def _folds(values, n_train=80, n_test=20):
    return {(0, i // 5, i % 5): (float(v), n_train, n_test) for i, v in enumerate(values)}


@pytest.mark.parametrize("greater", [True, False])
def test_versus_best_is_two_sided_corrected_t_with_holm_over_every_pair(greater):
    c = A - 0.05 + np.tile([0.01, -0.01], 5)
    sign = 1 if greater else -1  # as errors, the same numbers negated: the same verdicts
    scores = {"b": _folds(sign * B), "a": _folds(sign * A), "c": _folds(sign * c)}
    vs = stats.versus_best(scores, greater_is_better=greater, alpha=0.05)
    assert vs.best == "a" and list(vs.means) == ["a", "b", "c"] and vs.family == 3
    p = [hand_corrected_t(x, y, 80, 20)[2] for x, y in ((A, B), (A, c), (B, c))]
    p_holm = multipletests(p, method="holm")[1]
    assert [r["model"] for r in vs.rows] == ["b", "c"] and [r["p"] for r in vs.rows] == pytest.approx(p[:2])
    assert [r["p_holm"] for r in vs.rows] == pytest.approx(p_holm[:2])
    assert [r["mean_diff"] for r in vs.rows] == pytest.approx([np.mean(B - A), np.mean(c - A)])
    assert [r["worse"] for r in vs.rows] == [bool(q < 0.05) for q in p_holm[:2]]


def test_versus_best_edge_cases():
    assert stats.versus_best({}).best is None
    tie = stats.versus_best({"z": _folds(A), "y": _folds(A[::-1])})  # equal means: the name breaks the tie
    assert tie.best == "y" and not tie.row("z")["worse"]
    one_fold = stats.versus_best({"a": _folds(A), "b": {(0, 0, 0): (0.1, 80, 20)}})
    row = one_fold.row("b")
    assert math.isnan(row["p"]) and not row["worse"] and one_fold.family == 0 and "at least 2" in row["reason"]
    noise = stats.versus_best({"a": _folds(A), "b": _folds(A + 1e-16)})  # float noise is no difference
    assert noise.row("b")["p"] == 1.0


def test_skill_scores_by_hand_for_both_directions_and_unusable_references():
    raw = pd.DataFrame({"x": [0.9, 2.0, 0.5], "y": [0.7, 4.0, 0.6]}, index=["acc", "rmse", "none"])
    out = stats.skill_scores(raw, {"acc": 0.5, "rmse": 8.0, "none": math.nan}, {"acc": 1.0, "rmse": 0.0, "none": 1.0})
    assert out.loc["acc"].tolist() == pytest.approx([0.8, 0.4])  # (0.9 - 0.5) / (1 - 0.5)
    assert out.loc["rmse"].tolist() == pytest.approx([0.75, 0.5])  # 1 - rmse / dummy rmse
    assert out.loc["none"].isna().all()
    same = stats.skill_scores(raw.loc[["acc"]], {"acc": 1.0}, {"acc": 1.0})  # a reference that is already perfect
    assert same.isna().all().all()
    # A third model does not change the pair's normalised difference (a min-max scaling would).
    more = stats.skill_scores(raw.assign(z=[0.1, 50.0, 0.0]), {"acc": 0.5, "rmse": 8.0}, {"acc": 1.0, "rmse": 0.0})
    assert (more["x"] - more["y"]).loc[["acc", "rmse"]].tolist() == pytest.approx([0.4, 0.25])


def test_nemenyi_matrix_joins_ranks_within_the_critical_difference():
    ranks = pd.Series({"a": 1.2, "b": 2.0, "c": 3.5})
    m = stats.nemenyi_matrix(ranks, cd=1.0)
    assert m.loc["a", "b"] == m.loc["b", "a"] == 1.0 and m.loc["a", "c"] == 0.0 and m.loc["b", "c"] == 0.0
    assert (np.diag(m) == 1.0).all()
