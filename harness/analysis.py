"""Analysis, second part: from the store's fold table to every statistical test (`stats.json`).

Why a layer between the store and `harness.stats`: the tests are only as right as their
inputs. This module decides, once and visibly, which folds pair up (same fold identity
(seed, repeat, fold); a fold that failed for either model is dropped for that pair
only), which way is better (lower-is-better metrics are oriented so that a positive
difference always means the first model is better), what the region of practical
equivalence (rope) is, how failed models enter the across-dataset comparison, and when
there are too few datasets for a test to mean anything. The output is plain JSON (NaN
and infinities become null) so reports and users read the same numbers.

Per dataset: every pair of models on the primary metric (optionally every metric) with
the Nadeau–Bengio corrected t-test (Holm-adjusted across the pairs of that dataset) and
the Bayesian correlated t-test; "not significantly worse than the best" reads the
pairs with the best in that family (`stats.versus_best`, shared with `harness check`).
Across datasets: average ranks, Friedman/Iman–Davenport/Kendall's W and the Nemenyi
critical difference on ranks (unit-free), Wilcoxon–Holm pairs on differences that share
a unit (one bounded metric, or skill scores over the dummy baseline), and win/tie/loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.leaderboard import load_leaderboards
from harness.metrics import BOUNDED_METRICS, CLASSIFICATION, METRICS, PREDICT, PROBA, SCORE
from harness.report.format import dumps, jsonable
from harness.store import FAILED, OK, SKIPPED, Store

UNBOUNDED_METRICS = frozenset(METRICS) - BOUNDED_METRICS

FOLD_ID = ["seed", "repeat", "fold"]
A_BETTER, B_BETTER, NO_DIFFERENCE, NOT_TESTED = "A better", "B better", "no significant difference", "not tested"

DummyScores = Mapping[str, float] | Callable[[str], float | None]

VERSUS_BEST_TEST = (
    "each model against the dataset's best (highest mean): two-sided corrected t-test on their common folds, "
    "Holm over every pair of models of the dataset (the pairs' family); worse = Holm p < alpha and behind"
)


@dataclass
class AnalysisOptions:
    """How the comparisons are made.

    `rope` overrides the rope width per metric (metric units). Default: `default_rope`
    (0.01) for metrics bounded in [0, 1]; for unbounded ones (errors, log loss)
    `default_rope` × the pooled mean |score| of the two models compared (a relative
    1 %). `failures`: "dummy" gives a model that failed on a dataset the dummy
    baseline's score there (a failure is scored as the worst sensible model, not
    ignored); "drop" leaves such models out of the across-dataset comparison.
    `min_datasets`: fewer datasets than this and the across-dataset tests are not run.
    """

    alpha: float = 0.05
    rope: dict[str, float] = field(default_factory=dict)
    failures: str = "dummy"
    min_datasets: int = 5
    all_metrics: bool = False
    default_rope: float = 0.01
    flag_failure_rate: float = 0.10

    def __post_init__(self) -> None:
        if self.failures not in ("dummy", "drop"):
            raise ValueError(f"failures must be 'dummy' or 'drop', got {self.failures!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


# ---------------------------------------------------------------- helpers


def _greater(metric: str, directions: Mapping[str, bool]) -> bool:
    if metric in directions:
        return bool(directions[metric])
    if metric in METRICS:
        return METRICS[metric].greater_is_better
    raise KeyError(f"direction of metric {metric!r} unknown")


def _finite(values: pd.Series) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce").astype(float)
    return out[np.isfinite(out.to_numpy())]


def _rope_rule(metric: str, options: AnalysisOptions, pooled: str = "the pooled fold scores") -> str:
    """The rope rule in words, for the output: users must know what 'equivalent' meant."""
    if metric in options.rope:
        return f"fixed {options.rope[metric]:g} (user setting for {metric})"
    if metric in BOUNDED_METRICS:
        return f"fixed {options.default_rope:g} ({metric} is bounded)"
    return (
        f"{options.default_rope:g} x the mean |{metric}| over {pooled} of the two models compared "
        f"({metric} is unbounded)"
    )


def _rope(metric: str, values: np.ndarray, options: AnalysisOptions) -> float:
    """Rope width in metric units; `values` are the raw scores of both models, pooled."""
    if metric in options.rope:
        return float(options.rope[metric])
    if metric in BOUNDED_METRICS:
        return options.default_rope
    values = values[np.isfinite(values)]
    return options.default_rope * float(np.mean(np.abs(values))) if values.size else math.nan


def to_json(result: Mapping[str, Any], indent: int | None = 2) -> str:
    """The analysis as `stats.json` text (strict JSON: no NaN)."""
    return dumps(result, indent=indent)


# ---------------------------------------------------------------- one dataset


def _fold_ids(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    seed = rows["seed"] if "seed" in rows else pd.Series(0, index=rows.index)
    rows["seed"] = pd.to_numeric(seed, errors="coerce").fillna(-1).astype(int)
    return rows


def _model_status(rows: pd.DataFrame, options: AnalysisOptions) -> dict[str, Any]:
    """Fold counts by status and the failure flag (more than 10 % of non-skipped folds failed)."""
    n_folds = len(rows)
    n_skipped = int((rows["status"] == SKIPPED).sum())
    n_failed = int(rows["status"].isin(FAILED).sum())
    attempted = n_folds - n_skipped
    rate = n_failed / attempted if attempted else math.nan
    return {
        "n_folds": n_folds,
        "n_ok": int((rows["status"] == OK).sum()),
        "n_failed": n_failed,
        "n_skipped": n_skipped,
        "failure_rate": rate,
        "flagged": bool(attempted and rate > options.flag_failure_rate),
        "skipped": attempted == 0,
    }


def _scores(rows: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.DataFrame, int]:
    """Finite metric values of ok folds keyed by fold identity, their sizes, and how many ok folds lack a value."""
    ok = rows[rows["status"] == OK]
    if metric not in ok:
        return pd.Series(dtype=float), pd.DataFrame(columns=["n_train", "n_test"]), len(ok)
    values = pd.to_numeric(ok[metric], errors="coerce").astype(float)
    keep = np.isfinite(values.to_numpy())
    ok = ok[keep]
    index = pd.MultiIndex.from_frame(ok[FOLD_ID])
    series = pd.Series(values[keep].to_numpy(), index=index)
    sizes = pd.DataFrame(
        {
            "n_train": pd.to_numeric(ok["n_train"], errors="coerce").to_numpy(dtype=float),
            "n_test": pd.to_numeric(ok["n_test"], errors="coerce").to_numpy(dtype=float),
        },
        index=index,
    )
    if series.index.has_duplicates:  # the same fold stored twice: average rather than double-count it
        series = series.groupby(level=FOLD_ID).mean()
        sizes = sizes.groupby(level=FOLD_ID).mean()
    return series, sizes, int((~keep).sum())


def _pair(
    a: str, b: str, sa: pd.Series, sb: pd.Series, sizes: pd.DataFrame, metric: str, sign: float, opts: AnalysisOptions
) -> dict[str, Any]:
    """Both tests on the fold identities where both models have a score (positive = A better)."""
    common = sa.index.intersection(sb.index).sort_values()
    xa, xb = sa.loc[common].to_numpy(), sb.loc[common].to_numpy()
    diff = sign * stats.denoise(xa - xb, xa, xb)
    sz = sizes.loc[common]
    rope = _rope(metric, np.concatenate([xa, xb]), opts)
    test = stats.corrected_ttest(diff, sz["n_train"].to_numpy(), sz["n_test"].to_numpy(), opts.alpha)
    if math.isfinite(rope) and len(common) >= 2 and math.isfinite(test.ratio):
        probs = stats.bayes_correlated_ttest(diff, sz["n_train"].to_numpy(), sz["n_test"].to_numpy(), rope)
    else:
        probs = (math.nan, math.nan, math.nan)
    union = sa.index.union(sb.index)
    return {
        "a": a,
        "b": b,
        "n": len(common),
        "n_dropped": int(len(union) - len(common)),
        "mean_a": float(xa.mean()) if xa.size else math.nan,
        "mean_b": float(xb.mean()) if xb.size else math.nan,
        "mean_diff": test.mean,
        "mean_diff_raw": sign * test.mean,
        "std_diff": test.std,
        "t": test.t,
        "df": test.df,
        "p": test.p,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "ratio": test.ratio,
        "reason": test.reason,
        "rope": rope,
        "p_b_better": probs[0],
        "p_rope": probs[1],
        "p_a_better": probs[2],
        "bayes_decision": _bayes_decision(probs, opts.alpha),
    }


def _bayes_decision(probs: tuple[float, float, float], alpha: float) -> str:
    """Posterior decision at probability 1 − alpha, as in Benavoli et al. (2017) and autorank."""
    left, middle, right = probs
    if not all(math.isfinite(p) for p in probs):
        return NOT_TESTED
    if right >= 1 - alpha:
        return A_BETTER
    if left >= 1 - alpha:
        return B_BETTER
    if middle >= 1 - alpha:
        return "practically equivalent"
    return "inconclusive"


def _compare(rows: pd.DataFrame, models: list[str], metric: str, sign: float, opts: AnalysisOptions) -> dict[str, Any]:
    """Every pair on one metric (Holm across this dataset's pairs); the best and those not significantly worse.

    "Not significantly worse than the best" is `stats.versus_best`, the rule `harness
    check` applies to the champion, so the summary and the gate cannot disagree; its Holm
    family is every pair of the dataset, the pairs' own, so the pairs table and that list
    never contradict each other either.
    """
    scores, sizes, missing, folds = {}, [], {}, {}
    for model in models:
        s, sz, miss = _scores(rows[rows["estimator"] == model], metric)
        missing[model] = miss
        if len(s):
            scores[model] = s
            sizes.append(sz)
            aligned = sz.reindex(s.index)
            folds[model] = dict(zip(s.index, zip(s, aligned["n_train"], aligned["n_test"], strict=True), strict=True))
    # n_train/n_test depend on the split only: pool them over models per fold identity.
    size_table = pd.concat(sizes).groupby(level=FOLD_ID).mean() if sizes else pd.DataFrame()
    vs = stats.versus_best(folds, sign > 0, opts.alpha)
    order = list(vs.means)
    pairs = [_pair(a, b, scores[a], scores[b], size_table, metric, sign, opts) for a, b in combinations(order, 2)]
    adjusted = stats.holm([p["p"] for p in pairs])
    for pair, p_holm in zip(pairs, adjusted, strict=True):
        pair["p_holm"] = float(p_holm)
        pair["significant"] = bool(np.isfinite(p_holm) and p_holm < opts.alpha)
        if not np.isfinite(p_holm):
            pair["verdict"] = NOT_TESTED
        elif pair["significant"]:
            pair["verdict"] = A_BETTER if pair["mean_diff"] > 0 else B_BETTER
        else:
            pair["verdict"] = NO_DIFFERENCE
    not_worse = ([vs.best] if vs.best else []) + [r["model"] for r in vs.rows if np.isfinite(r["p"]) and not r["worse"]]
    return {
        "metric": metric,
        "greater_is_better": sign > 0,
        "rope_rule": _rope_rule(metric, opts),
        "means": vs.means,
        "n_scores": {m: len(scores[m]) for m in order},
        "ok_folds_without_value": {m: n for m, n in missing.items() if n},
        "no_score": [m for m in models if m not in scores],
        "best": vs.best,
        "not_significantly_worse_than_best": not_worse,
        "not_tested_against_best": [r["model"] for r in vs.rows if not np.isfinite(r["p"])],
        "versus_best": {"family": vs.family, "test": VERSUS_BEST_TEST, "comparisons": vs.rows},
        "pairs": pairs,
    }


def analyse_dataset(
    rows: pd.DataFrame, metrics: list[str], primary: str, directions: Mapping[str, bool], options: AnalysisOptions
) -> dict[str, Any]:
    """Pairwise comparisons on one dataset, with per-model failure flags."""
    rows = _fold_ids(rows)
    status = {m: _model_status(g, options) for m, g in rows.groupby("estimator", sort=True)}
    models = [m for m, s in status.items() if not s["skipped"]]
    wanted = [primary] + ([m for m in metrics if m != primary] if options.all_metrics else [])
    comparisons = {m: _compare(rows, models, m, 1.0 if _greater(m, directions) else -1.0, options) for m in wanted}
    out = {
        "task": str(rows["task"].iloc[0]),
        "primary": primary,
        "models": status,
        "skipped": [m for m, s in status.items() if s["skipped"]],
        "flagged": [m for m, s in status.items() if s["flagged"]],
        **comparisons[primary],
    }
    if options.all_metrics:
        out["other_metrics"] = {m: c for m, c in comparisons.items() if m != primary}
    return out


# ---------------------------------------------------------------- across datasets


def _cell(rows: pd.DataFrame, metric: str) -> tuple[str, float]:
    """(state, mean) of one model on one dataset: scored, failed, no_value (ok folds, metric missing), skipped."""
    if (rows["status"] == SKIPPED).all():
        return "skipped", math.nan
    values = _finite(rows.loc[rows["status"] == OK, metric]) if metric in rows else pd.Series(dtype=float)
    if len(values):
        return "scored", float(values.mean())
    return ("no_value" if (rows["status"] == OK).any() else "failed"), math.nan


def _dummy_for(dummy_scores: DummyScores | None, dataset: str) -> float:
    if dummy_scores is None:
        return math.nan
    value = dummy_scores(dataset) if callable(dummy_scores) else dummy_scores.get(dataset)
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _across_matrix(
    folds: pd.DataFrame, primary_of: dict[str, str], options: AnalysisOptions, dummy_scores: DummyScores | None
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Raw (natural units) dataset × model matrix after the failure policy, what happened, and notes."""
    datasets = sorted(primary_of)
    models = sorted(folds["estimator"].unique())
    raw = pd.DataFrame(np.nan, index=datasets, columns=models, dtype=float)
    state: dict[str, dict[str, str]] = {m: {} for m in models}
    for (dataset, model), rows in folds.groupby(["dataset", "estimator"], sort=False):
        st, value = _cell(rows, primary_of[dataset])
        state[model][dataset], raw.at[dataset, model] = st, value
    notes, substituted, dropped = [], {m: [] for m in models}, {}
    for model in models:
        for dataset in datasets:
            st = state[model].get(dataset, "absent")
            if st == "scored":
                continue
            if st == "failed" and options.failures == "dummy":
                value = _dummy_for(dummy_scores, dataset)
                if math.isfinite(value):
                    raw.at[dataset, model] = value
                    substituted[model].append(dataset)
                    continue
                dropped[model] = f"failed on {dataset} and no dummy-baseline score is available there"
                break
            dropped[model] = {
                "failed": f"failed on every fold of {dataset} (failures='drop')",
                "skipped": f"not applicable to {dataset} (skipped): it cannot be ranked there",
                "no_value": f"its folds on {dataset} succeeded but gave no {primary_of[dataset]} value",
                "absent": f"not run on {dataset}",
            }[st]
            break
    kept = [m for m in models if m not in dropped]
    for model, why in dropped.items():
        notes.append(f"{model} is left out of the across-dataset comparison: {why}.")
    info = {
        "failures": options.failures,
        "dummy_substituted": {m: d for m, d in substituted.items() if d and m in kept},
        "dropped_models": dropped,
        "cell_state": state,
    }
    return raw[kept], info, notes


def _failure_counts(folds: pd.DataFrame, options: AnalysisOptions) -> dict[str, dict[str, Any]]:
    out = {}
    for model, rows in folds.groupby("estimator", sort=True):
        flagged = [d for d, g in rows.groupby("dataset", sort=True) if _model_status(g, options)["flagged"]]
        out[str(model)] = {
            "failed_folds": int(rows["status"].isin(FAILED).sum()),
            "folds": int((rows["status"] != SKIPPED).sum()),
            "flagged_datasets": flagged,
        }
    return out


def _pair_rope(raw: pd.DataFrame, primary_of: dict[str, str], options: AnalysisOptions) -> Callable[..., float]:
    """Rope per (dataset, pair) for win/tie/loss, in the same rule as the per-dataset tests."""

    def rope(dataset: str, a: str, b: str) -> float:
        metric = primary_of[dataset]
        return _rope(metric, np.array([raw.at[dataset, a], raw.at[dataset, b]]), options)

    return rope


RAW, SKILL = "raw", "skill"


def _perfect(metric: str) -> float:
    """The best attainable value: 1 for the bounded metrics (all greater-is-better), 0 for errors and log loss."""
    if metric in BOUNDED_METRICS:
        return 1.0
    if metric in METRICS and not METRICS[metric].greater_is_better:
        return 0.0
    return math.nan


def _scale(metrics: set[str]) -> str:
    """Raw differences share a unit only for one bounded metric; anything else is compared as skill scores."""
    return RAW if len(metrics) == 1 and next(iter(metrics)) in BOUNDED_METRICS else SKILL


def _scale_text(scale: str, metrics: list[str]) -> str:
    if scale == RAW:
        return f"{metrics[0]} differences (one bounded metric: the same units on every dataset)"
    why = "different primary metrics" if len(metrics) > 1 else f"{metrics[0]} is on each dataset's own scale"
    return (
        "skill scores over the dummy baseline, (score - dummy) / (perfect - dummy) per dataset (0 = dummy, "
        f"1 = perfect; perfect is 1 for bounded metrics, 0 for errors and log loss), because of {why} "
        f"({', '.join(metrics)})"
    )


def _wilcoxon_on(
    datasets: list[str], oriented: pd.DataFrame, skill: pd.DataFrame, primary_of: dict[str, str],
    options: AnalysisOptions,
) -> dict[str, Any]:  # fmt: skip
    """One Wilcoxon–Holm family on `datasets`, on the quantity their metrics allow; not run below min_datasets."""
    metrics = sorted({primary_of[d] for d in datasets})
    scale = _scale(set(metrics))
    table = oriented.loc[datasets] if scale == RAW else skill.loc[datasets]
    usable = [d for d in datasets if table.loc[d].notna().all()]
    left_out = [d for d in datasets if d not in usable]
    out: dict[str, Any] = {"scale": scale, "quantity": _scale_text(scale, metrics), "metrics": metrics,
                           "datasets": usable, "n_datasets": len(usable), "left_out": left_out, "pairs": None,
                           "note": None}  # fmt: skip
    if left_out:
        out["note"] = f"left out (no dummy-baseline score to normalise by): {', '.join(left_out)}"
    if len(usable) < options.min_datasets:
        out["note"] = (out["note"] + "; " if out["note"] else "") + (
            f"not run: {len(usable)} dataset(s), at least {options.min_datasets} needed"
        )
        return out
    out["pairs"] = stats.wilcoxon_holm(table.loc[usable], options.alpha)
    return out


def _wilcoxon_tests(
    raw: pd.DataFrame, oriented: pd.DataFrame, primary_of: dict[str, str], options: AnalysisOptions,
    dummy_scores: DummyScores | None, notes: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Wilcoxon–Holm on comparable quantities only: pooled over every dataset, and per primary metric.

    The signed-rank test ranks the sizes of the differences, so the differences it pools
    must share a unit. The pooled test (the headline, `wilcoxon_holm`) runs on raw
    differences when every dataset uses one bounded metric, and on skill scores over
    the dummy baseline otherwise; with several primary metrics each one also gets its
    own test (`wilcoxon_per_metric`, each its own Holm family). Friedman, the average
    ranks and the critical difference use ranks within datasets, which are unit-free:
    they pool every dataset as they are.
    """
    datasets = list(raw.index)
    used = sorted({primary_of[d] for d in datasets})
    dummy = pd.Series({d: _dummy_for(dummy_scores, d) for d in datasets}, dtype=float)
    perfect = pd.Series({d: _perfect(primary_of[d]) for d in datasets}, dtype=float)
    skill = stats.skill_scores(raw, dummy, perfect)
    pooled = _wilcoxon_on(datasets, oriented, skill, primary_of, options)
    per_metric = {}
    if len(used) > 1:
        for metric in used:
            mine = [d for d in datasets if primary_of[d] == metric]
            per_metric[metric] = _wilcoxon_on(mine, oriented, skill, primary_of, options)
    notes.append(
        f"Wilcoxon signed-rank tests (Holm) compare {pooled['quantity']}. Friedman, the average ranks and the "
        "critical difference use ranks within each dataset, which are unit-free, so they pool every dataset."
    )
    if pooled["note"]:
        notes.append(f"The pooled Wilcoxon test: {pooled['note']}.")
    uses_skill = pooled["scale"] == SKILL or any(t["scale"] == SKILL for t in per_metric.values())
    return {
        "wilcoxon_scale": pooled["scale"],
        "wilcoxon_quantity": pooled["quantity"],
        "wilcoxon_datasets": pooled["datasets"],
        "wilcoxon_holm": pooled["pairs"],
        "wilcoxon_note": pooled["note"],
        "wilcoxon_per_metric": per_metric,
        "skill": {"dummy": dummy, "perfect": perfect, "scores": skill} if uses_skill else None,
    }


def analyse_across(
    folds: pd.DataFrame,
    primary_of: dict[str, str],
    directions: Mapping[str, bool],
    options: AnalysisOptions,
    dummy_scores: DummyScores | None = None,
) -> dict[str, Any]:
    """Ranks and tests over datasets on each dataset's primary metric, oriented higher = better."""
    raw, info, notes = _across_matrix(folds, primary_of, options, dummy_scores)
    signs = pd.Series({d: 1.0 if _greater(primary_of[d], directions) else -1.0 for d in raw.index}, dtype=float)
    oriented = raw.mul(signs, axis=0)
    n, k = oriented.shape
    used = sorted({primary_of[d] for d in raw.index})
    out: dict[str, Any] = {
        "metrics": {d: primary_of[d] for d in raw.index},
        "orientation": "higher is better: lower-is-better metrics are negated",
        "matrix_raw": raw,
        "matrix": oriented,
        "failure_handling": info,
        "failure_counts": _failure_counts(folds, options),
        "n_datasets": n,
        "n_models": k,
        "alpha": options.alpha,
        "average_ranks": stats.average_ranks(oriented).sort_values() if n and k else {},
        "win_tie_loss": stats.win_tie_loss(oriented, _pair_rope(raw, primary_of, options)) if n and k >= 2 else [],
        "win_tie_loss_rope": {m: _rope_rule(m, options, "the dataset means") for m in used},
        "min_attainable_p": stats.min_attainable_p(n, max(k, 2), options.alpha).to_dict(),
        "friedman": None,
        "wilcoxon_scale": None,
        "wilcoxon_quantity": None,
        "wilcoxon_holm": None,
        "wilcoxon_note": None,
        "wilcoxon_per_metric": {},
        "nemenyi_cd": None,
    }
    meaningful = n >= options.min_datasets and k >= 2
    out["meaningful"] = meaningful
    if not meaningful:
        notes.append(
            f"Only {n} dataset(s) and {k} model(s) can be compared (at least {options.min_datasets} datasets and 2 "
            "models are needed): the average ranks are descriptive and no across-dataset test is run. "
            + out["min_attainable_p"]["note"]
        )
    else:
        out["friedman"] = stats.friedman(oriented).to_dict()
        out["nemenyi_cd"] = stats.nemenyi_cd(k, n, options.alpha)
        out.update(_wilcoxon_tests(raw, oriented, primary_of, options, dummy_scores, notes))
        out["wilcoxon_zero_method"] = stats.WILCOXON_ZERO_METHOD
        if info["dummy_substituted"]:
            notes.append("Failed models were given the dummy baseline's score on the datasets listed under failures.")
    out["notes"] = notes
    return out


# ---------------------------------------------------------------- stability over seeds


def stability(folds: pd.DataFrame, primary_of: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    """Seed sensitivity per (dataset, model): std of per-seed means and mean within-seed fold std."""
    folds = _fold_ids(folds)
    if folds["seed"].nunique() < 2:
        return None
    out: dict[str, dict[str, Any]] = {}
    for (dataset, model), rows in folds.groupby(["dataset", "estimator"], sort=True):
        metric = primary_of[dataset]
        ok = rows[rows["status"] == OK]
        if metric not in ok:
            continue
        values = pd.to_numeric(ok[metric], errors="coerce").astype(float)
        ok = ok.assign(_v=values)[np.isfinite(values.to_numpy())]
        if ok.empty:
            continue
        per_seed = ok.groupby("seed")["_v"]
        means, stds = per_seed.mean(), per_seed.std(ddof=1).dropna()
        out.setdefault(str(dataset), {})[str(model)] = {
            "metric": metric,
            "n_seeds": len(means),
            "seed_means": {str(s): float(v) for s, v in means.items()},
            "std_of_seed_means": float(means.std(ddof=1)) if len(means) > 1 else math.nan,
            "mean_within_seed_std": float(stds.mean()) if len(stds) else math.nan,
        }
    return out


# ---------------------------------------------------------------- entry points


def analyse(
    folds: pd.DataFrame,
    metrics: Mapping[str, list[str]],
    primary: Mapping[str, str],
    directions: Mapping[str, bool],
    options: AnalysisOptions | None = None,
    dummy_scores: DummyScores | None = None,
) -> dict[str, Any]:
    """Everything `stats.json` holds, JSON-ready (NaN/inf already None).

    `folds` is `Store.results(keys)` (`load_leaderboards(store).folds`); `metrics`,
    `primary` map task -> names, `directions` metric -> greater_is_better.
    `dummy_scores` maps dataset -> the dummy baseline's primary score (natural units), or
    is a callable dataset -> score; `dummy_scores_from_store` computes it from the stored
    predictions without refitting. With failures="dummy" and no dummy score for a dataset
    where a model failed, that model is dropped and a note says so. The dummy scores are
    also the reference of the skill scores the pooled Wilcoxon test compares when the
    datasets' primary metrics differ; a dataset without one is left out of that test.
    """
    options = options or AnalysisOptions()
    folds = folds[folds["dataset"].notna()]
    per_dataset, primary_of = {}, {}
    for dataset, rows in folds.groupby("dataset", sort=True):
        task = str(rows["task"].iloc[0])
        primary_of[str(dataset)] = primary[task]
        per_dataset[str(dataset)] = analyse_dataset(
            rows, list(metrics.get(task, [])), primary[task], directions, options
        )
    result = {
        "settings": {
            **asdict(options),
            "test_per_dataset": "Nadeau-Bengio corrected resampled t-test, Holm across the pairs of each dataset; "
            "not significantly worse than the best: its pair with the best is not significant (the same family)",
            "bayesian_per_dataset": "Bayesian correlated t-test (Corani & Benavoli 2015)",
            "fold_identity": FOLD_ID,
            "orientation": "mean_diff, CI and probabilities: positive = A better (lower-is-better metrics negated); "
            "mean_diff_raw = A - B in metric units",
        },
        "per_dataset": per_dataset,
        "across": analyse_across(folds, primary_of, directions, options, dummy_scores),
        "stability": stability(folds, primary_of),
    }
    return jsonable(result)


def _prior_response(metric: str, y_train: np.ndarray, n_test: int, classes: np.ndarray | None) -> np.ndarray:
    """What a prior (classification) or mean (regression) predictor returns for `metric`."""
    response = METRICS[metric].response
    if classes is None:
        return np.full(n_test, float(np.mean(y_train)))
    counts = np.array([np.sum(y_train == c) for c in classes], dtype=float)
    prior = counts / counts.sum()
    if response == PREDICT:
        return np.full(n_test, classes[int(np.argmax(prior))])
    proba = np.tile(prior, (n_test, 1))
    if response == SCORE and len(classes) == 2:
        return proba[:, 1]
    if response in (PROBA, SCORE):
        return proba
    raise ValueError(f"unknown response {response!r}")


def dummy_scores_from_store(store: Store, folds: pd.DataFrame, primary: Mapping[str, str]) -> dict[str, float]:
    """Each dataset's dummy-baseline primary score, from stored out-of-fold labels, no refitting.

    Per fold identity, the dummy (class prior for classification, mean for regression, as
    scikit-learn's DummyClassifier/DummyRegressor) is fitted on the stored y_true of every
    other row of the dataset: the union of all stored test rows minus this fold's test
    rows, which for k-fold is exactly the other folds' test rows of the same repeat, i.e.
    the fold's training part. Scored with the harness metric, averaged over fold identities.
    """
    out = {}
    folds = _fold_ids(folds)
    for dataset, rows in folds[folds["status"] == OK].groupby("dataset", sort=True):
        task = str(rows["task"].iloc[0])
        metric = primary[task]
        tests: list[tuple[np.ndarray, np.ndarray]] = []
        for _, group in rows.groupby(FOLD_ID, sort=True):
            for key in group["key"]:
                pred = store.predictions(key)
                if pred is not None and pred["test_index"] is not None and pred["y_true"] is not None:
                    tests.append((np.asarray(pred["test_index"]), np.asarray(pred["y_true"])))
                    break
        if not tests:
            continue
        y_all = pd.Series(np.concatenate([y for _, y in tests]), index=np.concatenate([i for i, _ in tests]))
        y_all = y_all[~y_all.index.duplicated()]
        classes = np.unique(y_all.to_numpy()) if task == CLASSIFICATION else None
        scores = []
        for index, y_test in tests:
            y_train = y_all[~y_all.index.isin(index)].to_numpy()
            if y_train.size == 0:
                continue
            response = _prior_response(metric, y_train, len(y_test), classes)
            try:
                value = METRICS[metric].compute(y_test, response, classes)
            except ValueError:  # e.g. roc_auc on a fold with one class
                continue
            if math.isfinite(value):
                scores.append(value)
        if scores:
            out[str(dataset)] = float(np.mean(scores))
    return out


def analyse_store(store: Store, options: AnalysisOptions | None = None) -> dict[str, Any]:
    """`analyse` on the latest suite version in `store`, with dummy scores from its predictions."""
    lb = load_leaderboards(store)
    options = options or AnalysisOptions()
    # The dummy scores stand in for failed models (failures="dummy") and are the reference of the skill scores
    # that make different metrics comparable in the Wilcoxon test, so they are computed under either policy.
    dummy = dummy_scores_from_store(store, lb.folds, lb.primary)
    return analyse(lb.folds, lb.metrics, lb.primary, lb.directions, options, dummy)
