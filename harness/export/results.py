"""results.parquet: results.csv's rows with proper types, for pandas, Polars, DuckDB or Spark.

A CSV loses its types: a column of counts with a gap reads back as floats, a column of
error messages that is empty in every row reads back as floats, and every reader guesses
anew. The Parquet file is built from the very frame results.csv is written from
(`report.markdown.results_frame`), with each column's type fixed by what it holds:
identities and messages are strings, repeat/fold/sizes are 64-bit integers (nullable:
a failed fold has no test size), metrics and times are float64.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

STRING_COLUMNS = frozenset({"dataset", "estimator", "status", "error", "worker"})
INT_COLUMNS = frozenset({"repeat", "fold", "n_train", "n_test", "seed"})


def _column(name: str, values: pd.Series) -> pa.Array:
    """One column with the type its role calls for (unknown columns: strings unless numeric)."""
    if name in INT_COLUMNS:
        return pa.array(pd.to_numeric(values, errors="coerce").astype("Int64"), type=pa.int64(), from_pandas=True)
    if name in STRING_COLUMNS or not (pd.api.types.is_numeric_dtype(values) or values.isna().all()):
        return pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())
    return pa.array(pd.to_numeric(values, errors="coerce").astype("float64"), type=pa.float64(), from_pandas=True)


def results_parquet(frame: pd.DataFrame) -> bytes:
    """The results table as Parquet bytes (write_set writes them with the other outputs)."""
    table = pa.Table.from_arrays(
        [_column(str(c), frame[c]) for c in frame.columns],
        names=[str(c) for c in frame.columns],
    )
    table = table.replace_schema_metadata({"harness_results": "results.csv with types"})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
