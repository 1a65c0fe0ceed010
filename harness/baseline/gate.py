"""The regression gate: did this change make any model worse, on the same folds?

Pure statistics on two baseline dicts (the file and the run, both from `file.py`),
returning the plain objects of `result.py`; nothing here reads a file or formats a table.
Because splits depend only on the data, the cv spec and the seed, the same (seed,
repeat, fold) identity is the same split on both sides, and paired differences cancel
the large fold-to-fold variation that would drown a real regression. The paired
differences go through the Nadeau–Bengio corrected resampled t-test
(`harness.stats.corrected_ttest`), because cross-validation folds share training rows
and the plain paired t-test is far too eager to call a noisy difference significant.
Anything that breaks the pairing (changed data, different splits) is reported and falls
back to an unpaired Welch test, labelled as such; nothing is dropped silently.

Verdict rule for one (dataset, estimator) on metric M, with d the per-fold differences
current − baseline oriented so that positive is better (lower-is-better metrics such as
rmse and log_loss negated):

- **regressed** when mean(d) < −tolerance AND the one-sided corrected test of
  "worse" is significant at alpha (p = P(T ≤ t) with T ~ Student t, df = J − 1);
  folds that were ok in the baseline and now fail (error, timeout) are a regression too;
- **improved** likewise in the other direction;
- **unchanged** otherwise; **not compared** when fewer than two usable folds remain.

One-sided tests at alpha (default 0.05), not two-sided: the gate asks two directional
questions fixed in advance ("is it worse?" to fail the build, "is it better?" to
report), and each has its own false-alarm rate alpha under "nothing changed". A
two-sided test would halve that rate for no reason while costing power, which the
corrected test already lacks with 5 folds (df = 4).

The champion (`champion:` or `--champion`) is another question, asked of the run alone:
is it best or not significantly worse than the best? It is answered by
`harness.stats.versus_best`, the rule behind the summary's "not significantly worse"
column: two-sided corrected tests (the best is picked after seeing the means, so the
direction is the data's), Holm over every pair of models on the dataset (the summary's
family: with k models, k(k − 1)/2 tests, which covers the k − 1 challengers of the
best), no tolerance. The check and the summary of one run therefore agree at the same
alpha.

Tolerance: the smallest drop that matters, in the metric's own units. By default
(`tolerance=None`) it is 0.005 for metrics bounded in [0, 1] (accuracy, roc_auc, r2,
...) and 0.5 % of the baseline's mean |score| for unbounded ones (rmse, log_loss, ...),
whose scale depends on the data. `tolerance=0` means any significant drop counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np

from harness.analysis import AnalysisOptions
from harness.baseline.result import (
    IMPROVED,
    NOT_COMPARED,
    REGRESSED,
    UNCHANGED,
    BaselineError,
    ChampionCheck,
    CheckOptions,
    CheckResult,
    Comparison,
    Mismatch,
    finite_or_none,
)
from harness.metrics import BOUNDED_METRICS, METRICS
from harness.report.format import fmt_p
from harness.spec import did_you_mean
from harness.store import FAILED, OK

DEFAULT_TOLERANCE = 0.005
PAIRED = "paired (corrected t)"
UNPAIRED = "unpaired (Welch)"


def check_options(options: CheckOptions) -> None:
    """The options alone, before any file is read: a bad --alpha, --tolerance or --metric is exit 2."""
    if options.alpha is not None and not 0 < options.alpha < 1:
        raise BaselineError(f"--alpha {options.alpha}: must be between 0 and 1")
    if options.tolerance is not None and not (options.tolerance >= 0 and math.isfinite(options.tolerance)):
        raise BaselineError(f"--tolerance {options.tolerance}: must be a number >= 0")
    if options.metric is not None and options.metric not in METRICS:
        raise BaselineError(f"--metric {options.metric}: unknown metric{did_you_mean(options.metric, list(METRICS))}")


def compare(
    baseline: dict[str, Any], current: dict[str, Any], options: CheckOptions, baseline_file: str = "<baseline>"
) -> CheckResult:
    """Compare two baseline dicts (the file and the run); pure, so a caller with both dicts in memory can reuse it."""
    check_options(options)
    _check_metric_present(baseline, current, options.metric)
    # The suite's `champion:` and `analysis.alpha` apply unless the caller names others: the
    # champion check then decides at the level the run's summary used, so the two agree.
    alpha = options.alpha if options.alpha is not None else current.get("alpha") or AnalysisOptions.alpha
    options = replace(options, champion=options.champion or current.get("champion"), alpha=alpha)
    if options.champion is not None:
        _check_champion_known(current, options.champion)
    mismatches = _run_mismatches(baseline, current)
    comparisons: list[Comparison] = []
    for ds in sorted(set(baseline["datasets"]) | set(current["datasets"])):
        if ds not in current["datasets"]:
            mismatches.append(Mismatch("dataset missing", "warning", "in the baseline but not in the run", ds))
            continue
        if ds not in baseline["datasets"]:
            mismatches.append(Mismatch("dataset new", "info", "in the run but not in the baseline", ds))
            continue
        comparisons += _compare_dataset(ds, baseline, current, options, mismatches)
    champion = _champion_checks(current, options) if options.champion else []
    rule = (
        f"absolute {options.tolerance:g} in the metric's units"
        if options.tolerance is not None
        else f"{DEFAULT_TOLERANCE:g} for metrics bounded in [0, 1]; "
        f"{DEFAULT_TOLERANCE:.1%} of the baseline's mean |score| for unbounded metrics"
    )
    return CheckResult(str(current.get("suite")), baseline_file, comparisons, mismatches, champion, options, rule)


def _check_metric_present(baseline: dict[str, Any], current: dict[str, Any], metric: str | None) -> None:
    if metric is None:
        return
    if metric not in current.get("metrics", {}) and metric not in baseline.get("metrics", {}):
        recorded = sorted(set(current.get("metrics", {})) | set(baseline.get("metrics", {})))
        raise BaselineError(
            f"--metric {metric}: not computed in this run or the baseline (have: {', '.join(recorded)})"
        )


def _check_champion_known(current: dict[str, Any], champion: str) -> None:
    names = {e for ests in current["cells"].values() for e in ests} | {
        e for ests in current.get("skipped", {}).values() for e in ests
    }
    if champion not in names:
        raise BaselineError(
            f"--champion {champion}: no such estimator in the run{did_you_mean(champion, sorted(names))}"
            f" (the run has: {', '.join(sorted(names))})"
        )


def _run_mismatches(baseline: dict[str, Any], current: dict[str, Any]) -> list[Mismatch]:
    out = []
    if baseline.get("suite") != current.get("suite"):
        out.append(Mismatch("suite", "info", f"suite '{baseline.get('suite')}' → '{current.get('suite')}'"))
    old, new = baseline.get("versions", {}), current.get("versions", {})
    for pkg in sorted(set(old) | set(new)):  # the key packages the run recorded (runner.package_versions)
        if old.get(pkg) != new.get(pkg):
            out.append(
                Mismatch("versions", "warning", f"{pkg} {old.get(pkg) or 'absent'} → {new.get(pkg) or 'absent'}")
            )
    return out


def _metric_for(task: str, side: dict[str, Any], options: CheckOptions) -> str | None:
    if options.metric is not None and METRICS[options.metric].task == task:
        return options.metric
    return side.get("primary", {}).get(task)


def _compare_dataset(
    ds: str, baseline: dict[str, Any], current: dict[str, Any], options: CheckOptions, mismatches: list[Mismatch]
) -> list[Comparison]:
    """Dataset-level identity checks once, then one comparison per estimator present on both sides."""
    b_info, c_info = baseline["datasets"][ds], current["datasets"][ds]
    task = c_info["task"]
    if b_info.get("task") != task:
        mismatches.append(Mismatch("task", "error", f"task {b_info.get('task')} → {task}: not comparable", ds))
        return []
    pairable = True
    if b_info.get("fingerprint") != c_info.get("fingerprint"):
        mismatches.append(
            Mismatch(
                "fingerprint",
                "warning",
                f"dataset content changed (fingerprint {str(b_info.get('fingerprint'))[:12]} → "
                f"{str(c_info.get('fingerprint'))[:12]}): folds are different rows, compared unpaired",
                ds,
            )
        )
        pairable = False
    b_split = {k: v for k, v in b_info.get("split", {}).items() if k != "seeds"}
    c_split = {k: v for k, v in c_info.get("split", {}).items() if k != "seeds"}
    if b_split != c_split:
        mismatches.append(
            Mismatch("split", "warning", f"split definition {b_split} → {c_split}: compared unpaired", ds)
        )
        pairable = False
    b_seeds, c_seeds = b_info.get("split", {}).get("seeds"), c_info.get("split", {}).get("seeds")
    if b_seeds != c_seeds:
        mismatches.append(
            Mismatch("seeds", "warning", f"seeds {b_seeds} → {c_seeds}: only folds of common seeds are paired", ds)
        )
    metric = _metric_for(task, current, options)
    if options.metric is not None and metric != options.metric:
        mismatches.append(
            Mismatch("metric", "info", f"--metric {options.metric} is not a {task} metric; using {metric}", ds)
        )
    b_cells, c_cells = baseline["cells"].get(ds, {}), current["cells"].get(ds, {})
    out = []
    for est in sorted(set(b_cells) | set(c_cells)):
        if est not in c_cells:
            mismatches.append(Mismatch("estimator missing", "warning", "in the baseline but not in the run", ds, est))
        elif est not in b_cells:
            mismatches.append(Mismatch("estimator new", "info", "in the run but not in the baseline", ds, est))
        else:
            changes = _config_changes(b_cells[est].get("config", {}), c_cells[est].get("config", {}))
            if changes:
                mismatches.append(Mismatch("config", "info", "configuration changed: " + "; ".join(changes), ds, est))
            out.append(_compare_cell(ds, est, metric, b_cells[est], c_cells[est], pairable, options))
    return out


def _config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs, e.g. 'params.max_depth: 8 → 1' (the usual intended change)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{path}: added {json.dumps(new[k], default=str)}")
            elif k not in new:
                out.append(f"{path}: removed")
            else:
                out += _config_changes(old[k], new[k], path)
        return out
    if old != new:
        return [f"{prefix}: {json.dumps(old, default=str)} → {json.dumps(new, default=str)}"]
    return []


def _fold_id(f: dict[str, Any]) -> tuple[int | None, int, int]:
    return (f.get("seed"), f["repeat"], f["fold"])


def _scores(cell: dict[str, Any], metric: str) -> dict[tuple, tuple[float, float, float]]:
    """Usable folds: fold identity → (score, n_train, n_test) for ok folds with a value."""
    out = {}
    for f in cell.get("folds", []):
        value = (f.get("scores") or {}).get(metric) if f.get("status") == OK else None
        if value is not None and math.isfinite(value):
            out[_fold_id(f)] = (float(value), float(f.get("n_train") or np.nan), float(f.get("n_test") or np.nan))
    return out


def _newly_failed(b_cell: dict[str, Any], c_cell: dict[str, Any], paired: bool) -> int:
    """Folds ok in the baseline that now fail (error, timeout): by identity when paired, by count otherwise."""
    b_ok = {_fold_id(f) for f in b_cell.get("folds", []) if f.get("status") == OK}
    c_failed = {_fold_id(f) for f in c_cell.get("folds", []) if f.get("status") in FAILED}
    if paired:
        return len(b_ok & c_failed)
    c_ok = sum(f.get("status") == OK for f in c_cell.get("folds", []))
    return max(0, len(b_ok) - c_ok) if c_failed else 0


def _tolerance(metric: str, baseline_mean: float | None, options: CheckOptions) -> float:
    if options.tolerance is not None:
        return options.tolerance
    if metric in BOUNDED_METRICS or baseline_mean is None:
        return DEFAULT_TOLERANCE
    return DEFAULT_TOLERANCE * abs(baseline_mean)


def _compare_cell(
    ds: str,
    est: str,
    metric: str | None,
    b_cell: dict[str, Any],
    c_cell: dict[str, Any],
    pairable: bool,
    options: CheckOptions,
) -> Comparison:
    greater = METRICS[metric].greater_is_better if metric in METRICS else True
    base = Comparison(ds, est, str(metric), greater, "none", NOT_COMPARED, "", options.tolerance or 0.0, options.alpha)
    if metric is None:
        base.reason = "no metric for this task"
        return base
    b, c = _scores(b_cell, metric), _scores(c_cell, metric)
    common = sorted(set(b) & set(c), key=str) if pairable else []
    paired = len(common) >= 2
    base.newly_failed = _newly_failed(b_cell, c_cell, paired)
    base.n_baseline, base.n_current = len(b), len(c)
    base.baseline_values = [v[0] for v in b.values()]
    base.current_values = [v[0] for v in c.values()]
    base.baseline_mean = float(np.mean(base.baseline_values)) if b else None
    base.current_mean = float(np.mean(base.current_values)) if c else None
    base.tolerance = _tolerance(metric, base.baseline_mean, options)
    sign = 1.0 if greater else -1.0
    if paired:
        _paired_test(base, b, c, common, sign, options.alpha)
    elif len(b) >= 2 and len(c) >= 2:
        _welch_test(base, sign)
        if pairable:
            base.reason = "fewer than 2 common folds; "
    else:
        base.reason = f"too few usable folds (baseline {len(b)}, run {len(c)})"
        if base.newly_failed:
            base.verdict, base.reason = REGRESSED, f"{base.newly_failed} folds ok in the baseline now fail"
        return base
    _decide(base)
    return base


def _paired_test(comp: Comparison, b: dict, c: dict, common: list[tuple], sign: float, alpha: float) -> None:
    from harness.stats import corrected_ttest

    diff = np.array([sign * (c[k][0] - b[k][0]) for k in common])
    n_train = np.array([(c[k][1] + b[k][1]) / 2 for k in common])
    n_test = np.array([(c[k][2] + b[k][2]) / 2 for k in common])
    res = corrected_ttest(diff, n_train, n_test, alpha=alpha)
    comp.test, comp.n_pairs = PAIRED, len(common)
    comp.folds = [
        {"seed": k[0], "repeat": k[1], "fold": k[2], "baseline": b[k][0], "current": c[k][0], "diff": d}
        for k, d in zip(common, diff, strict=True)
    ]
    comp.mean_diff, comp.std, comp.df = float(res.mean), finite_or_none(res.std), finite_or_none(res.df)
    comp.t = None if math.isnan(res.t) else float(res.t)  # ±inf kept for the decision; _decide clears it
    comp.p_two_sided, comp.ci_low, comp.ci_high = (
        finite_or_none(res.p),
        finite_or_none(res.ci_low),
        finite_or_none(res.ci_high),
    )
    comp.n_train, comp.n_test = float(n_train.mean()), float(n_test.mean())
    # Means over the paired folds only, so that the table's two means differ by exactly mean_diff.
    comp.baseline_mean = float(np.mean([b[k][0] for k in common]))
    comp.current_mean = float(np.mean([c[k][0] for k in common]))
    comp.p_worse, comp.p_better = _one_sided(res.t, res.df)
    if math.isnan(res.t):
        comp.reason = f"no test: {getattr(res, 'reason', None) or 'the corrected t-test is undefined'}; "


def _one_sided(t: float, df: float) -> tuple[float | None, float | None]:
    """P(T ≤ t) (evidence of worse) and P(T ≥ t) (evidence of better) for Student t with df."""
    from scipy import stats

    if t is None or math.isnan(t) or df is None or not df >= 1:
        return None, None
    return float(stats.t.cdf(t, df)), float(stats.t.sf(t, df))


def _welch_test(comp: Comparison, sign: float) -> None:
    """Folds cannot be paired (different rows or splits): Welch's t-test on the two sets of fold scores."""
    from scipy import stats

    cur = sign * np.asarray(comp.current_values)
    old = sign * np.asarray(comp.baseline_values)
    comp.test = UNPAIRED
    comp.mean_diff = float(cur.mean() - old.mean())
    if np.var(cur) == 0 and np.var(old) == 0:  # scipy would return NaN; the answer is plain
        same = comp.mean_diff == 0
        comp.t = 0.0 if same else math.copysign(math.inf, comp.mean_diff)
        comp.p_two_sided = 1.0 if same else 0.0
        comp.p_worse = 0.5 if same else float(comp.mean_diff > 0)  # 0: certainly worse
        comp.p_better = 0.5 if same else float(comp.mean_diff < 0)
        return
    two = stats.ttest_ind(cur, old, equal_var=False)
    comp.t, comp.df, comp.p_two_sided = float(two.statistic), float(two.df), float(two.pvalue)
    comp.p_worse = float(stats.ttest_ind(cur, old, equal_var=False, alternative="less").pvalue)
    comp.p_better = float(stats.ttest_ind(cur, old, equal_var=False, alternative="greater").pvalue)
    comp.std = float(np.sqrt(cur.var(ddof=1) / len(cur) + old.var(ddof=1) / len(old)))


def _decide(comp: Comparison) -> None:
    """The verdict rule of the module docstring; the reason says which condition decided."""
    d, tol, alpha = comp.mean_diff, comp.tolerance, comp.alpha
    worse_sig = comp.p_worse is not None and comp.p_worse < alpha
    better_sig = comp.p_better is not None and comp.p_better < alpha
    prefix = comp.reason
    if comp.newly_failed:
        comp.verdict = REGRESSED
        comp.reason = prefix + f"{comp.newly_failed} folds ok in the baseline now fail"
    elif comp.t is None:
        comp.verdict = NOT_COMPARED
    elif d < -tol and worse_sig:
        comp.verdict = REGRESSED
        comp.reason = prefix + f"mean drop {-d:.4g} > tolerance {tol:.4g}, one-sided p = {comp.p_worse:.3g} < {alpha:g}"
    elif d > tol and better_sig:
        comp.verdict = IMPROVED
        comp.reason = prefix + f"mean gain {d:.4g} > tolerance {tol:.4g}, one-sided p = {comp.p_better:.3g} < {alpha:g}"
    else:
        comp.verdict = UNCHANGED
        p = comp.p_worse if d < 0 else comp.p_better
        within = abs(d) <= tol
        why = f"|mean diff| {abs(d):.4g} ≤ tolerance {tol:.4g}" if within else f"not significant (p = {fmt_p(p)})"
        comp.reason = prefix + why
    if comp.t is not None and not math.isfinite(comp.t):
        comp.t = None  # ±inf (all differences equal) has served the decision; JSON has no inf


# ---------------------------------------------------------------- champion


def _champion_checks(current: dict[str, Any], options: CheckOptions) -> list[ChampionCheck]:
    """Per dataset of the run: the champion against the best mean, paired on the run's own folds."""
    name = str(options.champion)
    out = []
    for ds, info in sorted(current["datasets"].items()):
        metric = _metric_for(info["task"], current, options)
        cells = current["cells"].get(ds, {})
        if metric is None:
            continue
        if name in current.get("skipped", {}).get(ds, {}):
            out.append(ChampionCheck(ds, name, metric, "not applicable", detail="skipped on this dataset"))
            continue
        out.append(_champion_on(ds, name, metric, cells, options))
    return out


def _champion_on(ds: str, name: str, metric: str, cells: dict[str, Any], options: CheckOptions) -> ChampionCheck:
    """The champion against the best by `stats.versus_best`, the rule of the summary's "not significantly worse".

    Two-sided corrected t-tests, Holm over every pair of models of the dataset, no
    tolerance: so `harness check` and the summary of the same run (at the same alpha)
    give the champion the same verdict. `p_worse` holds the Holm-adjusted p of the
    champion's pair with the best, the p the verdict is decided on.
    """
    from harness.stats import versus_best

    scores = {est: _scores(cell, metric) for est, cell in cells.items()}
    if not scores.get(name):
        return ChampionCheck(ds, name, metric, "failed", detail="the champion has no successful fold here")
    vs = versus_best(scores, METRICS[metric].greater_is_better, options.alpha)
    best = str(vs.best)
    check = ChampionCheck(ds, name, metric, "best", best, vs.means[name], vs.means[best])
    if best == name:
        check.detail = "best mean"
        return check
    row = vs.row(name) or {}
    check.mean_diff, check.n_pairs = finite_or_none(row.get("mean_diff")), int(row.get("n", 0))
    if not math.isfinite(row.get("p", math.nan)):
        check.status = "failed"
        check.detail = f"not tested against the best ({best}): {row.get('reason') or 'no test'}"
        return check
    check.t, check.df, check.p_worse = finite_or_none(row["t"]), finite_or_none(row["df"]), float(row["p_holm"])
    check.status = "worse" if row["worse"] else "tied-best"
    verdict = "significantly worse" if row["worse"] else "not significantly worse"
    check.detail = (
        f"behind {best} by {-row['mean_diff']:.4g}: {verdict} at alpha {options.alpha:g} (Holm p {_p_is(row['p_holm'])}"
        f" over the {vs.family} pairs of models; two-sided p {_p_is(row['p'])})"
    )
    return check


def _p_is(p: float) -> str:
    """'= 0.0198' or '< 0.0001' (fmt_p's text, readable after 'p')."""
    text = fmt_p(p)
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"
