"""The columns themselves: added, missing, retyped; categories new and vanished; missing and infinite shares.

No statistics here: these are the changes a run would trip over (a column it expects,
a type it encodes differently, an infinity it refuses) before any distribution matters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.drift.result import ColumnMissing, SchemaDiff
from harness.drift.sides import Side


def _kind(side: Side, col: str) -> str:
    return "categorical" if col in side.categorical else "numeric"


def canonical_codes(old: pd.Series, new: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numeric category codes spelled alike on both sides.

    The loader turns a numeric column named in `--categorical` into strings; a file with a
    missing value there reads as float ("1.0"), one without as int ("1"). Within one run
    that is harmless, across two files it would invent new and vanished categories.
    """

    def as_numbers(s: pd.Series) -> pd.Series | None:
        values = pd.to_numeric(s.dropna(), errors="coerce")
        return None if values.isna().any() else values

    a, b = as_numbers(old), as_numbers(new)
    if a is None or b is None:
        return old, new

    def spell(s: pd.Series) -> pd.Series:
        # spell each distinct value once: a column has few categories and many rows
        names = {v: str(int(float(v))) if float(v).is_integer() else str(float(v)) for v in s.dropna().unique()}
        return s.map(names)

    return spell(old), spell(new)


def schema_diff(ref: Side, new: Side) -> SchemaDiff:
    """Columns added, missing and retyped; categories new and vanished; missing rates."""
    ref_cols, new_cols = list(ref.X.columns), list(new.X.columns)
    shared = [c for c in ref_cols if c in set(new_cols)]
    retyped = [
        {"column": c, "old": _kind(ref, c), "new": _kind(new, c)} for c in shared if _kind(ref, c) != _kind(new, c)
    ]
    new_cats: dict[str, list[str]] = {}
    vanished: dict[str, list[str]] = {}
    for c in shared:
        if _kind(ref, c) == _kind(new, c) == "categorical":
            old, now = canonical_codes(ref.X[c], new.X[c])
            a, b = set(old.dropna().astype(str)), set(now.dropna().astype(str))
            if b - a:
                new_cats[c] = sorted(b - a)
            if a - b:
                vanished[c] = sorted(a - b)
    rates = []
    for c in ref_cols + [c for c in new_cols if c not in set(ref_cols)]:
        old = float(ref.X[c].isna().mean()) if c in ref.X.columns and len(ref.X) else None
        now = float(new.X[c].isna().mean()) if c in new.X.columns and len(new.X) else None
        rates.append(ColumnMissing(c, old, now, None if old is None or now is None else now - old))
    infinite = []
    for c in ref_cols + [c for c in new_cols if c not in set(ref_cols)]:
        old, now = _infinite_share(ref, c), _infinite_share(new, c)
        if old or now:
            infinite.append(ColumnMissing(c, old, now, None if old is None or now is None else now - old))
    return SchemaDiff(
        added=[c for c in new_cols if c not in set(ref_cols)],
        missing=[c for c in ref_cols if c not in set(new_cols)],
        retyped=retyped,
        new_categories=new_cats,
        vanished_categories=vanished,
        missing_rates=rates,
        infinite_rates=infinite,
    )


def _infinite_share(side: Side, col: str) -> float | None:
    """Share of a column's rows that are inf/-inf; None when the column is absent (or no rows)."""
    if col not in side.X.columns or not len(side.X):
        return None
    values = side.X[col]
    if not pd.api.types.is_float_dtype(values):
        return 0.0  # text and integer columns hold no infinities ('inf' text is a category)
    return float(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).mean())
