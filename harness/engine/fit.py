"""Fitting: the pure units of work behind every task.

`fit_and_score` is kept small and pure like scikit-learn's `_fit_and_score`: it
builds a fresh estimator, fits it on the fold's training rows, predicts the test rows
and returns a `FoldResult`. `run_study` and `run_pretrain` do the same for a
tune_then_cv study and a pretraining fit. None of them raises for the estimator's
sake: an exception becomes an error result with the traceback kept. Time limits,
processes and parallelism are the executors' business (`engine.executors`), so these
functions run the same in the driver, in a child process or on a cluster worker.
"""

from __future__ import annotations

import functools
import inspect
import io
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from harness.datasets import Dataset
from harness.engine.curves import fold_curves
from harness.engine.limits import limit_threads
from harness.engine.tasks import (
    ERROR,
    OK,
    SKIPPED,
    FoldResult,
    FoldTask,
    PretrainTask,
    Result,
    StepResult,
    StudyTask,
    Task,
    derive_seed,
    where,
)
from harness.metrics import CLASSIFICATION, METRICS, model_responses, score_fold
from harness.preprocess import Columns
from harness.registry import Resolved, build
from harness.resample import class_counts, fit_prep, transform_prep
from harness.splits import inner_splits, validation_rows
from harness.tuning import Report, StudyOutcome, StudyPlan, run_study


class StudyFailed(Exception):
    """Every trial of a study raised: there is no tuned configuration to fit."""


def run_task(task: Task) -> Result:
    """Run any task in this process; what comes back is always a result."""
    if isinstance(task, FoldTask):
        return fit_and_score(task)
    if isinstance(task, StudyTask):
        return run_study_task(task)
    return run_pretrain(task)


def _stamped(run: Callable[[Any], Result]) -> Callable[[Any], Result]:
    """Record where and when a task ran on the result it returns."""

    @functools.wraps(run)
    def wrapper(task: Any) -> Result:
        started = time.time()
        result = run(task)
        result.worker, result.started, result.finished = where(), started, time.time()
        return result

    return wrapper


def _step(compute: Callable[[Any], Any]) -> Callable[[Any], StepResult]:
    """A study or pretraining fit: the value it computes, or the error it raised, as a StepResult."""

    @_stamped
    @functools.wraps(compute)
    def run(task: StudyTask | PretrainTask) -> StepResult:
        try:
            return task.result(OK, value=compute(task))
        except Exception as exc:
            return task.result(ERROR, error=_one_line(exc), detail=traceback.format_exc())

    return run


@_stamped
def fit_and_score(task: FoldTask) -> FoldResult:
    """Fit on the fold's training rows, score its test rows; failures become results."""
    if task.resolved.skipped:
        return task.result(SKIPPED, error=task.resolved.skipped)
    return _fit_and_score(task)


@_step
def run_study_task(task: StudyTask) -> StudyOutcome:
    """Run (or resume) a tune_then_cv study on every row of its dataset.

    A runner of a shared study runs trials until the study's budget is spent and does not
    judge it (another runner's trials may still succeed); the study task that needs the
    runners runs no trial and judges the whole study.
    """
    plan = task.plan if task.runs_trials else replace(task.plan, trials=0, timeout_s=None)
    with threadpool_limits(limits=task.threads):
        rows = np.arange(len(task.dataset.y))
        outcome = tune_on_rows(task.dataset, task.resolved, rows, plan, task.threads, judge=task.runner is None)
    if not task.runs_trials:
        outcome.wall_s = task.runners_s
    return outcome


@_step
def run_pretrain(task: PretrainTask) -> bytes:
    """Fit the MLP on the whole source dataset; the result carries its weights (bytes, no pickled code)."""
    src = task.source
    with threadpool_limits(limits=task.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build(task.resolved, Columns(src.numeric, src.categorical, src.has_missing))
        limit_threads(model, task.threads)
        model.fit(src.X, src.y)
        buffer = io.BytesIO()
        final_step(model).save_pretrained(buffer)
    return buffer.getvalue()


def _fit_and_score(task: FoldTask) -> FoldResult:
    ds, split = task.dataset, task.split
    X_train, X_test = ds.X.iloc[split.train], ds.X.iloc[split.test]
    y_train, y_test = ds.y[split.train], ds.y[split.test]
    sizes = {"n_train": len(split.train), "n_test": len(split.test)}
    fit_time = None
    extra: dict[str, Any] = {}
    try:
        with threadpool_limits(limits=task.threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resolved = _configure(task, extra)
            model = build(resolved, Columns(ds.numeric, ds.categorical, ds.has_missing))
            limit_threads(model, task.threads)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            fit_time = time.perf_counter() - start
            start = time.perf_counter()
            needed = {METRICS[m].response for m in task.metrics}
            n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0
            responses = model_responses(model, X_test, needed, n_classes)
            predict_time = time.perf_counter() - start
    except Exception as exc:  # the estimator's failure is a result, not a crash
        return task.result(ERROR, error=_one_line(exc), detail=traceback.format_exc(), fit_time=fit_time, **sizes)
    classes = ds.classes
    values, notes = score_fold(task.metrics, y_test, responses, classes)
    extra |= fitted_extras(model)
    names = ds.labels if ds.labels is not None else ds.classes  # the original class labels, for the report
    counts = class_counts(model, y_train, names)  # resample: training rows per class before and after
    if counts is not None:
        extra["resample"] = counts
    if task.robustness or task.attacks:  # noise levels -> extra["robustness"], attacks -> extra["attacks"]
        extra |= score_perturbed(task, model, X_train, X_test, y_test)
    if task.learning_curve or task.validation_curve:  # more fits inside the fold (engine.curves)
        extra |= fold_curves(task, resolved, model, values, fit_time)
    # Tuning is training too: a tuned fold's SHAP budget counts its study's wall time.
    training_s = fit_time + float(extra.get("tuning", {}).get("wall_s") or 0.0)
    method = (task.explain or {}).get("method", "shap")  # shap | lime | both
    explanation = explain(task, model, X_train, training_s, notes) if task.explain and method != "lime" else None
    if task.explain and method != "shap":
        explanation = explain_with_lime(task, model, X_train, training_s, notes, explanation)
    if caught:  # kept with the fold instead of flooding the terminal
        notes["warnings"] = " | ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))[:2000]
    return task.result(
        OK,
        metrics=values,
        notes=notes,
        fit_time=fit_time,
        predict_time=predict_time,
        test_index=split.test.astype(np.int64),
        y_true=y_test,
        y_pred=responses["predict"],
        proba=responses.get("proba"),
        extra=extra,
        explanation=explanation,
        **sizes,
    )


def score_perturbed(task: FoldTask, model: Any, X_train: Any, X_test: Any, y_test: np.ndarray) -> dict[str, Any]:
    """The fold's metrics on perturbed test rows (the model is not refitted), as entries of the fold's extra.

    "robustness": by noise level, on every test row (as before attacks existed); "attacks": the worst-case
    attacks' scores by attack and level on the attacked rows, with those rows' clean and noise scores and
    what each attack spent (harness.robustness.attack_fold).
    """
    from harness.robustness import attack_fold, perturb

    ds, split = task.dataset, task.split
    needed = {METRICS[m].response for m in task.metrics}
    n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0

    def score(rows: Any, y: np.ndarray) -> dict[str, float | None]:
        with threadpool_limits(limits=task.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return score_fold(task.metrics, y, model_responses(model, rows, needed, n_classes), ds.classes)[0]

    out: dict[str, Any] = {}
    noisy = {}
    for i, level in enumerate(task.robustness or []):
        seed = derive_seed(task.seed, "robustness", ds.name, None, split.repeat, split.fold, i)
        noisy[f"{level:g}"] = perturb(X_test, X_train, level, seed, ds.categorical)
    if task.robustness:
        out["robustness"] = {level: score(rows, y_test) for level, rows in noisy.items()}
    if task.attacks:

        def seed(purpose: str, index: int) -> int:
            return derive_seed(task.seed, purpose, ds.name, None, split.repeat, split.fold, index)

        with threadpool_limits(limits=task.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["attacks"] = attack_fold(task.attacks, model, X_train, X_test, y_test, ds.categorical,
                                         ds.task == CLASSIFICATION, score, seed, noisy)  # fmt: skip
    return out


def explain(
    task: FoldTask, model: Any, X_train: Any, training_s: float, notes: dict[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """SHAP values for a seeded prefix of the fold's test rows, within the fold's SHAP time budget.

    The budget is `budget_share` of this fold's training time (at least `min_s`); the metadata keeps the
    seconds spent (`seconds`, of which `one_off_s` the process paid once), the budget and the training time,
    so reports and benchmarks can show what explaining cost. A failure to explain never fails the fold: it
    becomes a note.
    """
    from harness.explain import explain_fold

    result, rows = _run_explainer(task, training_s, notes, "shap", functools.partial(explain_fold, model, X_train))
    if result is None:
        return None
    arrays, meta = result.to_arrays()
    meta["training_s"] = training_s
    return arrays | {"rows": rows[: len(arrays["values"])].astype(np.int64)}, meta


def _run_explainer(
    task: FoldTask, training_s: float, notes: dict[str, str], method: str, explainer: Callable[..., Any]
) -> tuple[Any, np.ndarray]:
    """One explainer (`method`: shap or lime) on the fold's explained rows, within the fold's budget.

    The rows are a seeded order of the test rows that names no estimator, so every model of the fold (and
    both methods) explains the same rows. Returns the explanation (None when it failed: the failure becomes
    the note `method`, never the fold's) and the rows.
    """
    from harness.explain import explain_rows

    settings, ds, split = task.explain, task.dataset, task.split
    budget = max(settings["min_s"], settings["budget_share"] * training_s)
    rows = explain_rows(split.test, derive_seed(task.seed, "explain rows", ds.name, None, split.repeat, split.fold))
    rows = rows[: settings["max_rows"]]
    seed = derive_seed(task.seed, method, ds.name, None, split.repeat, split.fold)
    try:
        with threadpool_limits(limits=task.threads):
            return explainer(ds.X.iloc[rows], ds.task, budget, seed, settings["max_rows"]), rows
    except Exception as exc:
        notes[method] = _one_line(exc)
        return None, rows


def explain_with_lime(
    task: FoldTask,
    model: Any,
    X_train: Any,
    training_s: float,
    notes: dict[str, str],
    shap: tuple[dict[str, np.ndarray], dict[str, Any]] | None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """LIME weights for the SHAP rows of the fold (the same seeded order), stored beside SHAP's values.

    LIME gets the same budget as SHAP (so `method: both` spends up to twice the explanation budget); a failure
    becomes a note, like SHAP's.
    """
    from harness.explain.lime import explain_lime

    result, _ = _run_explainer(task, training_s, notes, "lime", functools.partial(explain_lime, model, X_train))
    if result is None:
        return shap
    arrays, meta = result.to_arrays()
    meta["lime"]["training_s"] = training_s
    if shap is None:
        return arrays, meta
    return shap[0] | arrays, shap[1] | meta


def _configure(task: FoldTask, extra: dict[str, Any]) -> Resolved:
    """The estimator this fold fits: pretrained start, then tuned parameters (recorded in `extra`)."""
    resolved = task.resolved
    if task.pretrained is not None:
        resolved = resolved.with_params({"pretrained": task.pretrained})
    if task.study is not None:
        outcome = tune_on_rows(task.dataset, resolved, task.split.train, task.study, task.threads)
        resolved = resolved.with_params(outcome.best_params)
        extra["tuning"] = outcome.as_dict() | {"mode": "nested"}
    elif task.preset is not None:
        resolved = resolved.with_params(task.preset["params"])
        extra["tuning"] = task.preset["tuning"]
    return resolved


def tune_on_rows(
    ds: Dataset, resolved: Resolved, rows: np.ndarray, plan: StudyPlan, threads: int, judge: bool = True
) -> StudyOutcome:
    """Run (or resume) a study whose every fit and score sees only `rows`, split into inner folds.

    With `judge`, a study whose every trial failed raises StudyFailed: there is nothing to fit.
    """
    inner = inner_splits(ds, rows, plan.inner_folds, plan.seed)
    metric = METRICS[plan.metric]
    columns = Columns(ds.numeric, ds.categorical, ds.has_missing)
    n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0

    def evaluate(params: dict[str, Any], k: int, report: Report | None) -> tuple[float | None, int | None]:
        train, test = inner[k]
        model = build(resolved.with_params(params), columns)
        limit_threads(model, threads)
        rounds = fit_early_stopped(
            model, ds, train, plan.early_stopping_rounds, derive_seed(plan.seed, "early stopping", index=k), report
        )
        responses = model_responses(model, ds.X.iloc[test], {metric.response}, n_classes)
        return score_fold([metric.name], ds.y[test], responses, ds.classes)[0][metric.name], rounds

    outcome = run_study(plan, evaluate, len(inner))
    if judge and outcome.n_complete == 0 and outcome.n_failed > 0:
        raise StudyFailed(f"every trial failed ({outcome.n_failed}); the first: {outcome.first_error or 'no message'}")
    return outcome


EARLY_STOPPING_FRACTION = 0.1


def final_step(model: Any) -> Any:
    """The estimator at the end of a fold's pipeline (the model itself when it has no preprocessing)."""
    return model[-1] if hasattr(model, "steps") else model


def boosting_library(model: Any) -> str | None:
    """'lightgbm' or 'xgboost' when the model's final step is one of their scikit-learn estimators."""
    root = type(final_step(model)).__module__.split(".")[0]
    return root if root in ("lightgbm", "xgboost") else None


def fit_early_stopped(
    model: Any, ds: Dataset, rows: np.ndarray, rounds: int, seed: int, report: Report | None = None
) -> int | None:
    """Fit on `rows`; LightGBM/XGBoost stop on a validation slice of them and return the rounds kept.

    The slice comes out of `rows` (the inner training part), so the inner test fold that
    scores the trial never steers the stopping. The preprocessing is fitted on the rest
    only and transforms the slice, exactly as in the fold's pipeline. Other models fit as usual.
    `report` receives the slice's score after every round (the pruner's view of the
    learning curve, at no extra cost: early stopping computes it anyway) and may raise
    to stop the fit.
    """
    library = boosting_library(model) if rounds > 0 and len(rows) >= 50 else None
    if library is None:
        model.fit(ds.X.iloc[rows], ds.y[rows])
        return None
    fit, val = validation_rows(ds, rows, EARLY_STOPPING_FRACTION, seed)
    X_fit, X_val, y_fit, y_val = ds.X.iloc[fit], ds.X.iloc[val], ds.y[fit], ds.y[val]
    final = model
    if hasattr(model, "steps"):
        prep, final = model[:-1], model[-1]
        X_fit, y_fit = fit_prep(prep, X_fit, y_fit)  # a sampler resamples the fitted rows, never the slice
        X_val = transform_prep(prep, X_val)
    if library == "lightgbm":
        import lightgbm

        callbacks = [lightgbm.early_stopping(rounds, first_metric_only=True, verbose=False)]
        if report is not None:
            callbacks.append(_lightgbm_reporter(report))
        # LightGBM 4.7 renamed eval_set to eval_X/eval_y; the range allows older releases.
        has_eval_x = "eval_X" in inspect.signature(final.fit).parameters
        evals = {"eval_X": (X_val,), "eval_y": (y_val,)} if has_eval_x else {"eval_set": [(X_val, y_val)]}
        final.fit(X_fit, y_fit, callbacks=callbacks, **evals)
        return int(final.best_iteration_ or final.n_estimators)
    final.set_params(early_stopping_rounds=rounds)
    if report is not None:
        final.set_params(callbacks=[_xgboost_reporter(report)])
    final.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)
    return int(final.best_iteration) + 1


def _lightgbm_reporter(report: Report) -> Callable[[Any], None]:
    """A LightGBM callback passing the first validation metric of each round to `report`."""

    def callback(env: Any) -> None:
        if env.evaluation_result_list:
            _, _, value, higher_is_better = env.evaluation_result_list[0][:4]
            report(env.iteration + 1, float(value), bool(higher_is_better))

    callback.order = 20  # before early stopping (30), whose exception would skip the fit's last round
    return callback


# XGBoost's evaluation metrics where higher is better (its callbacks do not say).
_XGB_HIGHER_BETTER = ("auc", "aucpr", "map", "ndcg", "pre")


def _xgboost_reporter(report: Report) -> Any:
    """An XGBoost callback passing the first metric on the validation slice after each round to `report`."""
    import xgboost

    class Reporter(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            metrics = next(iter(evals_log.values()), {})  # the one validation set: the slice
            if metrics:
                name, values = next(iter(metrics.items()))
                report(epoch + 1, float(values[-1]), name.split("@")[0] in _XGB_HIGHER_BETTER)
            return False  # never asks XGBoost to stop; a pruned trial raises instead

    return Reporter()


def fitted_extras(model: Any) -> dict[str, Any]:
    """What a fitted model learned that reports can plot (an MLP's per-epoch history)."""
    final = final_step(model)
    history = getattr(final, "history_", None)
    if history is None:
        return {}
    return {"history": history, "best_epoch": getattr(final, "best_epoch_", None)}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
