"""What every command module shares: the consoles, and the guard that turns exceptions into exit codes.

Command modules (`harness.cli.*`) print through `console` / `err_console` of this module
(tests swap them for plain ones) and wrap each command in `_guard`, so that a
HarnessError becomes one line per problem and exit 2, and a crash exit 3 with a hint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError, SuiteError

console = Console()
err_console = Console(stderr=True)

Allow = Annotated[
    list[str] | None,
    typer.Option("--allow-module", help="Also allow import-path estimators from this module prefix (repeatable)."),
]
DataHome = Annotated[
    Path | None,
    typer.Option(
        "--data-home",
        envvar="HARNESS_DATA_HOME",
        help="Where OpenML datasets and suite listings are cached (default ~/.cache/harness).",
    ),
]


def _fail(exc: HarnessError) -> None:
    lines = exc.problems if isinstance(exc, SuiteError) else str(exc).splitlines()
    for line in lines:
        # escape: a message quotes user text (paths, columns, values) that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(exc.exit_code)


def _guard(fn):
    """Turn HarnessError into one line per problem; other crashes into one line plus a hint."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            _fail(exc)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("HARNESS_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(first)} (a bug in harness: rerun with "
                "HARNESS_DEBUG=1 and report the traceback with the command you ran)",
                soft_wrap=True,
            )
            raise typer.Exit(3) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper
