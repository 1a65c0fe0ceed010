"""The planner: a suite becomes one frozen graph of tasks, each keyed by content.

`prepare` does every check that can fail on bad input (datasets load, estimators
resolve and build, filters name real entries, pretraining shares no rows) before
anything is fitted, and reports all problems at once. It then plans every task the
suite implies, complete and immutable:
- one `FoldTask` per (dataset, estimator, repeat, fold), with its nested study;
- one `StudyTask` per tune_then_cv (dataset, estimator) cell, which its folds need;
- one `PretrainTask` per (estimator, source), which the fine-tuned folds need.
`select` decides what a run computes, given the store: the folds not yet stored, and
the studies and pretraining those folds need (finished pretraining is read back from
its content-keyed weights file). `harness run --dry-run` prints the same selection.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.datasets import Dataset, load_dataset, shared_rows
from harness.engine import (
    FAILED,
    OK,
    FoldTask,
    PretrainTask,
    StepResult,
    StudyTask,
    Task,
    derive_seed,
    threads_per_worker,
)
from harness.engine.curves import check_validation_curve
from harness.errors import DatasetError, EstimatorError, SuiteError
from harness.metrics import METRICS, TASKS
from harness.openml import expand_suite
from harness.preprocess import Columns
from harness.registry import DEFAULT_ALLOWED_MODULES, Resolved, Resolver, build
from harness.spec import Suite, did_you_mean
from harness.splits import Split, cv_definition, make_splits
from harness.store import Store
from harness.tuning import StudyPlan, parse_space


@dataclass
class RunOptions:
    out: Path | None = None
    n_jobs: int = 1
    threads: int | None = None
    force: bool = False
    retry_failed: bool = False
    datasets: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    allow_modules: tuple[str, ...] = DEFAULT_ALLOWED_MODULES
    storage: str | None = None  # Optuna RDB URL; default sqlite:///<out>/studies.db
    cluster: str | None = None  # a Dask scheduler address, or local:N
    data_home: Path | None = None  # OpenML cache; default HARNESS_DATA_HOME, else ~/.cache/harness
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class Plan:
    """The prepared suite: loaded datasets, every fold task, and the studies and pretraining they need."""

    suite: Suite
    datasets: dict[str, Dataset]
    tasks: list[FoldTask]
    loaded: dict[str, Dataset] = field(default_factory=dict)  # datasets plus pretraining sources
    steps: dict[str, StudyTask | PretrainTask] = field(default_factory=dict)  # by key
    out: Path = Path("reports")
    threads: int = 1
    storage: str = ""
    skipped: list[str] = field(default_factory=list)  # OpenML suite datasets left out, with the reason

    @property
    def preload(self) -> tuple[str, ...]:
        """Modules worth importing once in the forkserver: the libraries the plan's estimators come from."""
        fitted = (t.resolved for t in self.tasks if not t.resolved.skipped)  # a skipped one names no class
        roots = {r.cls_path.split(".")[0] for r in _all_resolved(fitted)}
        modules = {"harness.models.mlp" if root == "harness" else root for root in roots}
        if any(t.explain for t in self.tasks):
            modules.add("harness._warm")
        return tuple(sorted(modules))


@dataclass
class Selection:
    """What one run computes: the folds not yet stored, and the steps they need."""

    folds: list[FoldTask]
    steps: list[StudyTask | PretrainTask]
    done: dict[str, StepResult]  # steps needed but already computed (pretrained weights on disk)

    @property
    def tasks(self) -> list[Task]:
        return [*self.steps, *self.folds]  # steps first: folds wait for them


def output_dir(suite: Suite, out: Path | None) -> Path:
    return Path(out) if out is not None else Path("reports") / suite.name


def task_key(
    dataset: Dataset,
    resolved: Resolved,
    suite: Suite,
    repeat: int,
    fold: int,
    source: Dataset | None = None,
    outputs: dict[str, Any] | None = None,
) -> str:
    """Content key of one fold: a change to data, estimator, splits, metrics, outputs or harness makes a new key."""
    payload = {
        **{k: v for k, v in (outputs or {}).items() if v is not None},
        "pretrain": source.fingerprint if source is not None else None,
        "dataset": dataset.fingerprint,
        "estimator": resolved.config(),
        "cv": cv_definition(suite.cv, dataset.task, suite.seed),
        "metrics": sorted(suite.metric_names(dataset.task)),
        "harness": __version__,
        "repeat": repeat,
        "fold": fold,
    }
    return _digest(payload)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def prepare(suite: Suite, options: RunOptions | None = None) -> Plan:
    """Load, resolve and check everything, then plan every task; raise SuiteError listing every problem.

    With `seeds:`, the plan holds every seed's folds: each seed is the single-seed suite.
    """
    options = options or RunOptions()
    expanded = expand_suite(suite, options.data_home)  # openml_suite entries become openml:ID datasets
    suite = expanded.suite
    cache: dict[str, Dataset | DatasetError] = {}  # the data does not depend on the seed: loaded once
    plans = [
        _prepare_one(suite.for_seed(s), options, suite.seed_list[0], expanded.where, cache) for s in suite.seed_list
    ]
    first = plans[0]
    steps = {k: v for p in plans for k, v in p.steps.items()}
    skipped = [str(s) for s in expanded.skipped]
    return replace(first, suite=suite, tasks=[t for p in plans for t in p.tasks], steps=steps, skipped=skipped)


def _prepare_one(
    suite: Suite,
    options: RunOptions,
    first_seed: int,
    where: dict[str, str] | None = None,
    cache: dict[str, Dataset | DatasetError] | None = None,
) -> Plan:
    label = suite.label
    where = where or {}
    problems: list[str] = []
    problems += _check_filter(label, "--dataset", options.datasets, [d.name for d in suite.datasets])
    problems += _check_filter(label, "--estimator", options.estimators, [e.name for e in suite.estimators])
    loaded = _load_datasets(suite, options, problems, where, cache)
    resolved = _resolve_estimators(suite, options, {d.task for d in loaded.values()}, problems)
    splits = {}
    for i, spec in enumerate(suite.datasets):
        if spec.name in loaded:
            try:
                splits[spec.name] = make_splits(loaded[spec.name], suite.cv, suite.seed)
            except ValueError as exc:  # too few rows (or members of a class) for the folds
                at = where.get(spec.name, f"datasets[{i}]")
                problems.append(f"{label}: {at}: cannot split for cv ({suite.cv.scheme}): {str(exc).splitlines()[0]}")
    problems += _check_pretraining(suite, loaded)
    if problems:
        raise SuiteError(list(dict.fromkeys(problems)))
    out = output_dir(suite, options.out)
    plan = Plan(
        suite,
        {k: v for k, v in loaded.items() if not options.datasets or k in options.datasets},
        [],
        loaded,
        out=out,
        threads=threads_per_worker(options.n_jobs, options.threads),
        storage=options.storage or f"sqlite:///{(out / 'studies.db').resolve()}",
    )
    deadline = time.time() + suite.tuning.max_total_s if suite.tuning.max_total_s else None
    for ds in plan.datasets.values():
        for est in suite.estimators:
            if options.estimators and est.name not in options.estimators:
                continue
            r = resolved[(est.name, ds.task)]
            source = loaded[est.pretrain.dataset] if est.pretrain is not None else None
            if source is not None and not r.skipped:
                r = _pretrain_fit(r, source, ds)
            needs = _plan_steps(plan, ds, r, source, deadline)
            for split in splits[ds.name]:
                plan.tasks.append(_fold_task(plan, ds, r, split, source, needs, deadline, first_seed))
    return plan


def _fold_task(
    plan: Plan,
    ds: Dataset,
    r: Resolved,
    split: Split,
    source: Dataset | None,
    needs: tuple[str, ...],
    deadline: float | None,
    first_seed: int,
) -> FoldTask:
    suite = plan.suite
    explain = suite.explain.settings() if explained(suite, split, first_seed) else None  # method only when not shap
    robust = suite.robustness
    levels = tuple(robust.levels) if robust is not None and "noise" in robust.attacks else None
    outputs = {"explain": explain, "robustness": list(levels) if levels else levels}
    attacks = robust.attack_settings() if robust is not None else None
    if attacks is not None:  # only noise: keys unchanged
        outputs["attacks"] = attacks
    learning = r.spec.learning_curve or suite.learning_curve  # off unless asked: keys unchanged
    curve = r.spec.curve.model_dump() if r.spec.curve is not None else None
    if learning is not None:
        outputs["learning_curve"] = learning.fractions
    if curve is not None:
        outputs["validation_curve"] = curve
    key = task_key(ds, r, suite, split.repeat, split.fold, source, outputs)
    nested = r.tune is not None and not r.skipped and r.tune["mode"] == "nested"
    study = study_plan(suite, ds, r, f"fold-{key}", plan.storage, deadline, split) if nested else None
    return FoldTask(
        key,
        ds,
        r,
        split,
        tuple(suite.metric_names(ds.task)),
        seed=suite.seed,
        threads=plan.threads,
        timeout_s=r.spec.timeout_s or suite.timeout_s,
        study=study,
        explain=explain,
        robustness=levels,
        attacks=attacks,
        learning_curve=tuple(learning.fractions) if learning is not None else None,
        validation_curve=curve,
        needs=() if r.skipped else needs,
    )


def _plan_steps(
    plan: Plan, ds: Dataset, r: Resolved, source: Dataset | None, deadline: float | None
) -> tuple[str, ...]:
    """The study and pretraining the folds of this (dataset, estimator) cell start from; added to the plan once."""
    if r.skipped:
        return ()
    suite, needs = plan.suite, []
    timeout = r.spec.timeout_s or suite.timeout_s
    if source is not None:
        base = pretraining(r)
        key = "pretrain-" + _digest([source.fingerprint, base.config()])
        plan.steps.setdefault(key, PretrainTask(key, source, base, plan.threads, timeout))
        needs.append(key)
    if r.tune is not None and r.tune["mode"] == "tune_then_cv":
        key = "cell-" + _digest([ds.fingerprint, r.config(), suite.seed])
        if key not in plan.steps:
            study = study_plan(suite, ds, r, key, plan.storage, deadline)
            _plan_study(plan, key, StudyTask(key, ds, r, study, plan.threads, timeout))
        needs.append(key)
    return tuple(needs)


def _plan_study(plan: Plan, key: str, study: StudyTask) -> None:
    """The study, and with `tune.workers` > 1 its runners: each samples with its own seed (the
    same seed would propose the same trials), all into the study's one storage."""
    n = study.resolved.tune.get("workers", 1)
    runners = [
        replace(
            study,
            key=f"{key}-runner{i}",
            plan=replace(study.plan, seed=derive_seed(study.plan.seed, "study runner", index=i)),
            runner=i,
            runners=n,
        )
        for i in range(1, n + 1)
        if n > 1  # one worker runs the study itself: no runner task
    ]
    plan.steps.update({r.key: r for r in runners})
    plan.steps[key] = replace(study, runners=n, needs=tuple(r.key for r in runners))


def pretraining(r: Resolved) -> Resolved:
    """The estimator a pretraining fit builds: its own parameters (not `finetune`), then `pretrain.params`."""
    own = {k: v for k, v in r.params.items() if k != "finetune"}
    return replace(r, params={**own, **r.spec.pretrain.params})


def study_plan(
    suite: Suite,
    ds: Dataset,
    resolved: Resolved,
    name: str,
    storage: str,
    deadline: float | None,
    split: Split | None = None,
) -> StudyPlan:
    """The Optuna study for a fold (nested, with its split) or a (dataset, estimator) cell (tune_then_cv)."""
    tune = resolved.tune
    metric = tune["metric"] or suite.primary_metric(ds.task)
    repeat, fold = (split.repeat, split.fold) if split is not None else (None, None)
    return StudyPlan(
        name=name,
        storage=storage,
        space=parse_space(tune["space"]),
        metric=metric,
        maximize=METRICS[metric].greater_is_better,
        sampler=tune["sampler"],
        pruner=tune["pruner"],
        trials=tune["trials"],
        timeout_s=tune["timeout_s"],
        deadline=deadline,
        seed=derive_seed(suite.seed, "study", ds.name, resolved.spec.name, repeat, fold),
        inner_folds=tune["inner_folds"],
        early_stopping_rounds=tune.get("early_stopping_rounds", 0),
    )


def select(plan: Plan, store: Store | None, options: RunOptions) -> Selection:
    """The folds this run computes (not stored yet, or failed with --retry-failed, or all with --force), and their steps."""
    done_keys: set[str] = set()
    if store is not None and not options.force:
        done_keys = store.done_keys()
        if options.retry_failed:
            done_keys -= store.done_keys(FAILED)
    folds = [t for t in plan.tasks if t.key not in done_keys]
    needed = _needed(plan, [k for t in folds for k in t.needs])
    steps, done = [], {}
    for key in needed:
        step = plan.steps[key]
        weights = pretrained_path(plan.out, key)
        if isinstance(step, PretrainTask) and weights.is_file():  # content-keyed: the same fit, even with --force
            done[key] = step.result(OK, value=weights.read_bytes())
        else:
            steps.append(step)
    return Selection(folds, steps, done)


def _needed(plan: Plan, keys: list[str]) -> list[str]:
    """These steps and every step they need in turn, each once, a step after those it needs."""
    order: dict[str, None] = {}

    def visit(key: str) -> None:
        if key not in order:
            for k in plan.steps[key].needs:
                visit(k)
            order[key] = None

    for key in keys:
        visit(key)
    return list(order)


def pretrained_path(out: Path, key: str) -> Path:
    """Where a pretraining fit's weights are kept (named by content, so reruns reuse them)."""
    return out / "pretrained" / f"{key.removeprefix('pretrain-')}.pt"


def _all_resolved(items: Any) -> Any:
    for r in items:
        yield r
        for member in r.members.values():
            yield from _all_resolved(member if isinstance(member, list) else [member])


def explained(suite: Suite, split: Any, first_seed: int) -> bool:
    """SHAP runs on the first `explain.folds` folds of the first repeat of the first seed.

    One explanation per row is enough, and a few folds per cell show what drives each model (and how much
    that varies across folds) at a fraction of the cost. The folds are the same for every estimator, so the
    report compares models on the same rows.
    """
    settings = suite.explain
    return settings.enabled and split.repeat == 0 and split.fold < settings.folds and suite.seed == first_seed


def _load_datasets(
    suite: Suite,
    options: RunOptions,
    problems: list[str],
    where: dict[str, str] | None = None,
    cache: dict[str, Dataset | DatasetError] | None = None,
) -> dict[str, Dataset]:
    """The datasets to run, plus any pretraining source a filter left out.

    `where` names each dataset's entry in the suite file (an OpenML suite entry stands for
    several datasets); OpenML data comes from `options.data_home` (loaded here, on the
    driver: cluster workers receive the loaded data and never need the data home).
    """
    base_dir = suite.path.parent if suite.path else Path.cwd()
    sources = {e.pretrain.dataset for e in suite.estimators if e.pretrain is not None}
    sources |= {
        d.reference for d in suite.datasets if d.reference and (not options.datasets or d.name in options.datasets)
    }
    loaded: dict[str, Dataset] = {}
    cache = {} if cache is None else cache
    for i, spec in enumerate(suite.datasets):
        if options.datasets and spec.name not in options.datasets and spec.name not in sources:
            continue
        if spec.name not in cache:
            try:
                at = (where or {}).get(spec.name, f"datasets[{i}]")
                cache[spec.name] = load_dataset(spec, base_dir, suite.cv.group, where=at, data_home=options.data_home)
            except DatasetError as exc:
                cache[spec.name] = exc
        if isinstance(cache[spec.name], DatasetError):
            problems.append(f"{suite.label}: {cache[spec.name]}")
        else:
            loaded[spec.name] = cache[spec.name]
    return loaded


def _resolve_estimators(
    suite: Suite, options: RunOptions, tasks_needed: set[str], problems: list[str]
) -> dict[tuple[str, str], Resolved]:
    """Every estimator for every task present; classes and parameters are checked by building once."""
    resolver = Resolver(suite, options.allow_modules)
    resolved: dict[tuple[str, str], Resolved] = {}
    for i, est in enumerate(suite.estimators):
        for task in sorted(tasks_needed or set(TASKS)):
            try:
                r = resolver.resolve(est.name, task)
                if not r.skipped:
                    build(r, Columns(["x"], ["c"], True))  # checks class and parameters now, not at fit
            except EstimatorError as exc:
                problems.append(f"{suite.label}: estimators[{i}].{exc}")
                break
            resolved[(est.name, task)] = r
            if est.curve is not None and not r.skipped:
                found = check_validation_curve(r, est.curve.param, est.curve.values)
                problems += [f"{suite.label}: estimators[{i}].{p}" for p in found]
            if est.pretrain is not None and not r.skipped:
                try:
                    build(pretraining(r), Columns(["x"], ["c"], True))
                except EstimatorError as exc:
                    problems.append(f"{suite.label}: estimators[{i}].pretrain.{exc}")
            metric = (r.tune or {}).get("metric")
            if metric and METRICS[metric].task != task:
                problems.append(
                    f"{suite.label}: estimators[{i}].tune.metric: '{metric}' is a {METRICS[metric].task} metric, "
                    f"but a dataset is {task}"
                )
    return resolved


def _check_pretraining(suite: Suite, loaded: dict[str, Dataset]) -> list[str]:
    """Pretraining must never have seen rows that are evaluated: shared rows are bad input."""
    problems = []
    for i, est in enumerate(suite.estimators):
        if est.pretrain is None or est.pretrain.dataset not in loaded:
            continue
        source = loaded[est.pretrain.dataset]
        for ds in loaded.values():
            shared = 0 if ds is source else shared_rows(source, ds)
            if shared:
                problems.append(
                    f"{suite.label}: estimators[{i}].pretrain.dataset: '{source.name}' shares {shared} rows with "
                    f"dataset '{ds.name}': the model would be evaluated on rows it was pretrained on"
                )
    return problems


def _pretrain_fit(r: Resolved, source: Dataset, ds: Dataset) -> Resolved:
    """Skip the fine-tuned estimator where pretraining cannot apply, with the reason."""
    if ds is source:
        return replace(r, skipped=f"'{ds.name}' is its pretraining dataset")
    if ds.task != source.task:
        return replace(r, skipped=f"pretrained on a {source.task} dataset")
    if list(ds.X.columns) != list(source.X.columns) or ds.categorical != source.categorical:
        return replace(r, skipped=f"its features differ from the pretraining dataset '{source.name}'")
    return r


def _check_filter(label: str, flag: str, wanted: tuple[str, ...], names: list[str]) -> list[str]:
    def hint(w: str) -> str:
        return did_you_mean(w, names) or f" (the suite has: {', '.join(names)})"

    return [f"{label}: {flag} {w}: no such name in the suite{hint(w)}" for w in wanted if w not in names]
