"""Champion against challenger on the same newly labelled rows: `harness ab paired`.

Both exported models (`harness export model`) predict every row, so the comparison is
paired: each row is scored by both, and row-to-row noise cancels. Per metric (the suite's
metrics from the champion's sidecar, or `--metric`), the difference B − A gets a paired
bootstrap CI (`scipy.stats.bootstrap` over the rows, resampled once for every metric,
percentile method). Accuracy also gets McNemar's exact test (statsmodels), which looks
only at the rows where the two models disagree.

**Decision**: the decision metric is the first of the metrics (the suite's primary, or the
first `--metric`). B is significantly worse when, for accuracy, McNemar's one-sided exact
p-value (A right and B wrong more often than the reverse; a binomial test on the
discordant rows) is at most alpha; for any other metric, when the whole (1 − 2·alpha)
bootstrap CI of the oriented difference is on the side of harm (each bound is a one-sided
test at alpha). Direction comes from the metric: log loss and errors are lower-is-better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.ab.data import read_table, require_columns
from harness.errors import HarnessError
from harness.metrics import CLASSIFICATION, DEFAULT_METRICS, METRICS, model_responses

DEFAULT_RESAMPLES = 1000  # about 10 ms a resample for five metrics of two models: seconds, not minutes


@dataclass
class MetricComparison:
    """One metric of both models on the same rows, and B − A with its paired bootstrap CI."""

    name: str
    higher_is_better: bool
    a: float | None
    b: float | None
    difference: float | None  # B − A in the metric's own units
    ci: tuple[float, float] | None
    worse: bool = False
    better: bool = False
    decided_by: str = "bootstrap"


@dataclass
class PairedResult:
    source: str
    target: str
    n: int
    model_a: str
    model_b: str
    alpha: float
    resamples: int
    seed: int
    metrics: list[MetricComparison]
    decision_metric: str
    mcnemar: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def decision(self) -> MetricComparison:
        return next(m for m in self.metrics if m.name == self.decision_metric)

    @property
    def decision_uses(self) -> str:
        d = self.decision
        if d.decided_by == "mcnemar":
            return f"{d.name}: McNemar's exact test, one-sided"
        return f"{d.name}: the paired bootstrap CI, one-sided"

    @property
    def worse(self) -> bool:
        return self.decision.worse

    @property
    def exit_code(self) -> int:
        return 1 if self.worse else 0

    @property
    def verdict(self) -> str:
        d, b, a = self.decision, Path(self.model_b).name, Path(self.model_a).name
        if d.worse:
            return f"challenger {b} is significantly worse than champion {a} on {d.name}"
        if d.better:
            return f"challenger {b} is significantly better than champion {a} on {d.name}"
        return f"no significant difference between challenger {b} and champion {a} on {d.name}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "metrics"}
        out["metrics"] = [asdict(m) for m in self.metrics]
        out["decision_uses"] = self.decision_uses
        out["significantly_worse"] = self.worse
        out["bootstrap"] = {"method": "percentile", "confidence_level": 1 - 2 * self.alpha, "unit": "rows"}
        return out


def suite_metrics(sidecar: dict[str, Any], task: str) -> list[str]:
    """The metrics the suite scored, its primary first, as the sidecar records them; the task's defaults else.

    `harness export model` writes them under `scores`: `{"primary": NAME, "metrics": {NAME: {...}}}`.
    """
    scores = sidecar.get("scores")
    if isinstance(scores, dict) and isinstance(scores.get("metrics"), dict):
        primary = scores.get("primary")
        names = [primary, *scores["metrics"]] if isinstance(primary, str) else list(scores["metrics"])
        names = [m for m in dict.fromkeys(names) if isinstance(m, str) and m in METRICS and METRICS[m].task == task]
        if names:
            return names
    return list(DEFAULT_METRICS[task])


def _check_metrics(names: list[str], task: str) -> list[str]:
    for name in names:
        if name not in METRICS:
            raise HarnessError(f"--metric: unknown metric '{name}' (see `harness list metrics`)")
        if METRICS[name].task != task:
            raise HarnessError(f"--metric: '{name}' is a {METRICS[name].task} metric; the models are {task} models")
    return list(dict.fromkeys(names))


def _codes(y: pd.Series, classes: np.ndarray, source: str, target: str) -> np.ndarray:
    """Labels as the models' class codes (0..k-1 in the sidecar's order), matched as text."""
    values = y
    if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
        values = values.astype(np.int64)  # 1.0 read from a CSV is the class 1
    index = {str(c): i for i, c in enumerate(classes)}
    text = values.astype(str)
    unseen = sorted(set(text) - set(index))
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:3])
        raise HarnessError(
            f"{source}: target '{target}' has labels the models were not fitted on: {shown}"
            f" (classes: {', '.join(map(repr, index))})"
        )
    return text.map(index).to_numpy(dtype=np.int64)


def _score(name: str, y: np.ndarray, responses: dict[str, np.ndarray], rows: np.ndarray, classes: Any) -> float:
    """One metric on a subset of rows; NaN where it does not apply (e.g. one class in a resample)."""
    metric = METRICS[name]
    response = responses.get(metric.response)
    if response is None:
        return np.nan
    try:
        return metric.compute(y[rows], response[rows], classes)
    except ValueError:
        return np.nan


def _mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test on the 2×2 table of right/wrong, and its one-sided version (B worse)."""
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import mcnemar

    right_a, right_b = pred_a == y, pred_b == y
    table = np.array(
        [[int(np.sum(right_a & right_b)), int(np.sum(right_a & ~right_b))],
         [int(np.sum(~right_a & right_b)), int(np.sum(~right_a & ~right_b))]]
    )  # fmt: skip
    only_a, only_b = int(table[0, 1]), int(table[1, 0])
    two_sided = float(mcnemar(table, exact=True).pvalue)
    discordant = only_a + only_b
    harm = float(binomtest(only_a, discordant, 0.5, alternative="greater").pvalue) if discordant else 1.0
    benefit = float(binomtest(only_b, discordant, 0.5, alternative="greater").pvalue) if discordant else 1.0
    return {
        "table": table.tolist(),
        "only_a_right": only_a,
        "only_b_right": only_b,
        "p_two_sided": two_sided,
        "p_harm": harm,
        "p_benefit": benefit,
    }


def compare_predictions(
    y: np.ndarray,
    responses_a: dict[str, np.ndarray],
    responses_b: dict[str, np.ndarray],
    metrics: list[str],
    classes: np.ndarray | None,
    alpha: float = 0.05,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[list[MetricComparison], dict[str, Any] | None]:
    """Every metric for both models, B − A with one paired bootstrap of the rows, and McNemar for accuracy."""
    from scipy.stats import bootstrap

    everything = np.arange(len(y))

    def differences(rows: np.ndarray) -> np.ndarray:
        return np.array(
            [_score(m, y, responses_b, rows, classes) - _score(m, y, responses_a, rows, classes) for m in metrics]
        )

    ci = bootstrap(
        (everything,),
        differences,
        n_resamples=resamples,
        vectorized=False,
        method="percentile",
        confidence_level=1 - 2 * alpha,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    low, high = np.atleast_1d(ci.low), np.atleast_1d(ci.high)
    mcnemar = None
    if "accuracy" in metrics:
        mcnemar = _mcnemar(y, responses_a["predict"], responses_b["predict"])
    out = []
    for i, name in enumerate(metrics):
        metric = METRICS[name]
        a, b = _score(name, y, responses_a, everything, classes), _score(name, y, responses_b, everything, classes)
        finite = np.isfinite([a, b, low[i], high[i]]).all()
        comparison = MetricComparison(
            name,
            metric.greater_is_better,
            a if np.isfinite(a) else None,
            b if np.isfinite(b) else None,
            float(b - a) if np.isfinite(a) and np.isfinite(b) else None,
            (float(low[i]), float(high[i])) if finite else None,
        )
        if name == "accuracy" and mcnemar is not None:
            comparison.worse, comparison.better = mcnemar["p_harm"] <= alpha, mcnemar["p_benefit"] <= alpha
            comparison.decided_by = "mcnemar"
        elif finite:
            sign = 1.0 if metric.greater_is_better else -1.0  # oriented: positive = B better
            oriented = sorted((sign * low[i], sign * high[i]))
            comparison.worse, comparison.better = bool(oriented[1] < 0), bool(oriented[0] > 0)
        out.append(comparison)
    return out, mcnemar


def compare_models(
    data: str | Path,
    target: str,
    model_a: str | Path,
    model_b: str | Path,
    metrics: list[str] | None = None,
    alpha: float = 0.05,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    allow_modules: tuple[str, ...] = (),
) -> PairedResult:
    """Load the file and both models, check everything (exit 2 on bad input), then compare."""
    from harness.export.model import check_frame, load_exported

    if not 0.0 < alpha < 0.5:
        raise HarnessError(f"--alpha: {alpha:g} must be between 0 and 0.5")
    if resamples < 100:
        raise HarnessError(f"--resamples: {resamples} is too few for a bootstrap CI (at least 100)")
    source = str(data)
    frame = read_table(data)
    require_columns(frame, source, target=target)
    y_raw = frame[target]
    if y_raw.isna().any():
        raise HarnessError(f"{source}: target '{target}' has {int(y_raw.isna().sum()):,} missing values")
    a, b = load_exported(model_a, allow_modules), load_exported(model_b, allow_modules)
    if a.task != b.task:
        raise HarnessError(f"{model_b}: a {b.task} model; {model_a} is a {a.task} model")
    task = a.task
    classes = None
    if task == CLASSIFICATION:
        if [str(c) for c in a.classes] != [str(c) for c in b.classes]:
            raise HarnessError(f"{model_b}: classes {list(b.classes)} differ from {model_a}'s {list(a.classes)}")
        y = _codes(y_raw, a.classes, source, target)
        classes = np.arange(len(a.classes))
    else:
        if not pd.api.types.is_numeric_dtype(y_raw):
            raise HarnessError(f"{source}: target '{target}' is not numeric, and the models are regression models")
        y = y_raw.to_numpy(dtype=float)
    names = _check_metrics(metrics, task) if metrics else suite_metrics(a.sidecar, task)
    features = frame.drop(columns=[target])
    responses, warnings = [], []
    for model in (a, b):
        X, found = check_frame(model.sidecar, features, source)
        warnings.extend(f"{model.path.name}: {w}" for w in found)
        needed = {METRICS[m].response for m in names}
        responses.append(model_responses(model.model, X, needed, 0 if classes is None else len(classes)))
    comparisons, mcnemar = compare_predictions(y, responses[0], responses[1], names, classes, alpha, resamples, seed)
    return PairedResult(
        source=source,
        target=target,
        n=len(y),
        model_a=str(model_a),
        model_b=str(model_b),
        alpha=alpha,
        resamples=resamples,
        seed=seed,
        metrics=comparisons,
        decision_metric=names[0],
        mcnemar=mcnemar,
        warnings=list(dict.fromkeys(warnings)),
    )
