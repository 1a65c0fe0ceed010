"""harness: a benchmark harness for classical and ensemble ML on tabular data.

The public Python API mirrors the CLI: load a suite, run it, rebuild its outputs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("harness")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load_suite", "run_suite", "write_outputs"]


def __getattr__(name: str):
    # Lazy so that `harness --version` and `import harness` stay fast.
    if name == "load_suite":
        from harness.spec import load_suite

        return load_suite
    if name == "run_suite":
        from harness.runner import run_suite

        return run_suite
    if name == "write_outputs":
        from harness.report import write_outputs

        return write_outputs
    raise AttributeError(name)
