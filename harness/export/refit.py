"""`harness export model`: refit one estimator of a run on all rows of one dataset, save it with skops.

The run is rebuilt from its store, the way the run built it: the suite the store kept
(`runs.suite_json`), planned by `planner.prepare` (datasets load, estimators resolve,
pretraining and skips apply exactly as in the run), then `registry.build` makes the same
pipeline a fold fits. So the exported model is what the cross-validated scores in its
sidecar describe, fitted on every row instead of a fold's training part.

Decisions (also in the README):
- Data that changed since the run (its fingerprint differs from the store's) is refused,
  exit 2: the sidecar's scores would describe another model.
- Relative data paths resolve against the run's suite file: `--suite FILE` (it must be
  the same suite), else a suite file named on the run's command line that still parses
  to the same suite, else the current folder. The fingerprint check catches a wrong guess.
- tune_then_cv reuses the study's best parameters (those the folds were scored with,
  kept in their `extra["tuning"]`; else the study in DIR/studies.db, read without new
  trials). nested tuning runs one study on all rows with the suite's tune settings
  (a temporary storage: the run's studies.db is never written).
- With `seeds: [...]` the model is fitted with the first seed.
- The torch MLP saves its network as numpy weights and a layout (its `__getstate__`), so
  skops stores it without pickle and only the harness's own classes need trusting.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError

Note = Callable[[str], None]


@dataclass
class ExportOptions:
    suite: Path | None = None
    force: bool = False
    allow_modules: tuple[str, ...] = ()
    data_home: Path | None = None


@dataclass
class Written:
    model: Path
    sidecar: Path


@dataclass
class Cell:
    """What the export refits: the run's dataset and resolved estimator, and the folds it scored."""

    suite: Any
    plan: Any
    dataset: Any
    resolved: Any
    folds: pd.DataFrame
    run: dict[str, Any]
    directions: dict[str, bool]


def export_model(
    out_dir: str | Path,
    estimator: str,
    dataset: str,
    to: str | Path,
    options: ExportOptions | None = None,
    note: Note = lambda _: None,
) -> Written:
    """Refit `estimator` on all rows of `dataset` as the run in `out_dir` did; write `to` and its sidecar."""
    from harness.export.model import sidecar_path
    from harness.fileio import atomic_write

    options = options or ExportOptions()
    to = _check_targets(Path(to), options.force)
    cell = load_cell(Path(out_dir), estimator, dataset, options, note)
    resolved, tuning = tuned(cell, note)
    model, fit_s = fit_all_rows(cell, resolved)
    payload, untrusted = dump_checked(model, cell, options.allow_modules)
    from harness.export.sidecar import build_sidecar

    sidecar = build_sidecar(cell, resolved, tuning, payload, untrusted, fit_s, to.name)
    atomic_write(to, payload)
    atomic_write(sidecar_path(to), json.dumps(sidecar, indent=2, ensure_ascii=False, default=str) + "\n")
    return Written(to, sidecar_path(to))


def _check_targets(to: Path, force: bool) -> Path:
    """--to must be FILE.skops, and neither it nor FILE.json may be someone else's file (before any fit)."""
    from harness.export.model import is_exported_model, is_sidecar, sidecar_path
    from harness.fileio import check_target

    if to.suffix != ".skops":
        raise HarnessError(f"--to {to}: name a .skops file (the sidecar FILE.json is written beside it)")
    check_target(to, is_exported_model, "model exported by harness", force)
    check_target(sidecar_path(to), is_sidecar, "model sidecar written by harness", force)
    return to


def load_cell(out_dir: Path, estimator: str, dataset: str, options: ExportOptions, note: Note) -> Cell:
    """The run's suite, dataset and resolved estimator, checked against the store (exit 2 on any mismatch)."""
    from harness.planner import RunOptions, prepare
    from harness.registry import allowed_modules
    from harness.store import Store

    db = out_dir / "results.db"
    if not db.is_file():
        raise HarnessError(f"{out_dir}: no results.db here (is it the --out folder of a harness run?)")
    with Store(db, create=False) as store:
        run = store.latest_run()
        if run is None:
            raise HarnessError(f"{db}: holds no run")
        folds = store.results(store.current_keys())
        directions = store.metric_directions()
    _check_names(folds, estimator, dataset, db)
    suite = _run_suite(run, options.suite, note)
    run_options = RunOptions(
        out=out_dir,
        datasets=(dataset,),
        estimators=(estimator,),
        allow_modules=allowed_modules(options.allow_modules),
        data_home=options.data_home,
        argv=[],
    )
    first = suite.for_seed(suite.seed_list[0]) if len(suite.seed_list) > 1 else suite
    plan = prepare(first, run_options)
    ds = plan.datasets[dataset]
    mine = folds[(folds["dataset"] == dataset) & (folds["estimator"] == estimator)]
    stored = set(mine["dataset_fingerprint"].dropna())
    if stored and ds.fingerprint not in stored:
        raise HarnessError(
            f"datasets.{dataset}: the data differs from the run's ({ds.source}: fingerprint {ds.fingerprint}, "
            f"the run's {', '.join(sorted(stored))}); the exported model would not be the one scored. "
            "Restore the data, or run the suite again"
        )
    resolved = next(t.resolved for t in plan.tasks if t.resolved.spec.name == estimator)
    if resolved.skipped:
        raise HarnessError(f"--estimator {estimator}: skipped on dataset '{dataset}' in the run ({resolved.skipped})")
    return Cell(first, plan, ds, resolved, mine, run, directions)


def _check_names(folds: pd.DataFrame, estimator: str, dataset: str, db: Path) -> None:
    from harness.spec import did_you_mean

    for flag, name, column in (("--dataset", dataset, "dataset"), ("--estimator", estimator, "estimator")):
        names = list(dict.fromkeys(folds[column]))
        if name not in names:
            hint = did_you_mean(name, names) or f" (it has: {', '.join(names)})"
            raise HarnessError(f"{flag} {name}: not in the run in {db.parent}{hint}")


def _run_suite(run: dict[str, Any], given: Path | None, note: Note) -> Any:
    """The run's suite, from the store, with the suite file it came from (for relative data paths)."""
    from harness.errors import SuiteError
    from harness.spec import load_suite, parse_suite

    try:
        stored = parse_suite(json.loads(run["suite_json"]), label=f"the run's suite ({run['suite']})")
    except (SuiteError, ValueError) as exc:
        raise HarnessError(f"results.db: the run's suite no longer parses ({str(exc).splitlines()[0]})") from None
    if given is not None:
        suite = load_suite(given)
        if suite.model_dump_json() != stored.model_dump_json():
            raise HarnessError(f"--suite {given}: not the suite of the run (its content differs from the stored one)")
        return suite
    recorded = json.loads(run.get("settings") or "{}").get("suite_path")
    for arg in [recorded, *json.loads(run.get("argv") or "[]")]:
        if arg is None:
            continue
        path = Path(str(arg))
        if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
            try:
                suite = load_suite(path)
            except SuiteError:
                continue
            if suite.model_dump_json() == stored.model_dump_json():
                return suite
    if any(_relative_file(d.source) for d in stored.datasets):
        note(
            f"warning: the run's suite file was not found: relative data paths are read from {Path.cwd()} "
            "(or pass --suite)"
        )
    return stored


def _relative_file(source: str) -> bool:
    from harness.datasets import FILE_SUFFIXES

    return source.lower().endswith(FILE_SUFFIXES) and not Path(source).is_absolute()


# ---------------------------------------------------------------- tuning and fitting


def tuned(cell: Cell, note: Note) -> tuple[Any, dict[str, Any] | None]:
    """The estimator with its tuned parameters, and what the tuning was (None when untuned)."""
    r = cell.resolved
    if r.tune is None:
        return r, None
    if r.tune["mode"] == "tune_then_cv":
        preset = _stored_preset(cell.folds)
        if preset is None:
            preset = _study_outcome(cell, cell.plan.storage, trials=False)
            if preset is None:
                raise HarnessError(
                    f"--estimator {r.spec.name}: no tuned parameters in the run (no fold stored them and "
                    f"{cell.plan.out / 'studies.db'} holds no finished study); run the suite first"
                )
        return r.with_params(preset["best_params"]), {**preset, "mode": "tune_then_cv"}
    note(f"{r.spec.name}: nested tuning: running one study on all {len(cell.dataset.y)} rows")  # no warning
    with tempfile.TemporaryDirectory(prefix="harness-export-") as tmp:
        outcome = _study_outcome(cell, f"sqlite:///{Path(tmp) / 'study.db'}", trials=True)
    return r.with_params(outcome["best_params"]), {**outcome, "mode": "nested (refit on all rows)"}


def _stored_preset(folds: pd.DataFrame) -> dict[str, Any] | None:
    """The tune_then_cv parameters the run's folds were fitted with (all folds share them)."""
    for extra in folds["extra"]:
        tuning = (extra or {}).get("tuning") if isinstance(extra, dict) else None
        if tuning and tuning.get("best_params") is not None:
            return {k: tuning.get(k) for k in ("best_params", "best_value", "n_complete", "n_pruned", "n_failed")}
    return None


def _study_outcome(cell: Cell, storage: str, trials: bool) -> dict[str, Any] | None:
    """Run (trials) or read (no new trials) the cell's study on every row."""
    from harness.engine.fit import tune_on_rows
    from harness.planner import study_plan
    from harness.tuning import make_storage

    ds, r = cell.dataset, cell.resolved
    cells = [k for k, step in cell.plan.steps.items() if k.startswith("cell-") and "-runner" not in k]
    name = cells[0] if cells and not trials else f"export-{ds.name}-{r.spec.name}"
    plan = study_plan(cell.suite, ds, r, name, storage, None)
    if not trials:
        if not _study_exists(cell.plan.out / "studies.db", storage, name):
            return None
        plan = replace(plan, trials=0, timeout_s=None)
    else:
        make_storage(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = tune_on_rows(ds, r, np.arange(len(ds.y)), plan, cell.plan.threads, judge=trials)
    if outcome.n_complete == 0 and not trials:
        return None
    return {k: getattr(outcome, k) for k in ("best_params", "best_value", "n_complete", "n_pruned", "n_failed")}


def _study_exists(db: Path, storage: str, name: str) -> bool:
    """Whether the run's tuning store holds the study (asked without creating anything)."""
    import optuna

    from harness.tuning import make_storage

    if storage.startswith("sqlite") and not db.is_file():
        return False
    return name in optuna.get_all_study_names(make_storage(storage))


def fit_all_rows(cell: Cell, resolved: Any) -> tuple[Any, float]:
    """The fold's pipeline (same preprocessing, same parameters), fitted on every row."""
    from harness.engine.limits import limit_threads
    from harness.preprocess import Columns
    from harness.registry import build

    ds = cell.dataset
    model = build(resolved, Columns(ds.numeric, ds.categorical, ds.has_missing))
    limit_threads(model, cell.plan.threads)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(ds.X, ds.y)
    return model, time.perf_counter() - start


def dump_checked(model: Any, cell: Cell, allow_modules: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """The model as skops bytes, checked to load back (with our trust rules) and predict the same."""
    import skops.io as sio

    from harness.export.model import trusted_types

    name = cell.resolved.spec.name
    try:
        payload = sio.dumps(model)
    except Exception as exc:
        raise HarnessError(f"--estimator {name}: skops cannot save it ({type(exc).__name__}: {exc})") from None
    untrusted = sio.get_untrusted_types(data=payload)
    trusted, refused = trusted_types(untrusted, allow_modules)
    if refused:
        raise HarnessError(
            f"--estimator {name}: holds types from modules a loader would not trust: {', '.join(refused[:3])}"
        )
    back = sio.loads(payload, trusted=trusted)
    rows = cell.dataset.X.iloc[: min(len(cell.dataset.y), 200)]
    if not np.array_equal(np.asarray(back.predict(rows)), np.asarray(model.predict(rows))):
        raise HarnessError(f"--estimator {name}: the model saved with skops predicts differently once loaded")
    return payload, untrusted
