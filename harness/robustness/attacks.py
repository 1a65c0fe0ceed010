"""Worst-case attacks within an L∞ budget: `pgd` (gradient) and `blackbox` (queries only).

Both search the same `Box` (level × training std per numeric column, inside the training
range, categorical and missing values fixed) for the rows that are worst for the fitted
fold model, by the per-row objective of `surface` (the margin of the true class; minus the
squared error for regression). Each keeps, per row, the worst point it has evaluated,
starting from the clean row, so an attack never makes a row better than it was.

- `pgd`: projected gradient ascent on the loss (Madry et al.): `steps` signed-gradient
  steps of 2.5 × budget / steps, projected on the box. Needs an input gradient (the MLP,
  linear models); other models raise `NotDifferentiable` ("not applicable").
- `blackbox`: a random search over the box in the manner of the Square Attack (Andriushchenko
  et al. 2020) for tabular rows: start at a random vertex of the box, then repeatedly
  redraw a shrinking random subset of each row's coordinates (a vertex value, or uniform
  inside the box) and keep the change where the objective drops. One query = one model
  evaluation per row; every model, trees and ensembles included, and regression too.

Why not the Adversarial Robustness Toolbox (checked, 1.20): its Square Attack refuses
non-image input, HopSkipJump and the boundary attacks search a minimal perturbation one
row at a time (thousands of queries per row, classification only), its PGD takes one
clip range per feature (not the per-row box above), and its logistic-regression gradient
is the one-vs-rest one, not that of scikit-learn's multinomial model; importing it costs
2-3 s per process. The loops here are a few lines over numpy on all attacked rows at once.

Each attack is bounded: `steps` or `queries` per row, and a deadline (seconds on the
wall clock) it checks between iterations; it reports what it spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.robustness.box import Box
from harness.robustness.surface import gradient_of, objective

ATTACKS = ("noise", "pgd", "blackbox")  # noise: harness.robustness.noise.perturb


@dataclass
class Outcome:
    """The worst rows an attack found, and what it spent finding them."""

    values: np.ndarray  # n × p numeric values (Box.frame turns them into rows)
    queries: int  # model evaluations per row (clean row included)
    gradients: int  # gradient evaluations per row (pgd)
    stopped: bool  # the deadline cut the search short

    def spent(self, seconds: float) -> dict[str, Any]:
        return {"queries": self.queries, "gradients": self.gradients, "seconds": seconds, "stopped": self.stopped}


BATCH = 10  # blackbox candidates per row evaluated in one model call (a call's fixed cost dominates small folds)


def _keeper(model: Any, box: Box, y: np.ndarray, classification: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A function that evaluates candidates (k × n × p) and keeps, per row, the worst point seen so far."""
    best = box.x0.copy()
    score = objective(model, box.frame(best), y, classification)

    def offer(candidates: np.ndarray) -> np.ndarray:
        k, n, p = candidates.shape
        values = objective(model, box.frame(candidates.reshape(k * n, p)), np.tile(y, k), classification)
        values = values.reshape(k, n)
        pick = values.argmin(axis=0)
        value = values[pick, np.arange(n)]
        better = value < score
        best[better], score[better] = candidates[pick, np.arange(n)][better], value[better]
        return best

    return offer


def pgd(model: Any, box: Box, y: np.ndarray, classification: bool, steps: int, deadline: float) -> Outcome:
    """Projected signed-gradient ascent of the loss inside the box (raises NotDifferentiable).

    The iterates are scored together at the end (one model call), and the worst per row is kept.
    """
    gradient = gradient_of(model, box.frame(box.x0), box.columns, classification)
    step = 2.5 * box.eps / steps
    current, iterates, stopped = box.x0.copy(), [], False
    for _ in range(steps):
        if time.perf_counter() > deadline:
            stopped = True
            break
        grad = gradient(box.frame(current), y)
        current = box.clip(current + step * np.sign(np.nan_to_num(grad)))
        iterates.append(current)
    offer = _keeper(model, box, y, classification)
    best = offer(np.stack(iterates)) if iterates else box.x0
    return Outcome(best.copy(), 1 + len(iterates), len(iterates), stopped)


def blackbox(
    model: Any, box: Box, y: np.ndarray, classification: bool, queries: int, seed: int, deadline: float
) -> Outcome:
    """Square-Attack-style random search over the box with at most `queries` model evaluations per row.

    Candidates are drawn `BATCH` at a time from the current worst point of each row (one model call per
    batch); the share of coordinates redrawn shrinks from half to one as the queries are spent.
    """
    rng = np.random.default_rng(seed)
    offer = _keeper(model, box, y, classification)
    n, p = box.x0.shape
    movable = box.movable
    best, used, stopped = box.x0, 1, False
    while used < queries and p and movable.any():
        if time.perf_counter() > deadline:
            stopped = True
            break
        k = min(BATCH, queries - used)
        if used == 1:  # the first batch: random vertices of the box
            batch = _vertices(box, rng.random((k, n, p)) < 0.5)
        else:
            share = 0.5 * (1.0 - used / queries)
            keys = np.where(movable, rng.random((k, n, p)), np.inf)
            m = max(1, int(np.ceil(share * p)))
            redraw = (keys <= np.sort(keys, axis=2)[..., m - 1 : m]) & movable
            uniform = box.lo + rng.random((k, n, p)) * (box.hi - box.lo)
            fresh = np.where(rng.random((k, n, p)) < 0.75, _vertices(box, rng.random((k, n, p)) < 0.5), uniform)
            batch = np.where(redraw, fresh, best[None])
        best = offer(batch)
        used += k
    return Outcome(best.copy(), used, 0, stopped)


def _vertices(box: Box, upper: np.ndarray) -> np.ndarray:
    return np.where(upper, box.hi, box.lo)
