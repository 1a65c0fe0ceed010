"""Hyperparameter tuning with Optuna: search spaces, samplers, pruners and studies.

Layers follow Optuna's own: a search space is plain data (parsed and checked here,
before anything runs), samplers and pruners are made by name, and a study lives in an
RDB storage (SQLite next to the results store by default) under a name derived from
the fold's content key, so a killed run resumes its studies and several workers can
share one. `run_study` is the only function that fits models; it sees only the rows
it is given (the outer fold's training part in nested mode), split into inner folds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
MODES = ("nested", "tune_then_cv")
HEARTBEAT_S, GRACE_S = 1, 4


@dataclass(frozen=True)
class Dist:
    """One hyperparameter's distribution: int/float ranges or categorical choices."""

    kind: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"categorical": list(self.choices)}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid(self) -> list[Any]:
        """The values a grid search enumerates (ranges need a step, or are ints)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            raise ValueError("a float range needs `step` for grid search")
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]


def parse_dist(raw: Any) -> Dist:
    """`{int: [lo, hi], log: true, step: 2}`, `{float: [lo, hi], log: true}` or `{categorical: [..]}`."""
    if isinstance(raw, list):
        raw = {"categorical": raw}
    if not isinstance(raw, dict):
        raise ValueError("write {int: [low, high]}, {float: [low, high]} or {categorical: [choices]}")
    kinds = [k for k in ("int", "float", "categorical") if k in raw]
    extra = set(raw) - {"int", "float", "categorical", "log", "step"}
    if len(kinds) != 1 or extra:
        bad = f" (unknown key {sorted(extra)[0]!r})" if extra else ""
        raise ValueError(f"give exactly one of int, float, categorical{bad}")
    kind = kinds[0]
    if kind == "categorical":
        choices = raw["categorical"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("categorical needs a non-empty list of choices")
        try:  # trials store each choice as JSON text
            json.dumps(choices, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(
                "categorical choices must be strings, finite numbers, true/false, null, or lists of them"
            ) from None
        return Dist("categorical", choices=tuple(choices))
    bounds = raw[kind]
    numbers = isinstance(bounds, list) and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    if not (numbers and len(bounds) == 2):
        raise ValueError(f"{kind} needs [low, high] numbers")
    if not all(_is_number(b) for b in bounds):
        raise ValueError(f"{kind} bounds must be finite numbers, not {bounds}")
    low, high = bounds
    limit = 1e15  # beyond this a bound is a typo, and float arithmetic on the range loses precision
    if any(abs(b) > limit for b in bounds):
        raise ValueError(f"{kind} bounds must lie within ±{limit:g}")
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ValueError("int bounds must be whole numbers")
    if low > high:
        raise ValueError(f"low {low} is greater than high {high}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError("log must be true or false")
    if log and low <= 0:
        raise ValueError("a log range needs low > 0")
    step = raw.get("step")
    if step is not None and (not _is_number(step) or step <= 0 or step > limit or log):
        raise ValueError("step must be a positive finite number, and not combined with log")
    if step is not None and kind == "int" and not float(step).is_integer():
        raise ValueError("an int range needs a whole-number step")
    return Dist(
        kind, float(low) if kind == "float" else int(low), float(high) if kind == "float" else int(high), log, step
    )


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool: YAML's true is no bound)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return isinstance(value, int) or math.isfinite(value)


def parse_space(raw: dict[str, Any]) -> dict[str, Dist]:
    """Parse a whole space; ValueError messages start with the parameter name."""
    out = {}
    for name, spec in raw.items():
        try:
            out[name] = parse_dist(spec)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return out


def suggest(trial: Any, space: dict[str, Dist]) -> dict[str, Any]:
    """Sample one configuration; categorical choices may be lists (e.g. hidden layer sizes)."""
    params = {}
    for name, d in space.items():
        if d.kind == "int":
            params[name] = trial.suggest_int(name, d.low, d.high, log=d.log, step=int(d.step or 1))
        elif d.kind == "float":
            params[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        else:
            encoded = [json.dumps(c) for c in d.choices]
            params[name] = json.loads(trial.suggest_categorical(name, encoded))
    return params


def decode(params: dict[str, Any], space: dict[str, Dist]) -> dict[str, Any]:
    """Optuna stores categorical choices as their JSON text; map them back."""
    return {k: json.loads(v) if space[k].kind == "categorical" else v for k, v in params.items()}


def make_sampler(name: str, seed: int, space: dict[str, Dist]) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {k: [json.dumps(v) if d.kind == "categorical" else v for v in d.grid()] for k, d in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}")


def make_pruner(name: str) -> Any:
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(),
        "none": lambda: optuna.pruners.NopPruner(),
    }[name]()


def grid_size(space: dict[str, Dist]) -> int:
    return int(np.prod([len(d.grid()) for d in space.values()]))


@dataclass
class StudyPlan:
    """How to run one study: the parsed space and the budget, all plain data (picklable)."""

    name: str
    storage: str
    space: dict[str, Dist]
    metric: str
    maximize: bool
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int | None = None
    timeout_s: float | None = None
    deadline: float | None = None  # wall-clock cap shared by the whole suite
    seed: int = 0
    inner_folds: int = 3
    early_stopping_rounds: int = 0  # boosting's own early stopping inside each inner fit


@dataclass
class StudyOutcome:
    best_params: dict[str, Any]
    best_value: float | None
    n_complete: int
    n_pruned: int
    n_failed: int
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)
    note: str = ""
    first_error: str = ""  # why the first failed trial failed (one line)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# Reports one boosting round's early-stopping score from inside a fit: (round, value,
# higher_is_better). It raises optuna.TrialPruned when the pruner stops the trial.
Report = Callable[[int, float, bool], None]

# One inner-fold evaluation: (params, inner fold index, report or None) -> score of the
# tuning metric, and optionally the boosting rounds early stopping kept (then the refit
# uses their mean). `report` is None when the study does not prune.
Evaluate = Callable[[dict[str, Any], int, Report | None], float | tuple[float, int | None]]

# Boosting rounds at which a fit's learning curve is reported to the pruner: geometric,
# two per doubling (8, 11, 16, 23, 32, 45, 64, ...), so the cost of reporting (a storage
# write and read each) stays small whatever the number of rounds, and every trial reports
# at the same rounds (pruners compare trials step by step).
ROUND_CHECKPOINTS = tuple(round(8 * 2 ** (i / 2)) for i in range(27))  # up to 65,536 rounds
_CHECKPOINT_STEP = {r: j for j, r in enumerate(ROUND_CHECKPOINTS)}


def run_study(plan: StudyPlan, evaluate: Evaluate, n_inner: int) -> StudyOutcome:
    """Create or resume the study and run the trials its budget has left.

    Two kinds of intermediate values let the pruner stop a bad trial early:
    - models that report from inside their fit (boosting with early stopping) give their
      early-stopping score at the rounds in ROUND_CHECKPOINTS, as step
      `fold * len(ROUND_CHECKPOINTS) + checkpoint`: a hopeless trial stops within its
      first inner fit instead of after it, which is where the time goes;
    - every other model gives the running mean over inner folds after each fold (step = fold).
    One study only ever sees one kind, since all its trials fit the same estimator on the
    same rows. A trial whose fit raises is recorded as FAIL and the study goes on.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(
        study_name=plan.name,
        storage=make_storage(plan.storage),
        load_if_exists=True,
        direction="maximize" if plan.maximize else "minimize",
        sampler=make_sampler(plan.sampler, plan.seed, plan.space),
        pruner=make_pruner(plan.pruner),
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    n_trials = None if plan.trials is None else max(0, plan.trials - len(finished))
    if plan.sampler == "grid":
        n_trials = min(n_trials if n_trials is not None else 10**9, max(0, grid_size(plan.space) - len(finished)))
    timeout = _timeout(plan)

    prunes = plan.pruner != "none"
    process = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float:
        trial.set_user_attr("process", process)  # which of the workers sharing the study ran it
        try:
            return trial_value(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # kept on the trial, so a study whose every trial fails can say why
            text = str(exc).strip().splitlines()
            trial.set_user_attr("error", f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
            raise

    def trial_value(trial: Any) -> float:
        params = suggest(trial, plan.space)
        scores, rounds = [], []
        in_fit: list[int] = []  # steps reported from inside fits
        for k in range(n_inner):
            score = evaluate(params, k, _reporter(trial, k, plan.maximize, in_fit) if prunes else None)
            if isinstance(score, tuple):
                score, best_round = score
                if best_round is not None:
                    rounds.append(int(best_round))
                    trial.set_user_attr("best_rounds", rounds)
            if score is None or not math.isfinite(score):
                raise ValueError(f"metric {plan.metric} undefined on inner fold {k}")
            scores.append(score)
            if not in_fit:
                trial.report(float(np.mean(scores)), k)
                if k < n_inner - 1 and trial.should_prune():
                    raise optuna.TrialPruned()
        return float(np.mean(scores))

    # Workers sharing the study stop together once the study as a whole reaches its budget.
    callbacks = [] if plan.trials is None else [optuna.study.MaxTrialsCallback(plan.trials, states=_states())]
    if plan.trials is not None:
        study.ask = _within_budget(study, plan.trials)
    if n_trials != 0 and (timeout is None or timeout > 0):
        with contextlib.suppress(_BudgetSpent):
            study.optimize(
                objective,
                n_trials=n_trials,
                timeout=timeout,
                catch=(Exception,),
                callbacks=callbacks,
                gc_after_trial=False,
            )
    return _outcome(study, plan, time.perf_counter() - start)


class _BudgetSpent(Exception):
    """A worker sharing the study drew the study's last trial before this one."""


def _within_budget(study: Any, budget: int) -> Callable[..., Any]:
    """`study.ask` that never runs a trial numbered `budget` or above.

    The storage numbers a study's trials under a lock, so numbers are unique and gapless:
    a trial numbered past the budget was drawn while other workers ran the last ones
    (MaxTrialsCallback only counts finished trials, after each trial). It is parked as
    WAITING, which is not a finished state (a later run with a larger budget runs it
    first), and this worker stops.
    """
    import optuna

    ask = study.ask

    def bounded_ask(*args: Any, **kwargs: Any) -> Any:
        trial = ask(*args, **kwargs)
        if trial.number >= budget:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.WAITING)
            raise _BudgetSpent
        return trial

    return bounded_ask


def _reporter(trial: Any, fold: int, maximize: bool, steps: list[int]) -> Report:
    """The in-fit report for one inner fold: checkpoint rounds go to the pruner, oriented like the study."""
    import optuna

    def report(round_: int, value: float, higher_is_better: bool) -> None:
        checkpoint = _CHECKPOINT_STEP.get(round_)
        if checkpoint is None or not math.isfinite(value):
            return
        step = fold * len(ROUND_CHECKPOINTS) + checkpoint
        steps.append(step)
        trial.report(value if higher_is_better == maximize else -value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()

    return report


def _states() -> tuple[Any, ...]:
    import optuna

    states = optuna.trial.TrialState
    return (states.COMPLETE, states.PRUNED, states.FAIL)


def make_storage(url: str) -> Any:
    """An RDB storage; SQLite waits for a busy file instead of failing when workers share it.

    `grpc://HOST:PORT` is the driver's storage served to cluster workers (GrpcStorageProxy).
    """
    import optuna

    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rpartition(":")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.GrpcStorageProxy(host=host, port=int(port))

    if url.startswith("postgresql://") and _module("psycopg") and not _module("psycopg2"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # SQLAlchemy 2.0 assumes psycopg2
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    # Heartbeats tell a trial left RUNNING by a killed worker (failed once its heartbeat is
    # older than the grace period) from one a live worker sharing the study is running.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )


def _timeout(plan: StudyPlan) -> float | None:
    limits = [plan.timeout_s] if plan.timeout_s else []
    if plan.deadline is not None:
        limits.append(plan.deadline - time.time())
    return min(limits) if limits else None


def _outcome(study: Any, plan: StudyPlan, wall: float) -> StudyOutcome:
    import optuna

    states = optuna.trial.TrialState
    trials = [t for t in study.trials if t.state.is_finished()]  # not another worker's, nor parked ones
    complete = [t for t in trials if t.state == states.COMPLETE]
    history = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": decode(t.params, plan.space)}
        | ({"best_rounds": t.user_attrs["best_rounds"]} if "best_rounds" in t.user_attrs else {})
        for t in trials
    ]
    counts = {s: sum(t.state == s for t in trials) for s in (states.COMPLETE, states.PRUNED, states.FAIL)}
    errors = [t.user_attrs["error"] for t in trials if t.state == states.FAIL and "error" in t.user_attrs]
    if not complete:
        return StudyOutcome(
            {},
            None,
            0,
            counts[states.PRUNED],
            counts[states.FAIL],
            wall,
            history,
            note="no trial completed: the estimator's own parameters were used",
            first_error=errors[0] if errors else "",
        )
    best_params = decode(study.best_params, plan.space)
    rounds = study.best_trial.user_attrs.get("best_rounds")
    if rounds:  # refit with the rounds early stopping kept, not the sampled maximum
        best_params["n_estimators"] = max(1, round(float(np.mean(rounds))))
    importances: dict[str, float] = {}
    if len(complete) >= 3 and len(plan.space) > 1:
        try:
            with warnings.catch_warnings():  # e.g. "quantiles select the same trials": equal importances, said below
                warnings.simplefilter("ignore")
                importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError):  # e.g. every trial scored the same
            importances = {}
    return StudyOutcome(
        best_params,
        float(study.best_value),
        counts[states.COMPLETE],
        counts[states.PRUNED],
        counts[states.FAIL],
        wall,
        history,
        importances,
    )


def _module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
