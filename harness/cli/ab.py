"""`harness ab plan | test | paired`: A/B and champion–challenger analysis.

Each command checks its input (exit 2, one line naming the file, option or column) and
its output folder before computing anything, writes ab.json and ab.md to --out, prints
a short summary, and exits 1 when the challenger is significantly worse than the control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.cli import _common, app
from harness.cli._common import Allow, _guard

ab_app = typer.Typer(
    no_args_is_help=True,
    help="A/B tests and champion–challenger comparisons. Exit 0: no significant harm; 1: the challenger is "
    "significantly worse; 2: bad input.",
)
app.add_typer(ab_app, name="ab")

Out = Annotated[Path, typer.Option("--out", help="Writes ab.json and ab.md here.")]
Force = Annotated[bool, typer.Option("--force", help="Write over ab.json/ab.md in --out that are not ours.")]
Alpha = Annotated[float, typer.Option("--alpha", help="Significance level.")]
DEFAULT_OUT = Path("reports/ab")


def _prepare(out: Path, force: bool) -> None:
    """A bad --out costs nothing: refuse it before reading or computing anything."""
    from harness.ab.render import FILES
    from harness.fileio import check_set_targets

    check_set_targets(out, FILES, force, "--out")


def _finish(out: Path, data: dict, markdown: str, lines: list[str], verdict: str, bad: bool, force: bool) -> None:
    from harness.ab.render import write

    for line in lines:
        _common.console.print(line, markup=False, soft_wrap=True)
    if verdict:
        _common.console.print(f"[bold {'red' if bad else 'green'}]{escape(verdict)}[/]", soft_wrap=True)
    js, md = write(out, data, markdown, force=force)
    _common.console.print(f"wrote {js} and {md}", markup=False)


@ab_app.command("plan")
@_guard
def plan(
    baseline: Annotated[float, typer.Option("--baseline", help="The control's rate (or mean, with --metric mean).")],
    mde: Annotated[
        float, typer.Option("--mde", help="Smallest absolute difference worth detecting (0.01 = +1 point).")
    ],
    alpha: Alpha = 0.05,
    power: Annotated[float, typer.Option("--power", help="Chance of detecting a true difference of --mde.")] = 0.8,
    metric: Annotated[str, typer.Option("--metric", help="proportion (a 0/1 outcome) or mean.")] = "proportion",
    sd: Annotated[float | None, typer.Option("--sd", help="The outcome's standard deviation (--metric mean).")] = None,
    out: Out = DEFAULT_OUT,
    force: Force = False,
) -> None:
    """Rows per arm that a two-sided test at --alpha needs to detect --mde with --power."""
    from harness.ab.power import check_plan_inputs
    from harness.ab.power import plan as compute
    from harness.ab.render import plan_json, plan_lines, plan_markdown

    check_plan_inputs(metric, baseline, mde, alpha, power, sd)
    _prepare(out, force)
    result = compute(baseline, mde, alpha, power, metric, sd)
    _finish(out, plan_json(result), plan_markdown(result), plan_lines(result), "", False, force)


@ab_app.command("test")
@_guard
def test(
    log: Annotated[Path, typer.Argument(metavar="LOG", help="The experiment's log: one row per unit (.csv/.parquet).")],
    arm: Annotated[str, typer.Option("--arm", help="Column naming each row's arm (exactly two values).")],
    outcome: Annotated[str, typer.Option("--outcome", help="Column of the outcome (0/1 for a rate, or numbers).")],
    control: Annotated[
        str | None, typer.Option("--control", help="The control arm (default: an arm named control/A, else the first).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="proportion or mean (default: proportion when every outcome is 0/1).")
    ] = None,
    time: Annotated[
        str | None, typer.Option("--time", help="Order the log by this column (default: file order).")
    ] = None,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential", help="Decide by the always-valid mSPRT p-value (the log was or is being peeked at)."
        ),
    ] = False,
    mde: Annotated[
        float | None, typer.Option("--mde", help="The planned difference: power against it, and the mSPRT's tau.")
    ] = None,
    tau: Annotated[
        float | None, typer.Option("--tau", help="The mSPRT's mixing standard deviation (outcome units).")
    ] = None,
    lower_is_better: Annotated[
        bool, typer.Option("--lower-is-better", help="A lower outcome is better (a cost, a churn rate).")
    ] = False,
    alpha: Alpha = 0.05,
    out: Out = DEFAULT_OUT,
    force: Force = False,
) -> None:
    """Analyse a two-arm experiment: z-test or Welch, lift, power, always-valid p. Exit 1 if the treatment is worse."""
    from harness.ab.data import load_log
    from harness.ab.experiment import analyse, check_options
    from harness.ab.render import test_json, test_lines, test_markdown

    check_options(alpha, mde, tau)
    _prepare(out, force)
    experiment = load_log(log, arm, outcome, control=control, metric=metric, time=time)
    result = analyse(experiment, alpha, sequential, not lower_is_better, mde, tau)
    _finish(out, test_json(result), test_markdown(result), test_lines(result), result.verdict, result.worse, force)
    raise typer.Exit(result.exit_code)


@ab_app.command("paired")
@_guard
def paired(
    data: Annotated[Path, typer.Argument(metavar="NEW", help="Newly labelled rows (.csv/.parquet).")],
    target: Annotated[str, typer.Option("--target", help="The label column.")],
    model: Annotated[
        list[Path], typer.Option("--model", help="Exported model (.skops), twice: first the champion A, then B.")
    ],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Compare on this metric (repeatable; the first decides).")
    ] = None,
    alpha: Alpha = 0.05,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples of the rows.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    out: Out = DEFAULT_OUT,
    force: Force = False,
    allow_module: Allow = None,
) -> None:
    """Compare two exported models on the same labelled rows: McNemar, paired bootstrap. Exit 1 if B is worse."""
    from harness.ab.paired import compare_models
    from harness.ab.render import PAIRED_HEADER, paired_json, paired_lines, paired_markdown, paired_rows
    from harness.errors import HarnessError

    if len(model) != 2:
        raise HarnessError(f"--model: give exactly two (the champion A, then the challenger B), got {len(model)}")
    _prepare(out, force)
    result = compare_models(data, target, model[0], model[1], metric, alpha, resamples, seed, tuple(allow_module or ()))
    from rich.table import Table

    table = Table(title=f"B − A on {result.n:,} rows")
    for i, col in enumerate(PAIRED_HEADER):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in paired_rows(result):
        table.add_row(*row)
    _common.console.print(table)
    for w in result.warnings:
        _common.err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    lines = paired_lines(result)
    _finish(out, paired_json(result), paired_markdown(result), lines, result.verdict, result.worse, force)
    raise typer.Exit(result.exit_code)
