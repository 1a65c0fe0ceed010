"""`harness export mlflow DIR`: a run's results as MLflow runs (the exporter is harness.integrations.mlflow).

One parent run per harness run, one child per (dataset, estimator), read from DIR's
results store alone; exporting again updates those runs instead of adding new ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _common
from harness.cli._common import _guard
from harness.cli.export import export_app


@export_app.command("mlflow")
@_guard
def export_mlflow(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run's output directory (holds results.db).")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default sqlite:///DIR/mlflow.db, artifacts in DIR/mlartifacts: no server).",
        ),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment name (default: the suite's name).")
    ] = None,
) -> None:
    """Export DIR's run to MLflow: parent run, child runs per (dataset, estimator), reports as artifacts."""
    from harness.api import open as open_results
    from harness.integrations.mlflow import export_run, target_for

    target_for(out_dir, tracking_uri)  # MLflow installed, URI usable: before the store is read
    done = export_run(out_dir, tracking_uri, experiment, data=open_results(out_dir).data)
    _common.console.print(done.line, markup=False, soft_wrap=True)
