"""The two datasets check-data compares, loaded exactly as a suite's dataset is.

Types, categorical detection and error messages are those of a run, because both sides
go through `harness.datasets`. A file needs no target here: every column is a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.datasets import FILE_SUFFIXES, Dataset, _from_frame, _read_file, load_dataset
from harness.metrics import CLASSIFICATION
from harness.spec import DatasetSpec

_NO_TARGET = "__harness_check_data_no_target__"


@dataclass
class Side:
    """One dataset as check-data sees it: features, roles, and the target if there is one."""

    role: str
    source: str
    X: pd.DataFrame
    categorical: list[str]
    target: pd.Series | None = None  # classification: original labels as strings; regression: floats
    task: str | None = None
    notes: list[str] = field(default_factory=list)


def load_side(source: str, role: str, target: str | None = None, categorical: Sequence[str] = ()) -> Side:
    """Load one side with the suite loaders; a file needs no target here (all columns are features).

    `--categorical` names may be absent from one file (a column can be dropped from a new
    batch); the caller checks that each exists on at least one side.
    """
    spec = DatasetSpec(name=role, source=source, target=target, categorical=list(categorical))
    if not source.lower().endswith(FILE_SUFFIXES):
        return side_from_dataset(load_dataset(spec, where=role), role)
    path = Path(source)
    frame = _read_file(path, role)
    frame.columns = [str(c) for c in frame.columns]
    present = [c for c in categorical if c in frame.columns]
    if target is None:
        frame = frame.copy()
        frame[_NO_TARGET] = 0.0  # the loader wants a target; a constant regression one is dropped again
        spec = spec.model_copy(update={"target": _NO_TARGET, "task": "regression", "categorical": present})
        ds = _from_frame(spec, frame, role, None, str(path), builtin_target=_NO_TARGET, keep_inf=True)
        return Side(role, str(path), ds.X, ds.categorical, notes=ds.notes)
    ds = _from_frame(spec.model_copy(update={"categorical": present}), frame, role, None, str(path), keep_inf=True)
    return side_from_dataset(ds, role)


def side_from_dataset(ds: Dataset, role: str) -> Side:
    """A loaded suite dataset as one side of a comparison (class labels as their original strings)."""
    if ds.task == CLASSIFICATION and ds.labels is not None:
        y = pd.Series([str(v) for v in ds.labels[ds.y]], dtype=object)
    else:
        y = pd.Series(ds.y, dtype=float)
    return Side(role, ds.source, ds.X, ds.categorical, y, ds.task, list(ds.notes))
