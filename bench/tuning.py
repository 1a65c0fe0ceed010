"""Benchmark: does pruning pay? LightGBM tuned with and without Optuna pruners.

The same study (TPE sampler with the same seed, 30 trials, 3 inner folds, LightGBM's
own early stopping inside each inner fit as in a suite) runs on a 100,000-row
synthetic classification task through the harness's own tuning code
(`harness.engine.tune_on_rows`): once with `pruner: none`, then once per pruner in
`--pruners` (default: median and successive_halving). With early stopping on, the pruner
sees each inner fit's learning curve (the early-stopping slice's logloss at rounds 8, 11,
16, 23, ...); with `--early-stopping-rounds 0` it sees the running mean over inner folds
after each fold. Goal: at least 30% less wall time with pruning,
at a best inner score no more than 0.002 worse. Prints each comparison and writes
bench/results/tuning-inner<K>-es<R>.json.

    .venv/bin/python bench/tuning.py [--rows 100000] [--trials 30] [--threads 2] [--inner-folds 3]
                                     [--pruners median,successive_halving,hyperband] [--early-stopping-rounds 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

from harness.datasets import Dataset
from harness.engine import tune_on_rows
from harness.registry import Resolver
from harness.spec import parse_suite
from harness.tuning import StudyPlan, parse_space

SPACE = {
    "n_estimators": {"int": [50, 400], "log": True},
    "learning_rate": {"float": [0.02, 0.3], "log": True},
    "num_leaves": {"int": [8, 128], "log": True},
    "min_child_samples": {"int": [5, 100], "log": True},
    "colsample_bytree": {"float": [0.5, 1.0]},
}


def _dataset(rows: int) -> Dataset:
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, flip_y=0.05, random_state=0)
    return Dataset(
        "synth", pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y, "classification", [], "bench"
    )


def _study(pruner: str, trials: int, storage: str, inner_folds: int = 3, early_stopping_rounds: int = 0) -> StudyPlan:
    return StudyPlan(
        name=f"bench-{pruner}",
        storage=storage,
        space=parse_space(SPACE),
        metric="roc_auc",
        maximize=True,
        sampler="tpe",
        pruner=pruner,
        trials=trials,
        seed=0,
        inner_folds=inner_folds,
        early_stopping_rounds=early_stopping_rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inner-folds", type=int, default=3)
    parser.add_argument(
        "--pruners", default="median,successive_halving", help="pruners compared with no pruning (comma-separated)"
    )
    parser.add_argument("--early-stopping-rounds", type=int, default=50, help="boosting early stopping in trials")
    args = parser.parse_args()

    ds = _dataset(args.rows)
    suite = parse_suite(
        {
            "name": "b",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "lgbm", "model": "lightgbm"}],
        }
    )
    resolved = Resolver(suite).resolve("lgbm", "classification")
    rows = np.arange(args.rows)
    # Warm-up (imports, OpenMP pools, allocator) so that neither timed study pays it.
    from harness.preprocess import Columns
    from harness.registry import build

    build(resolved, Columns(ds.numeric, [], False)).set_params(n_estimators=20, n_jobs=args.threads).fit(ds.X, ds.y)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'studies.db'}"
        pruners = ["none", *args.pruners.split(",")]
        for pruner in pruners:
            start = time.perf_counter()
            plan = _study(pruner, args.trials, storage, args.inner_folds, args.early_stopping_rounds)
            outcome = tune_on_rows(ds, resolved, rows, plan, args.threads)
            wall = time.perf_counter() - start
            results[pruner] = {
                "wall_s": wall,
                "best_value": outcome.best_value,
                "best_params": outcome.best_params,
                "complete": outcome.n_complete,
                "pruned": outcome.n_pruned,
                "failed": outcome.n_failed,
                "trials": [{k: t.get(k) for k in ("number", "state", "value")} for t in outcome.history],
            }
            print(
                f"pruner={pruner:6s} wall {wall:7.1f} s  best roc_auc {outcome.best_value:.5f}  "
                f"complete {outcome.n_complete} pruned {outcome.n_pruned} failed {outcome.n_failed}",
                flush=True,
            )
    comparisons = {}
    for pruner in pruners[1:]:
        saving = 1 - results[pruner]["wall_s"] / results["none"]["wall_s"]
        loss = results["none"]["best_value"] - results[pruner]["best_value"]
        comparisons[pruner] = {
            "time_saving": saving,
            "score_loss": loss,
            "goal_met": bool(saving >= 0.30 and loss <= 0.002),
        }
        print(
            f"{pruner}: saves {saving:.1%} of the wall time; best inner score {loss:+.5f} worse (goal: >= 30%, <= 0.002)"
        )
    summary = {
        "rows": args.rows,
        "trials": args.trials,
        "threads": args.threads,
        "inner_folds": args.inner_folds,
        "early_stopping_rounds": args.early_stopping_rounds,
        "results": results,
        "comparisons": comparisons,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"tuning-inner{args.inner_folds}-es{args.early_stopping_rounds}.json").write_text(
        json.dumps(summary, indent=2, default=str)
    )


if __name__ == "__main__":
    main()
