"""SHAP explanations of a fold's fitted model, as plain numpy the store can keep and the report can plot.

One job per module:

- `result.py`: `Explanation` (numpy arrays and JSON-ready fields, `to_arrays`/`from_arrays`) and `ExplainError`;
- `rows.py`: `explain_rows`, the seeded order of a fold's test rows every model explains a prefix of;
- `anatomy.py`: the fitted preprocessing split from the final estimator, each model input's original column,
  and the codec between mixed-dtype frames and the float matrices shap's maskers mix;
- `explainers.py`: one explainer per model family (XGBoost, LightGBM, scikit-learn trees, linear, permutation);
- `runtime.py`: what explaining costs: shap's import and numba compilation, paid once per process and kept off
  the budget, and each fold's budget clock and budgeted, batch-by-batch run;
- `fold.py`: `explain_fold`, the entry point: explainer, budgeted run, additivity check, grouping to raw columns.

This package computes explanations; aggregating them (mean |SHAP| importance, rank agreement between models)
is the report's read model's job (`harness.report.views`).
"""

from harness.explain.fold import explain_fold
from harness.explain.result import ExplainError, Explanation
from harness.explain.rows import explain_rows
from harness.explain.runtime import import_shap, one_off_seconds, warm_up

__all__ = [
    "ExplainError",
    "Explanation",
    "explain_fold",
    "explain_rows",
    "import_shap",
    "one_off_seconds",
    "warm_up",
]
