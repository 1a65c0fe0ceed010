"""`harness schema`: the suite file's JSON Schema, for editors and other tools.

The schema is generated from the suite model (`harness.schema`), so it always matches
what `harness validate` accepts in shape; `--out FILE` writes it where an editor's YAML
language server can find it (`# yaml-language-server: $schema=FILE` on a suite's first line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _common, app
from harness.cli._common import _guard


@app.command("schema")
@_guard
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the schema to this file instead of printing it.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write over --out even when it is not a schema harness wrote.")
    ] = False,
) -> None:
    """Print the suite file's JSON Schema (draft 2020-12), generated from the suite model."""
    from harness.fileio import atomic_write, check_target
    from harness.schema import is_schema_file, schema_text

    text = schema_text()
    if out is None:
        _common.console.out(text, end="", highlight=False)
        return
    check_target(out, is_schema_file, "harness suite schema", force)
    atomic_write(out, text)
    _common.console.print(f"wrote {out}", markup=False)
