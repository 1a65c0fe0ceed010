"""Exporting the chosen model of a run: refit on all rows, save with skops, predict on new data.

- `model.py`: `load_exported` / `check_frame`, the loader every consumer of an exported
  model uses (`harness predict`, `harness ab paired`), and the skops trust rules.
- `refit.py`: rebuild a run's dataset and resolved estimator from its store, refit on all rows.
- `sidecar.py`: the JSON beside the model: feature schema, classes, CV scores, provenance.
- `predict.py`: `harness predict`: check the data against the sidecar, predict, write a CSV.
"""

from harness.export.model import ExportedModel, check_frame, load_exported

__all__ = ["ExportedModel", "check_frame", "load_exported"]
