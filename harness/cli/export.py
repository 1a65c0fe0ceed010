"""`harness export model` (refit a run's estimator on all rows, save it with skops) and `harness predict`.

`export_app` is the `export` command group: other exports (`export mlflow`) add their
commands to it by importing `export_app` from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _common, app
from harness.cli._common import Allow, DataHome, _guard

export_app = typer.Typer(no_args_is_help=True, help="Export a run's results or models.")


@export_app.command("model")
@_guard
def export_model(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run's output directory (holds results.db).")],
    estimator: Annotated[str, typer.Option("--estimator", "-e", help="The suite's estimator to export.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset to refit it on (all rows).")],
    to: Annotated[Path, typer.Option("--to", help="The model file to write (FILE.skops; FILE.json beside it).")],
    suite: Annotated[
        Path | None,
        typer.Option("--suite", help="The run's suite file, when relative data paths cannot be found otherwise."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write over --to even when it is not our export.")] = False,
    allow_module: Allow = None,
    data_home: DataHome = None,
) -> None:
    """Refit ESTIMATOR on all rows of DATASET, as the run in DIR fitted it, and save it with skops (no pickle)."""
    from harness.export.refit import ExportOptions
    from harness.export.refit import export_model as run_export

    options = ExportOptions(suite=suite, force=force, allow_modules=tuple(allow_module or ()), data_home=data_home)
    written = run_export(out_dir, estimator, dataset, to, options, note=_line)
    _common.console.print(f"wrote {written.model} and {written.sidecar}", markup=False)


def _line(line: str) -> None:
    _common.err_console.print(line, markup=False, soft_wrap=True)


def _note(line: str) -> None:
    _line(f"warning: {line}")


@_guard
def predict(
    model: Annotated[Path, typer.Argument(metavar="FILE.skops", help="A model written by `harness export model`.")],
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Rows to predict: .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions CSV to write.")],
    force: Annotated[bool, typer.Option("--force", help="Write over --out even when it is not our file.")] = False,
    allow_module: Allow = None,
) -> None:
    """Check DATA against the model's schema, then write its predictions (and class probabilities) to --out."""
    from harness.export.predict import predict_file

    report = predict_file(model, data, out, force=force, allow_modules=tuple(allow_module or ()))
    for line in report.warnings:
        _note(line)
    _common.console.print(f"wrote {report.rows} predictions to {report.out}", markup=False)


app.add_typer(export_app, name="export")
app.command("predict")(predict)
