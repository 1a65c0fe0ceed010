"""The run: suite -> datasets -> resolved estimators -> fold tasks -> engine -> store.

`prepare` does every check that can fail on bad input (datasets load, estimators
resolve and build, filters name real entries) before anything is fitted, and
reports all problems at once. `run_suite` then plans one task per (dataset,
estimator, repeat, fold), skips tasks whose content key is already in the store,
executes the rest and commits each result as it arrives.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from harness import __version__
from harness.datasets import Dataset, load_dataset, shared_rows
from harness.engine import FoldTask, cpu_count, execute, final_step, limit_threads, threads_per_worker, tune_on_rows
from harness.errors import DatasetError, EstimatorError, HarnessError, SuiteError
from harness.metrics import METRICS, TASKS
from harness.preprocess import Columns
from harness.registry import DEFAULT_ALLOWED_MODULES, Resolved, Resolver, build
from harness.spec import Suite, did_you_mean
from harness.splits import cv_definition, make_splits
from harness.store import FAILED, FoldResult, Store
from harness.tuning import StudyPlan, make_storage, parse_space

KEY_PACKAGES = (
    "harness",
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "joblib",
    "xgboost",
    "lightgbm",
    "torch",
    "optuna",
    "shap",
)


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
    backend: str | None = None
    storage: str | None = None  # Optuna RDB URL; default sqlite:///<out>/studies.db
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class Plan:
    """The prepared suite: loaded datasets and every fold task, keyed by content."""

    suite: Suite
    datasets: dict[str, Dataset]
    tasks: list[FoldTask]
    loaded: dict[str, Dataset] = field(default_factory=dict)  # datasets plus pretraining sources


@dataclass
class RunSummary:
    run_id: str
    out: Path
    computed: Counter
    reused: int
    failed_in_plan: int
    interrupted: bool = False
    shifts: list[str] = field(default_factory=list)  # "dataset: verdict" for datasets that shifted

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_in_plan else 0


def output_dir(suite: Suite, out: Path | None) -> Path:
    return Path(out) if out is not None else Path("reports") / suite.name


def environment(suite: Suite) -> dict[str, Any]:
    """Where the run happened, for the report: machine, accelerator and the suite's git revision."""
    import platform
    import subprocess

    env: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": cpu_count(),
        "gpu": None,
    }
    # Only a run whose models loaded torch can have used a GPU; importing it just to ask costs a second.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["git_revision"] = None
    if suite.path is not None:
        try:
            out = subprocess.run(
                ["git", "-C", str(suite.path.parent), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
            )
            dirty = subprocess.run(
                ["git", "-C", str(suite.path.parent), "status", "--porcelain", "--", suite.path.name],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0:
                env["git_revision"] = out.stdout.strip() + (" (suite modified)" if dirty.stdout.strip() else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def prepare(suite: Suite, options: RunOptions | None = None) -> Plan:
    """Load, resolve and check everything; raise SuiteError listing every problem.

    With `seeds:`, the plan holds every seed's folds: each seed is the single-seed suite.
    """
    options = options or RunOptions()
    if len(suite.seed_list) > 1:
        plans = [_prepare_one(suite.for_seed(s), options, suite.seed_list[0]) for s in suite.seed_list]
        return Plan(suite, plans[0].datasets, [t for p in plans for t in p.tasks], plans[0].loaded)
    return _prepare_one(suite.for_seed(suite.seed_list[0]), options, suite.seed_list[0])


def _prepare_one(suite: Suite, options: RunOptions, first_seed: int) -> Plan:
    label = suite.label
    problems: list[str] = []
    problems += _check_filter(label, "--dataset", options.datasets, [d.name for d in suite.datasets])
    problems += _check_filter(label, "--estimator", options.estimators, [e.name for e in suite.estimators])
    loaded = _load_datasets(suite, options, problems)
    resolved = _resolve_estimators(suite, options, {d.task for d in loaded.values()}, problems)
    splits = {}
    for i, spec in enumerate(suite.datasets):
        if spec.name in loaded:
            try:
                splits[spec.name] = make_splits(loaded[spec.name], suite.cv, suite.seed)
            except ValueError as exc:  # too few rows (or members of a class) for the folds
                problems.append(
                    f"{label}: datasets[{i}]: cannot split for cv ({suite.cv.scheme}): {str(exc).splitlines()[0]}"
                )
    problems += _check_pretraining(suite, loaded)
    if problems:
        raise SuiteError(list(dict.fromkeys(problems)))
    datasets = {k: v for k, v in loaded.items() if not options.datasets or k in options.datasets}
    tasks = []
    for ds in datasets.values():
        metrics = suite.metric_names(ds.task)
        for est in suite.estimators:
            if options.estimators and est.name not in options.estimators:
                continue
            r = resolved[(est.name, ds.task)]
            source = loaded[est.pretrain.dataset] if est.pretrain is not None else None
            if source is not None and not r.skipped:
                r = _pretrain_fit(r, source, ds)
            timeout = est.timeout_s or suite.timeout_s
            for split in splits[ds.name]:
                explain = suite.explain.model_dump() if explained(suite, split, first_seed) else None
                levels = list(suite.robustness.levels) if suite.robustness is not None else None
                key = task_key(
                    ds, r, suite, split.repeat, split.fold, source, {"explain": explain, "robustness": levels}
                )
                task = FoldTask(key, ds, r, split, metrics, timeout_s=timeout, seed=suite.seed)
                task.explain, task.robustness = explain, levels
                tasks.append(task)
    return Plan(suite, datasets, tasks, loaded)


def explained(suite: Suite, split: Any, first_seed: int) -> bool:
    """SHAP runs on the first repeat of the first seed: one explanation per row is enough."""
    return suite.explain.enabled and split.repeat == 0 and suite.seed == first_seed


def _load_datasets(suite: Suite, options: RunOptions, problems: list[str]) -> dict[str, Dataset]:
    """The datasets to run, plus any pretraining source a filter left out."""
    base_dir = suite.path.parent if suite.path else Path.cwd()
    sources = {e.pretrain.dataset for e in suite.estimators if e.pretrain is not None}
    sources |= {
        d.reference for d in suite.datasets if d.reference and (not options.datasets or d.name in options.datasets)
    }
    loaded: dict[str, Dataset] = {}
    for i, spec in enumerate(suite.datasets):
        if options.datasets and spec.name not in options.datasets and spec.name not in sources:
            continue
        try:
            loaded[spec.name] = load_dataset(spec, base_dir, suite.cv.group, where=f"datasets[{i}]")
        except DatasetError as exc:
            problems.append(f"{suite.label}: {exc}")
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


def run_suite(
    suite: Suite,
    options: RunOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
    plan: Plan | None = None,
) -> RunSummary:
    """Run every fold not yet in the store; `on_start(todo, reused)` and `on_result` report progress."""
    options = options or RunOptions()
    plan = plan or prepare(suite, options)
    out = output_dir(suite, options.out)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    versions = package_versions()
    threads = threads_per_worker(options.n_jobs, options.threads)
    with Store(out / "results.db") as store:
        store.start_run(
            run_id,
            suite.name,
            suite.model_dump_json(),
            options.argv,
            versions,
            {
                "n_jobs": options.n_jobs,
                "threads": threads,
                "backend": options.backend or "loky",
                "seed": suite.seed,
                "seeds": suite.seed_list,
                "cv": suite.cv.model_dump(),
                "metrics": {t: suite.metric_names(t) for t in TASKS},
                "primary": {t: suite.primary_metric(t) for t in TASKS},
                "environment": environment(suite),
            },
        )
        store.record_plan(run_id, [t.key for t in plan.tasks])
        store.record_datasets(ds.describe() | {"notes": ds.notes} for ds in plan.datasets.values())
        store.record_metrics((m.name, m.task, m.greater_is_better) for m in METRICS.values())
        shifts = check_references(plan, out, store, threads)
        todo = _select(plan.tasks, store, options)
        for t in todo:
            t.threads = threads
        if on_start:
            on_start(len(todo), len(plan.tasks) - len(todo))
        computed: Counter = Counter()
        configs = {t.key: t.resolved.config() for t in todo}
        fps = {t.key: t.dataset.fingerprint for t in todo}
        seeds = {t.key: t.seed for t in todo}
        interrupted = False
        storage = options.storage or f"sqlite:///{(out / 'studies.db').resolve()}"
        deadline = time.time() + suite.tuning.max_total_s if suite.tuning.max_total_s else None
        try:
            _attach_pretrained(todo, plan, out / "pretrained", threads)
            _attach_studies(todo, suite, storage, deadline, threads)
            for result in execute(todo, options.n_jobs, options.backend):
                store.add(result, run_id, seeds[result.key], configs[result.key], versions, fps[result.key])
                computed[result.status] += 1
                if on_result:
                    on_result(result)
        except KeyboardInterrupt:
            interrupted = True
        store.finish_run(run_id, "interrupted" if interrupted else "finished")
        keys = {t.key for t in plan.tasks}
        failed = len(keys & store.done_keys(FAILED))
    summary = RunSummary(run_id, out, computed, len(plan.tasks) - len(todo), failed, interrupted, shifts)
    if interrupted:
        raise KeyboardInterrupt(summary)
    return summary


def check_references(plan: Plan, out: Path, store: Store, threads: int) -> list[str]:
    """Check each dataset with a `reference:` for shift against it (once per content); verdicts of shifts.

    The result goes to the store (the report shows it) and to OUT/check-data/<dataset>/.
    A shift does not fail the run: `harness check-data` is the gate.
    """
    from harness.drift import compare, side_from_dataset, write_report

    shifts, stored = [], store.checks()
    for spec in plan.suite.datasets:
        if spec.reference is None or spec.name not in plan.datasets:
            continue
        new, ref = plan.datasets[spec.name], plan.loaded[spec.reference]
        ident = f"{ref.fingerprint}:{new.fingerprint}:{plan.suite.seed}"
        name = f"check-data:{spec.name}"
        if stored.get(name, ("",))[0] == ident:
            payload = stored[name][1]
        else:
            try:
                report = compare(
                    side_from_dataset(ref, "reference"),
                    side_from_dataset(new, "new"),
                    target=spec.target,
                    seed=plan.suite.seed,
                    threads=threads,
                )
            except HarnessError as exc:
                shifts.append(f"{spec.name}: the check against '{spec.reference}' could not run: {exc}")
                continue
            write_report(report, out / "check-data" / spec.name)
            payload = report.to_json() | {"dataset": spec.name, "reference_dataset": spec.reference}
            store.record_check(name, ident, payload)
        if payload["shift"]:
            shifts.append(f"{spec.name} vs {spec.reference}: {payload['verdict']}")
    return shifts


def study_plan(task: FoldTask, suite: Suite, name: str, storage: str, deadline: float | None) -> StudyPlan:
    """The Optuna study for a fold (nested) or a (dataset, estimator) cell (tune_then_cv)."""
    tune = task.resolved.tune
    metric = tune["metric"] or suite.primary_metric(task.dataset.task)
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
        seed=(task.seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)) % 2**31,
        inner_folds=tune["inner_folds"],
        early_stopping_rounds=tune.get("early_stopping_rounds", 0),
    )


def _attach_studies(todo: list[FoldTask], suite: Suite, storage: str, deadline: float | None, threads: int) -> None:
    """Nested: each fold gets its own study. tune_then_cv: one study on all rows, run here, shared by the folds."""
    if any(t.resolved.tune is not None for t in todo):
        make_storage(storage)  # create the tables here, before workers race to create them
    cells: dict[tuple[str, str], list[FoldTask]] = {}
    for t in todo:
        if t.resolved.tune is None:
            continue
        if t.resolved.tune["mode"] == "nested":
            t.study = study_plan(t, suite, f"fold-{t.key}", storage, deadline)
        else:
            cells.setdefault((t.dataset.name, t.resolved.spec.name), []).append(t)
    for tasks in cells.values():
        first = tasks[0]
        ident = json.dumps(
            [first.dataset.fingerprint, first.resolved.config(), first.seed], sort_keys=True, default=str
        )
        name = "cell-" + hashlib.sha256(ident.encode()).hexdigest()[:24]
        plan = study_plan(first, suite, name, storage, deadline)
        rows = np.arange(len(first.dataset.y))
        with threadpool_limits(limits=threads):
            outcome = tune_on_rows(first.dataset, first.resolved, rows, plan, threads)
        preset = {"params": outcome.best_params, "tuning": outcome.as_dict() | {"mode": "tune_then_cv"}}
        for t in tasks:
            t.preset = preset


def _attach_pretrained(todo: list[FoldTask], plan: Plan, folder: Path, threads: int) -> None:
    """Pretrain once per (estimator, source) on the whole source dataset; folds start from its weights.

    The weights file is named by content (source fingerprint and configuration), written
    atomically and reused by later runs, so resuming never pretrains twice.
    """
    for t in todo:
        spec = t.resolved.spec
        if spec.pretrain is None or t.resolved.skipped:
            continue
        source = plan.loaded[spec.pretrain.dataset]
        own = {k: v for k, v in t.resolved.params.items() if k != "finetune"}
        base = replace(t.resolved, params={**own, **spec.pretrain.params})
        ident = json.dumps([source.fingerprint, base.config()], sort_keys=True, default=str)
        path = folder / f"{hashlib.sha256(ident.encode()).hexdigest()[:24]}.pt"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with threadpool_limits(limits=threads):
                model = build(base, Columns(source.numeric, source.categorical, source.has_missing))
                limit_threads(model, threads)
                model.fit(source.X, source.y)
            partial = path.with_suffix(".partial")
            final_step(model).save_pretrained(partial)
            partial.replace(path)
        t.pretrained = str(path)


def _select(tasks: list[FoldTask], store: Store, options: RunOptions) -> list[FoldTask]:
    if options.force:
        return list(tasks)
    done = store.done_keys()
    if options.retry_failed:
        done -= store.done_keys(FAILED)
    return [t for t in tasks if t.key not in done]
