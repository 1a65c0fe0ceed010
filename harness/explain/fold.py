"""The entry point: explain one fitted fold model within its budget, check additivity, group back to raw columns.

A fast explainer whose sums do not reproduce the model's output (e.g. shap reading an HistGradientBoosting
tree with categorical splits) is not trusted: the fold falls back to permutation. Every failure leaves
`explain_fold` as one exception type, `ExplainError`, whose message the engine records.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from harness.explain.anatomy import _FrameCodec, _split_model
from harness.explain.explainers import (
    LINEAR_BACKGROUND,
    _choose_plan,
    _permutation_plan,
    _sample,
)
from harness.explain.result import REGRESSION, ExplainError, Explanation, guarded, raw_frames
from harness.explain.runtime import _Clock, _run_budgeted

DEFAULT_MAX_ROWS = 500  # rows a fold explains at most (the budget usually decides)
DEFAULT_BACKGROUND = 50  # training rows that stand in for "feature absent" in the permutation explainer
_ADDITIVITY_TOL = 1e-3  # relative gap above which a fast explainer's values are rejected


def explain_fold(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int = DEFAULT_MAX_ROWS,
    n_background: int = DEFAULT_BACKGROUND,
) -> Explanation:
    """SHAP values of a fitted fold model on a prefix of `X_explain`, summed back to the original columns.

    `model` is the fitted fold model (a Pipeline with a "prep" ColumnTransformer, or the bare estimator);
    `X_explain` should be the fold's test rows in `explain_rows` order, so every model of the fold explains a
    prefix of the same rows. At most `max_rows` rows; fewer when `budget_s` (seconds) runs out. Raises
    ExplainError (only that) when the model cannot be explained; its message is one line for the store.
    """
    clock = _Clock()
    return guarded(lambda: _explain(model, X_train, X_explain, task, budget_s, seed, max_rows, n_background, clock))


def _explain(
    model: Any,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    task: str,
    budget_s: float,
    seed: int,
    max_rows: int,
    n_background: int,
    clock: _Clock,
) -> Explanation:
    X_train, X_rows = raw_frames(X_train, X_explain, task, max_rows)
    raw_columns = list(X_train.columns)
    parts = _split_model(model, raw_columns)
    rng = np.random.default_rng(seed)
    # Only the training rows a background can use are transformed: the budget is for SHAP, not preprocessing.
    Xm_train = parts.transform(_sample(X_train, max(LINEAR_BACKGROUND, n_background), rng))
    Xm_rows = parts.transform(X_rows)
    if len(parts.owner) != Xm_rows.shape[1]:
        raise ExplainError(f"{len(parts.owner)} mapped model inputs but the preprocessing gives {Xm_rows.shape[1]}")
    codec = _FrameCodec.fit(Xm_train, Xm_rows)
    plan, note = _choose_plan(parts.estimator, task, codec, Xm_train, seed, n_background)
    values, base = _run_budgeted(plan, Xm_rows, budget_s, clock)
    n = len(values)
    gap = _additivity_gap(values, base, plan.reference(Xm_rows.iloc[:n]))
    if plan.name != "permutation" and gap > _ADDITIVITY_TOL * (1 + np.abs(base).max()):
        # a fast explainer that does not add up to the model's output is wrong for this model: start over
        note = f"{plan.name} explainer off by {gap:.3g}; permutation instead"
        bg = codec.encode(_sample(Xm_train, n_background, np.random.default_rng(seed)))
        plan = _permutation_plan(parts.estimator, task, codec, bg, seed)
        values, base = _run_budgeted(plan, Xm_rows, budget_s, clock)
        n = len(values)
        gap = _additivity_gap(values, base, plan.reference(Xm_rows.iloc[:n]))
    grouped = _group(values, parts.owner, len(raw_columns))
    one_off = clock.one_off()
    warm = f"seconds include {one_off:.1f} s of one-off shap import / numba compilation" if one_off > 0.1 else ""
    raw_codec = _FrameCodec.fit(X_train, X_rows)
    return Explanation(
        values=grouped.astype(np.float32),
        base_values=base.astype(np.float64),
        features=raw_columns,
        data=raw_codec.encode(X_rows.iloc[:n]),
        row_index=_row_index(X_rows.index[:n]),
        explainer=plan.name,
        output_space=plan.output_space,
        output_names=_output_names(model, task, values.shape[2]),
        model=type(parts.estimator).__name__,
        seconds=time.perf_counter() - clock.start,
        budget_s=float(budget_s),
        n_model_features=int(values.shape[1]),
        additivity_gap=gap,
        categories=raw_codec.category_names(),
        max_evals=plan.max_evals,
        n_background=plan.n_background,
        note="; ".join(filter(None, [parts.note, note, warm])),
        one_off_s=one_off,
    )


def _additivity_gap(values: np.ndarray, base: np.ndarray, reference: np.ndarray) -> float:
    total = values.sum(axis=1) + base[None, :]
    if total.shape != reference.shape:
        raise ExplainError(f"explainer outputs {total.shape[1]} columns but the model {reference.shape[1]}")
    return float(np.nanmax(np.abs(total - reference))) if total.size else 0.0


def _group(values: np.ndarray, owner: np.ndarray, n_features: int) -> np.ndarray:
    """Sum model inputs (e.g. one-hot children) into their original column: (n, m, k) -> (n, f, k)."""
    membership = np.zeros((len(owner), n_features))
    membership[np.arange(len(owner)), owner] = 1.0
    return np.einsum("nmk,mf->nfk", values, membership)


def _row_index(index: pd.Index) -> np.ndarray:
    try:
        return np.asarray(index, dtype=np.int64)
    except (TypeError, ValueError):
        return np.arange(len(index), dtype=np.int64)  # non-integer labels: positions in X_explain


def _output_names(model: Any, task: str, n_outputs: int) -> list[str]:
    if task == REGRESSION:
        return ["prediction"] if n_outputs == 1 else [f"output_{k}" for k in range(n_outputs)]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return [f"output_{k}" for k in range(n_outputs)]
    classes = [str(c) for c in np.asarray(classes).tolist()]
    return classes[-1:] if n_outputs == 1 and len(classes) == 2 else classes[:n_outputs]
