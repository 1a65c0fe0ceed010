"""Reading an experiment's log, and every check that makes bad input one line and exit 2.

Files go through the suite's own reader (`harness.datasets`), so a repeated column name,
rows wider than the header or a binary file are refused with the same messages as in a
run. Everything is checked here, before any statistic is computed: a test that runs on a
misread log gives a confident wrong answer, which is worse than none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.datasets import FILE_SUFFIXES, _read_file
from harness.errors import DatasetError, HarnessError

PROPORTION = "proportion"
MEAN = "mean"
METRIC_KINDS = (PROPORTION, MEAN)
MIN_ROWS_PER_ARM = 2  # a variance needs two rows


def read_table(path: str | Path) -> pd.DataFrame:
    """A .csv or .parquet file with the suite reader's checks; its messages name the file."""
    path = Path(path)
    if not str(path).lower().endswith(FILE_SUFFIXES):
        raise DatasetError(f"{path}: not a .csv or .parquet file")
    where = str(path)
    try:
        frame = _read_file(path, where)
    except HarnessError as exc:  # the suite reader prefixes a suite key ("<where>.source: "); a file has none
        raise DatasetError(str(exc).replace(f"{where}.source: ", "", 1)) from None
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise DatasetError(f"{path}: has no data rows")
    return frame


def require_columns(frame: pd.DataFrame, source: str | Path, **columns: str | None) -> None:
    """Each named column exists (option names as keys: arm='group' → "--arm: column 'group' ...")."""
    for option, column in columns.items():
        if column is not None and column not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if len(frame.columns) > 12 else "")
            raise DatasetError(f"{source}: --{option}: no column '{column}' (columns: {shown})")


def _values(n: int, what: str) -> str:
    return f"{n:,} {what} value{'s' if n != 1 else ''}"


def numeric_column(frame: pd.DataFrame, column: str, source: str | Path) -> np.ndarray:
    """A column as float64: numbers or booleans, no missing or infinite value."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(float)
    if not pd.api.types.is_numeric_dtype(values):
        sample = next((v for v in values if isinstance(v, str)), values.iloc[0])
        raise DatasetError(f"{source}: column '{column}' is not numeric (e.g. {sample!r})")
    array = values.to_numpy(dtype=float, na_value=np.nan)
    missing = int(np.isnan(array).sum())
    if missing:
        raise DatasetError(f"{source}: column '{column}' has {_values(missing, 'missing')}; drop or fill them first")
    infinite = int(np.isinf(array).sum())
    if infinite:
        raise DatasetError(f"{source}: column '{column}' has {_values(infinite, 'infinite')}")
    return array


def is_binary(values: np.ndarray) -> bool:
    """Every value is 0 or 1: a conversion, a click, a correct prediction."""
    return bool(np.isin(values, (0.0, 1.0)).all())


@dataclass(frozen=True)
class ExperimentLog:
    """A two-arm log in the order it was collected: one outcome per row, and which arm it came from."""

    source: str
    outcome: np.ndarray  # float64, in log order
    treated: np.ndarray  # bool: the row belongs to the treatment (challenger) arm
    control: str
    treatment: str
    control_source: str  # how the control was chosen, for the report
    metric: str  # proportion | mean
    order: str  # "rows in file order" or "rows ordered by column 'ts'"


_CONTROL_NAMES = ("control", "baseline", "champion", "a")


def _order(frame: pd.DataFrame, time: str | None, source: str) -> tuple[pd.DataFrame, str]:
    """Rows by `time` (stable, so ties keep file order), else as in the file."""
    if time is None:
        return frame, "rows in file order"
    column = frame[time]
    if column.isna().any():
        raise DatasetError(f"{source}: --time column '{time}' has {_values(int(column.isna().sum()), 'missing')}")
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)):
        try:
            column = pd.to_datetime(column, format="mixed")
        except (ValueError, TypeError):
            raise DatasetError(f"{source}: --time column '{time}' is neither numbers nor dates") from None
    order = np.argsort(column.to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True), f"rows ordered by column '{time}'"


def _arms(labels: pd.Series, arm: str, control: str | None, source: str) -> tuple[str, str, str]:
    """(control, treatment, how the control was chosen); exactly two arms, each named once."""
    if labels.isna().any():
        raise DatasetError(f"{source}: --arm column '{arm}' has {_values(int(labels.isna().sum()), 'missing')}")
    names = list(dict.fromkeys(labels.astype(str)))  # first appearance in the log
    if len(names) != 2:
        shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
        raise DatasetError(
            f"{source}: --arm column '{arm}' has {len(names)} arm{'s' if len(names) != 1 else ''} ({shown});"
            " an A/B test needs exactly two"
        )
    if control is not None:
        if control not in names:
            raise DatasetError(
                f"{source}: --control '{control}' is not an arm of column '{arm}' (arms: {names[0]!r}, {names[1]!r})"
            )
        chosen, how = control, "--control"
    else:
        named = [n for n in names if n.lower() in _CONTROL_NAMES]
        chosen, how = (named[0], "its name") if len(named) == 1 else (names[0], "first in the log; set --control")
    return chosen, next(n for n in names if n != chosen), how


def load_log(
    path: str | Path,
    arm: str,
    outcome: str,
    control: str | None = None,
    metric: str | None = None,
    time: str | None = None,
) -> ExperimentLog:
    """Read and check a two-arm log; `metric` None infers it (0/1 outcomes are a proportion)."""
    source = str(path)
    if metric is not None and metric not in METRIC_KINDS:
        raise DatasetError(f"--metric: '{metric}' is not one of {', '.join(METRIC_KINDS)}")
    frame = read_table(path)
    require_columns(frame, source, arm=arm, outcome=outcome, time=time)
    frame, order = _order(frame, time, source)
    chosen, other, how = _arms(frame[arm], arm, control, source)
    values = numeric_column(frame, outcome, source)
    binary = is_binary(values)
    if metric == PROPORTION and not binary:
        bad = values[~np.isin(values, (0.0, 1.0))][0]
        raise DatasetError(
            f"{source}: --metric proportion: column '{outcome}' is not binary (0/1 or true/false; found {bad:g})"
        )
    treated = (frame[arm].astype(str) == other).to_numpy()
    for name, rows in ((chosen, int((~treated).sum())), (other, int(treated.sum()))):
        if rows < MIN_ROWS_PER_ARM:
            raise DatasetError(
                f"{source}: arm '{name}' of column '{arm}' has {rows} row{'s' if rows != 1 else ''};"
                f" at least {MIN_ROWS_PER_ARM} are needed"
            )
    if np.ptp(values) == 0:
        raise DatasetError(f"{source}: column '{outcome}' is constant ({values[0]:g} in every row): nothing to test")
    kind = metric or (PROPORTION if binary else MEAN)
    if kind == MEAN and np.ptp(values[treated]) == 0 and np.ptp(values[~treated]) == 0:
        raise DatasetError(f"{source}: column '{outcome}' is constant within each arm: Welch's test is undefined")
    return ExperimentLog(source, values, treated, chosen, other, how, kind, order)
