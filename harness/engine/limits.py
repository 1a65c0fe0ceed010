"""Limits on a task: the cores it may use, and the time it may take.

Threads: each worker gets its share of the cores and every learner in an estimator
tree is told so explicitly. Time: a task with `timeout_s` runs in a child process
that is killed when the limit passes (a thread cannot be stopped inside a C
extension's fit; a process can). Children come from a forkserver that imported the
plan's libraries once, so a child starts in milliseconds with no OpenMP pool
inherited, and they die with the run: they ignore Ctrl-C (the driver stops them) and
are killed by the kernel if the forkserver goes, as it does when the driver is killed.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any


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


# ---------------------------------------------------------------- child processes

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent (the forkserver) exits; elsewhere do nothing."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent went before the request took effect
        os._exit(1)


def _child(task: Any, conn: Any) -> None:
    """Body of a task's child process: run it and send the result back through the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the driver decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    from harness.engine.fit import run_task

    try:
        result = run_task(task)
    except BaseException as exc:  # run_task never raises for the model's sake; this is a harness bug
        result = task.crashed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    try:
        conn.send(result)
    except (BrokenPipeError, EOFError, OSError):  # the driver is gone: nobody to tell
        pass
    finally:
        conn.close()


@dataclass
class Child:
    """A task running in its own process, with its deadline."""

    task: Any
    proc: Any
    conn: Any
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.perf_counter)

    @property
    def deadline(self) -> float | None:
        return None if not self.task.timeout_s else self.clock + self.task.timeout_s

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def collect(self) -> Any:
        """The child's result once its pipe is readable (a dead child without one is an error result)."""
        try:
            result = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            result = self.task.crashed(
                f"worker process died (exit code {self.proc.exitcode})",
                worker=f"pid {self.proc.pid}",
                started=self.started,
            )
        self.stop()
        return result

    def time_out(self) -> Any:
        self.stop()
        return self.task.timed_out(time.perf_counter() - self.clock, self.started)

    def stop(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def start_child(task: Any, preload: tuple[str, ...] = ()) -> Child:
    """Start `task` in a child forked from the forkserver (which imports `preload` when it starts)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["harness.engine.fit", *preload])
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, send), daemon=True)
    proc.start()
    send.close()
    return Child(task, proc, recv)
