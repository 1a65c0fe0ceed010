"""The command line: the one place where exceptions become messages and exit codes.

Exit codes (EXIT_CODES, also in `harness --help` and the README): 0 every fold ok;
1 some folds failed or timed out, or a gate found a regression or shift (results still
written); 2 bad input (suite, dataset, store, baseline, arguments), found before
anything is fitted; 3 internal error (a bug in harness: the message says how to report
it); 130 interrupted by Ctrl-C and 143 by SIGTERM (finished folds kept).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from harness import __version__
from harness.cli._common import Allow, DataHome, _guard, console, err_console
from harness.errors import HarnessError

EXIT_CODES = {
    0: "every fold ok (and no gate failed)",
    1: "some folds failed or timed out, a gate found a regression or a data shift, or --mlflow could not export; "
    "results are written",
    2: "bad input: suite, dataset, store, baseline or arguments; nothing was fitted",
    3: "internal error: a bug in harness; rerun with HARNESS_DEBUG=1 and report the traceback",
    130: "interrupted by Ctrl-C (SIGINT): finished folds are kept; run again to compute the rest",
    143: "stopped by SIGTERM: finished folds are kept; run again to compute the rest",
}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark classical and ensemble ML on tabular data.\n\nExit codes:\n\n"
    + "\n\n".join(f"{code}: {meaning}" for code, meaning in EXIT_CODES.items()),
)


def _version(value: bool) -> None:
    if value:
        console.print(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """harness: paired, resumable benchmarks of tabular ML models."""


def _allowed(extra: list[str] | None) -> tuple[str, ...]:
    from harness.registry import allowed_modules

    return allowed_modules(tuple(extra or ()))


@app.command()
@_guard
def run(
    suite_path: Annotated[Path, typer.Argument(metavar="SUITE", help="Suite YAML file.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default reports/<suite name>).")] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", "-j", min=1, help="Folds fitted in parallel.")] = 1,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Threads per fit (default: cores / n-jobs).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute folds already in the store.")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Recompute folds that failed or timed out.")
    ] = False,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Run only this dataset (repeatable).")
    ] = None,
    estimator: Annotated[
        list[str] | None, typer.Option("--estimator", "-e", help="Run only this estimator (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the number of folds; fit nothing.")
    ] = False,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Optuna storage URL for tuning studies (default sqlite:///OUT/studies.db)."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="After the run, check it against this baseline file (exit 1 on a regression)."),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            envvar="HARNESS_CLUSTER",
            help="Run every task on a Dask cluster: the scheduler's address (tcp://HOST:8786) or local:N worker processes.",
        ),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            metavar="URI",
            help="After the run, export it to this MLflow tracking URI (`harness export mlflow`; exit 1 if that fails).",
        ),
    ] = None,
    allow_module: Allow = None,
    data_home: DataHome = None,
) -> None:
    """Run a suite: every (dataset, estimator, repeat, fold) not yet in the store."""
    from harness import api

    if mlflow is not None:
        from harness.integrations.mlflow import target_for

        target_for(out or Path("."), mlflow)  # MLflow installed, URI usable: before anything is fitted
    if baseline is not None:
        from harness.baseline.file import load_baseline

        load_baseline(baseline)  # bad input is found before anything is fitted
    # The suite, its data and estimators, and the output folder are checked before anything is fitted.
    planned = api.plan(
        suite_path,
        out,
        n_jobs,
        out_option="--out",
        threads=threads,
        force=force,
        retry_failed=retry_failed,
        datasets=dataset,
        estimators=estimator,
        allow_modules=allow_module,
        storage=storage,
        cluster=cluster,
        data_home=data_home,
    )
    suite, plan = planned.suite, planned.plan
    _print_skipped(plan)
    if dry_run:
        _print_plan(planned)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed [red]{task.fields[failed]}[/]"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(suite.name, total=None, failed=0)

        def on_start(todo: int, reused: int, workers: int | None) -> None:
            progress.update(bar, total=todo)
            if workers is not None:  # on a cluster: how many workers share the work
                progress.update(bar, description=f"{suite.name} on {workers} workers")
            if reused:
                progress.console.print(f"{reused} folds already in the store; {todo} to compute")

        def on_result(result) -> None:
            failed = progress.tasks[0].fields["failed"] + (result.status in ("error", "timeout"))
            progress.update(bar, advance=1, failed=failed)

        try:
            results = api.run(
                planned,
                on_start=on_start,
                on_result=on_result,
                on_note=lambda line: progress.console.print(line, markup=False, soft_wrap=True, emoji=False),
            )
        except KeyboardInterrupt as exc:
            from harness.runner import Terminated

            progress.stop()
            code, what = (143, "stopped by SIGTERM") if isinstance(exc, Terminated) else (130, "interrupted")
            err_console.print(
                f"{what}: finished folds are kept in the store; run again to compute the rest",
                soft_wrap=True,
                markup=False,
            )
            raise typer.Exit(code) from None
    from harness.report import written_outputs

    summary = results.summary
    _print_leaderboard(results.data.boards)
    console.print(
        "results: " + ", ".join(str(summary.out / n) for n in ("results.db", *written_outputs(summary.out))),
        markup=False,
    )
    for shift in summary.shifts:
        err_console.print(f"[bold yellow]data shift:[/] {escape(shift)}", soft_wrap=True)
    if summary.failed_in_plan:
        err_console.print(
            f"{summary.failed_in_plan} folds failed; see {summary.out / 'leaderboard.md'} (Failures)", markup=False
        )
    code = summary.exit_code
    if baseline is not None:
        from harness.baseline.check import CheckOptions, check_run

        result = check_run(summary.out, baseline, CheckOptions(champion=suite.champion), data=results.data)
        code = max(code, _print_check(result))
    if mlflow is not None:
        code = max(code, _export_mlflow(results, mlflow))
    raise typer.Exit(code)


def _export_mlflow(results, tracking_uri: str) -> int:
    """Export the finished run; a failure is one error line and exit 1, never a lost run (it is stored)."""
    from harness.integrations.mlflow import export_run

    try:
        done = export_run(results.out, tracking_uri, data=results.data)
    except HarnessError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))} (the run is stored: export it again with "
            f"`harness export mlflow {escape(str(results.out))} --tracking-uri {escape(tracking_uri)}`)",
            soft_wrap=True,
        )
        return 1
    console.print(done.line, markup=False, soft_wrap=True)
    return 0


def _print_skipped(plan) -> None:
    """OpenML suite datasets outside the entry's limits, one line each (before the run or plan)."""
    for line in plan.skipped:
        console.print(f"skipped: {line}", markup=False, soft_wrap=True)


def _print_plan(planned) -> None:
    """The selection the run would make (the same function decides), per (dataset, estimator) cell."""
    plan, selection = planned.plan, planned.selection()
    todo = {t.key for t in selection.folds}
    cells: dict[tuple[str, str], list] = {}
    for t in plan.tasks:  # one pass, grouped by (dataset, estimator) in plan order
        cells.setdefault((t.dataset.name, t.resolved.spec.name), []).append(t)
    table = Table(title=f"plan: {plan.suite.name}")
    for col in ("dataset", "estimator", "folds", "in store", "to run"):
        table.add_column(col)
    for (ds, est), tasks in cells.items():
        run = sum(t.key in todo for t in tasks)
        skipped = tasks[0].resolved.skipped
        label = est + (f" (skipped: {skipped})" if skipped else "")
        table.add_row(ds, label, str(len(tasks)), str(len(tasks) - run), str(run))
    console.print(table)
    for step in selection.steps:
        console.print(f"to run first: {step.description}", markup=False)
    for step in selection.done.values():
        console.print(f"reused: {step.description} (weights in {plan.out / 'pretrained'})", markup=False)
    console.print(f"{len(plan.tasks)} folds in the plan, {len(selection.folds)} to run")


def _print_leaderboard(boards) -> None:
    table = Table(title=f"{boards.suite}: mean primary metric per dataset (rank)")
    table.add_column("estimator")
    for name in boards.per_dataset:
        table.add_column(f"{name}\n{boards.primary_for(name)}", justify="right")
    table.add_column("mean rank", justify="right")
    for rec in boards.overall.to_dict("records"):
        cells = []
        for name, t in boards.per_dataset.items():
            row = t[t["estimator"] == rec["estimator"]]
            if row.empty or row["n_skipped"].iloc[0] == row["folds"].iloc[0]:
                cells.append("skipped")
                continue
            mean, rank = row[f"{boards.primary_for(name)}_mean"].iloc[0], row["rank"].iloc[0]
            cells.append("failed" if math.isnan(mean) else f"{mean:.4f} ({rank:g})")
        mr = rec["mean_rank"]
        table.add_row(rec["estimator"], *cells, "—" if math.isnan(mr) else f"{mr:.2f}")
    console.print(table)


@app.command()
@_guard
def validate(
    suite_path: Annotated[Path, typer.Argument(metavar="SUITE")],
    allow_module: Allow = None,
    data_home: DataHome = None,
) -> None:
    """Check a suite: schema, names, datasets load, estimators build. Fits nothing."""
    from harness.runner import RunOptions, prepare
    from harness.spec import load_suite

    suite = load_suite(suite_path)
    plan = prepare(suite, RunOptions(allow_modules=_allowed(allow_module), data_home=data_home))
    _print_skipped(plan)
    console.print(
        f"{suite_path}: ok ({len(plan.datasets)} datasets, {len(suite.estimators)} estimators, {len(plan.tasks)} folds)",
        markup=False,
    )


@app.command("list")
@_guard
def list_(
    what: Annotated[str, typer.Argument(help="estimators | datasets | metrics")],
    spaces: Annotated[bool, typer.Option("--spaces", help="With estimators: show default search spaces.")] = False,
) -> None:
    """List registry estimators, dataset sources or metrics."""
    if what == "estimators" and spaces:
        _print_spaces()
    elif what == "estimators":
        from harness.registry import REGISTRY

        table = Table(title="estimators (model: NAME in a suite)")
        for col in ("name", "classifier", "regressor", "scale", "impute", "categoricals", "tiny test params", "about"):
            table.add_column(col)
        for e in REGISTRY.values():
            table.add_row(
                e.name,
                (e.classifier or "—").rsplit(".", 1)[-1],
                (e.regressor or "—").rsplit(".", 1)[-1],
                str(e.tags.scale),
                str(e.tags.impute),
                e.tags.categorical,
                str(e.tiny or ""),
                e.description,
            )
        console.print(table)
        console.print(
            "Any scikit-learn estimator class also works by import path (e.g. sklearn.neighbors.KNeighborsClassifier)."
        )
    elif what == "datasets":
        from harness.datasets import available_sources

        table = Table(title="dataset sources (source: in a suite)")
        table.add_column("source")
        table.add_column("about")
        for src, about in available_sources():
            table.add_row(src, about)
        table.add_row(
            "path/to/file.csv | .parquet", "a file relative to the suite; give target:, optional categorical:, drop:"
        )
        table.add_row(
            escape("openml:ID | openml:NAME[@VERSION]"),
            "an OpenML dataset, cached in the data home; {openml_suite: ID} adds a whole suite",
        )
        console.print(table)
    elif what == "metrics":
        from harness.metrics import METRICS

        table = Table(title="metrics")
        for col in ("name", "task", "better", "scikit-learn scorer", "about"):
            table.add_column(col)
        for m in METRICS.values():
            table.add_row(m.name, m.task, "higher" if m.greater_is_better else "lower", m.sklearn_scorer, m.description)
        console.print(table)
    else:
        from harness.spec import did_you_mean

        raise HarnessError(
            f"list: unknown topic '{what}'{did_you_mean(what, ['estimators', 'datasets', 'metrics'])}; choose estimators, datasets or metrics"
        )


def _dist_text(raw: dict) -> str:
    kind = next(k for k in ("int", "float", "categorical") if k in raw)
    if kind == "categorical":
        return "one of " + ", ".join(map(str, raw[kind]))
    low, high = raw[kind]
    return (
        f"{kind} {low:g}..{high:g}"
        + (" (log)" if raw.get("log") else "")
        + (f" step {raw['step']:g}" if raw.get("step") else "")
    )


def _print_spaces() -> None:
    from harness.metrics import TASKS
    from harness.registry import REGISTRY, default_space

    table = Table(title="default search spaces (tune: in a suite; tune.space overrides or extends)")
    for col in ("name", "task", "parameter", "distribution"):
        table.add_column(col)
    for name in REGISTRY:
        for task in TASKS:
            for i, (param, dist) in enumerate(default_space(name, task).items()):
                table.add_row(name if i == 0 else "", task if i == 0 else "", param, _dist_text(dist))
    console.print(table)
    console.print("Ensembles and import-path estimators have no default space: write tune.space.")


@app.command()
@_guard
def report(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run's output directory (holds results.db).")],
    force: Annotated[
        bool, typer.Option("--force", help="Write over files in DIR that are not the harness's own outputs.")
    ] = False,
) -> None:
    """Rebuild every report (results.csv, leaderboard.md, stats.json, summary.md, report.html) from the store alone."""
    from harness.report import write_outputs, written_outputs

    data = write_outputs(out_dir, force=force)
    _print_leaderboard(data.boards)
    console.print(
        "wrote " + ", ".join(str(out_dir / name) for name in written_outputs(out_dir)), markup=False, soft_wrap=True
    )


@app.command("check-data")
@_guard
def check_data(
    new: Annotated[
        str, typer.Argument(metavar="NEW", help="New data: .csv/.parquet path, sklearn:NAME or synthetic:KIND.")
    ],
    reference: Annotated[str, typer.Option("--reference", help="Reference data to compare against (same kinds).")],
    target: Annotated[
        str | None, typer.Option("--target", help="Target column: left out of the features, its label shift reported.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Writes check-data.md and check-data.json here.")] = Path(
        "reports/check-data"
    ),
    categorical: Annotated[
        list[str] | None, typer.Option("--categorical", help="Treat this column as categorical (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of subsampling and the adversarial model's CV.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Write over files in --out that are not the harness's own outputs.")
    ] = False,
    data_home: DataHome = None,
) -> None:
    """Compare NEW with --reference: schema, adversarial validation, per-feature and label drift. Exit 1 on shift."""
    from harness.drift.check import check_data as compute_drift
    from harness.drift.render import rich_table, write_report
    from harness.fileio import check_set_targets
    from harness.openml import using_data_home

    check_set_targets(out, ("check-data.md", "check-data.json"), force, "--out")  # bad --out costs nothing
    with using_data_home(data_home):  # openml: sources load from it
        drift = compute_drift(new, reference, target=target, categorical=tuple(categorical or ()), seed=seed)
    if drift.features:
        console.print(rich_table(drift))
    console.print(f"[bold {'red' if drift.shift else 'green'}]{escape(drift.verdict)}[/]", soft_wrap=True)
    md, js = write_report(drift, out, force=force)
    console.print(f"wrote {md} and {js}", markup=False)
    raise typer.Exit(drift.exit_code)


data_app = typer.Typer(no_args_is_help=True, help="OpenML data in the data home: fetch it for offline use, list it.")
app.add_typer(data_app, name="data")


@data_app.command("fetch")
@_guard
def data_fetch(
    target: Annotated[
        str, typer.Argument(metavar="SUITE", help="A suite file, or an OpenML suite id or alias (99, OpenML-CC18).")
    ],
    max_rows: Annotated[
        int | None, typer.Option("--max-rows", min=1, help="With an OpenML suite: skip datasets with more rows.")
    ] = None,
    max_features: Annotated[
        int | None,
        typer.Option("--max-features", min=1, help="With an OpenML suite: skip datasets with more features."),
    ] = None,
    data_home: DataHome = None,
) -> None:
    """Download every OpenML dataset a suite needs into the data home; copy that folder to an offline machine."""
    from harness import openml

    home = openml.data_home(data_home)
    wanted, skipped = openml.fetch_targets(target, home, max_rows, max_features)
    for line in skipped:
        console.print(f"skipped: {line}", markup=False, soft_wrap=True)
    failed: list[str] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("fetching", total=len(wanted))
        for which in wanted:
            progress.update(bar, description=f"openml:{which}" if isinstance(which, int) else str(which))
            try:
                got = openml.fetch_dataset(which, home)
            except openml.Unreachable:  # the server is out of reach: the rest would fail alike
                raise
            except HarnessError as exc:  # this dataset only (not found, sparse, damaged): go on
                failed.append(str(exc))
            else:
                progress.console.print(f"{got.label}: {len(got.frame):,} rows", markup=False)
            progress.advance(bar)
        progress.update(bar, description="fetched")
    for line in failed:
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(wanted) - len(failed)} of {len(wanted)} datasets in {home} "
        f"({_size(openml.cache_bytes(home))} cached); {len(skipped)} skipped",
        markup=False,
    )
    raise typer.Exit(2 if failed else 0)


@data_app.command("list")
@_guard
def data_list(data_home: DataHome = None) -> None:
    """Show the OpenML datasets and suite listings cached in the data home, and their size on disk."""
    from harness import openml

    home = openml.data_home(data_home)
    datasets, suites = openml.cached_datasets(home), openml.cached_suites(home)
    if suites:
        table = Table(title=f"OpenML suites cached in {home}")
        for col in ("suite", "name", "datasets", "size"):
            table.add_column(col, justify="right" if col in ("datasets", "size") else "left")
        for s in suites:
            table.add_row(s.suite, s.name, str(s.n_datasets), _size(s.bytes))
        console.print(table)
    if datasets:
        table = Table(title=f"OpenML datasets cached in {home}")
        for col in ("id", "name", "version", "rows", "features", "data", "size"):
            table.add_column(col, justify="left" if col in ("name", "data") else "right")
        for d in datasets:
            rows, feats = (f"{v:,}" if v is not None else "?" for v in (d.rows, d.features))
            data = "cached" if d.has_data else "metadata only"
            table.add_row(str(d.data_id), d.name, str(d.version), rows, feats, data, _size(d.bytes))
        console.print(table)
    console.print(
        f"{len(datasets)} datasets, {len(suites)} suite listings, {_size(openml.cache_bytes(home))} in "
        f"{home / 'openml'}",
        markup=False,
    )


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


baseline_app = typer.Typer(no_args_is_help=True, help="Baseline files for the regression gate (`harness check`).")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
@_guard
def baseline_save(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run's output directory (holds results.db).")],
    to: Annotated[
        Path | None, typer.Option("--to", help="Baseline file: .json (default DIR/baseline.json) or .parquet.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write over --to even when it is not a baseline file.")
    ] = False,
) -> None:
    """Save DIR's current results as a baseline file (commit it; compare later runs with `harness check`)."""
    from harness.baseline.file import save_baseline

    path = save_baseline(out_dir, to, force=force)
    console.print(f"wrote {path}", markup=False)


@app.command()
@_guard
def check(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run's output directory (holds results.db).")],
    baseline: Annotated[Path, typer.Option("--baseline", help="Baseline file written by `harness baseline save`.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Compare on this metric (default: primary).")] = None,
    tolerance: Annotated[
        float | None,
        typer.Option("--tolerance", help="Smallest drop that counts (default 0.005 bounded, 0.5% of |mean| else)."),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            help="Level of the one-sided corrected t-tests against the baseline, and of the champion check (Holm-adjusted, as the summary); default: the suite's analysis.alpha (0.05 unless set).",
        ),
    ] = None,
    champion: Annotated[
        str | None, typer.Option("--champion", help="Fail unless this estimator is best or tied-best per dataset.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write over check.md/check.json in DIR even when not the harness's own.")
    ] = False,
) -> None:
    """Compare DIR with a baseline on the same folds; exit 1 when something regressed. Writes check.md/json."""
    from harness.baseline.check import CheckOptions, check_run

    options = CheckOptions(metric, tolerance, alpha, champion)
    raise typer.Exit(_print_check(check_run(out_dir, baseline, options, force=force)))


def _print_check(result) -> int:
    """The check's table, mismatches and verdict; returns its exit code."""
    from harness.baseline.render import check_table

    console.print(check_table(result))
    for m in result.mismatches:
        where = "/".join(x for x in (m.dataset, m.estimator) if x)
        console.print(f"{m.severity}: {m.kind}{' ' + where if where else ''}: {m.detail}", markup=False)
    console.print(f"[bold {'red' if result.regressed else 'green'}]{escape(result.verdict_line)}[/]", soft_wrap=True)
    console.print(f"wrote {result.md_path} and {result.json_path}", markup=False)
    return result.exit_code


# Command groups that live in their own modules register themselves on `app` here.
# (one import per module; keep this block at the end so that `app` exists)
from harness.cli import ab as _ab  # noqa: E402,F401  (ab plan, ab test, ab paired)
from harness.cli import export as _export  # noqa: E402,F401  (export model, export ..., predict)
from harness.cli import mlflow as _mlflow  # noqa: E402,F401  (export mlflow; after export)
from harness.cli import schema as _schema  # noqa: E402,F401  (schema)


def entrypoint() -> None:
    app(prog_name="harness")
