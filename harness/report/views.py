"""What report.html shows, computed from the read model: plain objects, no formatting.

Why this module: the page must only format (issue 15). Every number it derives from the
fold rows or the analysis (counts, failure shares, Pareto fronts, robustness means, tuning
summaries, SHAP importances on common rows, fold labels) is computed here, from
`ReportData` alone, so the same values can be tested, or shown elsewhere, without HTML.

Each function is asked for one dataset (or one section) when that section is built: a
computation that fails then costs the page that one section, not the whole report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from harness.explain import Explanation
from harness.report.context import FoldExplanation, ReportData
from harness.store import FAILED, OK

# ---------------------------------------------------------------- counts and leaderboards


@dataclass
class FoldCounts:
    """How many datasets, models and fold results a run has, by outcome."""

    datasets: int
    estimators: int
    folds: int
    ok: int
    failed: int
    skipped: int


def fold_counts(data: ReportData) -> FoldCounts:
    folds = data.folds
    counts = folds["status"].value_counts().to_dict()
    return FoldCounts(
        datasets=len(data.datasets),
        estimators=folds["estimator"].nunique(),
        folds=len(folds),
        ok=counts.get(OK, 0),
        failed=sum(counts.get(s, 0) for s in FAILED),
        skipped=counts.get("skipped", 0),
    )


def ran(board: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard's rows of the estimators that ran (not skipped on every fold)."""
    return board[board["n_skipped"] < board["folds"]]


def leaderboard_rows(data: ReportData, ds: str) -> list[dict[str, Any]]:
    """The rows of `ds`'s leaderboard that ran, each with `n_failed` and `failed_share` (None: nothing attempted)."""
    rows = []
    for rec in ran(data.boards.per_dataset[ds]).to_dict("records"):
        failed = sum(rec[f"n_{s}"] for s in FAILED)
        attempted = rec["folds"] - rec["n_skipped"]
        rows.append(rec | {"n_failed": failed, "failed_share": failed / attempted if attempted else None})
    return rows


def skipped_estimators(data: ReportData, ds: str) -> list[dict[str, Any]]:
    """The rows of `ds`'s leaderboard of estimators skipped on every fold (with `skip_reason`)."""
    full = data.boards.per_dataset[ds]
    return full[full["n_skipped"] == full["folds"]].to_dict("records")


def failure_groups(data: ReportData) -> list[tuple[str, str, str, int, str]]:
    """Failed folds grouped by (dataset, estimator, status, identical error): (..., count, error)."""
    folds = data.folds
    failed = folds[folds["status"].isin(FAILED)]
    if failed.empty:
        return []
    groups = failed.groupby(["dataset", "estimator", "status", "error"], sort=True, dropna=False).size()
    return [(ds, est, status, n, "" if not isinstance(err, str) else err) for (ds, est, status, err), n in
            groups.items()]  # fmt: skip


def wall_seconds(run: dict[str, Any]) -> float | None:
    """The latest run's wall time, None while it has no finish time."""
    started, finished = run.get("started"), run.get("finished")
    return finished - started if started is not None and finished is not None else None


# ---------------------------------------------------------------- ranks, scores and cost


def wilcoxon_matrix(pairs: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """Symmetric Holm-adjusted p-value matrix (1 on the diagonal) for the CD diagram."""
    out = pd.DataFrame(1.0, index=names, columns=names)
    for p in pairs:
        if p["a"] in out.index and p["b"] in out.index:
            value = p["p_holm"] if p["p_holm"] is not None else 1.0
            out.loc[p["a"], p["b"]] = out.loc[p["b"], p["a"]] = value
    return out


@dataclass
class ScoresView:
    """One dataset's fold scores per model, and mean score against mean fit (+ tuning) time."""

    primary: str
    greater: bool
    scores: dict[str, np.ndarray]  # model -> primary score of each ok fold
    points: pd.DataFrame  # model, score (mean), fit_time (mean fit + tuning time per fold)
    front: list[str] | None  # models on the Pareto front; None when no model has both a score and a time


def pareto_front(points: pd.DataFrame, greater: bool) -> list[str]:
    """Models no other model beats on both score and fit time (lower time, better score)."""
    front, best = [], -math.inf
    clean = points.dropna(subset=["score", "fit_time"])
    for rec in clean.sort_values(["fit_time", "score"], ascending=[True, not greater]).to_dict("records"):
        oriented = rec["score"] if greater else -rec["score"]
        if oriented > best:
            front.append(rec["model"])
            best = oriented
    return front


def scores_view(data: ReportData, ds: str) -> ScoresView:
    primary = data.primary(ds)
    greater = data.direction(primary)
    board = ran(data.boards.per_dataset[ds])
    folds = data.folds
    rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)]
    scores = {
        m: pd.to_numeric(rows.loc[rows["estimator"] == m, primary], errors="coerce").to_numpy(dtype=float)
        if primary in rows
        else np.array([])
        for m in board["estimator"]
    }
    # a tuned model's cost includes its tuning: the search is part of what it takes to get that score
    cost = board["fit_time"] + board["tune_time"].fillna(0.0)
    points = pd.DataFrame({"model": board["estimator"], "score": board[f"{primary}_mean"], "fit_time": cost})
    points = points.reset_index(drop=True)
    front = pareto_front(points, greater) if points.dropna().shape[0] else None
    return ScoresView(primary, greater, scores, points, front)


# ---------------------------------------------------------------- per-fold extras: tuning, learning curves


def fold_extras(data: ReportData, key: str) -> dict[str, dict[str, list[tuple[str, Any]]]]:
    """dataset -> estimator -> [(fold label, extra[key])] for ok folds that carry `key`.

    The label names the fold ("fold 2", "r1 f2"), and its seed when the run has several.
    """
    out: dict[str, dict[str, list[tuple[str, Any]]]] = {}
    folds = data.folds
    multi_seed = "seed" in folds and folds["seed"].nunique() > 1
    for rec in folds[folds["status"] == OK].to_dict("records"):
        extra = rec.get("extra")
        if isinstance(extra, dict) and extra.get(key) is not None:
            label = f"fold {rec['fold']}" if rec["repeat"] == 0 else f"r{rec['repeat']} f{rec['fold']}"
            if multi_seed:
                label = f"seed {rec['seed']} {label}"
            out.setdefault(str(rec["dataset"]), {}).setdefault(str(rec["estimator"]), []).append((label, extra[key]))
    return out


@dataclass
class TuningView:
    """One tuned estimator on one dataset: its inner-CV metric and each outer fold's study."""

    dataset: str
    estimator: str
    metric: str
    greater: bool
    mode: str
    studies: list[tuple[str, dict[str, Any]]]  # (fold label, the fold's tuning summary)
    histories: dict[str, list[dict]]  # fold label -> trials
    importances: pd.DataFrame  # parameter -> mean, std across folds (largest mean first); empty without any


def tuning_views(data: ReportData) -> list[TuningView]:
    """Every tuned (dataset, estimator), in the report's dataset order."""
    tuned = fold_extras(data, "tuning")
    views = []
    for ds in data.datasets:
        for est, items in tuned.get(ds, {}).items():
            spec = data.estimator_spec(est)
            task = data.boards.datasets.get(ds, {}).get("task", "")
            metric = (spec.get("tune") or {}).get("metric") or data.boards.primary.get(task, "")
            imp = pd.DataFrame({label: t.get("importances") or {} for label, t in items})
            if not imp.empty:
                imp = pd.DataFrame({"mean": imp.mean(axis=1), "std": imp.std(axis=1, ddof=1)})
                imp = imp.sort_values("mean", ascending=False)
            views.append(
                TuningView(
                    ds,
                    est,
                    metric,
                    data.direction(metric),
                    items[0][1].get("mode", "nested"),
                    items,
                    {label: t.get("history") or [] for label, t in items},
                    imp,
                )
            )
    return views


def learning_curves(data: ReportData) -> list[tuple[str, str, dict[str, list[dict]]]]:
    """(dataset, estimator, fold label -> epochs) for every MLP that stored a non-empty history."""
    histories = fold_extras(data, "history")
    out = []
    for ds in data.datasets:
        for est, items in histories.get(ds, {}).items():
            curves = {label: h for label, h in items if isinstance(h, list) and h}
            if curves:
                out.append((ds, est, curves))
    return out


# ---------------------------------------------------------------- robustness


def robustness_curves(data: ReportData, ds: str) -> tuple[dict[str, pd.Series], str]:
    """Per model, mean primary score over folds at each noise level (0 = the clean score of the same folds)."""
    primary = data.primary(ds)
    folds = data.folds
    rows = folds[(folds["dataset"] == ds) & (folds["status"] == OK)]
    curves: dict[str, pd.Series] = {}
    for est, g in rows.groupby("estimator", sort=False):
        per_level: dict[float, list[float]] = {}
        for rec in g.to_dict("records"):
            extra = rec.get("extra")
            robust = extra.get("robustness") if isinstance(extra, dict) else None
            if not robust:
                continue
            per_level.setdefault(0.0, []).append(rec.get(primary))
            for level, scores in robust.items():
                per_level.setdefault(float(level), []).append((scores or {}).get(primary))
        if per_level:
            means = {lv: float(np.nanmean([np.nan if v is None else v for v in vs])) for lv, vs in per_level.items()}
            curves[str(est)] = pd.Series(means).sort_index()
    return curves, primary


def noise_levels(curves: dict[str, pd.Series]) -> list[float]:
    """Every noise level any model was scored at, ascending."""
    return sorted({lv for c in curves.values() for lv in c.index})


# ---------------------------------------------------------------- SHAP


def explain_failures(data: ReportData, ds: str | None) -> list[str]:
    """ "dataset / estimator: reason" for every fold that could not be explained (on `ds`, or anywhere)."""
    items = []
    for name, per_est in data.explain_failures.items():
        if ds is not None and name != ds:
            continue
        for est, reasons in per_est.items():
            items += [f"{name} / {est}: {r}" for r in reasons]
    return items


def mean_abs_importance(explanations: list[Explanation], labels: list[str] | None = None) -> pd.DataFrame:
    """Global importance per original feature: mean |SHAP| over rows and outputs, per fold, then across folds.

    One column per explanation (`labels`, default fold_0, fold_1, ...), then "mean" and "std" (sample
    standard deviation, ddof=1, across folds; NaN with one fold). Features missing from a fold are NaN there.
    Rows are sorted by decreasing mean.
    """
    labels = labels or [f"fold_{i}" for i in range(len(explanations))]
    if len(labels) != len(explanations):
        raise ValueError("one label per explanation")
    per_fold = {
        label: pd.Series(np.abs(e.values).mean(axis=(0, 2), dtype=np.float64), index=e.features)
        for label, e in zip(labels, explanations, strict=True)
    }
    table = pd.DataFrame(per_fold)
    folds = table[labels]
    table["mean"] = folds.mean(axis=1)
    table["std"] = folds.std(axis=1, ddof=1)
    return table.sort_values("mean", ascending=False, kind="stable")


def rank_agreement(importances: dict[str, pd.Series]) -> pd.DataFrame:
    """Pairwise Kendall tau (tau-b, scipy) between models' feature importances, on their common features.

    Importances rather than ranks are passed: tau depends on the order only. NaN where two models share
    fewer than two features or one is constant.
    """
    names = list(importances)
    out = pd.DataFrame(np.nan, index=names, columns=names, dtype=float)
    for i, a in enumerate(names):
        for b in names[i:]:
            common = importances[a].index.intersection(importances[b].index)
            x = importances[a].loc[common].to_numpy(dtype=float)
            y = importances[b].loc[common].to_numpy(dtype=float)
            ok = ~(np.isnan(x) | np.isnan(y))
            tau = math.nan
            if ok.sum() >= 2:
                tau = float(kendalltau(x[ok], y[ok]).statistic)
            out.loc[a, b] = out.loc[b, a] = tau
    return out


def common_prefix(per_model: dict[str, list[FoldExplanation]]) -> dict[str, list[FoldExplanation]]:
    """Each fold's explanations cut to the rows every model explained in that fold."""
    rows: dict[tuple[int, int, int], int] = {}
    for items in per_model.values():
        for f in items:
            ident = (f.seed, f.repeat, f.fold)
            rows[ident] = min(rows.get(ident, f.explanation.n_rows), f.explanation.n_rows)
    return {
        m: [FoldExplanation(f.fold, f.repeat, f.seed, f.explanation.head(rows[(f.seed, f.repeat, f.fold)]))
            for f in items if rows[(f.seed, f.repeat, f.fold)] > 0]
        for m, items in per_model.items()
    }  # fmt: skip


@dataclass
class ExplainerSummary:
    """How one model was explained on one dataset (from its first fold, and over all its folds)."""

    estimator: str
    first: Explanation  # the first explained fold: model, explainer, output space and names
    rows_per_fold: list[int]
    mean_seconds: float
    max_additivity_gap: float
    notes: list[str]  # distinct, sorted


def beeswarm_values(items: list[FoldExplanation]) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows × features SHAP values over all folds; for several outputs, each row's predicted output's values."""
    values, raw = [], []
    for f in items:
        e = f.explanation
        if e.n_outputs == 1:
            values.append(e.values[:, :, 0].astype(float))
        else:
            scores = e.values.sum(axis=1) + e.base_values[None, :]
            pick = np.argmax(scores, axis=1)
            values.append(e.values[np.arange(e.n_rows), :, pick].astype(float))
        raw.append(e.data)
    e0 = items[0].explanation
    what = "the positive class" if e0.n_outputs == 1 and len(e0.output_names) == 1 else "each row's predicted class"
    if e0.n_outputs == 1 and e0.output_names == ["prediction"]:
        what = "the prediction"
    return np.concatenate(values), np.concatenate(raw), what


@dataclass
class Beeswarm:
    """Every explained row of one model: the best model when it was explained, else the first explained."""

    model: str
    is_best: bool
    first: Explanation
    n_folds: int
    values: np.ndarray  # rows × features SHAP values
    raw: np.ndarray  # rows × features feature values
    what: str  # which output the values are for


@dataclass
class ShapView:
    """One dataset's SHAP summary: explainers, importances on the common rows, agreement, one beeswarm."""

    explainers: list[ExplainerSummary]  # in the analysis' model order
    importances: dict[str, pd.DataFrame]  # model -> mean_abs_importance on the common rows (may be empty)
    spaces: dict[str, str]  # model -> output space, for the models in `importances`
    n_common: int  # common rows in the first fold
    table: pd.DataFrame  # feature × model mean |SHAP|, features by decreasing mean over models
    agreement: pd.DataFrame | None  # Kendall τ-b between models' rankings; None with fewer than two models
    beeswarm: Beeswarm


def shap_view(data: ReportData, ds: str) -> ShapView:
    per_model = data.explanations[ds]
    st = data.dataset_stats(ds)
    order = [m for m in st.get("means", {}) if m in per_model]
    order += [m for m in per_model if m not in order]
    explainers = []
    for m in order:
        ex = [f.explanation for f in per_model[m]]
        explainers.append(ExplainerSummary(m, ex[0], [e.n_rows for e in ex], float(np.mean([e.seconds for e in ex])),
                                           max(e.additivity_gap for e in ex), sorted({e.note for e in ex if e.note})))  # fmt: skip
    common = common_prefix(per_model)
    common = {m: common[m] for m in order if common.get(m)}
    importances = {m: mean_abs_importance([f.explanation for f in items], [f.label for f in items])
                   for m, items in common.items()}  # fmt: skip
    n_common, spaces, table = 0, {}, pd.DataFrame()
    if importances:
        n_common = sum(items[0].explanation.n_rows for items in [common[next(iter(common))]])
        spaces = {m: common[m][0].explanation.output_space for m in common}
        table = pd.DataFrame({m: t["mean"] for m, t in importances.items()})
        table = table.loc[table.mean(axis=1).sort_values(ascending=False, kind="stable").index]
    agreement = rank_agreement({m: t["mean"] for m, t in importances.items()}) if len(importances) >= 2 else None
    best = st.get("best")
    model = best if best in per_model else order[0]
    items = per_model[model]
    values, raw, what = beeswarm_values(items)
    swarm = Beeswarm(model, model == best, items[0].explanation, len(items), values, raw, what)
    return ShapView(explainers, importances, spaces, n_common, table, agreement, swarm)


def champion_verdict(champion: str, st: dict) -> str:
    """The champion on one dataset: best, not significantly worse, significantly worse (than the best), no score.

    Read from the analysis' comparisons with the best (`stats.versus_best`), the rule
    `harness check` applies to the champion, so the two cannot disagree about one run.
    """
    if st.get("best") == champion:
        return "best"
    if champion in st.get("not_significantly_worse_than_best", []):
        return "not significantly worse"
    if champion in st.get("not_tested_against_best", []):
        return "not tested against the best"
    return "significantly worse" if champion in st.get("means", {}) else "no score"


# ---------------------------------------------------------------- LIME (explain.method: lime | both)


@dataclass
class LimeModel:
    """How one model was explained by LIME on one dataset, and how far LIME agrees with SHAP there."""

    estimator: str
    output_space: str
    rows_per_fold: list[int]
    mean_seconds: float
    local_r2: float  # mean R² of LIME's local linear models (low: the model is not locally linear)
    importance: pd.Series  # mean |LIME| per raw feature (rows and outputs, then folds), largest first
    tau: float | None  # Kendall τ-b of the mean-|value| rankings of LIME and SHAP on their common rows
    common_rows: int  # rows both methods explained (what `tau` is computed on)
    notes: list[str]


def lime_view(data: ReportData, ds: str) -> list[LimeModel]:
    """Per model of `ds` with LIME values (in the analysis' model order): importance and agreement with SHAP."""
    per_model = data.lime.get(ds, {})
    order = [m for m in data.dataset_stats(ds).get("models", []) if m in per_model]
    order += [m for m in per_model if m not in order]
    out = []
    for m in order:
        items = per_model[m]
        shap = {(f.seed, f.repeat, f.fold): f.explanation for f in data.explanations.get(ds, {}).get(m, [])}
        lime_imp, shap_imp, common = [], [], 0
        for f in items:
            lime_imp.append(np.abs(f.explanation.values).mean(axis=(0, 2)))
            s = shap.get((f.seed, f.repeat, f.fold))
            if s is None:
                continue
            pos = {int(r): i for i, r in enumerate(s.row_index)}
            both = [(i, pos[int(r)]) for i, r in enumerate(f.explanation.row_index) if int(r) in pos]
            if both:
                li, si = map(list, zip(*both, strict=True))
                lime_imp_common = np.abs(f.explanation.values[li]).mean(axis=(0, 2))
                shap_imp.append((lime_imp_common, np.abs(s.values[si]).mean(axis=(0, 2))))
                common += len(both)
        e0 = items[0].explanation
        importance = pd.Series(np.mean(lime_imp, axis=0), index=e0.features).sort_values(ascending=False, kind="stable")
        tau = None
        if shap_imp:
            x = np.mean([a for a, _ in shap_imp], axis=0)
            y = np.mean([b for _, b in shap_imp], axis=0)
            tau = float(kendalltau(x, y).statistic) if len(x) >= 2 else math.nan
        seconds = float(np.mean([f.explanation.seconds for f in items]))
        r2 = float(np.mean([f.explanation.score for f in items]))
        notes = sorted({f.explanation.note for f in items if f.explanation.note})
        rows = [f.explanation.n_rows for f in items]
        out.append(LimeModel(m, e0.output_space, rows, seconds, r2, importance, tau, common, notes))
    return out


# ---------------------------------------------------------------- resampling (estimators' resample:)


def resample_counts(data: ReportData) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> estimator -> {method, classes, before, after}: training rows per class, mean over folds."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for ds, per_est in fold_extras(data, "resample").items():
        for est, folds in per_est.items():
            records = [r for _, r in folds]
            classes = list(dict.fromkeys(c for r in records for side in ("before", "after") for c in r[side]))
            mean = {
                side: {c: float(np.mean([r[side].get(c, 0) for r in records])) for c in classes}
                for side in ("before", "after")
            }
            out.setdefault(ds, {})[est] = {"method": records[0]["method"], "classes": classes, "folds": len(records)}
            out[ds][est] |= mean
    return out
