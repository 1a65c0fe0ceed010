"""Statistics for comparing models: pure functions on score arrays, no store, no IO.

Why a module of its own: these numbers get cited, so each test is written once, from
its paper, with its edge cases decided explicitly (zero variance, too few folds, ties,
perfect agreement) instead of whatever a library happens to return.

On one dataset, cross-validation folds share training rows, so fold scores are
correlated and the plain paired t-test is far too liberal. We use the Nadeau–Bengio
corrected resampled t-test (frequentist) and the Bayesian correlated t-test of Corani &
Benavoli (2015), which carries the same correction into a Student posterior.

Across datasets, scores are not commensurable, so we follow Demšar (2006) and Benavoli
et al. (2016): average ranks, the Friedman test with the Iman–Davenport F, Kendall's W,
the Nemenyi critical difference for a diagram, and pairwise Wilcoxon signed-rank tests
with Holm's correction for the verdicts. Ranks are unit-free, but the Wilcoxon test also
ranks the sizes of the differences, so it may only pool differences in one unit: one
bounded metric, or skill scores over the dummy baseline (`skill_scores`). Matrices are
ORIENTED: higher is better (the caller negates lower-is-better metrics such as rmse or
log_loss).

Nothing here passes a NaN to a library: missing values are dropped (one-dataset tests)
or refused (across-dataset matrices must be complete).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

# Scores equal up to float noise (0.99130434782 vs ...783) are ties, not wins: the
# leaderboard rounds to 12 decimals for the same reason.
TIE_DECIMALS = 12

# Wilcoxon's own treatment of zero differences (they are discarded), as scipy's default
# and autorank use. Demšar (2006) suggests splitting zeros between the rank sums
# ("zsplit"), but discarding them keeps scipy on its exact null distribution (or an
# exact enumeration when |d| ties remain) for the small N typical of benchmarks.
WILCOXON_ZERO_METHOD = "wilcox"


# ---------------------------------------------------------------- one dataset, paired folds


@dataclass(frozen=True)
class CorrectedTTest:
    """Nadeau–Bengio corrected resampled t-test over J paired fold differences.

    `mean` and the CI are in the units of `diff` (positive means A better), `std` is the
    sample std of the differences (ddof=1), `se` the corrected standard error,
    `ratio` = mean n_test / mean n_train, `reason` says why `p` is NaN or degenerate.
    """

    mean: float
    std: float
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    n: int
    ratio: float
    se: float = math.nan
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired_inputs(
    diff: Sequence[float] | np.ndarray, n_train: Any, n_test: Any
) -> tuple[np.ndarray, float, float, int]:
    """Finite differences with their mean train/test sizes; NaN differences are dropped with their sizes."""
    d = np.asarray(diff, dtype=float).ravel()
    keep = np.isfinite(d)
    sizes = []
    for value in (n_train, n_test):
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            sizes.append(float(arr))
            continue
        arr = arr.ravel()
        if arr.shape != d.shape:
            raise ValueError(f"per-fold sizes have {arr.size} entries for {d.size} differences")
        arr = arr[keep]
        arr = arr[np.isfinite(arr)]
        sizes.append(float(arr.mean()) if arr.size else math.nan)
    return d[keep], sizes[0], sizes[1], int(keep.sum())


def _ratio(n_train: float, n_test: float) -> float:
    """n_test/n_train, NaN when a size is unknown: without it the correction cannot be made."""
    if not (np.isfinite(n_train) and np.isfinite(n_test)):
        return math.nan
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive (got {n_train}, {n_test})")
    return n_test / n_train


def _variance(d: np.ndarray) -> float:
    """Sample variance, exactly 0 when every difference is the same float (not 1e-35 noise)."""
    if d.size < 2 or np.all(d == d[0]):
        return 0.0
    return float(np.var(d, ddof=1))


def corrected_ttest(
    diff: Sequence[float] | np.ndarray, n_train: Any, n_test: Any, alpha: float = 0.05
) -> CorrectedTTest:
    """Two-sided Nadeau–Bengio corrected resampled t-test; never the plain paired t.

    t = d̄ / sqrt((1/J + n_test/n_train) · s²) with df = J − 1. The n_test/n_train term
    inflates the variance for the overlap between training sets of different folds
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for repeated k-fold, where J = r·k).
    `n_train`/`n_test` are scalars or per-fold arrays (their means are used).
    """
    d, n_train_m, n_test_m, n = _paired_inputs(diff, n_train, n_test)
    ratio = _ratio(n_train_m, n_test_m)
    mean = float(d.mean()) if n else math.nan
    nan = math.nan
    if n < 2:
        return CorrectedTTest(mean, nan, nan, nan, nan, nan, nan, n, ratio, nan,
                              f"need at least 2 paired folds for a t-test, got {n}")  # fmt: skip
    if math.isnan(ratio):
        return CorrectedTTest(mean, float(np.std(d, ddof=1)), nan, n - 1, nan, nan, nan, n, ratio, nan,
                              "train/test sizes unknown: the Nadeau-Bengio correction cannot be made")  # fmt: skip
    var = _variance(d)
    std, df = math.sqrt(var), n - 1
    se = math.sqrt((1.0 / n + ratio) * var)
    if var == 0.0:
        if mean == 0.0:
            return CorrectedTTest(0.0, 0.0, 0.0, df, 1.0, 0.0, 0.0, n, ratio, 0.0, "all differences are exactly 0")
        t = math.copysign(math.inf, mean)
        return CorrectedTTest(mean, 0.0, t, df, 0.0, mean, mean, n, ratio, 0.0,
                              "all differences are equal and non-zero: zero variance, p = 0")  # fmt: skip
    t = mean / se
    p = float(2.0 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(1.0 - alpha / 2.0, df)) * se
    return CorrectedTTest(mean, std, t, df, p, mean - half, mean + half, n, ratio, se, None)


def bayes_correlated_ttest(
    diff: Sequence[float] | np.ndarray, n_train: Any, n_test: Any, rope: float
) -> tuple[float, float, float]:
    """Posterior probabilities (B better, practically equivalent, A better) for diff = A − B.

    Corani & Benavoli (2015): with a non-informative prior, the mean difference has a
    Student posterior, df = J − 1, loc = d̄, scale = sqrt((1/J + ρ/(1−ρ)) s²), where
    ρ/(1−ρ) = n_test/n_train is the Nadeau–Bengio correlation term. Equals
    `baycomp.two_on_single(b_scores, a_scores, rope, runs)`: baycomp takes y − x, so its
    left/right are mirrored when called as (a, b). Zero variance is a point mass at d̄.
    """
    if rope < 0:
        raise ValueError("rope must be >= 0")
    d, n_train_m, n_test_m, n = _paired_inputs(diff, n_train, n_test)
    ratio = _ratio(n_train_m, n_test_m)
    if n < 2 or math.isnan(ratio):
        return (math.nan, math.nan, math.nan)
    mean, var = float(d.mean()), _variance(d)
    if var == 0.0:
        left, right = float(mean < -rope), float(mean > rope)
    else:
        scale = math.sqrt((1.0 / n + ratio) * var)
        left = float(sps.t.cdf(-rope, n - 1, loc=mean, scale=scale))
        right = float(sps.t.sf(rope, n - 1, loc=mean, scale=scale))
    return (left, max(0.0, 1.0 - left - right), right)


def denoise(diff: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Differences within float noise of the scores (1e-12 relative) become exact zeros.

    Otherwise two models with the same predictions but scores summed in a different order
    would get a random t statistic from a 1e-17 'variance'.
    """
    scale = np.maximum(1.0, np.maximum(np.abs(xa), np.abs(xb)))
    return np.where(np.abs(diff) <= 1e-12 * scale, 0.0, diff)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values; NaNs stay NaN and are not counted in the family."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


# fold identity -> (score in natural units, n_train, n_test): one model's usable folds on one dataset.
FoldScores = Mapping[Hashable, tuple[float, float, float]]


@dataclass(frozen=True)
class VersusBest:
    """The best model of a dataset and every other model tested against it.

    `means` are natural-unit means, best first, then by oriented mean. Each row of
    `rows` is one other model: `mean_diff` is model − best on the common folds, oriented
    (negative: behind the best), `p` the two-sided corrected t-test, `p_holm` Holm over
    the `family` pairs of models that could be tested, `worse` the verdict, `reason` why
    a comparison was not tested (then `p` is NaN and `worse` False).
    """

    best: str | None
    means: dict[str, float]
    rows: list[dict[str, Any]]
    family: int

    def row(self, model: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["model"] == model), None)


def _fold_order(key: Hashable) -> Any:
    """Sort key of a fold identity; a missing seed (None) sorts first instead of breaking the sort."""
    if isinstance(key, tuple):
        return tuple(-1 if v is None else v for v in key)
    return key


def versus_best(scores: Mapping[str, FoldScores], greater_is_better: bool = True, alpha: float = 0.05) -> VersusBest:
    """Is each model significantly worse than the dataset's best? The one rule the summary and `harness check` share.

    The best is the highest oriented mean (means equal to TIE_DECIMALS tie, broken by
    name). Every pair of models is tested on its common folds with the two-sided
    Nadeau–Bengio corrected t-test (two-sided: the best is picked after seeing the means,
    so the direction is the data's, and a one-sided test in the observed direction would
    double the false-alarm rate) and Holm-adjusted over all k(k − 1)/2 pairs: the family
    of the per-dataset pairs table, so that "not significantly worse than the best" and
    the list of significant pairs are statements of one family and never contradict each
    other. A model is worse when its pair with the best has Holm p < alpha and it is
    behind. Train and test sizes are pooled over models per fold (they depend on the
    split alone).
    """
    sign = 1.0 if greater_is_better else -1.0
    keys = {m: sorted(s, key=_fold_order) for m, s in scores.items() if s}
    raw = {m: float(np.mean([scores[m][k][0] for k in keys[m]])) for m in keys}
    order = sorted(raw, key=lambda m: (-sign * round(raw[m], TIE_DECIMALS), m))
    if not order:
        return VersusBest(None, {}, [], 0)
    sizes = _pooled_sizes(scores)
    rows = []
    for a, b in combinations(order, 2):
        common = [k for k in keys[a] if k in scores[b]]
        xa = np.array([scores[a][k][0] for k in common], dtype=float)
        xb = np.array([scores[b][k][0] for k in common], dtype=float)
        diff = sign * denoise(xb - xa, xb, xa)  # b − a, oriented: negative = b behind a
        n_train = np.array([sizes[k][0] for k in common], dtype=float)
        n_test = np.array([sizes[k][1] for k in common], dtype=float)
        test = corrected_ttest(diff, n_train, n_test, alpha)
        rows.append({"model": b, "against": a, "n": len(common), "mean_diff": test.mean, "t": test.t,
                     "df": test.df, "p": test.p, "reason": test.reason if math.isnan(test.p) else None})  # fmt: skip
    adjusted = holm([r["p"] for r in rows])
    for r, p_holm in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(p_holm)
        r["worse"] = bool(np.isfinite(p_holm) and p_holm < alpha and r["mean_diff"] < 0)
    family = int(np.isfinite(adjusted).sum())
    best = order[0]
    versus = [{k: v for k, v in r.items() if k != "against"} for r in rows if r["against"] == best]
    return VersusBest(best, {m: raw[m] for m in order}, versus, family)


def _pooled_sizes(scores: Mapping[str, FoldScores]) -> dict[Hashable, tuple[float, float]]:
    """Mean (n_train, n_test) per fold identity over the models that scored it (NaN sizes ignored)."""
    gathered: dict[Hashable, list[tuple[float, float]]] = {}
    for folds in scores.values():
        for key, (_, n_train, n_test) in folds.items():
            gathered.setdefault(key, []).append((n_train, n_test))
    out = {}
    for key, values in gathered.items():
        arr = np.array(values, dtype=float)
        with np.errstate(all="ignore"):
            out[key] = tuple(float(np.nanmean(col)) if np.isfinite(col).any() else math.nan for col in arr.T)
    return out


# ---------------------------------------------------------------- across datasets


def _matrix(matrix: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    """A complete, de-noised dataset × model frame; NaN is refused rather than ranked."""
    frame = matrix.copy() if isinstance(matrix, pd.DataFrame) else pd.DataFrame(np.asarray(matrix, dtype=float))
    frame = frame.astype(float)
    if frame.isna().to_numpy().any() or not np.isfinite(frame.to_numpy()).all():
        raise ValueError("the score matrix must be complete and finite (handle failures before ranking)")
    return frame.round(TIE_DECIMALS)


def average_ranks(matrix: pd.DataFrame | np.ndarray) -> pd.Series:
    """Mean rank of each model over datasets: 1 = best (highest oriented score), ties averaged."""
    frame = _matrix(matrix)
    if frame.empty:
        return pd.Series(dtype=float)
    return frame.rank(axis=1, ascending=False, method="average").mean(axis=0)


@dataclass(frozen=True)
class Friedman:
    """Friedman χ² (tie-corrected as scipy), Iman–Davenport F and Kendall's W over N datasets, k models."""

    chi2: float
    p_chi2: float
    f: float
    df1: float
    df2: float
    p_f: float
    kendall_w: float
    n: int
    k: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def friedman(matrix: pd.DataFrame | np.ndarray) -> Friedman:
    """Friedman test on ranks within datasets, with Iman & Davenport's (1980) less conservative F.

    χ² = (12/(N k (k+1)) Σ_j R_j² − 3N(k+1)) / C with C the tie correction of
    scipy.stats.friedmanchisquare (computed here so k = 2 works too, which scipy refuses).
    F = (N−1)χ² / (N(k−1) − χ²) on (k−1, (k−1)(N−1)) df; W = χ² / (N(k−1)).
    """
    frame = _matrix(matrix)
    n, k = frame.shape
    nan = math.nan
    if k < 2 or n < 2:
        reason = f"need at least 2 models and 2 datasets (got k={k}, N={n})"
        return Friedman(nan, nan, nan, nan, nan, nan, nan, n, k, reason)
    ranks = frame.rank(axis=1, method="average").to_numpy()
    ties = 0.0
    for row in frame.to_numpy():
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts * (counts**2 - 1)))
    c = 1.0 - ties / (k * (k * k - 1) * n)
    df1, df2 = k - 1, (k - 1) * (n - 1)
    if c <= 0.0:
        return Friedman(0.0, 1.0, 0.0, df1, df2, 1.0, 0.0, n, k, "every model ties on every dataset")
    ssbn = float(np.sum(ranks.sum(axis=0) ** 2))
    chi2 = (12.0 / (n * k * (k + 1)) * ssbn - 3.0 * n * (k + 1)) / c
    chi2 = max(chi2, 0.0)
    p_chi2 = float(sps.chi2.sf(chi2, df1))
    top = n * (k - 1)
    w = min(chi2 / top, 1.0)
    if math.isclose(chi2, top, rel_tol=1e-12) or chi2 >= top:
        return Friedman(float(top), p_chi2, math.inf, df1, df2, 0.0, 1.0, n, k,
                        "perfect agreement: every dataset ranks the models identically (F = inf)")  # fmt: skip
    f = (n - 1) * chi2 / (top - chi2)
    return Friedman(float(chi2), p_chi2, float(f), df1, df2, float(sps.f.sf(f, df1, df2)), float(w), n, k, None)


def wilcoxon_holm(matrix: pd.DataFrame | np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank test for every pair of models over datasets, Holm-adjusted.

    Benavoli, Corani & Mangili (2016) recommend this over mean-rank post-hoc tests, whose
    verdict on A vs B depends on the other models in the comparison. Zero differences
    are discarded (`WILCOXON_ZERO_METHOD`); a pair with no non-zero difference gets p = 1.
    `median_diff` is the median of a − b (positive: a better); `n` the datasets,
    `n_nonzero` the differences the test used.
    """
    frame = _matrix(matrix)
    records = []
    for a, b in combinations(frame.columns, 2):
        d = (frame[a] - frame[b]).round(TIE_DECIMALS).to_numpy()
        nonzero = int(np.count_nonzero(d))
        if nonzero == 0:
            stat, p = 0.0, 1.0
        else:
            # Zeros discarded up front: the same as zero_method="wilcox", and scipy then uses its exact
            # distribution (or exact enumeration when |d| ties) instead of a permutation fallback.
            res = sps.wilcoxon(d[d != 0], zero_method=WILCOXON_ZERO_METHOD, alternative="two-sided")
            stat, p = float(res.statistic), float(res.pvalue)
        records.append({"a": a, "b": b, "n": int(d.size), "n_nonzero": nonzero, "statistic": stat, "p": p,
                        "median_diff": float(np.median(d)) if d.size else math.nan,
                        "signed_rank_sum": _signed_rank_sum(d)})  # fmt: skip
    columns = ["a", "b", "n", "n_nonzero", "statistic", "p", "median_diff", "signed_rank_sum"]
    out = pd.DataFrame(records, columns=columns)
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else np.array([], dtype=float)
    out["significant"] = out["p_holm"] < alpha
    # The direction of a significant pair is the sign of R+ − R− (what the test measured), not of the median.
    direction = out.pop("signed_rank_sum")
    better = np.where(direction > 0, out["a"], np.where(direction < 0, out["b"], None))
    out["better"] = np.where(out["significant"], better, None)
    return out[["a", "b", "n", "n_nonzero", "statistic", "p", "p_holm", "significant", "median_diff", "better"]]


def skill_scores(
    raw: pd.DataFrame, reference: Mapping[Any, float] | pd.Series, perfect: Mapping[Any, float] | pd.Series
) -> pd.DataFrame:
    """Per dataset (row), (score − reference) / (perfect − reference): 0 = the reference model, 1 = a perfect score.

    The skill score of forecast verification, with the dummy baseline as the reference:
    unit-free, higher is better whatever the metric's direction (an error's skill is
    1 − error / dummy error), and, unlike a min–max scaling over the models compared, a
    pair's normalised difference does not change when another model joins the
    comparison. So differences of different metrics (accuracy, r2) or of one metric on
    different scales (rmse) become commensurable for the Wilcoxon test. A row whose
    reference is missing, not finite or equal to the perfect score is NaN (the caller
    leaves that dataset out).
    """
    ref = pd.Series(reference, dtype=float).reindex(raw.index)
    top = pd.Series(perfect, dtype=float).reindex(raw.index)
    span = (top - ref).where(lambda x: np.isfinite(x) & (x != 0))
    return raw.astype(float).sub(ref, axis=0).div(span, axis=0)


def _signed_rank_sum(d: np.ndarray) -> float:
    """R+ − R− over the non-zero differences (average ranks of |d|)."""
    nz = d[d != 0]
    if nz.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(nz))
    return float(np.sum(np.sign(nz) * ranks))


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Demšar's q_α: the studentized range quantile with infinite df divided by √2."""
    if k < 2:
        return math.nan
    return float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks, q_α·sqrt(k(k+1)/(6N)) (Demšar 2006, eq. 2)."""
    if k < 2 or n < 1:
        return math.nan
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def nemenyi_matrix(ranks: pd.Series, cd: float) -> pd.DataFrame:
    """Demšar's (2006) diagram rule as a 0/1 'p-value' matrix: 1 where two average ranks differ by at most the CD.

    The bars of a critical-difference diagram when no Wilcoxon test could be run: ranks
    are unit-free, so this needs neither a shared unit nor a reference score.
    """
    r = ranks.to_numpy(dtype=float)
    joined = np.abs(r[:, None] - r[None, :]) <= cd
    return pd.DataFrame(joined.astype(float), index=ranks.index, columns=ranks.index)


RopeSpec = float | Mapping[Any, float] | pd.Series | Callable[[Any, Any, Any], float]


def _rope_for(rope: RopeSpec, dataset: Any, a: Any, b: Any) -> float:
    if isinstance(rope, pd.Series | Mapping):
        return float(rope[dataset])
    if callable(rope):
        return float(rope(dataset, a, b))
    return float(rope)


def win_tie_loss(matrix: pd.DataFrame | np.ndarray, rope: RopeSpec = 0.0) -> pd.DataFrame:
    """Per pair, datasets where a beats b by more than the rope, ties within ±rope, and losses.

    `rope` is one width, one per dataset (Series/mapping by row label), or a callable
    (dataset, a, b) -> width when it depends on the pair (relative ropes).
    """
    frame = _matrix(matrix)
    records = []
    for a, b in combinations(frame.columns, 2):
        wins = ties = losses = 0
        for dataset in frame.index:
            diff = round(float(frame.at[dataset, a] - frame.at[dataset, b]), TIE_DECIMALS)
            width = _rope_for(rope, dataset, a, b)
            if abs(diff) <= width:
                ties += 1
            elif diff > 0:
                wins += 1
            else:
                losses += 1
        records.append({"a": a, "b": b, "wins": wins, "ties": ties, "losses": losses})
    return pd.DataFrame(records, columns=["a", "b", "wins", "ties", "losses"])


@dataclass(frozen=True)
class MinAttainable:
    """The smallest p-values the across-dataset tests can produce with N datasets."""

    n: int
    k: int
    wilcoxon_p: float
    wilcoxon_p_holm: float
    friedman_p_chi2: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def min_attainable_p(n: int, k: int = 2, alpha: float = 0.05) -> MinAttainable:
    """Why few datasets cannot give a significant verdict, as numbers and a sentence.

    The exact two-sided Wilcoxon p is at least 2/2^N (all N differences of one sign), so
    N ≤ 5 can never reach 0.05; with Holm over m = k(k−1)/2 pairs the smallest adjusted
    p is min(1, m·2/2^N). The Friedman χ² approximation reaches its minimum at perfect
    agreement (χ² = N(k−1)), and is unreliable for small N anyway (Demšar 2006).
    """
    m = k * (k - 1) // 2
    w = min(1.0, 2.0 / 2.0**n) if n >= 1 else math.nan
    w_holm = min(1.0, max(m, 1) * w) if n >= 1 else math.nan
    f = float(sps.chi2.sf(n * (k - 1), k - 1)) if n >= 1 and k >= 2 else math.nan
    parts = []
    if n >= 1:
        parts.append(
            f"With N={n} datasets the smallest two-sided Wilcoxon p-value is 2/2^{n} = {w:.4g}"
            + (f" (Holm over {m} pairs: {w_holm:.4g})" if m > 1 else "")
            + (f", so no pair can be significant at alpha={alpha:g}." if w_holm >= alpha else ".")
        )
    if n < 5:
        parts.append(
            f"The Friedman test's chi-square approximation is unreliable with N={n} < 5 datasets "
            "(Demšar 2006 asks for N > 10 and k > 5; use exact tables below that); read the ranks as descriptive."
        )
    return MinAttainable(n, k, w, w_holm, f, " ".join(parts))
