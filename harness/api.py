"""The Python API: run a suite from a notebook and hold its results as DataFrames.

`harness.run(suite, ...)` does what `harness run` does (check, fit every fold not yet
stored, write the reports) and returns `Results`; `harness.open(DIR)` reads an output
folder someone else produced. `Results` answers from the results store alone, through
the reports' read model (`report.context.load_report_data`), loaded once and shared, so
its numbers are the ones `results.csv`, `leaderboard.md` and `stats.json` show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.planner import Plan, RunOptions, Selection
    from harness.report.context import ReportData
    from harness.runner import RunSummary
    from harness.spec import Suite

__all__ = ["Planned", "Results", "open", "plan", "run"]

# Columns of `Results.folds` beyond those of results.csv: identity, provenance and records.
FOLD_DETAILS = ["key", "task", "seed", "config", "notes", "extra", "versions", "dataset_fingerprint", "run_id"]
COMPARE_COLUMNS = [
    "dataset",
    "metric",
    "a",
    "b",
    "n",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci_low",
    "ci_high",
    "t",
    "df",
    "p",
    "p_holm",
    "p_a_better",
    "p_rope",
    "p_b_better",
    "rope",
    "verdict",
    "bayes_decision",
]


@dataclass
class Planned:
    """A checked suite and the run it would make: nothing fitted yet (what `--dry-run` shows)."""

    suite: Suite
    options: RunOptions
    plan: Plan

    def selection(self) -> Selection:
        """The folds (and studies, pretraining) a run would compute now, given what the store holds."""
        from harness.planner import select
        from harness.store import Store

        db = self.plan.out / "results.db"
        if not db.is_file():
            return select(self.plan, None, self.options)
        with Store(db, create=False) as store:
            return select(self.plan, store, self.options)


def plan(
    suite: str | Path | Mapping[str, Any] | Suite,
    out: str | Path | None = None,
    n_jobs: int = 1,
    *,
    out_option: str = "out",
    **options: Any,
) -> Planned:
    """Check `suite` and plan its run without fitting anything; bad input raises a HarnessError.

    `options` are those of `harness run` (see `run`); the output folder is checked too, so a
    run never fits what it could not write (`out_option` names it in that message).
    """
    from harness.fileio import check_set_targets
    from harness.planner import RunOptions, output_dir, prepare
    from harness.report import ALL_OUTPUT_FILES

    parsed = as_suite(suite)
    out = Path(out) if out is not None else None
    check_set_targets(output_dir(parsed, out), ALL_OUTPUT_FILES, option=out_option)
    from harness.registry import allowed_modules

    # as on the command line: the defaults, HARNESS_ALLOW_MODULES, then the modules named here
    options["allow_modules"] = allowed_modules(tuple(options.get("allow_modules") or ()))
    for name in ("datasets", "estimators"):
        if isinstance(options.get(name), str):
            options[name] = (options[name],)
        elif options.get(name) is not None:
            options[name] = tuple(options[name])
    settings = RunOptions(out=out, n_jobs=n_jobs, **{k: v for k, v in options.items() if v is not None})
    return Planned(parsed, settings, prepare(parsed, settings))


def run(
    suite: str | Path | Mapping[str, Any] | Suite | Planned,
    out: str | Path | None = None,
    n_jobs: int = 1,
    *,
    report: bool = True,
    on_start: Callable[[int, int, int | None], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    mlflow: str | bool | None = None,
    **options: Any,
) -> Results:
    """Run `suite` (a YAML path, a dict, a parsed Suite, or what `plan` returned) and return its Results.

    `options` are those of `harness run`: threads, force, retry_failed, datasets,
    estimators, allow_modules, storage, cluster, data_home (see `planner.RunOptions`). In
    a dict a dataset's `source` may be a pandas DataFrame: it is fingerprinted by content,
    validated like a file, and never modified. Bad input raises a HarnessError (the CLI's
    exit 2) before anything is fitted; with `report` the output files are written as
    `harness run` writes them. `on_start(todo, reused, workers)`, `on_result(result)` and
    `on_note(line)` report progress (the CLI draws its progress bar with them). Ctrl-C
    raises KeyboardInterrupt once every finished fold is stored.

    `mlflow` (a tracking URI, or True for the embedded `sqlite:///OUT/mlflow.db`) exports the
    run to MLflow at the end (`harness export mlflow`); MLflow and the URI are checked before
    anything is fitted. An export that fails afterwards does not lose the run: it is warned and
    kept in `Results.mlflow_error`; what the export did is in `Results.mlflow`.
    """
    from harness.report import write_outputs
    from harness.runner import run_suite

    if mlflow is not None and mlflow is not False:
        from harness.integrations.mlflow import require_mlflow, target_for

        # No MLflow, a bad URI: nothing is fitted (the embedded default lives in OUT, checked at export).
        if mlflow is True:
            require_mlflow()
        else:
            target_for(Path(out or "."), mlflow)
    planned = suite if isinstance(suite, Planned) else plan(suite, out, n_jobs, **options)
    summary = run_suite(
        planned.suite, planned.options, on_start=on_start, on_result=on_result, plan=planned.plan, on_note=on_note
    )
    results = Results(summary.out, summary)
    if report:
        write_outputs(summary.out, data=results.data)  # one read of the store serves the files and Results
    if mlflow is not None and mlflow is not False:
        _export_mlflow(results, None if mlflow is True else mlflow)
    return results


def _export_mlflow(results: Results, tracking_uri: str | None) -> None:
    """Export at the end of a run; a failure is recorded on `results` and warned, never raised: the run is stored."""
    import warnings

    from harness.integrations.mlflow import export_run

    try:
        results.mlflow = export_run(results.out, tracking_uri, data=results.data)
    except HarnessError as exc:
        again = f"harness export mlflow {results.out}" + (f" --tracking-uri {tracking_uri}" if tracking_uri else "")
        results.mlflow_error = f"{exc} (the run is stored: export it again with `{again}`)"
        warnings.warn(results.mlflow_error, stacklevel=3)


def open(out: str | Path) -> Results:
    """The Results in an output folder (its results.db), as `harness report DIR` reads them."""
    path = Path(out)
    if not (path / "results.db").is_file():
        raise HarnessError(f"{path}: no results.db here (is it the --out folder of a harness run?)")
    return Results(path)


def as_suite(suite: str | Path | Mapping[str, Any] | Suite) -> Suite:
    """A parsed Suite from a path, a dict (DataFrame sources allowed) or a Suite."""
    from harness.spec import Suite, load_suite, parse_suite

    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, str | Path):
        return load_suite(suite)
    if isinstance(suite, Mapping):
        return parse_suite(dict(suite), label="<suite dict>")
    raise TypeError(f"suite: expected a path, a dict or a Suite, not {type(suite).__name__}")


class Results:
    """One output folder's results: fold rows, leaderboards, comparisons, predictions, explanations.

    Everything is read from `DIR/results.db` on first use and kept; `reload()` forgets it
    (e.g. after another run into the same folder).
    """

    def __init__(self, out: str | Path, summary: RunSummary | None = None) -> None:
        self.out = Path(out)
        self.summary = summary  # the run that produced these results, when this process ran it
        self.mlflow: Any = None  # run(mlflow=...): what the export did (integrations.mlflow.Exported)
        self.mlflow_error: str | None = None  # ...or why it failed (the results are stored all the same)

    def __repr__(self) -> str:
        return f"Results({str(self.out)!r})"

    def reload(self) -> Results:
        return Results(self.out, self.summary)

    @cached_property
    def data(self) -> ReportData:
        """The reports' read model: leaderboards, statistics and explanations (read once)."""
        from harness.report import read_outputs_data

        return read_outputs_data(self.out)

    @property
    def exit_code(self) -> int:
        """What `harness run` would exit with (1: some fold failed); 0 for an opened folder."""
        return self.summary.exit_code if self.summary is not None else 0

    @cached_property
    def folds(self) -> pd.DataFrame:
        """One row per fold: results.csv's columns and values, then key, seed, config, notes, versions (parsed)."""
        from harness.report.markdown import results_frame

        boards = self.data.boards
        frame = results_frame(boards)
        return pd.concat([frame, boards.folds.reindex(columns=FOLD_DETAILS)], axis=1)

    @property
    def stats(self) -> dict[str, Any]:
        """The content of stats.json."""
        return self.data.stats

    @property
    def datasets(self) -> list[str]:
        return list(self.data.boards.per_dataset)

    @property
    def estimators(self) -> list[str]:
        return list(dict.fromkeys(self.data.boards.folds["estimator"]))

    def leaderboard(self, dataset: str | None = None, metric: str | None = None) -> pd.DataFrame:
        """Per (dataset, estimator): mean, std and rank by `metric` (default: the primary), times, fold counts.

        Without `dataset`, every dataset's table, one after the other.
        """
        boards = self.data.boards
        names = [self._dataset(dataset)] if dataset is not None else list(boards.per_dataset)
        tables = [self._board(name, metric) for name in names]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def ranking(self) -> pd.DataFrame:
        """Each estimator's mean rank across datasets (leaderboard.md's overall table)."""
        return self.data.boards.overall.copy()

    def compare(self, a: str, b: str, dataset: str | None = None, metric: str | None = None) -> pd.DataFrame:
        """`a` against `b`, one row per dataset: the numbers of stats.json (positive difference = a better).

        mean_diff and the CI are oriented so that positive favours `a` (a lower-is-better
        metric is negated, as in stats.json); p_holm is Holm-adjusted over the dataset's pairs.
        """
        for name in (a, b):
            if name not in self.estimators:
                raise HarnessError(
                    f"compare: no estimator '{name}' in {self.out} (it has: {', '.join(self.estimators)})"
                )
        names = [self._dataset(dataset)] if dataset is not None else self.datasets
        rows = [row for name in names if (row := self._pair(name, a, b, metric)) is not None]
        return pd.DataFrame(rows, columns=COMPARE_COLUMNS)

    def predictions(self, dataset: str, estimator: str) -> pd.DataFrame:
        """The out-of-fold predictions: one row per (repeat, fold, test row), with class probabilities."""
        from harness.store import Store

        folds = self.folds
        mine = folds[(folds["dataset"] == self._dataset(dataset)) & (folds["estimator"] == self._estimator(estimator))]
        labels = self.data.boards.datasets.get(dataset, {}).get("labels")
        parts = []
        with Store(self.out / "results.db", create=False) as store:
            for rec in mine.itertuples():
                stored = store.predictions(rec.key)
                if stored is None:
                    continue
                part = pd.DataFrame(
                    {
                        "seed": rec.seed,
                        "repeat": rec.repeat,
                        "fold": rec.fold,
                        "row": stored["test_index"],
                        "y_true": stored["y_true"],
                        "y_pred": stored["y_pred"],
                    }
                )
                proba = stored.get("proba")
                if proba is not None:
                    proba = np.asarray(proba).reshape(len(part), -1)
                    names = labels if labels and len(labels) == proba.shape[1] else range(proba.shape[1])
                    for j, label in enumerate(names):
                        part[f"proba_{label}"] = proba[:, j]
                parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def explanations(self, dataset: str, estimator: str) -> pd.DataFrame:
        """Mean |SHAP| per feature, per explained fold and across them (mean, std), largest first.

        The table the report's SHAP section draws (`report.views.mean_abs_importance`); empty when
        the estimator was not explained on that dataset.
        """
        from harness.report.views import mean_abs_importance

        folds = self.data.explanations.get(self._dataset(dataset), {}).get(self._estimator(estimator), [])
        if not folds:
            return pd.DataFrame(columns=["mean", "std"]).rename_axis("feature")
        table = mean_abs_importance([f.explanation for f in folds], [f.label for f in folds])
        return table.rename_axis("feature")

    def write_report(self, path: str | Path | None = None, force: bool = False) -> Path:
        """(Re)write the output files (report.html, stats.json, ...) in this folder; returns report.html's path.

        With `path`, only report.html is written there (an existing file that is not a
        harness report is refused unless `force`).
        """
        from harness.report import write_outputs

        if path is None:
            write_outputs(self.out, force=force, data=self.data)
            return self.out / "report.html"
        from harness.fileio import write_set
        from harness.report.html import render_html

        target = Path(path)
        write_set(target.parent, {target.name: render_html(self.data)}, force)
        return target

    def _repr_html_(self) -> str:
        boards = self.data.boards
        parts = [f"<p><b>{boards.suite}</b>: {len(boards.folds)} folds in {self.out}</p>"]
        for name in boards.per_dataset:
            parts.append(f"<h4>{name}</h4>" + self._board(name, None).to_html(index=False, na_rep="—"))
        return "\n".join(parts)

    # ---------------------------------------------------------------- helpers

    def _dataset(self, name: str) -> str:
        if name not in self.data.boards.per_dataset:
            raise HarnessError(f"no dataset '{name}' in {self.out} (it has: {', '.join(self.datasets)})")
        return name

    def _estimator(self, name: str) -> str:
        if name not in self.estimators:
            raise HarnessError(f"no estimator '{name}' in {self.out} (it has: {', '.join(self.estimators)})")
        return name

    def _metric(self, dataset: str, metric: str | None) -> str:
        boards = self.data.boards
        task = (
            boards.datasets.get(dataset, {}).get("task")
            or boards.folds.loc[boards.folds["dataset"] == dataset, "task"].iloc[0]
        )
        if metric is None:
            return boards.primary[task]
        if metric not in boards.metrics.get(task, []):
            raise HarnessError(
                f"no metric '{metric}' for dataset '{dataset}' (it has: {', '.join(boards.metrics.get(task, []))})"
            )
        return metric

    def _board(self, dataset: str, metric: str | None) -> pd.DataFrame:
        """One dataset's leaderboard on one metric, ranked by it."""
        from harness.leaderboard import dataset_table

        boards = self.data.boards
        metric = self._metric(dataset, metric)
        rows = boards.folds[boards.folds["dataset"] == dataset]
        table = dataset_table(rows, [metric], metric, boards.directions)
        keep = ["estimator", "rank", f"{metric}_mean", f"{metric}_std", "fit_time", "predict_time", "tune_time"]
        keep += ["folds", "n_ok", "n_error", "n_timeout", "n_skipped"]
        table = table[keep].rename(columns={f"{metric}_mean": "mean", f"{metric}_std": "std"})
        table.insert(0, "metric", metric)
        table.insert(0, "dataset", dataset)
        return table

    def _pair(self, dataset: str, a: str, b: str, metric: str | None) -> dict[str, Any] | None:
        """The stats.json pair (a, b) on one dataset, oriented a-first; None when either has no score."""
        entry = self.stats["per_dataset"].get(dataset)
        if entry is None:
            return None
        metric = self._metric(dataset, metric)
        comparison = entry if entry["metric"] == metric else entry.get("other_metrics", {}).get(metric)
        if comparison is None:
            raise HarnessError(
                f"compare: stats.json compares '{metric}' on '{dataset}' only with analysis.all_metrics on"
            )
        for pair in comparison["pairs"]:
            if (pair["a"], pair["b"]) == (a, b):
                return {"dataset": dataset, "metric": metric, **_oriented(pair, flip=False)}
            if (pair["a"], pair["b"]) == (b, a):
                return {"dataset": dataset, "metric": metric, **_oriented(pair, flip=True)}
        return None


def _oriented(pair: dict[str, Any], flip: bool) -> dict[str, Any]:
    """A stats.json pair as (a, b) with positive = a better; `flip` swaps its sides. Verdicts name the winner."""
    out = {k: pair.get(k) for k in COMPARE_COLUMNS if k in pair}
    if flip:
        out |= {
            "a": pair["b"],
            "b": pair["a"],
            "mean_a": pair["mean_b"],
            "mean_b": pair["mean_a"],
            "mean_diff": _neg(pair.get("mean_diff")),
            "t": _neg(pair.get("t")),
            "ci_low": _neg(pair.get("ci_high")),
            "ci_high": _neg(pair.get("ci_low")),
            "p_a_better": pair.get("p_b_better"),
            "p_b_better": pair.get("p_a_better"),
        }
    winner = {"A better": f"{pair['a']} better", "B better": f"{pair['b']} better"}
    for key in ("verdict", "bayes_decision"):
        out[key] = winner.get(pair.get(key), pair.get(key))
    return out


def _neg(value: float | None) -> float | None:
    return None if value is None else -value
