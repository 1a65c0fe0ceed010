"""Dataset loaders: scikit-learn's bundled sets, CSV/Parquet files, synthetic generators.

A loaded `Dataset` is the only thing the later stages see: features as a DataFrame in
file order, the target, the task, which columns are categorical, and a content
fingerprint that enters every result's key (a changed file never reuses old results).
Nothing is imputed or encoded here: that happens inside each fold (preprocess.py).
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from harness.errors import DatasetError
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.spec import DatasetSpec, did_you_mean

SKLEARN_SETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
SYNTHETIC = {
    "classification": "make_classification",
    "regression": "make_regression",
    "friedman1": "make_friedman1",
}
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
# An integer-valued target with at most this many distinct values is a class label.
MAX_CLASSES_INFERRED = 20


@dataclass
class Dataset:
    """Features, target and what the folds need to know about them."""

    name: str
    X: pd.DataFrame
    y: np.ndarray
    task: str
    categorical: list[str]
    source: str
    groups: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # classification: the original label of each code in y
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            labels = None if self.labels is None else [str(v) for v in self.labels]
            self.fingerprint = fingerprint(self.X, self.y, self.task, self.categorical, self.groups, labels)

    @cached_property
    def numeric(self) -> list[str]:
        return [c for c in self.X.columns if c not in set(self.categorical)]

    @cached_property
    def has_missing(self) -> bool:
        return bool(self.X.isna().to_numpy().any())

    @cached_property
    def classes(self) -> np.ndarray | None:
        return np.unique(self.y) if self.task == CLASSIFICATION else None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "task": self.task,
            "n_rows": len(self.X),
            "n_features": int(self.X.shape[1]),
            "n_categorical": len(self.categorical),
            "n_classes": None if self.classes is None else len(self.classes),
            "missing_cells": int(self.X.isna().to_numpy().sum()),
            "fingerprint": self.fingerprint,
            "labels": None if self.labels is None else [str(v) for v in self.labels],
        }


def fingerprint(
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    categorical: list[str],
    groups: np.ndarray | None,
    labels: list[str] | None = None,
) -> str:
    """Content hash of everything that changes results: values, column names, types, roles."""
    h = hashlib.sha256()
    h.update(repr((list(map(str, X.columns)), [str(t) for t in X.dtypes], task, sorted(categorical), labels)).encode())
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(pd.Series(y), index=False).to_numpy().tobytes())
    if groups is not None:
        h.update(pd.util.hash_pandas_object(pd.Series(groups), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def load_dataset(
    spec: DatasetSpec,
    base_dir: Path | None = None,
    group: str | None = None,
    where: str = "",
    data_home: Path | None = None,
) -> Dataset:
    """Load one dataset of a suite; `where` prefixes errors (e.g. 'suite.yaml: datasets[2]').

    `data_home` is where OpenML data is cached (default: harness.openml.data_home()).
    """
    where = where or f"datasets.{spec.name}"
    kind, _, rest = spec.source.partition(":")
    if spec.params and not (kind == "synthetic" and rest):  # only the generators take params
        raise DatasetError(
            f"{where}.params: {spec.source} takes no params (they configure synthetic:KIND generators only)"
        )
    if kind == "dataframe":
        if spec.frame is None:
            raise DatasetError(
                f"{where}.source: '{spec.source}' names a pandas DataFrame, which only a suite built in Python "
                "(harness.run) can hold"
            )
        return _from_frame(spec, spec.frame, where, group, f"the DataFrame of dataset '{spec.name}'")
    if kind == "sklearn" and rest:
        X, y = _load_sklearn(rest, where)
    elif kind == "synthetic" and rest:
        X, y = _load_synthetic(rest, spec.params, where)
    elif kind == "openml" and rest:
        from harness.openml import load_openml  # OpenML, its cache and the network live there

        return load_openml(spec, where, group, data_home)
    elif spec.source.lower().endswith(FILE_SUFFIXES):
        path = Path(spec.source)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        frame, unread = _read_columns(path, where, skip=set(spec.drop) - {spec.target, group})
        return _from_frame(spec, frame, where, group, str(path), unread=unread)
    else:
        raise DatasetError(
            f"{where}.source: cannot read '{spec.source}': use sklearn:NAME, synthetic:KIND, openml:ID, "
            "openml:NAME[@VERSION], or a .csv/.parquet path"
        )
    frame = X.copy()
    target = "__target__"
    frame[target] = y
    return _from_frame(
        spec.model_copy(update={"target": spec.target or target}),
        frame,
        where,
        group,
        spec.source,
        builtin_target=target,
    )


def _load_sklearn(name: str, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    import sklearn.datasets as skd

    if name not in SKLEARN_SETS:
        raise DatasetError(
            f"{where}.source: unknown scikit-learn dataset '{name}'{did_you_mean(name, SKLEARN_SETS)}; bundled: {', '.join(SKLEARN_SETS)}"
        )
    X, y = getattr(skd, SKLEARN_SETS[name])(return_X_y=True, as_frame=True)
    return X, np.asarray(y)


def _load_synthetic(kind: str, params: dict[str, Any], where: str) -> tuple[pd.DataFrame, np.ndarray]:
    import inspect
    import math
    import os

    import sklearn.datasets as skd

    if kind not in SYNTHETIC:
        raise DatasetError(
            f"{where}.source: unknown generator '{kind}'{did_you_mean(kind, SYNTHETIC)}; choose from {', '.join(SYNTHETIC)}"
        )
    make = getattr(skd, SYNTHETIC[kind])
    # One target column and (X, y) back: sklearn's other output switches are not suite settings.
    accepted = [k for k in inspect.signature(make).parameters if k not in ("return_X_y", "coef", "n_targets")]

    def finite(value: Any) -> bool:
        if isinstance(value, list | tuple):
            return all(finite(v) for v in value)
        return not isinstance(value, float) or math.isfinite(value)

    for key, value in params.items():
        if key in ("return_X_y", "coef", "n_targets"):
            raise DatasetError(f"{where}.params.{key}: not a suite setting (a dataset has one target, read as X, y)")
        if key not in accepted:
            raise DatasetError(
                f"{where}.params.{key}: {make.__name__} takes no parameter '{key}'{did_you_mean(key, accepted)}"
            )
        if not finite(value):
            raise DatasetError(f"{where}.params.{key}: {value!r} is not a finite number")
    params = {"random_state": 0, **params}
    # Sizes are counted before anything is allocated: n_samples: 2000000000000 would ask for TiBs.
    args = {k: p.default for k, p in inspect.signature(make).parameters.items()} | params
    sizes = [k for k in ("n_samples", "n_features", "n_informative", "n_redundant", "n_repeated") if k in args]
    sizes += [k for k in ("n_classes", "n_clusters_per_class") if k in args]
    for key in sizes:
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatasetError(f"{where}.params.{key}: {value!r} is not a whole number >= 0")
    n, f = args["n_samples"], args["n_features"]
    cells = n * (f + 1)
    if kind == "classification":  # a mixing matrix per cluster, centroids, the redundant part
        informative = args["n_informative"]
        clusters = args["n_classes"] * args["n_clusters_per_class"]
        cells += informative * (informative + args["n_redundant"] + clusters)
    need = 8 * cells * 4  # float64: the generator's arrays, then the frames made from them
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a large machine
        memory = 2**40
    if need > memory:
        key = max((k for k in sizes if k in params), key=lambda k: params[k], default="n_samples")
        raise DatasetError(
            f"{where}.params.{key}: {args[key]:,} is too large: the generated data would need about "
            f"{need / 2**30:,.0f} GiB, more than this machine's {memory / 2**30:,.0f} GiB of memory"
        )
    try:
        X, y = make(**params)
    except TypeError as exc:
        raise DatasetError(f"{where}.params: {exc}") from None
    except (ValueError, OverflowError, MemoryError) as exc:
        raise DatasetError(f"{where}.params: {str(exc).splitlines()[0] or type(exc).__name__}") from None
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y


def _read_file(path: Path, where: str) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, every column of it (see `_read_columns`)."""
    return _read_columns(path, where)[0]


def _read_columns(
    path: Path, where: str, skip: set[str] | frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, list[str]]:
    """A CSV or Parquet file as a frame without the columns named in `skip`, and the names it skipped.

    The header is read first, as written (csv module, Parquet schema), and refused when a
    name repeats: pandas renames a repeated CSV column 'y' to 'y.1', and such a copy of
    the target became a feature. Columns a suite drops are never read: on a wide file
    they can be most of the time and memory of loading it.
    """
    if not path.is_file():
        raise DatasetError(f"{where}.source: file not found: {path}")
    csv_file = path.suffix.lower() == ".csv"
    names = _csv_header(path, where) if csv_file else _parquet_header(path, where)
    _check_unique(names, f"{where}.source: {path}")
    unread = [n for n in names if n in skip]
    columns = [n for n in names if n not in skip] if unread else None
    try:
        if csv_file:
            frame = _read_csv(path, names, columns)
        else:
            frame = pd.read_parquet(path, columns=columns, to_pandas_kwargs=_ARROW_TO_PANDAS)
        _release_arrow_memory()
    except pd.errors.ParserWarning:
        raise DatasetError(
            f"{where}.source: {path}: the data rows have more fields than the header's {len(names)} column names"
        ) from None
    except Exception as exc:  # a parser's error names no file; ours does
        raise DatasetError(f"{where}.source: cannot read {path}: {_first_line(exc)}") from None
    return frame.reset_index(drop=True), unread


def _read_csv(path: Path, names: list[str], columns: list[str] | None) -> pd.DataFrame:
    """A CSV file through pyarrow's multithreaded reader, or pandas' C reader where the two could differ.

    pyarrow's reader uses every core and, streamed, holds little more than the data (a
    1,000,000 x 40 file: 0.8 GiB at its peak, pandas 1.45). Its result is kept only when
    every column came out as numbers (or booleans without gaps), where both readers give
    the same values; text, dates, empty columns, blank or padded header names and
    malformed rows (which pandas pads, or refuses with our message) go to pandas, whose
    behaviour the rest of this module was written against.
    """
    table = _arrow_csv(path, names, columns)
    if table is not None:
        return table.to_pandas(**_ARROW_TO_PANDAS)
    # Rows wider than the header: by default pandas makes the extra leading field the
    # index and shifts every name one column right (the values under 'y' would be
    # those of the next column); index_col=False makes that a ParserWarning, and that an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(path, index_col=False, usecols=columns)


# A column per block, each freed from the Arrow table as it is converted: loading then
# holds the data about once, not twice (the table, then a copy consolidated by type).
_ARROW_TO_PANDAS = {"split_blocks": True, "self_destruct": True}


def _release_arrow_memory() -> None:
    """Give back what pyarrow's allocator keeps after a read (the parse buffers, the table): as much as the data."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _arrow_csv(path: Path, names: list[str], columns: list[str] | None) -> Any:
    """The file as a pyarrow Table when pyarrow reads it as pandas would; None otherwise."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:  # pandas' default missing-value strings, given to pyarrow (as pandas' own pyarrow engine does)
        from pandas._libs.parsers import STR_NA_VALUES
    except ImportError:  # moved in some pandas release: the C reader is always right
        return None
    if any(not str(n).strip() or n != n.strip() for n in names):  # pandas names blank ones 'Unnamed: i'
        return None
    nulls = sorted(STR_NA_VALUES)
    options = pacsv.ConvertOptions(include_columns=columns, null_values=nulls, strings_can_be_null=True)
    try:
        # Streamed block by block: read_csv at once held the raw text, its parse and the table
        # (1.5 GiB for a 0.3 GB table), the stream little more than the table. Types come from
        # the first block; a column that changes type later raises, and pandas reads the file.
        reader = pacsv.open_csv(path, convert_options=options)
        table = pa.Table.from_batches(list(reader), schema=reader.schema)
    except (pa.ArrowException, OSError, ValueError):  # short or long rows, bad bytes: pandas decides
        return None
    if table.column_names != (columns or names):
        return None
    for column in table.columns:
        kind = column.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if not (numeric or (pa.types.is_boolean(kind) and column.null_count == 0)):
            return None
    return table


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _csv_header(path: Path, where: str) -> list[str]:
    """The column names of a CSV file's header row, as written (before pandas renames any)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.reader(fh):
                if len(row) > 1 or (row and row[0].strip()):  # pandas skips blank lines first
                    return row
    except UnicodeDecodeError:
        raise DatasetError(
            f"{where}.source: cannot read {path}: not UTF-8 text (binary, or another encoding)"
        ) from None
    except (csv.Error, OSError) as exc:
        raise DatasetError(f"{where}.source: cannot read {path}: {_first_line(exc)}") from None
    raise DatasetError(f"{where}.source: cannot read {path}: the file is empty (no header row)")


def _parquet_header(path: Path, where: str) -> list[str]:
    """The column names in a Parquet file's schema (pyarrow writes repeated names as given)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # not Parquet, truncated, unreadable
        raise DatasetError(f"{where}.source: cannot read {path}: {_first_line(exc)}") from None


def _check_unique(names: list[str], where: str) -> None:
    """Every column name once: a repeated name is ambiguous, and a repeated target leaks.

    Names differing only in surrounding spaces ('y' and ' y') count as the same name.
    Empty names do not (pandas names them 'Unnamed: <i>' by position).
    """
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = str(name).strip()
        if not key:
            continue
        if key in seen:
            j = seen[key]
            what = (
                f"column '{name}' appears twice"
                if names[j] == name
                else f"columns '{names[j]}' and '{name}' differ only in surrounding spaces"
            )
            raise DatasetError(f"{where}: {what} (columns {j + 1} and {i + 1}); every column name must be unique")
        seen[key] = i


def _from_frame(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    where: str,
    group: str | None,
    source: str,
    builtin_target: str | None = None,
    keep_inf: bool = False,
    unread: Collection[str] = (),
) -> Dataset:
    """The Dataset of one loaded frame; `keep_inf` leaves inf in place (check-data counts them).

    `unread` names columns of the file that were dropped by not reading them.
    """
    columns = [str(c) for c in frame.columns]
    _check_unique(columns, f"{where}: {source}")
    frame = frame.reset_index(drop=True)
    frame.columns = columns
    if spec.target is None:
        raise DatasetError(f"{where}.target: name the target column of {source} (columns: {_head(columns)})")
    if spec.target not in columns:
        raise DatasetError(
            f"{where}.target: column '{spec.target}' not found in {source}{did_you_mean(spec.target, columns)}"
        )
    for key, names in (("drop", spec.drop), ("categorical", spec.categorical)):
        for i, col in enumerate(names):
            if (col not in columns and (key != "drop" or col not in unread)) or col == builtin_target:
                raise DatasetError(
                    f"{where}.{key}[{i}]: column '{col}' not found in {source}{did_you_mean(col, columns)}"
                )
    if group is not None and group not in columns:
        raise DatasetError(
            f"{where}: group column '{group}' (cv.group) not found in {source}{did_you_mean(group, columns)}"
        )
    if len(frame) == 0 and spec.target == builtin_target:  # check-data without --target: no target to speak of
        raise DatasetError(f"{where}: {source} has no rows")
    _check_flat(frame, [c for c in columns if c not in spec.drop or c in (spec.target, group)], where, source)
    notes: list[str] = []
    if not keep_inf:
        dropped = {spec.target, *spec.drop, *([group] if group else [])}
        checked = [c for c in columns if c == spec.target or (c not in dropped and c not in spec.categorical)]
        frame = _infinite(frame, checked, spec, where, source, notes, builtin_target)
    missing_target = frame[spec.target].isna().to_numpy()
    if missing_target.any():
        notes.append(f"dropped {int(missing_target.sum())} rows with a missing target")
        frame = frame.loc[~missing_target].reset_index(drop=True)
    if len(frame) == 0:
        raise DatasetError(f"{where}: {source} has no rows with a target value")
    if group is not None and frame[group].isna().any():  # GroupKFold refuses NaN groups without a name
        n = int(frame[group].isna().sum())
        raise DatasetError(f"{where}: group column '{group}' (cv.group) of {source} has {n} {_rows(n)} without a value")
    groups = frame[group].to_numpy() if group else None
    dropped = [c for c in spec.drop if c not in unread]
    X = frame.drop(columns=[spec.target, *dropped, *([group] if group else [])])
    if X.shape[1] == 0:
        raise DatasetError(f"{where}: {source} has no feature columns left after target/drop")
    y_raw = frame[spec.target]
    with np.errstate(invalid="ignore"):  # inf kept for check-data: np.mod(inf, 1) is NaN, not a label
        task = spec.task or infer_task(y_raw)
        y, labels = _target(y_raw, task, where, spec.target)
    categorical = [
        c for c in X.columns if c in spec.categorical or not pdt.is_numeric_dtype(X[c]) or pdt.is_bool_dtype(X[c])
    ]
    X = _normalise_types(X, categorical, spec.dtype)
    return Dataset(spec.name, X, y, task, categorical, source, groups=groups, notes=notes, labels=labels)


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def _check_flat(frame: pd.DataFrame, columns: list[str], where: str, source: str) -> None:
    """Every used column holds single values: a nested Parquet column (list, struct, map) is refused.

    pyarrow hands such a column over as arrays or dicts, one per row; no learner takes
    those, and turning them into text would make every row its own category.
    """
    for col in columns:
        values = frame[col]
        if values.dtype != object:
            continue
        first = values.first_valid_index()
        if first is not None and pdt.is_list_like(values.loc[first]):
            kind = type(values.loc[first]).__name__
            raise DatasetError(
                f"{where}: {source}: column '{col}' holds nested values ({kind}), not single numbers or text; "
                "flatten it into plain columns, or drop it"
            )


def _infinite(
    frame: pd.DataFrame,
    columns: list[str],
    spec: DatasetSpec,
    where: str,
    source: str,
    notes: list[str],
    builtin_target: str | None,
) -> pd.DataFrame:
    """inf / -inf in numeric columns (features and target): refused, or missing with `inf: missing`.

    pandas reads "inf", "-Infinity" or "1e400" in a numeric CSV column as infinite; no
    learner fits on those. Text columns and columns named in `categorical` are categories:
    "inf" there is just a label. A classification target is checked too: inf is no class.
    """
    counts: dict[str, int] = {}
    for col in columns:
        if pdt.is_float_dtype(frame[col]):
            n = int(np.isinf(frame[col].to_numpy(dtype=float, na_value=np.nan)).sum())
            if n:
                counts[col] = n
    if not counts:
        return frame

    def label(col: str) -> str:
        if col == builtin_target:
            return "the target"
        return f"target column '{col}'" if col == spec.target else f"column '{col}'"

    if spec.inf == "error":
        found = "; ".join(f"{label(c)} has {n} {_rows(n)} with infinite values" for c, n in counts.items())
        raise DatasetError(
            f"{where}: {source}: {found} (inf/-inf); fix the file, or set inf: missing to read them as missing values"
        )
    frame = frame.copy()
    for col in counts:
        frame[col] = frame[col].replace([np.inf, -np.inf], np.nan)
    notes.append("read infinite values as missing: " + ", ".join(f"{c} ({n} {_rows(n)})" for c, n in counts.items()))
    return frame


def infer_task(y: pd.Series) -> str:
    """Strings, booleans and few distinct integers are labels; anything else is regression."""
    if not pdt.is_numeric_dtype(y) or pdt.is_bool_dtype(y):
        return CLASSIFICATION
    values = y.to_numpy(dtype=float)
    if np.all(np.mod(values, 1) == 0) and len(np.unique(values)) <= MAX_CLASSES_INFERRED:
        return CLASSIFICATION
    return REGRESSION


def _target(y: pd.Series, task: str, where: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Regression: floats. Classification: codes 0..k-1 in sorted label order, and the labels.

    Every learner then sees the same integer classes (XGBoost accepts nothing else), and
    the positive class of a binary task is the greater label, as in scikit-learn.
    """
    if task == REGRESSION:
        if not pdt.is_numeric_dtype(y) or pdt.is_bool_dtype(y):
            raise DatasetError(f"{where}.task: target '{name}' is not numeric, so it cannot be a regression target")
        return y.to_numpy(dtype=float), None
    arr = y.to_numpy()
    if arr.dtype.kind in "OUT":
        arr = arr.astype(str)
    elif arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
        arr = arr.astype(np.int64)
    labels, codes = np.unique(arr, return_inverse=True)
    if len(labels) < 2:
        raise DatasetError(
            f"{where}.target: target '{name}' has a single class ({arr[0].item()!r}); nothing to classify"
        )
    return codes.astype(np.int64), labels


def _normalise_types(X: pd.DataFrame, categorical: list[str], dtype: str = "float64") -> pd.DataFrame:
    """Categoricals become string columns (NaN for missing), numerics `dtype` (float64 unless the suite says float32).

    A numeric column already of that type is kept, not copied (copy-on-write): a large
    file's data is held once.
    """
    X = X.astype({c: dtype for c in X.columns if c not in categorical})
    for col in categorical:
        # pd.notna, not `v is np.nan`: pandas 3 hands back NaNs that are not the np.nan object,
        # and str() of those made a category 'nan' instead of a missing value.
        X[col] = X[col].astype(object).map(lambda v: str(v) if pd.notna(v) else np.nan)
    return X


def _head(cols: list[str], n: int = 12) -> str:
    return ", ".join(cols[:n]) + (", ..." if len(cols) > n else "")


def available_sources() -> list[tuple[str, str]]:
    """(source, description) pairs for `harness list datasets`."""
    out = [(f"sklearn:{k}", "scikit-learn bundled set") for k in SKLEARN_SETS]
    out += [(f"synthetic:{k}", f"sklearn.datasets.{v}, params passed through") for k, v in SYNTHETIC.items()]
    return out


def row_hashes(ds: Dataset) -> np.ndarray:
    """One hash per row of features and target (for overlap checks between datasets)."""
    frame = ds.X.copy()
    frame["__target__"] = ds.y
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def shared_rows(a: Dataset, b: Dataset) -> int:
    """How many rows of `b` also appear in `a` (same columns required; 0 otherwise)."""
    if list(a.X.columns) != list(b.X.columns):
        return 0
    return int(np.isin(row_hashes(b), row_hashes(a)).sum())
