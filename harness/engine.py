"""The engine: fit and score one fold, and run many folds in parallel.

`fit_and_score` is the unit of work, kept small and pure like scikit-learn's
`_fit_and_score`: it builds a fresh estimator, fits it on the training rows, predicts
the test rows and returns a `FoldResult`. It never raises for the estimator's sake:
an exception becomes an error result (with the traceback kept), a fit past its time
limit is killed and becomes a timeout result. `execute` runs tasks through joblib,
so any joblib backend (loky here, Dask on a cluster) runs the same code.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from harness.datasets import Dataset
from harness.metrics import CLASSIFICATION, METRICS, model_responses, score_fold
from harness.preprocess import Columns
from harness.registry import Resolved, build
from harness.splits import Split, inner_splits, validation_rows
from harness.store import ERROR, OK, SKIPPED, TIMEOUT, FoldResult
from harness.tuning import Report, StudyOutcome, StudyPlan, run_study


@dataclass
class FoldTask:
    """Everything one fold needs; picklable so any joblib backend can ship it."""

    key: str
    dataset: Dataset
    resolved: Resolved
    split: Split
    metrics: list[str]
    threads: int = 1
    timeout_s: float | None = None
    study: StudyPlan | None = None  # nested tuning on this fold's training rows
    preset: dict[str, Any] | None = None  # tune_then_cv: {"params": ..., "tuning": ...} found beforehand
    pretrained: str | None = None  # weights file to start an MLP from (fine-tuning)
    seed: int = 0  # the suite seed these splits and estimator come from
    explain: dict[str, Any] | None = None  # SHAP settings (ExplainSpec) when this fold is explained
    robustness: list[float] | None = None  # noise levels to score the test rows under

    def result(self, status: str, **kw: Any) -> FoldResult:
        return FoldResult(
            self.key,
            self.dataset.name,
            self.resolved.spec.name,
            self.dataset.task,
            self.split.repeat,
            self.split.fold,
            status,
            **kw,
        )


def cpu_count() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(n_jobs: int, threads: int | None = None) -> int:
    """Each worker's share of the cores, so n_jobs x threads never oversubscribes.

    HARNESS_THREADS sets the default where other processes share the cores (e.g. test
    workers): OpenMP learners spin-wait and slow down badly when threads outnumber free cores.
    """
    if threads is None and os.environ.get("HARNESS_THREADS", "").isdigit():
        threads = int(os.environ["HARNESS_THREADS"])
    if threads is not None:
        return max(1, threads)
    return max(1, cpu_count() // max(1, n_jobs))


# Estimators whose n_jobs does nothing (and warns when set).
_N_JOBS_IS_NOOP = {"LogisticRegression"}


def limit_threads(model: Any, threads: int) -> None:
    """Give every `n_jobs` in the estimator tree an explicit share.

    Leaf learners (forests, LightGBM, XGBoost, kNN) get `threads`; meta-estimators
    (stacking, voting, bagging) get 1 so that members do not multiply the count.
    OpenMP and BLAS pools are capped separately by threadpool_limits in the caller.
    """
    params = model.get_params(deep=True)
    updates = {}
    for key in params:
        name = key.rsplit("__", 1)[-1]
        if name == "n_threads":  # torch estimators: intra-op threads
            updates[key] = threads
            continue
        if name != "n_jobs":
            continue
        owner = key[: -len("n_jobs")]
        owner_obj = params.get(owner.rstrip("_"), model) if owner else model
        if type(owner_obj).__name__ in _N_JOBS_IS_NOOP:
            continue
        is_meta = f"{owner}estimators" in params or f"{owner}estimator" in params
        updates[key] = 1 if is_meta else threads
    if updates:
        model.set_params(**updates)


def fit_and_score(task: FoldTask) -> FoldResult:
    """Fit on the fold's training rows, score its test rows; failures become results."""
    if task.resolved.skipped:
        return task.result(SKIPPED, error=task.resolved.skipped)
    if task.timeout_s:
        return _run_isolated(task)
    return _fit_and_score(task)


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
    if task.robustness:
        extra["robustness"] = score_perturbed(task, model, X_train, X_test, y_test)
    # Tuning is training too: a tuned fold's SHAP budget counts its study's wall time.
    training_s = fit_time + float(extra.get("tuning", {}).get("wall_s") or 0.0)
    explanation = explain(task, model, X_train, training_s, notes) if task.explain else None
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


def score_perturbed(
    task: FoldTask, model: Any, X_train: Any, X_test: Any, y_test: np.ndarray
) -> dict[str, dict[str, float | None]]:
    """The fold's metrics on noisy copies of its test rows, by noise level (the model is not refitted)."""
    from harness.robustness import perturb

    ds = task.dataset
    needed = {METRICS[m].response for m in task.metrics}
    n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0
    out = {}
    for i, level in enumerate(task.robustness or []):
        noisy = perturb(X_test, X_train, level, task.seed * 7919 + task.split.fold * 101 + i, ds.categorical)
        with threadpool_limits(limits=task.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            responses = model_responses(model, noisy, needed, n_classes)
        out[f"{level:g}"] = score_fold(task.metrics, y_test, responses, ds.classes)[0]
    return out


def explain(
    task: FoldTask, model: Any, X_train: Any, training_s: float, notes: dict[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """SHAP values for a seeded prefix of the fold's test rows, within the fold's SHAP time budget.

    A failure to explain never fails the fold: it becomes a note.
    """
    from harness.explain import explain_fold, explain_rows

    settings, ds = task.explain, task.dataset
    budget = max(settings["min_s"], settings["budget_share"] * training_s)
    rows = explain_rows(task.split.test, task.seed * 1_000_003 + task.split.fold)[: settings["max_rows"]]
    try:
        with threadpool_limits(limits=task.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = explain_fold(model, X_train, ds.X.iloc[rows], ds.task, budget, task.seed, settings["max_rows"])
    except Exception as exc:
        notes["shap"] = _one_line(exc)
        return None
    arrays, meta = result.to_arrays()
    return arrays | {"rows": rows[: len(arrays["values"])].astype(np.int64)}, meta


def _configure(task: FoldTask, extra: dict[str, Any]) -> Resolved:
    """The estimator this fold fits: pretrained start, then tuned parameters (recorded in `extra`)."""
    resolved = task.resolved
    if task.pretrained:
        resolved = resolved.with_params({"pretrained": task.pretrained})
    if task.study is not None:
        outcome = tune_on_rows(task.dataset, resolved, task.split.train, task.study, task.threads)
        resolved = resolved.with_params(outcome.best_params)
        extra["tuning"] = outcome.as_dict() | {"mode": "nested"}
    elif task.preset is not None:
        resolved = resolved.with_params(task.preset["params"])
        extra["tuning"] = task.preset["tuning"]
    return resolved


def tune_on_rows(ds: Dataset, resolved: Resolved, rows: np.ndarray, plan: StudyPlan, threads: int) -> StudyOutcome:
    """Run (or resume) a study whose every fit and score sees only `rows`, split into inner folds."""
    inner = inner_splits(ds, rows, plan.inner_folds, plan.seed)
    metric = METRICS[plan.metric]
    columns = Columns(ds.numeric, ds.categorical, ds.has_missing)
    n_classes = len(ds.classes) if ds.task == CLASSIFICATION else 0

    def evaluate(params: dict[str, Any], k: int, report: Report | None) -> tuple[float | None, int | None]:
        train, test = inner[k]
        model = build(resolved.with_params(params), columns)
        limit_threads(model, threads)
        rounds = fit_early_stopped(model, ds, train, plan.early_stopping_rounds, plan.seed + k, report)
        responses = model_responses(model, ds.X.iloc[test], {metric.response}, n_classes)
        return score_fold([metric.name], ds.y[test], responses, ds.classes)[0][metric.name], rounds

    return run_study(plan, evaluate, len(inner))


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
        X_fit = prep.fit_transform(X_fit, y_fit)
        X_val = prep.transform(X_val)
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


# ---------------------------------------------------------------- time limits


def _child(task: FoldTask, conn: Any) -> None:
    try:
        conn.send(_fit_and_score(task))
    finally:
        conn.close()


def _run_isolated(task: FoldTask) -> FoldResult:
    """Run the fold in a child process that is killed when the time limit passes.

    A thread cannot be stopped inside a C extension's fit; a process can. The child is
    forked from a clean forkserver (no OpenMP pools inherited), so this is safe with
    LightGBM and XGBoost.
    """
    ctx = mp.get_context("forkserver")
    # Children start with pandas/sklearn imported (and shap's kernels compiled when folds are explained).
    ctx.set_forkserver_preload(["harness.engine"] + (["harness._warm"] if task.explain else []))
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, send), daemon=True)
    start = time.perf_counter()
    proc.start()
    send.close()
    try:
        if recv.poll(task.timeout_s):
            try:
                return recv.recv()
            except EOFError:
                proc.join(5)
                return task.result(ERROR, error=f"worker process died (exit code {proc.exitcode})")
        elapsed = time.perf_counter() - start
        return task.result(
            TIMEOUT,
            error=f"fit and predict exceeded the time limit of {task.timeout_s:g} s (stopped after {elapsed:.1f} s)",
            fit_time=elapsed,
            n_train=len(task.split.train),
            n_test=len(task.split.test),
        )
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()


# ---------------------------------------------------------------- execution


def execute(tasks: list[FoldTask], n_jobs: int = 1, backend: str | None = None) -> Iterator[FoldResult]:
    """Yield results as folds finish (in any order), so the caller can commit each at once."""
    if not tasks:
        return iter(())
    if n_jobs == 1 and backend is None:
        return (fit_and_score(t) for t in tasks)
    parallel = Parallel(n_jobs=n_jobs, backend=backend, return_as="generator_unordered", pre_dispatch="2*n_jobs")
    return parallel(delayed(fit_and_score)(t) for t in tasks)
