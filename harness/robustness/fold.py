"""One fold's attacks: which rows, which budgets, how long, and what each attack scored.

The engine calls `attack_fold` with the fitted model and a `score` function (its metrics
on given rows), so this package stays free of the engine and the metrics: it only makes
rows worse. The attacked rows are a seeded sample of at most `max_rows` of the fold's
test rows, the same for every model of the fold (the seed names no estimator), so models
stay paired. The wall-time budget `max_s` is shared out over the (attack, level) pairs in
order; time one pair does not use passes to the next. A failing attack never fails the
fold: it is recorded as an error or, for PGD on a model without gradients, as not applicable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.robustness.attacks import blackbox, pgd
from harness.robustness.box import Box
from harness.robustness.surface import NotDifferentiable

Score = Callable[[pd.DataFrame, np.ndarray], dict[str, Any]]


def attack_rows(n_test: int, max_rows: int, seed: int) -> np.ndarray:
    """Positions (ascending) of the test rows attacked: all of them, or a seeded sample of `max_rows`."""
    if n_test <= max_rows:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).permutation(n_test)[:max_rows])


def attack_fold(
    settings: dict[str, Any],
    model: Any,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    categorical: Sequence[str],
    classification: bool,
    score: Score,
    seed: Callable[[str, int], int],
    noisy: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Scores per attack and level on the attacked rows, with the clean (and noise) scores of those rows.

    `settings`: attacks (pgd, blackbox), levels, max_rows, queries, steps, max_s (RobustnessSpec).
    `seed(purpose, index)`: the fold's seed for a purpose. `noisy`: the noise attack's rows per level
    (all test rows), scored here on the attacked rows too so every attack is compared on the same rows.
    """
    pos = attack_rows(len(X_test), settings["max_rows"], seed("attack rows", 0))
    rows, y = X_test.iloc[pos], np.asarray(y_test)[pos]
    budget = {k: settings[k] for k in ("max_rows", "queries", "steps", "max_s")}
    out: dict[str, Any] = {"rows": len(pos), "budget": budget, "clean": score(rows, y)}
    if noisy:
        out["noise"] = {level: {"scores": score(frame.iloc[pos], y)} for level, frame in noisy.items()}
    levels, attacks = settings["levels"], settings["attacks"]
    start, pairs = time.perf_counter(), len(attacks) * len(levels)
    for a, attack in enumerate(attacks):
        per: dict[str, Any] = {}
        for i, level in enumerate(levels):
            deadline = start + settings["max_s"] * (a * len(levels) + i + 1) / pairs
            began = time.perf_counter()
            box = Box.build(rows, X_train, categorical, level)
            try:
                if attack == "pgd":
                    found = pgd(model, box, y, classification, settings["steps"], deadline)
                else:
                    found = blackbox(model, box, y, classification, settings["queries"], seed(attack, i), deadline)
                scores = score(box.frame(found.values), y)
            except NotDifferentiable as exc:
                per = {"not_applicable": str(exc)}
                break
            except Exception as exc:  # an attack's failure is a note on the fold, never its failure
                per = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]}
                break
            per[f"{level:g}"] = {"scores": scores} | found.spent(time.perf_counter() - began)
        out[attack] = per
    out["seconds"] = time.perf_counter() - start
    return out
