"""Executors: run a task graph, independent tasks in parallel, and yield results as they arrive.

A task starts once every task it `needs` has a result. When one of those failed or
timed out, the task is not run: it becomes a result naming the cause. Results come
back in completion order, so the caller (the only writer of the store) commits each
at once. With `n_jobs == 1` a task without a time limit runs in this process (simple
to debug); every other task runs in one of at most `n_jobs` worker processes
(`limits.Worker`), which is killed when the task's `timeout_s` passes (and replaced),
and every worker is killed when the caller stops iterating (Ctrl-C, SIGTERM, an
error) or the graph is done, so no process outlives the run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from multiprocessing.connection import wait

from harness.engine.fit import run_task
from harness.engine.limits import Worker, start_worker
from harness.engine.shared import Shared
from harness.engine.tasks import FoldResult, Result, StepResult, Task


class Graph:
    """Which tasks can start: those whose needs all have results; the rest wait."""

    def __init__(self, tasks: Iterable[Task], done: Mapping[str, StepResult] | None = None) -> None:
        self.waiting = list(tasks)
        self.results: dict[str, StepResult] = dict(done or {})
        self.ready: deque[Task] = deque()
        known = set(self.results) | {t.key for t in self.waiting}
        unknown = {k for t in self.waiting for k in t.needs} - known
        if unknown:
            raise ValueError(f"tasks need results nobody computes: {sorted(unknown)}")

    def settle(self) -> list[FoldResult]:
        """Release every task whose needs are met; return the rows of those whose need failed."""
        blocked, still = [], []
        now = time.time()
        for task in self.waiting:
            if any(k not in self.results for k in task.needs):
                still.append(task)
                continue
            failed = next((self.results[k] for k in task.needs if self.results[k].failed), None)
            if failed is not None:
                blocked.append(task.failed_because(failed, now))
            else:
                self.ready.append(task.with_inputs(self.results) if task.needs else task)
        self.waiting = still
        return blocked

    def record(self, result: Result) -> None:
        if isinstance(result, StepResult):
            self.results[result.key] = result


def execute(
    tasks: Iterable[Task],
    n_jobs: int = 1,
    done: Mapping[str, StepResult] | None = None,
    preload: tuple[str, ...] = (),
) -> Iterator[Result]:
    """Run the graph of `tasks` with at most `n_jobs` at a time; yield each result as it arrives.

    `done` holds results of needed tasks computed before (e.g. pretrained weights found
    on disk); `preload` names modules the workers' forkserver imports once.
    """
    graph = Graph(tasks, done)
    pool = Pool(n_jobs, preload)
    try:
        while True:
            for result in graph.settle():
                yield result
            if not graph.ready and not pool.busy:
                if graph.waiting:  # cannot happen for a graph the planner built; never spin
                    raise RuntimeError(f"{len(graph.waiting)} tasks wait for results that never come")
                return
            if graph.ready and len(pool.busy) < n_jobs:
                task = graph.ready.popleft()
                if n_jobs == 1 and not task.timeout_s:
                    result = run_task(task)
                    graph.record(result)
                    yield result
                else:
                    pool.submit(task)
                continue
            for result in pool.next_results():
                graph.record(result)
                yield result
    finally:
        pool.close()


class Pool:
    """At most `size` worker processes, started when first needed, reused task after task.

    Datasets reach the workers through shared memory (`engine.shared`): each is copied
    there once, and each worker maps it once, however many tasks use it.
    """

    def __init__(self, size: int, preload: tuple[str, ...]) -> None:
        self.size, self.preload = size, preload
        self.idle: list[Worker] = []
        self.busy: list[Worker] = []
        self.shared = Shared()

    def submit(self, task: Task) -> None:
        while self.idle and not self.idle[-1].proc.is_alive():  # died while idle (e.g. killed by the kernel)
            self.idle.pop().stop()
        worker = self.idle.pop() if self.idle else start_worker(self.preload)
        worker.submit(task, self.shared)
        self.busy.append(worker)

    def next_results(self) -> list[Result]:
        """Wait until a worker sends a result, dies or passes its task's deadline."""
        now = time.perf_counter()
        deadlines = [w.deadline for w in self.busy if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        readable = set(wait([w.conn for w in self.busy], timeout))
        now = time.perf_counter()
        results = []
        for worker in list(self.busy):
            if worker.conn in readable:
                result, usable = worker.collect()
            elif worker.expired(now):
                result, usable = worker.time_out(), False
            else:
                continue
            results.append(result)
            self.busy.remove(worker)
            if usable:
                self.idle.append(worker)
            else:
                worker.stop()
        return results

    def close(self) -> None:
        """Kill every worker, busy or idle (a busy one is mid-fit: nobody wants its result now)."""
        for worker in self.busy + self.idle:
            worker.stop()
        self.busy, self.idle = [], []
        self.shared.close()
