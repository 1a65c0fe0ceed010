"""Limits on a task: the cores it may use, and the time it may take.

Threads: each worker gets its share of the cores and every learner in an estimator
tree is told so explicitly. Time: a task with `timeout_s` runs in a worker process
that is killed when the limit passes (a thread cannot be stopped inside a C
extension's fit; a process can). Workers come from a forkserver that imported the
plan's libraries once, so one starts in milliseconds with no OpenMP pool inherited,
and runs task after task (torch, LightGBM and numba initialise once per worker). They
die with the run: they ignore Ctrl-C (the driver stops them) and are killed by the
kernel if the forkserver goes, as it does when the driver is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
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


def _serve(conn: Any) -> None:
    """Body of a worker process: run each task it is sent and send its result back, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the driver decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    from harness.engine.fit import run_task
    from harness.engine.shared import Share, receive

    try:
        while (task := conn.recv()) is not None:
            if isinstance(task, Share):  # a dataset's memory file: its descriptor follows
                receive(task, conn)
                continue
            try:
                result = run_task(task)
            except BaseException as exc:  # run_task never raises for the model's sake: a harness bug
                result = task.crashed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
            conn.send(result)
    except (BrokenPipeError, EOFError, OSError):  # the driver is gone: nobody to tell
        pass
    finally:
        conn.close()


@dataclass
class Worker:
    """A process that runs tasks one after another, so libraries initialise once per worker, not per task.

    A task past its deadline is stopped by killing the worker; the pool starts another.
    """

    proc: Any
    conn: Any
    task: Any = None
    started: float = 0.0
    clock: float = 0.0
    mapped: set[str] = field(default_factory=set)  # tokens of the shared datasets this worker has

    def submit(self, task: Any, shared: Any = None) -> None:
        """Send `task`; with `shared` (engine.shared.Shared), its datasets travel as memory files, once per worker."""
        self.task, self.started, self.clock = task, time.time(), time.perf_counter()
        if shared is None:
            self.conn.send(task)
            return
        from harness.engine.shared import send

        payload, files = shared.dumps(task)
        for f in files:
            if f.token not in self.mapped:
                send(self.conn, f)
                self.mapped.add(f.token)
        self.conn.send_bytes(payload)

    @property
    def deadline(self) -> float | None:
        return None if self.task is None or not self.task.timeout_s else self.clock + self.task.timeout_s

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def collect(self) -> tuple[Any, bool]:
        """The task's result once the pipe is readable, and whether the worker is still usable."""
        task, self.task = self.task, None
        try:
            return self.conn.recv(), True
        except (EOFError, OSError):
            self.proc.join(5)
            error = f"worker process died (exit code {self.proc.exitcode})"
            return task.crashed(error, worker=self.where, started=self.started), False

    def time_out(self) -> Any:
        task, self.task = self.task, None
        result = task.timed_out(time.perf_counter() - self.clock, self.started)
        result.worker = self.where
        return result

    @property
    def where(self) -> str:
        """host:pid of the worker, as `tasks.where()` says inside it."""
        return f"{socket.gethostname()}:{self.proc.pid}"

    def stop(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def forkserver_preload(preload: tuple[str, ...] = ()) -> None:
    """What the fork server imports when it starts (once per process: a running server keeps its own)."""
    mp.get_context("forkserver").set_forkserver_preload(["harness.engine.fit", *preload])


def start_worker(preload: tuple[str, ...] = ()) -> Worker:
    """A worker forked from the forkserver (which imports `preload` once, when it starts)."""
    ctx = mp.get_context("forkserver")
    forkserver_preload(preload)
    ours, theirs = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_serve, args=(theirs,), daemon=True)
    with main_not_rerun(), _children_allowed():
        proc.start()
    theirs.close()
    return Worker(proc, ours)


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process (a Dask worker) start a worker of its own.

    multiprocessing refuses children to daemonic processes so that none outlives its
    parent. Ours cannot: it asks the kernel to kill it when the forkserver goes
    (`_die_with_parent`), and the forkserver goes with the process that started it.
    """
    config = mp.current_process()._config
    daemonic = config.get("daemon", False)
    config["daemon"] = False
    try:
        yield
    finally:
        config["daemon"] = daemonic


@contextlib.contextmanager
def main_not_rerun() -> Iterator[None]:
    """Start a child without it re-running the caller's script.

    multiprocessing makes a forkserver child import the parent's `__main__` (by path or
    module name) so that it can unpickle objects defined there. A task holds none (it is
    built from a suite: data, and estimators importable by name), and a user's script
    without an `if __name__ == "__main__":` guard would otherwise run again in every
    child. The main module looks anonymous, as in a notebook, while the child starts.
    """
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    if "__file__" in saved:
        del main.__file__
    if "__spec__" in saved:
        main.__spec__ = None  # multiprocessing reads it unguarded
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)
