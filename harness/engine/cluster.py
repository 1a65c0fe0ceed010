"""Running the task graph on a Dask cluster (`harness run --cluster ADDRESS`).

The driver stays the only writer of the store: workers compute results and send them
back. Each dataset and each split is sent to the cluster once per run (scatter) and
tasks name them, so what travels with a task does not grow with the data. Workers
never read the suite's files or the output folder: studies reach the driver's storage
through an Optuna gRPC proxy that the driver serves (not for `local:N`, whose workers
share the driver's disk), and pretrained weights travel as task results. A task with `timeout_s` runs in a process of the worker's own, killed at
the limit, as in a local run. A worker that dies mid-task costs nothing: Dask runs the
task again elsewhere, and the driver stores its result once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harness.engine.executors import Graph, Pool
from harness.engine.fit import run_task
from harness.engine.limits import cpu_count, forkserver_preload, main_not_rerun
from harness.engine.tasks import FoldTask, Result, StepResult, StudyTask, Task, package_versions
from harness.errors import ClusterError

CONNECT_TIMEOUT_S = 10
MAX_TRIES = 3  # a task the scheduler forgot (its worker died with what it needed) is submitted again
# Packages whose versions change numbers: a worker that differs from the driver is named.
CHECKED_PACKAGES = ("harness", "scikit-learn", "numpy", "lightgbm", "xgboost", "torch", "optuna")


@dataclass
class Cluster:
    """A connected client, and the local cluster it owns (for `local:N`), closed together."""

    client: Any
    address: str
    local: Any = None
    described: list[dict[str, Any]] = field(default_factory=list)  # workers(), asked once per run

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close()


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S, preload: tuple[str, ...] = ()) -> Cluster:
    """A client of the scheduler at `address`, or of a new LocalCluster for `local:N`; fails in `timeout_s`.

    `preload` names the libraries a local cluster's workers start with (see `_local_cluster`).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(
            f'--cluster {address}: dask.distributed is not installed (pip install "harness[dask]")'
        ) from None
    if address.startswith("local:"):
        n = address.removeprefix("local:")
        if not n.isdigit() or not 1 <= int(n) <= 1024:
            raise ClusterError(f"--cluster {address}: write local:N with N the number of worker processes (1-1024)")
        local = _local_cluster(int(n), preload)
        return Cluster(Client(local), address, local)
    if "://" not in address and ":" not in address:
        raise ClusterError(f"--cluster {address}: write the scheduler's address, e.g. tcp://10.0.0.5:8786, or local:N")
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"--cluster {address}: cannot reach the Dask scheduler within {timeout_s:g} s ({type(exc).__name__})"
        ) from None
    return Cluster(client, address)


def _describe_worker() -> dict[str, Any]:
    """Run on each worker: where it is and what it has."""
    import platform

    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        memory = None
    return {
        "host": socket.gethostname(),
        "cores": cpu_count(),
        "memory_bytes": memory,
        "platform": platform.platform(),
        "versions": package_versions(),
    }


def workers(cluster: Cluster) -> list[dict[str, Any]]:
    """Every worker: address, name, threads, host, cores, memory and package versions (for the report)."""
    info = cluster.client.scheduler_info()["workers"]
    described = cluster.client.run(_describe_worker)
    return [
        {"address": address, "name": str(w.get("name")), "nthreads": w.get("nthreads", 1), **described.get(address, {})}
        for address, w in sorted(info.items())
    ]


def version_warnings(found: list[dict[str, Any]], ours: Mapping[str, str] | None = None) -> list[str]:
    """One line per worker and package whose version differs from the driver's: different versions, different numbers."""
    ours = ours or package_versions()
    lines = []
    for w in found:
        theirs = w.get("versions", {})
        for package in CHECKED_PACKAGES:
            if theirs.get(package) != ours.get(package):
                lines.append(
                    f"worker {w['address']} ({w.get('host', '?')}) has {package} {theirs.get(package, 'not installed')}, "
                    f"the driver {ours.get(package, 'not installed')}: its scores may differ"
                )
    return lines


# ---------------------------------------------------------------- studies: the driver's storage, served


@contextlib.contextmanager
def storage_proxy(url: str, scheduler: str) -> Iterator[str]:
    """Serve the driver's Optuna storage over gRPC while the run lasts; yields the URL workers use.

    Workers may run on machines that cannot see the driver's disk (OUT/studies.db), so
    every trial goes through this proxy into the driver's storage.
    """
    import optuna
    from optuna.storages._grpc.server import make_server

    from harness.tuning import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the proxy would log every study it creates

    host = _address_towards(scheduler)
    port = _free_port(host)
    server = make_server(make_storage(url), host, port)
    server.start()
    try:
        yield f"grpc://{host}:{port}"
    finally:
        server.stop(grace=1)


# A local cluster's workers: no statistical profiler (a thread that samples the running
# task's stack 100 times a second, holding the GIL, slows Python-heavy fits by several %),
# and started from the engine's fork server rather than spawned, so that every library, and
# SHAP's compiled kernels, are imported once for all workers instead of once per worker.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.multiprocessing-method": "forkserver",
}


def _local_cluster(n: int, preload: tuple[str, ...]) -> Any:
    """A LocalCluster of `n` single-threaded worker processes forked from a server that imported `preload`."""
    import dask
    from distributed import LocalCluster
    from distributed.utils import get_mp_context

    with (
        warnings.catch_warnings(),  # "port 8787 is already in use": no dashboard is wanted anyway
        dask.config.set(LOCAL_WORKER_CONFIG),
        main_not_rerun(),  # forked workers must not run the caller's script again
    ):
        warnings.simplefilter("ignore")
        get_mp_context()  # sets Dask's own preload on first use, which ours then replaces
        forkserver_preload(("distributed", *preload))
        return LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        )


def _address_towards(scheduler: str) -> str:
    """This machine's address on the interface that reaches the scheduler (loopback for a local one)."""
    target = _host(scheduler) or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target, 9))  # no packet is sent: only the route is chosen
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _host(address: str) -> str:
    """The host of a Dask address: tcp://10.0.0.5:8786 -> 10.0.0.5."""
    return address.split("://")[-1].rsplit(":", 1)[0]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the executor


def execute_on_cluster(
    tasks: Iterable[Task],
    cluster: Cluster,
    done: Mapping[str, StepResult] | None = None,
    storage: str | None = None,
    threads: int | None = None,
    preload: tuple[str, ...] = (),
) -> Iterator[Result]:
    """Run the graph on the cluster; yield each result as it arrives (the caller stores it).

    `storage` replaces every study's storage URL (the driver's gRPC proxy); `threads`
    fixes the threads per fit, else each worker gives a fit its host's share of cores.
    """
    from distributed import as_completed

    client = cluster.client
    tasks = list(tasks)
    graph = Graph(tasks, done)
    bundles = _Bundles(client, tasks)
    hosts = _threads_by_host(client)
    futures: dict[Any, Task] = {}
    pending = as_completed()
    tries: dict[str, int] = {}

    def submit(task: Task) -> None:
        tries[task.key] = tries.get(task.key, 0) + 1
        light, data = _detach(task)
        future = client.submit(
            _run_remote,
            light,
            bundles.future(data),
            _split_id(task),
            storage,
            threads,
            hosts,
            preload,
            pure=False,
            key=f"{task.kind}-{task.key}-{tries[task.key]}",
        )
        futures[future] = task
        pending.add(future)

    try:
        while True:
            for result in graph.settle():
                yield result
            while graph.ready:
                submit(graph.ready.popleft())
            if not futures:
                if graph.waiting:
                    raise RuntimeError(f"{len(graph.waiting)} tasks wait for results that never come")
                return
            future = next(pending)
            task = futures.pop(future)
            if future.cancelled() and tries[task.key] < MAX_TRIES:  # the scheduler lost it with a worker
                bundles.forget(task)
                submit(task)
                continue
            result = _result_of(future, task)
            graph.record(result)
            yield result
    finally:
        if futures:
            client.cancel(list(futures), force=True)


def _result_of(future: Any, task: Task) -> Result:
    try:
        return future.result()
    except Exception as exc:  # e.g. KilledWorker: it died on every worker that tried it
        return task.crashed(f"{type(exc).__name__}: {exc}".splitlines()[0][:500], worker="dask")


class _Bundles:
    """Each dataset goes to every worker once, with the splits of all its folds (tasks name theirs).

    One object per dataset, copied to every worker (broadcast): a worker that dies loses no
    data, and what travels with a task does not grow with the dataset.
    """

    def __init__(self, client: Any, tasks: list[Task]) -> None:
        self.client = client
        self.splits: dict[int, dict[int, Any]] = {}
        for task in tasks:
            if isinstance(task, FoldTask):
                self.splits.setdefault(id(task.dataset), {})[id(task.split)] = task.split
        self.shipped: dict[int, Any] = {}

    def forget(self, task: Task) -> None:
        """Ship the task's dataset again next time (the scheduler may have lost every copy)."""
        self.shipped.pop(id(_detach(task)[1]), None)

    def future(self, dataset: Any) -> Any:
        key = id(dataset)
        if key not in self.shipped:
            bundle = (dataset, self.splits.get(key, {}))
            self.shipped[key] = self.client.scatter(bundle, hash=False, broadcast=True)
        return self.shipped[key]


def _split_id(task: Task) -> int | None:
    return id(task.split) if isinstance(task, FoldTask) else None


def _detach(task: Task) -> tuple[Task, Any]:
    """The task without its data (the dataset, and a fold's split), and the dataset to ship once."""
    if isinstance(task, FoldTask):
        return replace(task, dataset=None, split=None), task.dataset
    if isinstance(task, StudyTask):
        return replace(task, dataset=None), task.dataset
    return replace(task, source=None), task.source


def _attach(task: Task, bundle: tuple[Any, dict[int, Any]], split_id: int | None) -> Task:
    dataset, splits = bundle
    if isinstance(task, FoldTask):
        return replace(task, dataset=dataset, split=splits[split_id])
    if isinstance(task, StudyTask):
        return replace(task, dataset=dataset)
    return replace(task, source=dataset)


def _threads_by_host(client: Any) -> dict[str, int]:
    """How many tasks each host runs at once (the sum of its workers' threads)."""
    out: dict[str, int] = {}
    for address, w in client.scheduler_info()["workers"].items():
        host = _host(address)
        out[host] = out.get(host, 0) + int(w.get("nthreads", 1))
    return out


_local = threading.local()  # each worker thread keeps one process for tasks with a time limit


def _run_remote(
    task: Task,
    bundle: tuple[Any, dict[int, Any]],
    split_id: int | None,
    storage: str | None,
    threads: int | None,
    hosts: dict[str, int],
    preload: tuple[str, ...],
) -> Result:
    """On a Dask worker: put the data back, set threads and storage, run (bounded), say where it ran."""
    from distributed import get_worker

    worker = get_worker()
    host = _host(worker.address)
    if threads is None:
        threads = max(1, cpu_count() // max(1, hosts.get(host, worker.state.nthreads)))
    task = _with_storage(replace(_attach(task, bundle, split_id), threads=threads), storage)
    if task.timeout_s:
        pool = getattr(_local, "pool", None)
        if pool is None:
            pool = _local.pool = Pool(1, preload)
        pool.submit(task)
        results: list[Result] = []
        while not results:
            results = pool.next_results()
        result = results[0]
    else:
        result = run_task(task)
    result.worker = worker.address
    return result


def _with_storage(task: Task, storage: str | None) -> Task:
    """Point the task's studies at the driver's proxy."""
    if storage is None:
        return task
    if isinstance(task, StudyTask):
        return replace(task, plan=replace(task.plan, storage=storage))
    if isinstance(task, FoldTask) and task.study is not None:
        return replace(task, study=replace(task.study, storage=storage))
    return task


__all__ = [
    "Cluster",
    "connect",
    "execute_on_cluster",
    "storage_proxy",
    "version_warnings",
    "workers",
]
