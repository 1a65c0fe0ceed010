"""What explaining costs: the one-off work a process pays once, and each fold's budget clock and budgeted run.

A time budget, not a row count: a first small batch is timed, the rest is extrapolated, and rows stop being
added when the budget would be exceeded. The budget clock covers everything a fold pays for (preprocessing the
rows, building the explainer, the additivity check); what a process pays once (importing shap, compiling its
numba kernels) is kept off it, so the first fold of a process is not starved, and is recorded apart
(`one_off_s`) so that reports can show both.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from harness.explain.explainers import _Plan

_SAFETY = 0.9  # extrapolations aim at this share of the remaining budget

# ---------------------------------------------------------------- what a process pays once

_WARM = False
_ONE_OFF = [0.0]  # seconds this process has spent on one-off work (imports, JIT) inside explanations


def one_off_seconds() -> float:
    """Seconds this process has spent so far importing shap and compiling its kernels (never decreases).

    A fold reads it before and after its explanation: the difference is kept off the fold's budget clock.
    """
    return _ONE_OFF[0]


def import_shap() -> Any:
    """shap, imported once per process; the import (about 0.5 s, matplotlib and numba) counts as one-off."""
    if "shap" not in sys.modules:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap's import warns about matplotlib deprecations
            import shap  # noqa: F401
        _ONE_OFF[0] += time.perf_counter() - t0
    return sys.modules["shap"]


def warm_up() -> float:
    """Compile shap's numba kernels once per process; returns the seconds it took (0 when already done).

    The first permutation explanation in a process spends seconds (about 4 here) in numba's JIT compiler, a cost
    that belongs to the process rather than to the model: it is kept off the budget clock and reported as the
    explanation's `one_off_s`. Only the permutation explainer needs it (tree, linear and the boosting
    libraries' own contributions do not), so it is paid only where such a model is explained.
    """
    global _WARM
    if _WARM:
        return 0.0
    shap = import_shap()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = np.linspace(0.0, 1.0, 6).reshape(2, 3)
        explainer = shap.PermutationExplainer(lambda A: A[:, :2], shap.maskers.Independent(bg, max_samples=2))
        with _global_numpy_seed(0):
            explainer(bg[:1] + 1.0, max_evals=7, silent=True)
    _WARM = True
    seconds = time.perf_counter() - t0
    _ONE_OFF[0] += seconds
    return seconds


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (shap's permutations draw from it) and restore the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


# ---------------------------------------------------------------- budgeted run


@dataclass
class _Clock:
    """An explanation's budget time: wall time since it started, less the one-off work the process did since."""

    start: float = field(default_factory=time.perf_counter)
    one_off_at_start: float = field(default_factory=one_off_seconds)

    def used(self) -> float:
        return time.perf_counter() - self.start - self.one_off()

    def one_off(self) -> float:
        return one_off_seconds() - self.one_off_at_start


def _run_budgeted(plan: _Plan, Xm: pd.DataFrame, budget_s: float, clock: _Clock) -> tuple[np.ndarray, np.ndarray]:
    """Explain rows of `Xm` in order, batch by batch, while the extrapolated time fits the budget.

    The first batch always runs (it is what the extrapolation is based on), so a model whose first batch
    alone exceeds the budget still reports a few rows, and the overshoot is that one batch.
    """
    n_max = len(Xm)
    expected = 0.0  # seconds per row known beforehand (the calibration row is cached, so its re-run is free)
    if plan.calibrate is not None:
        expected = plan.calibrate(Xm, budget_s - clock.used())
    parts, base, done, size = [], None, 0, min(plan.first, n_max)
    while size > 0:
        t0 = time.perf_counter()
        values, b = plan.compute(Xm.iloc[done : done + size], done)
        per_row = max((time.perf_counter() - t0) / size, expected)
        parts.append(values)
        base = b if base is None else base
        done += size
        left = budget_s - clock.used()
        affordable = int(left * _SAFETY / max(per_row, 1e-9))
        size = max(0, min(n_max - done, affordable, max(4 * size, 16)))
    return np.concatenate(parts), np.asarray(base)
