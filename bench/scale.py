"""Large data: the harness against plain scikit-learn at 1M and 5M rows (time, memory, worker restarts).

Run with `.venv/bin/python bench/scale.py [--quick] [--rows N ...] [--skip-load] [--skip-scale]`
(1M rows: about 5 minutes per side on two idle cores; 5M: about 25; --quick, 100,000
rows, checks the script in a minute or two). Results are printed and written to
bench/results/scale.json (scale.quick.json with --quick); a size not measured this time
keeps its numbers from the last run that measured it, marked with that run's time.

Scale. A synthetic classification set (make_classification, `rows` x 40 float64
features, 12 informative, random_state 0) is written once to a Parquet file. Then, each
in a process of its own started from this script, each side reads that file and runs
linear (StandardScaler + LogisticRegression(max_iter=1000)), LightGBM (n_jobs=1) and
HistGradientBoosting, 3 stratified folds (shuffle, seed 0), on two processes, with
roc_auc, accuracy and log_loss:
- harness: the real CLI, `harness run SUITE --n-jobs 2 --out DIR`, on a suite YAML
  naming the Parquet file (explanations off: cross_validate computes none), so the
  time includes start-up, loading, fingerprinting, the store and the reports;
- plain: a script a careful user would write: `pd.read_parquet`, then
  `cross_validate(model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0),
  scoring=..., n_jobs=2)` per model (joblib's loky workers; X memory-mapped by joblib).
Both sides' scores are compared fold by fold (they must agree: same models, same folds).
Measured from outside, every 0.2 s: wall time, and memory as PSS (proportional set
size: shared pages split between the processes sharing them) summed over the side's
whole process tree (the CLI, its fork server and workers; the script and joblib's
workers), read from /proc/PID/smaps_rollup. Reported: the peak of that sum, and the
ratios harness / plain. Worker restarts: the harness's results store names the worker
process of every fold (host:pid; 2 distinct pids means none was replaced) and its
output is searched for joblib's "A worker stopped while some jobs were given to the
executor"; the plain side records the warnings cross_validate raised.
Goals: time <= 1.05, memory <= 1.10, no worker restarts. Also reported: the ratio of the
two process trees' CPU time (`cpu_ratio`), which other processes sway less than wall time.

Load. A 1M-row CSV of the same data (40 features + target, 42 columns with an unused
one the suite drops): `load_dataset` (the harness's CSV reader) against
`pd.read_csv(path)` (pandas' default C engine), each in a fresh process: wall time and
the process's peak PSS, for float64 and for `dtype: float32`.

Timings are wall clock. The machine has 2 cores that other processes may share: each
measured process first waits (up to --idle-wait s) for idle cores, and the CPU time other
processes took while it ran (`foreign_cpu_s`: all cores' busy time minus the side's
process tree's own, sampled) is recorded beside it; `disturbed: true` marks a run where
others took more than 3% of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = Path(tempfile.gettempdir()) / "harness-bench-scale"
FEATURES = 40
FOLDS = 3
METRICS = ["roc_auc", "accuracy", "log_loss"]
SCORERS = {"roc_auc": "roc_auc", "accuracy": "accuracy", "log_loss": "neg_log_loss"}
GOALS = {"time": 1.05, "memory": 1.10}
SAMPLE_S = 0.2
RESTART_WARNING = "A worker stopped while some jobs were given to the executor"


# ---------------------------------------------------------------- the machine and a process tree


def _machine_busy_s() -> float:
    """CPU-seconds all cores have been busy since boot (steal counts as busy)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_idle(max_wait_s: float) -> float:
    """Seconds waited until the cores were idle for a second (at most max_wait_s)."""
    waited = 0.0
    while waited < max_wait_s:
        busy = _machine_busy_s()
        time.sleep(1.0)
        if _machine_busy_s() - busy < 0.2:
            break
        waited += 1.0
    return waited


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int) -> list[int]:
    """pid and all its descendants (the harness's fork server and workers, joblib's loky workers)."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(cmd: list[str], idle_wait_s: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` once the cores are idle; its wall time, peak summed PSS and the CPU others took meanwhile."""
    waited = wait_for_idle(idle_wait_s)
    busy0, own0 = _machine_busy_s(), time.process_time()
    cpu: dict[int, float] = {}  # last CPU time seen per process of the tree
    peak_kib, peak_procs, series = 0, 0, []
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while proc.poll() is None:
            pids = tree(proc.pid)
            total = sum(_pss_kib(p) for p in pids)
            for p in pids:
                cpu[p] = max(cpu.get(p, 0.0), _cpu_s(p))
            if total > peak_kib:
                peak_kib, peak_procs = total, len(pids)
            series.append((round(time.perf_counter() - start, 1), round(total / 2**20, 3)))
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - start
        out.seek(0)
        output = out.read().decode(errors="replace")
    tree_cpu = sum(cpu.values()) + time.process_time() - own0
    foreign = max(0.0, _machine_busy_s() - busy0 - tree_cpu)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "peak_pss_gib": round(peak_kib / 2**20, 3),
        "processes_at_peak": peak_procs,
        "tree_cpu_s": round(tree_cpu, 1),
        "machine": {
            "waited_for_idle_s": waited,
            "foreign_cpu_s": round(foreign, 1),
            "disturbed": foreign > max(1.0, 0.03 * wall),
        },
        "pss_gib_every_s": _downsample(series),
        "output": output,
    }


def _downsample(series: list[tuple[float, float]], points: int = 60) -> list[tuple[float, float]]:
    """At most `points` (time, PSS) pairs, keeping each window's maximum (the peak survives)."""
    if len(series) <= points:
        return series
    step = len(series) / points
    return [max(series[int(i * step) : int((i + 1) * step)], key=lambda s: s[1]) for i in range(points)]


# ---------------------------------------------------------------- data


def parquet_file(rows: int) -> Path:
    """The synthetic set as Parquet (written once, kept in the temp folder for later runs)."""
    path = DATA / f"classification-{rows}x{FEATURES}.parquet"
    if not path.is_file():
        import pandas as pd
        from sklearn.datasets import make_classification

        DATA.mkdir(parents=True, exist_ok=True)
        X, y = make_classification(rows, FEATURES, n_informative=12, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(FEATURES)])
        frame["y"] = y
        del X
        partial = path.with_suffix(".partial")
        frame.to_parquet(partial, index=False)
        partial.replace(path)
    return path


def csv_file(rows: int) -> Path:
    """The same data as CSV, plus a column `unused` that the load suite drops."""
    path = DATA / f"classification-{rows}x{FEATURES}.csv"
    if not path.is_file():
        import pandas as pd

        frame = pd.read_parquet(parquet_file(rows))
        frame["unused"] = np.arange(len(frame)) % 7
        partial = path.with_suffix(".partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)
    return path


# ---------------------------------------------------------------- the two sides


def suite_yaml(data: Path, folder: Path) -> Path:
    suite = {
        "name": "scale",
        "seed": 0,
        "cv": {"scheme": "stratified_kfold", "folds": FOLDS, "repeats": 1},
        "metrics": {"classification": METRICS},
        "explain": {"enabled": False},
        "datasets": [{"name": "synth", "source": str(data), "target": "y"}],
        "estimators": [
            {"name": "linear", "model": "linear"},
            {"name": "lgbm", "model": "lightgbm"},
            {"name": "hgb", "model": "hist_gradient_boosting"},
        ],
    }
    path = folder / "scale.yaml"
    path.write_text(json.dumps(suite, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def run_harness(data: Path, folder: Path, idle_wait_s: float) -> dict[str, Any]:
    """`harness run` through the CLI; times and worker pids read back from its results store."""
    from harness.store import Store

    out = folder / "out"
    cmd = [str(ROOT / ".venv" / "bin" / "harness"), "run", str(suite_yaml(data, folder)), "--n-jobs", "2"]
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_THREADS"}
    watched = watch([*cmd, "--out", str(out)], idle_wait_s, env)
    with Store(out / "results.db", create=False) as store:
        folds = store.results()
        run = store.latest_run()
        blobs = "SUM(length(test_index) + length(y_true) + length(y_pred) + ifnull(length(proba), 0))"
        (stored,) = store.db.execute(f"SELECT {blobs} FROM predictions").fetchone()
    size = (out / "results.db").stat().st_size
    watched |= {
        "workers": sorted(folds["worker"].unique().tolist()),
        "restarts": max(0, int(folds["worker"].nunique()) - 2),
        "restart_warning": RESTART_WARNING in watched["output"],
        "run_suite_s": round(run["finished"] - run["started"], 2),  # the run row: after loading, before reports
        "fit_sum_s": round(float(folds["fit_time"].sum()), 2),
        "results_db_mb": round(size / 1e6, 2),
        "predictions_mb_per_million": round(stored / float(folds["n_test"].sum()), 2),  # bytes per prediction
        "statuses": {k: int(v) for k, v in folds["status"].value_counts().items()},
        "scores": {f"{r.estimator}/{r.fold}": {m: float(getattr(r, m)) for m in METRICS} for r in folds.itertuples()},
    }
    return watched


def run_plain(data: Path, folder: Path, idle_wait_s: float) -> dict[str, Any]:
    """This script's `--plain` mode (cross_validate) in a process of its own."""
    result = folder / "plain.json"
    watched = watch([sys.executable, __file__, "--plain", str(data), str(result)], idle_wait_s)
    return watched | json.loads(result.read_text(encoding="utf-8"))


def plain_side(data: Path, result: Path) -> None:
    """What a user would write with scikit-learn alone: read the file, cross_validate each model."""
    import warnings

    import pandas as pd
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    frame = pd.read_parquet(data)
    X, y = frame.drop(columns=["y"]), frame["y"].to_numpy()
    del frame
    models = {
        "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0)),
        "lgbm": LGBMClassifier(verbose=-1, random_state=0, n_jobs=1),
        "hgb": HistGradientBoostingClassifier(random_state=0),
    }
    cv = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
    scores, fit_sum, caught = {}, 0.0, []
    for name, model in models.items():
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            res = cross_validate(model, X, y, cv=cv, scoring=[SCORERS[m] for m in METRICS], n_jobs=2)
        caught += [str(w.message) for w in got]
        fit_sum += float(res["fit_time"].sum())
        for fold in range(FOLDS):
            values = {m: float(res[f"test_{SCORERS[m]}"][fold]) for m in METRICS}
            values["log_loss"] = -values["log_loss"]
            scores[f"{name}/{fold}"] = values
    out = {
        "inside_s": round(time.perf_counter() - start, 2),
        "fit_sum_s": round(fit_sum, 2),
        "warnings": sorted(set(caught)),
        "restart_warning": any(RESTART_WARNING in w for w in caught),
        "scores": scores,
    }
    result.write_text(json.dumps(out), encoding="utf-8")


def score_difference(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> float:
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    return max(abs(a[k][m] - b[k][m]) for k in a for m in METRICS)


def scale(rows: int, idle_wait_s: float) -> dict[str, Any]:
    data = parquet_file(rows)
    with tempfile.TemporaryDirectory(prefix="harness-scale-") as tmp:
        plain = run_plain(data, Path(tmp), idle_wait_s)
        _show(f"{rows:,} rows plain  ", plain)
        harness = run_harness(data, Path(tmp), idle_wait_s)
        _show(f"{rows:,} rows harness", harness)
    diff = score_difference(harness.pop("scores"), plain.pop("scores"))
    for side in (harness, plain):
        side.pop("output")
    time_ratio = harness["wall_s"] / plain["wall_s"]
    memory_ratio = harness["peak_pss_gib"] / plain["peak_pss_gib"]
    restarts = harness["restarts"] > 0 or harness["restart_warning"]
    return {
        "rows": rows,
        "features": FEATURES,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "harness": harness,
        "plain": plain,
        "time_ratio": round(time_ratio, 3),
        "memory_ratio": round(memory_ratio, 3),
        # CPU time of each whole process tree: less swayed than wall time by other processes.
        "cpu_ratio": round(harness["tree_cpu_s"] / plain["tree_cpu_s"], 3),
        "max_abs_score_difference": diff,
        "clean": not (harness["machine"]["disturbed"] or plain["machine"]["disturbed"]),
        "goals_met": {
            "time": time_ratio <= GOALS["time"],
            "memory": memory_ratio <= GOALS["memory"],
            "no_worker_restarts": not restarts,
        },
    }


def _show(label: str, side: dict[str, Any]) -> None:
    m = side["machine"]
    print(
        f"  {label}: {side['wall_s']:7.1f} s, peak PSS {side['peak_pss_gib']:.2f} GiB "
        f"(others took {m['foreign_cpu_s']:.1f} CPU-s, waited {m['waited_for_idle_s']:.0f} s for idle cores)",
        flush=True,
    )


# ---------------------------------------------------------------- loading


def load_side(mode: str, path: Path, result: Path) -> None:
    """One load in this fresh process: the harness's reader, or pandas' default one."""
    start = time.perf_counter()
    if mode == "pandas":
        import pandas as pd

        frame = pd.read_csv(path)
        shape = list(frame.shape)
    else:
        from harness.datasets import load_dataset
        from harness.spec import DatasetSpec

        dtype = {"dtype": mode} if mode != "float64" else {}  # the default
        spec = DatasetSpec(name="big", source=str(path), target="y", drop=["unused"], **dtype)
        ds = load_dataset(spec)
        shape = [*ds.X.shape]
    result.write_text(json.dumps({"inside_s": round(time.perf_counter() - start, 2), "shape": shape}))


def load(rows: int, idle_wait_s: float) -> dict[str, Any]:
    path = csv_file(rows)
    out: dict[str, Any] = {"rows": rows, "csv_mb": round(path.stat().st_size / 1e6, 1)}
    with tempfile.TemporaryDirectory(prefix="harness-load-") as tmp:
        for mode in ("pandas", "float64", "float32"):
            result = Path(tmp) / f"{mode}.json"
            watched = watch([sys.executable, __file__, "--load", mode, str(path), str(result)], idle_wait_s)
            watched.pop("output"), watched.pop("pss_gib_every_s")
            out[mode] = watched | json.loads(result.read_text())
            print(f"  load {mode:8s}: {out[mode]['wall_s']:6.1f} s, peak PSS {out[mode]['peak_pss_gib']:.2f} GiB")
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows: checks the script")
    parser.add_argument("--rows", type=int, nargs="+", help="sizes to measure (default 1000000 5000000)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--idle-wait", type=float, default=120.0, help="longest wait for idle cores per run (s)")
    parser.add_argument("--plain", nargs=2, metavar=("DATA", "RESULT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, metavar=("MODE", "CSV", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:
        plain_side(Path(args.plain[0]), Path(args.plain[1]))
        return 0
    if args.load:
        load_side(args.load[0], Path(args.load[1]), Path(args.load[2]))
        return 0
    sizes = args.rows or ([100_000] if args.quick else [1_000_000, 5_000_000])
    from harness.engine import cpu_count, package_versions

    path = RESULTS / ("scale.quick.json" if args.quick else "scale.json")
    report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    report |= {
        "created": created,
        "machine": {"cores": cpu_count(), "platform": platform.platform(), "memory_gib": _memory_gib()},
        "versions": package_versions(),
        "goals": GOALS,
    }
    scales = report.setdefault("scale", {})
    if not args.skip_scale:
        for rows in sizes:
            print(f"scale: {rows:,} rows x {FEATURES} features, {FOLDS} folds, linear + LightGBM + HGB, 2 workers")
            scales[str(rows)] = scale(rows, args.idle_wait) | {"measured": created}
            r = scales[str(rows)]
            print(
                f"  harness / plain: time {r['time_ratio']:.3f} (goal <= {GOALS['time']}), memory "
                f"{r['memory_ratio']:.3f} (goal <= {GOALS['memory']}), CPU {r['cpu_ratio']:.3f}; worker restarts: "
                f"{r['harness']['restarts']}; largest score difference {r['max_abs_score_difference']:.1e}; "
                f"results.db {r['harness']['results_db_mb']} MB; clean: {r['clean']}",
                flush=True,
            )
    if not args.skip_load:
        rows = 100_000 if args.quick else 1_000_000
        print(f"load: a {rows:,}-row CSV")
        report["load"] = load(rows, args.idle_wait) | {"measured": created}
    if len(scales) > 1:
        by_rows = sorted(scales.values(), key=lambda s: s["rows"])
        report["memory_growth"] = {
            f"{s['rows']}": {"harness_gib": s["harness"]["peak_pss_gib"], "plain_gib": s["plain"]["peak_pss_gib"]}
            for s in by_rows
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


def _memory_gib() -> float:
    return round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)


if __name__ == "__main__":
    sys.exit(main())
