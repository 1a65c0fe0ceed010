"""The run: plan -> engine -> store, with the run row always closed.

`run_suite` opens the store (its schema is checked before anything is fitted), asks
the planner what this run computes, lets the engine run those tasks (independent ones
in parallel) and commits every result as it arrives: the driver is the only writer.
Whatever happens, the run row ends `finished`, `interrupted` (Ctrl-C or SIGTERM; the
engine's child processes are stopped) or `failed` with the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.engine import FAILED, OK, FoldResult, StepResult, cpu_count, execute, package_versions
from harness.errors import HarnessError
from harness.metrics import METRICS, TASKS
from harness.planner import (
    Plan,
    RunOptions,
    Selection,
    output_dir,
    prepare,
    pretrained_path,
    select,
    task_key,
)
from harness.spec import Suite
from harness.store import Store
from harness.tuning import make_storage

__all__ = ["RunOptions", "RunSummary", "Terminated", "output_dir", "prepare", "run_suite", "select", "task_key"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI runners, Kubernetes, `timeout`): stop like Ctrl-C, keep what finished, exit 143."""


@dataclass
class RunSummary:
    run_id: str
    out: Path
    computed: Counter
    reused: int
    failed_in_plan: int
    interrupted: bool = False
    shifts: list[str] = field(default_factory=list)  # "dataset: verdict" for datasets that shifted
    steps: list[StepResult] = field(default_factory=list)  # studies and pretraining this run computed

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_in_plan else 0


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


def run_suite(
    suite: Suite,
    options: RunOptions | None = None,
    on_start: Callable[[int, int, int | None], None] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
    plan: Plan | None = None,
    on_note: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run every fold not yet in the store; `on_start(todo, reused, workers)` and `on_result` report progress.

    `on_note` receives lines worth showing before the run starts (the cluster's workers,
    version differences). Raises KeyboardInterrupt (Terminated for SIGTERM) carrying the
    summary when interrupted.
    """
    options = options or RunOptions()
    plan = plan or prepare(suite, options)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    with _cluster(options, on_note, plan.preload) as cluster:
        return _run(suite, options, plan, run_id, _Run(run_id, plan, options, on_start, on_result, cluster))


def _run(suite: Suite, options: RunOptions, plan: Plan, run_id: str, run: _Run) -> RunSummary:
    with Store(plan.out / "results.db") as store:
        settings = _settings(suite, options, plan, run.cluster)
        store.start_run(run_id, suite.name, suite.model_dump_json(), options.argv, package_versions(), settings)
        status, reason, interrupted = "failed", None, None
        try:
            with _sigterm_raises():
                run.compute(store)
            status = "finished"
        except KeyboardInterrupt as exc:
            status, reason, interrupted = "interrupted", "SIGTERM" if isinstance(exc, Terminated) else "SIGINT", exc
        except BaseException as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
            raise
        finally:
            store.finish_run(run_id, status, reason)
        failed = len({t.key for t in plan.tasks} & store.done_keys(FAILED))
    summary = run.summary(failed, interrupted is not None)
    if interrupted is not None:
        raise type(interrupted)(summary)
    return summary


@dataclass
class _Run:
    """One run's computation: data checks, the selection, and every result committed as it arrives."""

    run_id: str
    plan: Plan
    options: RunOptions
    on_start: Callable[[int, int, int | None], None] | None  # workers: the cluster's, None locally
    on_result: Callable[[FoldResult], None] | None
    cluster: Any = None  # engine.cluster.Cluster, or None for this machine
    computed: Counter = field(default_factory=Counter)
    steps: list[StepResult] = field(default_factory=list)
    shifts: list[str] = field(default_factory=list)
    selection: Selection | None = None

    def compute(self, store: Store) -> None:
        plan = self.plan
        store.record_plan(self.run_id, [t.key for t in plan.tasks])
        store.record_datasets(ds.describe() | {"notes": ds.notes} for ds in plan.datasets.values())
        store.record_metrics((m.name, m.task, m.greater_is_better) for m in METRICS.values())
        self.shifts = check_references(plan, plan.out, store, plan.threads)
        self.selection = select(plan, store, self.options)
        if self.on_start:
            workers = len(self.cluster.described) if self.cluster is not None else None
            self.on_start(len(self.selection.folds), self.reused, workers)
        for result in _results(plan, self.selection, self.options, self.cluster):
            if isinstance(result, StepResult):
                _keep_step(result, plan.out, store, self.run_id)
                self.steps.append(result)
                continue
            store.add(result, self.run_id)
            self.computed[result.status] += 1
            if self.on_result:
                self.on_result(result)

    @property
    def reused(self) -> int:
        return len(self.plan.tasks) - len(self.selection.folds) if self.selection is not None else 0

    def summary(self, failed: int, interrupted: bool) -> RunSummary:
        return RunSummary(
            self.run_id, self.plan.out, self.computed, self.reused, failed, interrupted, self.shifts, self.steps
        )


def _settings(suite: Suite, options: RunOptions, plan: Plan, cluster: Any = None) -> dict[str, Any]:
    cluster_info = {"cluster": cluster.address, "workers": cluster.described} if cluster is not None else {}
    return {
        "n_jobs": options.n_jobs,
        "threads": plan.threads if cluster is None else options.threads or "per worker",
        "executor": "dask" if cluster is not None else "serial" if options.n_jobs == 1 else "processes",
        **cluster_info,
        "seed": suite.seed,
        "seeds": suite.seed_list,
        "cv": suite.cv.model_dump(),
        "metrics": {t: suite.metric_names(t) for t in TASKS},
        "primary": {t: suite.primary_metric(t) for t in TASKS},
        "environment": environment(suite),
        # where relative data paths were read from (harness export model refits on the same files)
        **({"suite_path": str(suite.path.resolve())} if suite.path else {}),
        **({"skipped_datasets": list(plan.skipped)} if plan.skipped else {}),  # OpenML suite datasets over its limits
    }


def _results(
    plan: Plan, selection: Selection, options: RunOptions, cluster: Any = None
) -> Iterator[FoldResult | StepResult]:
    """The engine's results for the selection; its processes (or cluster tasks) stop when this generator is closed."""
    tuned = any(t.resolved.tune is not None for t in selection.tasks)
    if tuned:
        make_storage(plan.storage)  # create the study tables here, before tasks race to create them
    with contextlib.ExitStack() as stack:
        if cluster is None:
            results = execute(selection.tasks, options.n_jobs, selection.done, preload=plan.preload)
        else:
            from harness.engine.cluster import execute_on_cluster, storage_proxy

            # Remote workers reach the driver's storage through a gRPC proxy; local:N workers share its disk.
            serve = tuned and cluster.local is None
            storage = stack.enter_context(storage_proxy(plan.storage, cluster.address)) if serve else None
            results = execute_on_cluster(
                selection.tasks, cluster, selection.done, storage, options.threads, preload=plan.preload
            )
        stack.callback(results.close)
        yield from results


@contextlib.contextmanager
def _cluster(options: RunOptions, on_note: Callable[[str], None] | None, preload: tuple[str, ...]) -> Iterator[Any]:
    """Connect to the cluster (before the store is opened: an unreachable one is bad input), then close it."""
    if not options.cluster:
        yield None
        return
    from harness.engine.cluster import connect, version_warnings, workers

    cluster = connect(options.cluster, preload=preload)
    try:
        found = cluster.described = workers(cluster)
        if on_note:
            on_note(f"cluster {options.cluster}: {len(found)} workers, {sum(w['nthreads'] for w in found)} threads")
            for line in version_warnings(found):
                on_note(f"warning: {line}")
        yield cluster
    finally:
        cluster.close()


def _keep_step(result: StepResult, out: Path, store: Store, run_id: str) -> None:
    """Record a study or pretraining fit; keep pretrained weights (atomically, by content) for later runs."""
    if result.kind == "pretrain" and result.status == OK:
        path = pretrained_path(out, result.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(result.value)
        partial.replace(path)
    store.add_step(result, run_id)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the run computes, SIGTERM raises Terminated in the main thread (like Ctrl-C's KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: the run is stopping
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_references(plan: Plan, out: Path, store: Store, threads: int) -> list[str]:
    """Check each dataset with a `reference:` for shift against it (once per content); verdicts of shifts.

    The result goes to the store (the report shows it) and to OUT/check-data/<dataset>/.
    A shift does not fail the run: `harness check-data` is the gate.
    """
    from harness.drift.check import compare
    from harness.drift.render import write_report
    from harness.drift.sides import side_from_dataset

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
