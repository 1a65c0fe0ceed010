"""How every output writes a number, a p-value, a Markdown table and strict JSON: one place.

A leaf (standard library, numpy and pandas only), so the analysis, the baseline, the data
checks and the store can use it without importing the reports. Keeping one copy is what
makes `leaderboard.md`, `summary.md`, `report.html`, `stats.json` and the baseline files
agree on the same value to the character.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

DASH = "—"  # a value that does not exist (NaN, None, a failed model)


def _missing(x: Any) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float | np.floating) and not math.isfinite(x))


def fmt_num(x: Any, digits: int = 4) -> str:
    """A number with `digits` decimals; a dash for a missing one."""
    return DASH if _missing(x) else f"{x:.{digits}f}"


def fmt_mean(mean: Any, std: Any = None, digits: int = 4) -> str:
    """`mean ± std` as every report prints it; the mean alone when there is no spread."""
    if _missing(mean):
        return DASH
    if _missing(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_time(seconds: Any) -> str:
    """Seconds: three decimals below 10 s, one above."""
    if _missing(seconds):
        return DASH
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def fmt_p(p: Any) -> str:
    """A p-value to four decimals, "<0.0001" below that; a dash when there was no test."""
    if _missing(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A GitHub Markdown table, one line per row; a `|` inside a cell is escaped so it stays one cell."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in cells),
    ]


def jsonable(value: Any, strict: bool = True) -> Any:
    """Plain JSON types, numpy and pandas values converted.

    `strict`: NaN and infinities become None, so strict JSON (`allow_nan=False`) holds, as
    every output file needs; otherwise they stay floats (the store's records, which Python
    reads back as it wrote them).
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, strict) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Index):
        return [jsonable(v, strict) for v in value]
    if isinstance(value, pd.DataFrame):  # a table of records, or a labelled matrix {row: {column: value}}
        if isinstance(value.index, pd.RangeIndex):
            return [jsonable(r, strict) for r in value.to_dict("records")]
        return {str(i): jsonable(r, strict) for i, r in value.to_dict("index").items()}
    if isinstance(value, pd.Series):
        return {str(k): jsonable(v, strict) for k, v in value.items()}
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) or not strict else None
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def jsonable_lax(value: Any) -> Any:
    """`jsonable` keeping NaN and infinities (a `json.dumps(default=...)` hook for stored records)."""
    return jsonable(value, strict=False)


def dumps(value: Any, indent: int | None = 2, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """Strict JSON text (no NaN, no numpy types) of `value`."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=ensure_ascii)
