"""What an attacker sees of a fitted fold model: a per-row objective, and its gradient where one exists.

The objective is what both attacks minimise, row by row:

- classification: the margin `score[true] - max(score[other])` of the probabilities (or of
  `decision_function` when the model has no probabilities, or ±1 from `predict`); a
  negative margin is a misclassified row;
- regression: minus the squared error, so minimising it maximises the error (which is
  what r2, rmse and mae all get worse with).

The gradient (PGD) is the gradient of the training loss (cross-entropy, or the squared
error) with respect to the RAW numeric columns. A fold model is a scikit-learn Pipeline
(fold preprocessing, then the estimator); the harness's numeric preprocessing is affine
per column (median imputation, standard scaling) or absent, so the chain rule needs only
the slope of each numeric column through it, which `_slopes` measures exactly on the
attacked rows themselves (an imputed missing value gets slope 0). Gradients with respect
to the estimator's input come from the model: the torch MLP's `loss_gradient`, or the
closed form of a linear model (checked against its own `decision_function` first). Other
models (trees, ensembles, kNN, kernel SVMs, stacks) have none: PGD records them as not
applicable and the black-box attack covers them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline


class NotDifferentiable(Exception):
    """The model has no input gradient the harness can compute; the message says why."""


def objective(model: Any, frame: pd.DataFrame, y: np.ndarray, classification: bool) -> np.ndarray:
    """Per-row value the attacks minimise (see the module docstring)."""
    if not classification:
        return -((np.asarray(model.predict(frame), dtype=np.float64).ravel() - y) ** 2)
    classes = np.asarray(getattr(model, "classes_", np.unique(y)))
    true = np.searchsorted(classes, y).clip(0, len(classes) - 1)
    known = classes[true] == y
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(frame), dtype=np.float64)
    elif hasattr(model, "decision_function"):
        scores = np.asarray(model.decision_function(frame), dtype=np.float64)
        if scores.ndim == 1:  # binary: positive scores mean classes[1]
            return np.where(known, np.where(true == 1, scores, -scores), -1.0)
    else:
        return np.where(known & (np.asarray(model.predict(frame)) == y), 1.0, -1.0)
    rows = np.arange(len(y))
    own = scores[rows, true]
    others = scores.copy()
    others[rows, true] = -np.inf
    return np.where(known, own - others.max(axis=1), -1.0)


def input_gradient(
    model: Any, frame: pd.DataFrame, columns: list[str], y: np.ndarray, classification: bool
) -> np.ndarray:
    """n × len(columns): d loss / d raw value of each numeric column; raises NotDifferentiable."""
    return gradient_of(model, frame, columns, classification)(frame, y)


def gradient_of(
    model: Any, frame: pd.DataFrame, columns: list[str], classification: bool
) -> Callable[[pd.DataFrame, np.ndarray], np.ndarray]:
    """`input_gradient` for rows shaped like `frame` (same rows, moved values), with the per-model work done once.

    The slopes through the (affine) preprocessing are measured on `frame` and a linear model's weights are
    checked once; each call then costs one preprocessing pass and the estimator's gradient.
    """
    prep, final = _split(model)
    slopes = column_slopes(model, frame, columns)
    inputs = prep.transform(frame) if prep is not None else frame
    at = _positions(inputs, columns, final)
    if hasattr(final, "module_"):  # the torch MLP

        def of_inputs(z: Any, y: np.ndarray) -> np.ndarray:
            if hasattr(final, "loss_gradient"):
                return np.asarray(final.loss_gradient(z, y), dtype=np.float64)
            return _torch_gradient(final, np.asarray(z, dtype=np.float64), y, classification)
    else:
        coef = _linear_coef(final, inputs)
        if coef is None:
            raise NotDifferentiable(f"{type(final).__name__} has no input gradient (not a linear model or the MLP)")

        def of_inputs(z: Any, y: np.ndarray) -> np.ndarray:
            return _linear_gradient(final, coef, z, y, classification)

    def gradient(rows: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        z = prep.transform(rows) if prep is not None else rows
        return of_inputs(z, y)[:, at] * slopes

    return gradient


def column_slopes(model: Any, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """d z / d x per element for affine per-column preprocessing (1 without preprocessing; 0 where imputed)."""
    prep, final = _split(model)
    if prep is None:
        return np.ones((len(frame), len(columns)))
    z = prep.transform(frame)
    shifted = frame.copy()
    for col in columns:
        shifted[col] = shifted[col].astype(np.float64) + 1.0
    moved = prep.transform(shifted)
    at = _positions(z, columns, final)
    return np.asarray(moved, dtype=np.float64)[:, at] - np.asarray(z, dtype=np.float64)[:, at]


def _split(model: Any) -> tuple[Any, Any]:
    return (model[:-1], model[-1]) if isinstance(model, Pipeline) else (None, model)


def _positions(inputs: Any, columns: list[str], final: Any) -> list[int]:
    """Where each raw numeric column is among the estimator's inputs (it must reach them as itself)."""
    names = [str(c) for c in getattr(inputs, "columns", columns)]
    for c in columns:
        if str(c) not in names:
            raise NotDifferentiable(f"column {c!r} does not reach {type(final).__name__} as itself")
    return [names.index(str(c)) for c in columns]


def _linear_gradient(final: Any, coef: np.ndarray, inputs: Any, y: np.ndarray, classification: bool) -> np.ndarray:
    """d loss / d input of a linear model: cross-entropy, the margin (no probabilities) or the squared error."""
    if not classification:
        residual = np.asarray(final.predict(inputs), dtype=np.float64).ravel() - y
        return 2.0 * residual[:, None] * coef[0][None, :]
    classes = np.asarray(final.classes_)
    onehot = (np.searchsorted(classes, y)[:, None] == np.arange(len(classes))[None, :]).astype(np.float64)
    if hasattr(final, "predict_proba"):  # cross-entropy: (p - onehot) @ W (binary: one row of W)
        proba = np.asarray(final.predict_proba(inputs), dtype=np.float64)
        return (proba[:, 1:] - onehot[:, 1:]) @ coef if len(coef) == 1 else (proba - onehot) @ coef
    if len(coef) == 1:  # margin of a binary linear classifier without probabilities
        return -(2.0 * onehot[:, 1:] - 1.0) * coef
    scores = np.asarray(final.decision_function(inputs), dtype=np.float64)
    rival = np.where(onehot > 0, -np.inf, scores).argmax(axis=1)
    return coef[rival] - coef[np.searchsorted(classes, y)]


def _linear_coef(final: Any, inputs: Any) -> np.ndarray | None:
    """The k × m weights of a model whose decision is `z @ coef.T + intercept`, checked on the inputs; else None."""
    z = np.asarray(inputs, dtype=np.float64)
    try:
        coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))
        intercept = np.asarray(getattr(final, "intercept_", 0.0), dtype=np.float64)
        decide = final.decision_function if hasattr(final, "decision_function") else final.predict
        got = np.asarray(decide(inputs), dtype=np.float64).reshape(len(z), -1)
    except (AttributeError, TypeError, ValueError):
        return None
    if coef.shape[1] != z.shape[1]:
        return None
    want = (z @ coef.T + intercept).reshape(len(z), -1)
    return coef if want.shape == got.shape and np.allclose(want, got, rtol=1e-6, atol=1e-8) else None


def _torch_gradient(final: Any, z: np.ndarray, y: np.ndarray, classification: bool) -> np.ndarray:
    """Fallback for an MLP without `loss_gradient`: autograd through its network, in evaluation mode."""
    import torch

    net = final.module_
    device = next(net.parameters()).device
    x = torch.tensor(z, dtype=torch.float32, device=device, requires_grad=True)
    was_training = net.training
    net.eval()
    try:
        out = net(x)
        if classification:
            target = torch.as_tensor(np.searchsorted(final.classes_, y), dtype=torch.long, device=device)
            loss = torch.nn.functional.cross_entropy(out, target, reduction="sum")
        else:
            scaled = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) - final.y_mean_) / final.y_scale_
            loss = ((out - torch.as_tensor(scaled, dtype=torch.float32, device=device)) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, x)
    finally:
        net.train(was_training)
    return grad.detach().double().cpu().numpy()
