"""Dask cluster execution (`--cluster local:2`) against local processes (`--n-jobs 2`).

Run with `.venv/bin/python bench/cluster.py [--quick] [--rounds N] [--skip-1] [--skip-2] [--skip-3]`
(about 9 minutes on two idle cores; --quick checks the script in under two). A skipped
part keeps its numbers from the last run that measured it, marked with that run's time.
Reuses bench/overhead.py (its reduced tabular suite and its wait-for-idle-cores measurement).

1. The tabular suite through `run_suite` in two modes, both with threads=1 and a fresh
   results store each run: `cluster` (RunOptions(cluster="local:2"): run_suite starts a
   LocalCluster of two single-threaded worker processes, runs every task on it and
   closes it) and `local` (RunOptions(n_jobs=2): the engine's own two processes, forked
   from its fork server). The suite is overhead.py's reduced copy of
   suites/tabular.yaml (5,000 synthetic rows, 100 trees, 5 folds; with --quick its
   "quick" copy: 2,000 rows, 30 trees, 3 folds). Datasets are loaded (`prepare`) before
   the clock starts. Rounds alternate which mode goes first; medians are compared.
   `run_s` is run_suite's wall time, start-up included on both sides: the cluster's
   (LocalCluster start, each worker importing this script as multiprocessing's spawn
   does with any main script, `harness` included, then every library on its first task)
   and the local pool's (fork server start and preload). `connect_s` and `close_s` are
   the time run_suite spent in harness.engine.cluster.connect and Cluster.close (timed
   by wrapping them during the run), and `run - connect - close` is the cluster run
   without starting and stopping the cluster, as against a scheduler that is already up.
   The fit-time sums read back from each store show whether one mode made the fits
   themselves slower; `driver CPU-s` is the CPU time of this process during run_suite
   (with local:N it hosts the Dask scheduler and client and, for tuned estimators, the
   Optuna gRPC storage proxy, all competing with the two workers for the two cores).
   The scores of both modes are compared fold by fold (same keys, same seeds: they
   should agree). Goal: cluster / local <= 1.10 (medians of run_s).

2. Per-task overhead with trivial fits: DummyClassifier on iris, 10 folds x 10 repeats
   (x 20 without --quick), SHAP off, on local:2 against n_jobs=2; 3 rounds each (2 with
   --quick), alternating. Reported in ms per task of wall time (two tasks run at once,
   so one task's latency is about twice that): `wall` = run_s / tasks, start-up
   included; `no connect` = (run_s - connect_s - close_s) / tasks; `outside fit` =
   that minus the sum of fit and predict times / tasks (what the executor costs beyond
   the work, for these fits almost all of it); `steady` = the time between the first and
   the last result committed to the store / (tasks - 1), i.e. throughput once both
   sides are started. The difference cluster - local of each is the cluster's price
   per task.

3. Data sent per task. execute_on_cluster submits, per task, the task detached from its
   data (`harness.engine.cluster._detach`) and its split's id (`_split_id`); the
   dataset and all its splits go once per dataset, as one bundle scattered to every
   worker. Measured here without a cluster: len(pickle.dumps((detached task, split
   id))) for every task (folds, a nested-tuning fold and a tune_then_cv study) of a
   synthetic:classification set of 1,000 and of 100,000 rows (20 features, 5 folds),
   and, for comparison, the pickled bundle and the task before detaching. Goal: bytes
   per task at 100,000 rows within 3% of those at 1,000 (the bundle grows, the tasks do not).

Results are printed as tables and written to bench/results/cluster.json
(cluster.quick.json with --quick). Timings are wall clock (time.perf_counter). As in
overhead.py each timed run first waits for idle cores (here at most 60 s, 20 s with
--quick), records the CPU time other processes took (`foreign_cpu_s`) and is repeated
when they disturbed it (here 2 attempts in all, 1 with --quick: no repeat; --attempts N);
`disturbed: true` marks one that never ran clean, and the tables show those CPU-seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead
from overhead import RESULTS, ROOT, Quiet, _fresh, _jsonable, tabular_suite, undisturbed

import harness.engine.cluster as dask_engine
from harness.engine import cpu_count, package_versions
from harness.runner import RunOptions, prepare, run_suite
from harness.spec import Suite, parse_suite
from harness.store import Store

MODES = {  # label -> RunOptions fields besides out, threads=1 and force
    "cluster": {"cluster": "local:2"},
    "local": {"n_jobs": 2},
}
GOAL_RATIO = 1.10
WIRE_ROWS = (1_000, 100_000)
WIRE_TOLERANCE = 0.03
ARGV = ["bench/cluster.py"]


# ---------------------------------------------------------------- timing one run


class ClusterClock:
    """Times harness.engine.cluster.connect and Cluster.close while run_suite calls them.

    runner._cluster imports `connect` from the module when it runs, so replacing the
    module's attribute for the duration of the block is enough.
    """

    def __enter__(self) -> ClusterClock:
        self.connect_s = self.close_s = 0.0
        self._connect, self._close = dask_engine.connect, dask_engine.Cluster.close
        clock = self

        def connect(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return clock._connect(*args, **kwargs)
            finally:
                clock.connect_s += time.perf_counter() - start

        def close(cluster: Any) -> None:
            start = time.perf_counter()
            try:
                clock._close(cluster)
            finally:
                clock.close_s += time.perf_counter() - start

        dask_engine.connect, dask_engine.Cluster.close = connect, close
        return self

    def __exit__(self, *exc: Any) -> None:
        dask_engine.connect, dask_engine.Cluster.close = self._connect, self._close


def run_mode(suite: Suite, mode: str, out: Path) -> dict[str, Any]:
    """prepare (untimed) + run_suite (timed) in one mode into a fresh store; times read back from the store."""
    options = RunOptions(out=out, threads=1, force=True, argv=ARGV, **MODES[mode])
    plan = prepare(suite, options)
    started_at, driver = time.time(), _driver_cpu_s()
    with ClusterClock() as clock:
        start = time.perf_counter()
        summary = run_suite(suite, options, plan=plan)
        run_s = time.perf_counter() - start
    driver = _driver_cpu_s() - driver
    with Store(out / "results.db", create=False) as store:
        folds = store.results()
        steps = store.steps()
    created = folds["created"].sort_values().to_numpy()
    return {
        "run_s": run_s,
        "connect_s": clock.connect_s,
        "close_s": clock.close_s,
        "run_without_connect_s": run_s - clock.connect_s - clock.close_s,
        "driver_cpu_s": driver,
        "fit_sum_s": float(folds["fit_time"].sum()),
        "predict_sum_s": float(folds["predict_time"].sum()),
        "first_result_s": float(created[0] - started_at),
        "steady_s": float(created[-1] - created[0]),  # first to last result committed
        "folds": len(folds),
        "steps": len(steps),
        "statuses": {k: int(v) for k, v in folds["status"].value_counts().items()},
        "workers": int(folds["worker"].nunique()),
        "computed": dict(summary.computed),
        "frame": folds,
    }


def _driver_cpu_s() -> float:
    """CPU-seconds of this process alone (all its threads: with local:N, the Dask scheduler and the study proxy too)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def alternate(suite: Suite, rounds: int, tmp: Path, part: str) -> dict[str, list[dict[str, Any]]]:
    """Both modes `rounds` times, alternating which goes first, each on an idle machine."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
        for mode in order:
            label = f"{part} round {r + 1}/{rounds} {mode:7s}"
            runs[mode].append(undisturbed(label, lambda mode=mode: run_mode(suite, mode, _fresh(tmp))))
    return runs


def _stats(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [run[key] for run in runs]
    return {"median": statistics.median(values), "best": min(values), "all": values}


def score_difference(a: Any, b: Any, metrics: list[str]) -> float:
    """Largest |a - b| over the folds both computed (same keys) and the metrics they report."""
    cols = [m for m in metrics if m in a.columns and m in b.columns]
    joined = a[["key", *cols]].merge(b[["key", *cols]], on="key", suffixes=("", "_b"))
    worst = 0.0
    for m in cols:
        diff = (joined[m].astype(float) - joined[f"{m}_b"].astype(float)).abs().max()
        if diff == diff:  # not NaN
            worst = max(worst, float(diff))
    return worst


# ---------------------------------------------------------------- part 1


def part_1(variant: str, rounds: int, tmp: Path) -> dict[str, Any]:
    suite, what = tabular_suite(variant)
    prepare(suite, RunOptions())  # warm-up: imports and dataset caches, for both modes alike
    runs = alternate(suite, rounds, tmp, "1")
    keys = (
        "run_s",
        "connect_s",
        "close_s",
        "run_without_connect_s",
        "fit_sum_s",
        "predict_sum_s",
        "first_result_s",
        "driver_cpu_s",
    )
    modes = {
        mode: {k: _stats(mode_runs, k) for k in keys}
        | {
            "folds": mode_runs[-1]["folds"],
            "steps": mode_runs[-1]["steps"],
            "statuses": mode_runs[-1]["statuses"],
            "workers": mode_runs[-1]["workers"],
            "machine_per_run": [run["machine"] for run in mode_runs],
        }
        for mode, mode_runs in runs.items()
    }
    c, loc = modes["cluster"], modes["local"]
    ratio = c["run_s"]["median"] / loc["run_s"]["median"]
    metrics = sorted({m for t in ("classification", "regression") for m in suite.metric_names(t)})
    return {
        "suite": what,
        "fold_tasks": loc["folds"],
        "rounds": rounds,
        "order": "cluster and local alternate which runs first (cluster first in round 1)",
        "modes": modes,
        "cluster_over_local": ratio,
        "cluster_over_local_best": c["run_s"]["best"] / loc["run_s"]["best"],
        "cluster_without_connect_over_local": c["run_without_connect_s"]["median"] / loc["run_s"]["median"],
        "fit_sum_cluster_over_local": c["fit_sum_s"]["median"] / loc["fit_sum_s"]["median"],
        "max_abs_score_difference": score_difference(runs["cluster"][-1]["frame"], runs["local"][-1]["frame"], metrics),
        "goal": f"cluster / local <= {GOAL_RATIO} (medians of run_suite wall time, cluster start-up included)",
        "goal_met": ratio <= GOAL_RATIO,
    }


def print_1(p: dict[str, Any]) -> None:
    print(f"\n1. Cluster (local:2) vs local processes (n_jobs=2), threads=1: {p['suite']}")
    print(f"   ({p['fold_tasks']} folds; {p['rounds']} round(s); {p['order']}; medians, best in brackets)")
    print(
        f"{'mode':9s}{'run_suite s':>19s}{'connect s':>11s}{'close s':>9s}{'run-conn-close s':>18s}"
        f"{'fit sum s':>11s}{'first result s':>16s}{'driver CPU-s':>14s}{'others CPU-s':>14s}"
    )
    for mode, m in p["modes"].items():
        run, foreign = m["run_s"], max(x["foreign_cpu_s"] for x in m["machine_per_run"])
        print(
            f"{mode:9s}{run['median']:10.2f} ({run['best']:6.2f}){m['connect_s']['median']:11.2f}"
            f"{m['close_s']['median']:9.2f}{m['run_without_connect_s']['median']:18.2f}"
            f"{m['fit_sum_s']['median']:11.2f}{m['first_result_s']['median']:16.2f}"
            f"{m['driver_cpu_s']['median']:14.1f}{foreign:14.1f}"
        )
    for mode, m in p["modes"].items():
        print(f"   {mode}: statuses {m['statuses']}, {m['steps']} steps, results from {m['workers']} worker(s)")
    print(
        f"cluster / local: {p['cluster_over_local']:.3f} (best/best {p['cluster_over_local_best']:.3f}; "
        f"goal <= {GOAL_RATIO}; the cluster's run includes starting and closing its LocalCluster)"
    )
    print(f"cluster without connect and close / local: {p['cluster_without_connect_over_local']:.3f}")
    print(f"fit-time sum cluster / local: {p['fit_sum_cluster_over_local']:.3f}")
    print(f"largest |score difference| between the modes, fold by fold: {p['max_abs_score_difference']:.2e}")
    print(f"goal met: {p['goal_met']}")


# ---------------------------------------------------------------- part 2


def tiny_suite(repeats: int) -> Suite:
    raw = {
        "name": "cluster-tiny",
        "seed": 0,
        "cv": {"scheme": "stratified_kfold", "folds": 10, "repeats": repeats},
        "explain": {"enabled": False},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "dummy", "model": "sklearn.dummy.DummyClassifier"}],
    }
    return parse_suite(raw, label="<bench cluster tiny suite>")


def part_2(repeats: int, rounds: int, tmp: Path) -> dict[str, Any]:
    suite = tiny_suite(repeats)
    runs = alternate(suite, rounds, tmp, "2")
    per_task: dict[str, dict[str, float]] = {}
    for mode, mode_runs in runs.items():
        n = mode_runs[0]["folds"]
        per_task[mode] = {
            "wall": statistics.median(1000 * r["run_s"] / n for r in mode_runs),
            "no connect": statistics.median(1000 * r["run_without_connect_s"] / n for r in mode_runs),
            "outside fit": statistics.median(
                1000 * (r["run_without_connect_s"] - r["fit_sum_s"] - r["predict_sum_s"]) / n for r in mode_runs
            ),
            "steady": statistics.median(1000 * r["steady_s"] / (n - 1) for r in mode_runs),
        }
    tasks = runs["local"][0]["folds"]
    return {
        "workload": f"DummyClassifier on iris, 10 folds x {repeats} repeats = {tasks} tasks, SHAP off",
        "tasks": tasks,
        "rounds": rounds,
        "modes": {
            mode: {
                k: _stats(mode_runs, k)
                for k in ("run_s", "connect_s", "close_s", "fit_sum_s", "predict_sum_s", "driver_cpu_s")
            }
            | {"statuses": mode_runs[-1]["statuses"], "machine_per_run": [r["machine"] for r in mode_runs]}
            for mode, mode_runs in runs.items()
        },
        "ms_per_task": per_task,
        "ms_per_task_cluster_minus_local": {
            k: per_task["cluster"][k] - per_task["local"][k] for k in per_task["local"]
        },
    }


def print_2(p: dict[str, Any]) -> None:
    print(f"\n2. Per-task overhead: {p['workload']}; {p['rounds']} round(s) alternating; medians")
    cols = list(p["ms_per_task"]["local"])
    print(
        f"{'ms per task':22s}"
        + "".join(f"{c:>13s}" for c in cols)
        + f"{'run_suite s':>13s}{'connect s':>11s}{'close s':>9s}{'driver CPU-s':>14s}{'others CPU-s':>14s}"
    )
    for mode in MODES:
        row, m = p["ms_per_task"][mode], p["modes"][mode]
        foreign = max(x["foreign_cpu_s"] for x in m["machine_per_run"])
        print(
            f"{mode:22s}"
            + "".join(f"{row[c]:13.1f}" for c in cols)
            + f"{m['run_s']['median']:13.2f}{m['connect_s']['median']:11.2f}{m['close_s']['median']:9.2f}"
            + f"{m['driver_cpu_s']['median']:14.1f}{foreign:14.1f}"
        )
    diff = p["ms_per_task_cluster_minus_local"]
    print(f"{'cluster - local':22s}" + "".join(f"{diff[c]:13.1f}" for c in cols))
    print(
        "   wall: run_suite / tasks; no connect: without connect and close; outside fit: also without the fit "
        "and predict sums; steady: first to last result / (tasks - 1). Two tasks run at once."
    )
    for mode in MODES:
        print(f"   {mode}: statuses {p['modes'][mode]['statuses']}")


# ---------------------------------------------------------------- part 3


def wire_suite(n_samples: int) -> Suite:
    raw = {
        "name": "cluster-wire",  # the same name (and out folder length) at both sizes
        "seed": 0,
        "cv": {"scheme": "stratified_kfold", "folds": 5, "repeats": 1},
        "datasets": [
            {
                "name": "synth",
                "source": "synthetic:classification",
                "params": {"n_samples": n_samples, "n_features": 20, "n_informative": 10, "random_state": 0},
            }
        ],
        "estimators": [
            {"name": "linear", "model": "linear"},
            {"name": "rf", "model": "random_forest", "params": {"n_estimators": 50}},
            {"name": "linear_nested", "model": "linear", "tune": {"trials": 3}},
            {"name": "linear_then_cv", "model": "linear", "tune": {"trials": 3, "mode": "tune_then_cv"}},
        ],
    }
    return parse_suite(raw, label=f"<bench cluster wire suite {n_samples}>")


def wire_sizes(n_samples: int, tmp: Path) -> dict[str, Any]:
    """Pickled bytes of what execute_on_cluster submits per task, and of the once-per-dataset bundle."""
    suite = wire_suite(n_samples)
    plan = prepare(suite, RunOptions(out=tmp / f"wire-{WIRE_ROWS.index(n_samples)}", threads=1, argv=ARGV))
    tasks = [*plan.steps.values(), *plan.tasks]
    per_task: dict[str, int] = {}  # "estimator fold" / "study estimator" -> bytes
    attached: list[int] = []
    bundles = dask_engine._Bundles(None, tasks)  # the client is only used to scatter
    datasets: dict[int, Any] = {}
    for task in tasks:
        light, data = dask_engine._detach(task)
        name = task.resolved.spec.name
        label = f"{task.kind} {name}" + (f" r{task.split.repeat}f{task.split.fold}" if task.kind == "fold" else "")
        per_task[label] = len(pickle.dumps((light, dask_engine._split_id(task)), protocol=pickle.HIGHEST_PROTOCOL))
        attached.append(len(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)))
        datasets[id(data)] = data
    bundle = {
        ds.name: len(pickle.dumps((ds, bundles.splits.get(key, {})), protocol=pickle.HIGHEST_PROTOCOL))
        for key, ds in datasets.items()
    }
    sizes = list(per_task.values())
    return {
        "rows": n_samples,
        "shape": list(next(iter(plan.datasets.values())).X.shape),
        "tasks": len(tasks),
        "kinds": {k: sum(t.kind == k for t in tasks) for k in ("fold", "study", "pretrain")},
        "per_task_bytes": per_task,
        "per_task_mean": statistics.mean(sizes),
        "per_task_max": max(sizes),
        "attached_task_mean": statistics.mean(attached),
        "bundle_bytes": bundle,
    }


def part_3(tmp: Path) -> dict[str, Any]:
    small, large = (wire_sizes(n, tmp) for n in WIRE_ROWS)
    growth = large["per_task_mean"] / small["per_task_mean"] - 1
    common = small["per_task_bytes"].keys() & large["per_task_bytes"].keys()
    worst = max(
        (large["per_task_bytes"][k] / small["per_task_bytes"][k] - 1 for k in common),
        default=float("nan"),
    )
    return {
        "sizes": {str(small["rows"]): small, str(large["rows"]): large},
        "per_task_growth": growth,
        "worst_task_growth": worst,
        "tasks_compared": len(common),
        "bundle_growth": sum(large["bundle_bytes"].values()) / sum(small["bundle_bytes"].values()),
        "goal": f"per-task bytes at {large['rows']:,} rows within {WIRE_TOLERANCE:.0%} of those at {small['rows']:,}",
        "goal_met": len(common) == small["tasks"] and worst <= WIRE_TOLERANCE,
    }


def print_3(p: dict[str, Any]) -> None:
    sizes = list(p["sizes"].values())
    print("\n3. Bytes submitted per task: pickle.dumps((_detach(task)[0], _split_id(task)))")
    print(
        f"{'rows':>9s}{'X shape':>14s}{'tasks':>7s}{'per task mean':>15s}{'max':>9s}{'undetached':>13s}{'bundle':>14s}"
    )
    for s in sizes:
        shape = "x".join(str(v) for v in s["shape"])
        print(
            f"{s['rows']:9,d}{shape:>14s}{s['tasks']:7d}{s['per_task_mean']:15,.0f}{s['per_task_max']:9,d}"
            f"{s['attached_task_mean']:13,.0f}{sum(s['bundle_bytes'].values()):14,d}"
        )
    kinds = ", ".join(f"{v} {k}" for k, v in sizes[0]["kinds"].items() if v)
    print(f"   tasks: {kinds}; undetached: the task as it would travel with its data; bundle: once per dataset")
    rows = " / ".join(f"{s['rows']:,}" for s in sizes)
    by_kind: dict[str, list[str]] = {}
    for label in sizes[0]["per_task_bytes"]:
        by_kind.setdefault(" ".join(label.split()[:2]), []).append(label)
    for group, labels in by_kind.items():
        row = "  ".join(f"{statistics.mean(s['per_task_bytes'].get(k, 0) for k in labels):8,.0f}" for s in sizes)
        print(f"   {group:28s}{row}   (mean bytes at {rows} rows)")
    print(
        f"per-task growth: mean {p['per_task_growth']:+.2%}, worst task {p['worst_task_growth']:+.2%} "
        f"({p['tasks_compared']} tasks matched); bundle x{p['bundle_growth']:.1f}"
    )
    print(f"goal met: {p['goal_met']}   ({p['goal']})")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small data, fewer rounds: checks the script, not the harness"
    )
    parser.add_argument("--rounds", type=int, default=None, help="part 1 rounds (default 2, 1 with --quick)")
    parser.add_argument("--tiny-rounds", type=int, default=None, help="part 2 rounds (default 3, 2 with --quick)")
    parser.add_argument(
        "--attempts",
        type=int,
        default=None,
        help="tries per timed run while others disturb it (default 2, 1 with --quick)",
    )
    parser.add_argument("--full-tabular", action="store_true", help="part 1 on suites/tabular.yaml unchanged (slow)")
    for part in ("1", "2", "3"):
        parser.add_argument(f"--skip-{part}", action="store_true", help=f"skip part {part}")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    tiny_rounds = args.tiny_rounds or (2 if args.quick else 3)
    variant = "full" if args.full_tabular else ("quick" if args.quick else "reduced")
    # Shorter than overhead.py's waits and retries, to finish in the times above on a shared machine.
    Quiet.max_wait_s = 20.0 if args.quick else 60.0
    overhead.MAX_ATTEMPTS = args.attempts or (1 if args.quick else 2)

    report: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "quick": args.quick,
        "machine": {"cores": cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "versions": package_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="harness-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_3:  # no processes, no timing: first, so a broken detach shows at once
            report["3"] = part_3(tmp) | {"measured": report["created"]}
            print_3(report["3"])
        if not args.skip_2:
            report["2"] = part_2(10 if args.quick else 20, tiny_rounds, tmp) | {"measured": report["created"]}
            print_2(report["2"])
        if not args.skip_1:
            report["1"] = part_1(variant, rounds, tmp) | {"measured": report["created"]}
            print_1(report["1"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("cluster.quick.json" if args.quick else "cluster.json")
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for part in ("1", "2", "3"):  # a skipped part keeps its numbers from the last run that measured it
        if part not in report and part in previous:
            report[part] = previous[part] | {"measured": previous[part].get("measured", previous.get("created"))}
    report = {k: report[k] for k in ("created", "quick", "machine", "versions", "1", "2", "3") if k in report}
    path.write_text(json.dumps(_jsonable(report), indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    print(f"(cores: {cpu_count()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
