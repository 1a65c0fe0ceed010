"""Errors that reach the user as one line and an exit code.

Only `cli.py` turns these into messages; everything else raises them with a text
that says what is wrong and where (file, key path or column), so the user can fix
the input without reading a traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: a problem the user can fix. Exit code 2 unless said otherwise."""

    exit_code = 2


class SuiteError(HarnessError):
    """The suite file is malformed or inconsistent; carries one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DatasetError(HarnessError):
    """A dataset cannot be loaded or is unusable (missing file, column, one class)."""


class EstimatorError(HarnessError):
    """An estimator name, import path or parameter cannot be resolved."""


class StoreError(HarnessError):
    """The results store is missing or unreadable."""


class OutputError(HarnessError):
    """An output path that cannot or must not be written (exit 2, one line naming the file)."""


class BuildError(HarnessError):
    """Building an output set failed on a bug (exit 3); the previous outputs are unchanged."""

    exit_code = 3


class ClusterError(HarnessError):
    """The Dask cluster cannot be used: unreachable scheduler, bad address, dask not installed (exit 2)."""
