"""`harness predict FILE.skops DATA --out preds.csv`: check the data against the model's schema, then predict.

The data is read as a suite's data file is (`datasets._read_file`: CSV or Parquet,
duplicate column names refused), checked by `check_frame` (missing or uncastable columns
are exit 2; extra columns, retyped columns and unseen categories are warnings), and the
predictions are written as CSV: `prediction` (the original class label, or the value),
then `proba_<label>` per class when the model gives probabilities. Rows stay in the
data's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError

PREDICTION = "prediction"


@dataclass
class PredictReport:
    out: Path
    rows: int
    warnings: list[str] = field(default_factory=list)


def is_predictions_file(path: Path) -> bool:
    """A predictions CSV written by `harness predict` (its header starts with our first column)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(PREDICTION) + 1)
    except OSError:
        return False
    return head in (f"{PREDICTION},".encode(), f"{PREDICTION}\n".encode())


def predict_file(
    model_path: str | Path,
    data_path: str | Path,
    out: str | Path,
    force: bool = False,
    allow_modules: tuple[str, ...] = (),
) -> PredictReport:
    """Predict every row of `data_path` with the exported model; write `out`. Checks everything before predicting."""
    from harness.datasets import FILE_SUFFIXES, _read_file
    from harness.export.model import check_frame, load_exported
    from harness.fileio import atomic_write, check_target

    data_path, out = Path(data_path), Path(out)
    check_target(out, is_predictions_file, "predictions file written by harness predict", force)
    if not data_path.suffix.lower().endswith(FILE_SUFFIXES):
        raise HarnessError(f"{data_path}: read .csv or .parquet files only")
    if not data_path.is_file():
        raise HarnessError(f"{data_path}: file not found")
    exported = load_exported(model_path, allow_modules)
    frame = _read_file(data_path, "DATA")
    X, warnings = check_frame(exported.sidecar, frame, str(data_path))
    table = predictions(exported, X)
    atomic_write(out, table.to_csv(index=False))
    return PredictReport(out, len(table), warnings)


def predictions(exported: object, X: pd.DataFrame) -> pd.DataFrame:
    """`prediction`, then one `proba_<label>` column per class when the model has probabilities."""
    table = pd.DataFrame({PREDICTION: exported.predict(X)})
    proba = exported.predict_proba(X)
    if proba is not None:
        for j, label in enumerate(exported.classes):
            table[f"proba_{label}"] = np.asarray(proba)[:, j]
    return table
