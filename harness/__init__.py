"""harness: a benchmark harness for classical and ensemble ML on tabular data.

The Python API mirrors the CLI: `harness.run(suite)` runs a suite (a YAML path, a dict
whose dataset sources may be DataFrames, or a parsed Suite) and returns `Results`;
`harness.open(DIR)` reads an output folder. Lower level: load_suite, run_suite,
write_outputs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("harness")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["Results", "__version__", "load_suite", "open", "run", "run_suite", "write_outputs"]


def __getattr__(name: str):
    # Lazy so that `harness --version` and `import harness` stay fast.
    if name in ("run", "open", "Results"):
        from harness import api

        return getattr(api, name)
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
