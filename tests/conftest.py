from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# pytest -n 2 already keeps both cores busy: one thread per fit avoids OpenMP spin-wait contention.
os.environ.setdefault("HARNESS_THREADS", "1")
# Child processes (loky workers, forkserver) import test doubles by path.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def tiny_mixed_csv(tmp_path: Path) -> Path:
    """60 rows: numeric columns with NaN, a categorical column with NaN, a 3-class string target."""
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "size": rng.integers(1, 4, size=n),
        }
    )
    frame["label"] = np.where(frame["a"] + (frame["colour"] == "red") > 0.3, "yes", "no")
    frame.loc[[1, 7, 20], "a"] = np.nan
    frame.loc[[3, 30], "colour"] = np.nan
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """Invoke the app in this process (from the project root); returns a CompletedProcess like `harness`."""
    import harness.cli as harness_cli
    from harness.cli import _common

    plain, plain_err = Console(width=250, color_system=None), Console(stderr=True, width=250, color_system=None)
    for module in (harness_cli, _common):  # command modules print through _common's consoles
        monkeypatch.setattr(module, "console", plain)
        monkeypatch.setattr(module, "err_console", plain_err)
    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    monkeypatch.delenv("HARNESS_ALLOW_MODULES", raising=False)
    monkeypatch.chdir(ROOT)

    def invoke(*args: str | Path) -> subprocess.CompletedProcess:
        result = CliRunner().invoke(harness_cli.app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke
