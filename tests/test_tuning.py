"""Optuna tuning: honest nesting, resumable studies, valid default spaces, samplers and pruners."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from harness.errors import SuiteError
from harness.metrics import CLASSIFICATION, REGRESSION, TASKS
from harness.preprocess import Columns
from harness.registry import REGISTRY, allowed_modules, build, default_space
from harness.runner import RunOptions, prepare, run_suite
from harness.spec import parse_suite
from harness.store import Store
from harness.tuning import GRACE_S, PRUNERS, SAMPLERS, StudyPlan, parse_space, run_study, suggest
from tests.test_registry import _suite, _tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def _plan(tmp_path: Path, space: dict, **kw) -> StudyPlan:
    return StudyPlan(
        name=kw.pop("name", "s"),
        storage=f"sqlite:///{tmp_path / 'studies.db'}",
        space=parse_space(space),
        metric=kw.pop("metric", "accuracy"),
        maximize=True,
        **kw,
    )


def test_nested_tuning_never_sees_the_outer_test_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ALLOW_MODULES", "tests")
    log = tmp_path / "fits.log"
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 3},
            "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": [
                {
                    "name": "m",
                    "model": "tests.estimators.IndexLoggingClassifier",
                    "params": {"log": str(log)},
                    "tune": {
                        "trials": 3,
                        "inner_folds": 3,
                        "space": {"alpha": {"float": [0.0, 1.0]}},
                        "pruner": "none",
                    },
                }
            ],
        }
    )
    run_suite(suite, RunOptions(out=tmp_path, allow_modules=allowed_modules()))
    fits = [set(map(int, line.split())) for line in log.read_text().splitlines()]
    assert len(fits) == 3 * (3 * 3 + 1)  # per outer fold: trials x inner folds, then the refit
    with Store(tmp_path / "results.db") as store:
        rows = store.results().sort_values("fold")
        tests = [set(store.predictions(k)["test_index"].tolist()) for k in rows["key"]]
        extras = list(rows["extra"])
    for k, test in enumerate(tests):
        block = fits[k * 10 : (k + 1) * 10]
        assert all(not (fit & test) for fit in block), f"outer fold {k}: test rows reached the study"
        assert block[-1] == set(range(150)) - test  # the refit uses the whole outer training part
        tuning = extras[k]["tuning"]
        assert tuning["n_complete"] == 3 and set(tuning["best_params"]) == {"alpha"} and tuning["mode"] == "nested"
        assert len(tuning["history"]) == 3


_KILLABLE = """
import sys, time
from harness.tuning import StudyPlan, parse_space, run_study
plan = StudyPlan(name="s", storage=sys.argv[1], space=parse_space({"x": {"float": [0, 1]}}), metric="accuracy",
                 maximize=True, trials=20, pruner="none")
def evaluate(params, k, *_):
    time.sleep(0.15)
    return params["x"]
run_study(plan, evaluate, 1)
"""


def test_killed_study_resumes_with_its_finished_trials_kept(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="maximize")  # no creation race with the poller
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, storage], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.time() + 60
    done: list = []
    while time.time() < deadline and proc.poll() is None:
        done = [t for t in optuna.load_study(study_name="s", storage=storage).trials if t.state.is_finished()]
        if len(done) >= 4:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="s", storage=storage).trials
    kept = {t.number: t.value for t in before if t.state.is_finished()}
    stale = sum(t.state == optuna.trial.TrialState.RUNNING for t in before)
    assert 4 <= len(kept) < 20
    time.sleep(GRACE_S + 1)  # the killed worker's heartbeat goes stale
    calls = []
    plan = _plan(tmp_path, {"x": {"float": [0, 1]}}, trials=20, pruner="none")
    outcome = run_study(plan, lambda p, k, *_: calls.append(p) or p["x"], 1)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    finished = [t for t in trials if t.state.is_finished()]
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    # The killed run's trials count, a stale RUNNING one as FAIL; one left without a heartbeat
    # (see below) holds its number, so the budget is reached one trial short.
    assert len(finished) + running == 20
    assert {t.number: t.value for t in finished if t.number in kept} == kept
    # A kill that lands between a trial's creation and its first heartbeat leaves a RUNNING
    # trial optuna cannot tell from a live worker's; it stays RUNNING and does not count.
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert failed <= stale and sum(t.state == optuna.trial.TrialState.RUNNING for t in trials) == stale - failed
    assert len(calls) == 20 - len(kept) - failed - running  # only the missing trials ran
    assert outcome.best_value == max(t.value for t in finished if t.value is not None)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    "name", sorted(n for n in REGISTRY if default_space(n, CLASSIFICATION) or default_space(n, REGRESSION))
)
def test_every_default_space_samples_valid_estimators(name, task):
    suite = _suite(name)
    from harness.registry import Resolver

    resolved = Resolver(suite).resolve("subject", task)
    space = parse_space(default_space(name, task))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ds = _tiny_dataset(task)
    columns = Columns(ds.numeric, ds.categorical, ds.has_missing)
    for _ in range(2):
        trial = study.ask()
        params = suggest(trial, space)
        if "n_estimators" in params:
            params["n_estimators"] = min(params["n_estimators"], 20)  # keep the contract test fast
        model = build(resolved.with_params(params), columns)
        model.fit(ds.X, ds.y)
        assert len(model.predict(ds.X)) == len(ds.y)


@pytest.mark.parametrize("task", TASKS)
def test_the_mlp_space_holds_its_default_batch_size(task):
    """On small data only "auto" gives several steps per epoch; a study must be able to keep it."""
    from harness.models import TorchMLPClassifier

    assert TorchMLPClassifier().batch_size in default_space("mlp", task)["batch_size"]["categorical"]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("pruner", PRUNERS)
def test_each_sampler_and_pruner_runs(tmp_path, sampler, pruner):
    space = {"x": {"float": [0.0, 1.0], "step": 0.25}, "n": {"int": [1, 3]}}
    plan = _plan(tmp_path, space, sampler=sampler, pruner=pruner, trials=8)
    outcome = run_study(plan, lambda p, k, *_: 1 - abs(p["x"] - 0.5) + 0.01 * k * p["n"], 3)
    assert outcome.n_complete + outcome.n_pruned == 8 and outcome.best_value is not None
    assert set(outcome.best_params) == {"x", "n"}


def test_grid_search_enumerates_the_declared_grid(tmp_path):
    space = {
        "depth": {"categorical": [2, 4, None]},
        "leaf": {"int": [1, 3], "step": 2},
        "sizes": {"categorical": [[8], [8, 8]]},
    }
    plan = _plan(tmp_path, space, sampler="grid", pruner="none", trials=None)
    seen = []
    outcome = run_study(plan, lambda p, k, *_: seen.append(p) or 0.5, 1)
    assert outcome.n_complete == 12
    expected = [
        dict(zip(("depth", "leaf", "sizes"), c, strict=True))
        for c in itertools.product([2, 4, None], [1, 3], [[8], [8, 8]])
    ]
    assert sorted(map(repr, seen)) == sorted(map(repr, expected))


def test_pruning_stops_bad_trials(tmp_path):
    plan = _plan(tmp_path, {"x": {"float": [0.0, 1.0]}}, sampler="random", pruner="median", trials=30)
    outcome = run_study(plan, lambda p, k, *_: p["x"], 5)
    assert outcome.n_pruned > 0


def test_failed_trial_is_a_fail_trial_not_a_failed_study(tmp_path):
    def evaluate(p, k, *_):
        if p["x"] > 0.5:
            raise ValueError("bad region")
        return p["x"]

    outcome = run_study(_plan(tmp_path, {"x": {"float": [0.0, 1.0]}}, sampler="random", trials=10), evaluate, 1)
    assert outcome.n_failed > 0 and outcome.n_complete > 0 and outcome.best_value <= 0.5


def _suite_with_tune(tune: dict, model: str = "decision_tree") -> dict:
    return {
        "name": "t",
        "cv": {"folds": 2},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "m", "model": model, "tune": tune}],
    }


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        (
            {"space": {"max_dept": {"int": [1, 5]}}},
            r"estimators\[0\]\.tune\.space\.max_dept: .*did you mean 'max_depth'",
        ),
        (
            {"space": {"max_depth": {"int": [9, 2]}}},
            r"estimators\[0\]\.tune\.space: max_depth: low 9 is greater than high 2",
        ),
        ({"space": {"max_depth": {"int": ["a", 2]}}}, r"tune\.space: max_depth: int needs \[low, high\] numbers"),
        ({"space": {"max_depth": {"int": [1, 4], "log": "yes"}}}, r"tune\.space: max_depth: log must be true or false"),
        (
            {"space": {"max_depth": {"range": [1, 4]}}},
            r"tune\.space: max_depth: give exactly one of int, float, categorical",
        ),
        ({"sampler": "tpee"}, r"tune\.sampler: unknown sampler 'tpee' \(did you mean 'tpe'\?\)"),
        ({"metric": "r2"}, r"tune\.metric: 'r2' is a regression metric"),
        (
            {"sampler": "grid", "space": {"min_weight_fraction_leaf": {"float": [0, 0.5]}}},
            r"needs `step` for grid search",
        ),
    ],
)
def test_invalid_spaces_are_bad_input(tune, message):
    with pytest.raises(SuiteError, match=message):
        prepare(parse_suite(_suite_with_tune(tune)))


def test_stacking_has_no_default_space():
    raw = _suite_with_tune({"trials": 2}, model="stacking")
    raw["estimators"][0]["params"] = {"estimators": ["t"]}
    raw["estimators"].append({"name": "t", "model": "decision_tree"})
    with pytest.raises(SuiteError, match="has no default search space"):
        prepare(parse_suite(raw))


def test_tune_then_cv_is_labelled_optimistic_and_tuning_time_is_reported(tmp_path):
    from harness.report import write_outputs

    raw = _suite_with_tune({"trials": 3, "mode": "tune_then_cv"})
    raw["estimators"].append({"name": "plain", "model": "decision_tree"})
    raw["estimators"].append({"name": "nested", "model": "decision_tree", "tune": {"trials": 2}})
    run_suite(parse_suite(raw), RunOptions(out=tmp_path))
    md = write_outputs(tmp_path) and (tmp_path / "leaderboard.md").read_text()
    assert "m (tuned, optimistic)" in md and "nested (tuned)" in md and "| plain |" in md
    assert "tune time" in md
    # tuned once on all rows: both folds share the study's outcome
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    m = [e["tuning"] for e, est in zip(rows["extra"], rows["estimator"], strict=True) if est == "m"]
    assert m[0]["best_params"] == m[1]["best_params"] and m[0]["n_complete"] == 3


def test_regression_tuning_minimises_a_loss(tmp_path):
    raw = {
        "name": "t",
        "cv": {"folds": 2},
        "metrics": {"classification": ["accuracy"], "regression": ["rmse", "r2"]},
        "datasets": [{"name": "d", "source": "sklearn:diabetes"}],
        "estimators": [{"name": "ridge", "model": "linear", "tune": {"trials": 6, "sampler": "random"}}],
    }
    run_suite(parse_suite(raw), RunOptions(out=tmp_path))
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    for extra in rows["extra"]:
        values = [h["value"] for h in extra["tuning"]["history"] if h["state"] == "COMPLETE"]
        assert extra["tuning"]["best_value"] == min(values)  # rmse: lower is better
    assert (rows["status"] == "ok").all() and rows["rmse"].notna().all()
    assert REGRESSION in TASKS and np.isfinite(rows["r2"]).all()


_WORKER = """
import sys, time
from harness.tuning import StudyPlan, parse_space, run_study
plan = StudyPlan(name="shared", storage=sys.argv[1], space=parse_space({"x": {"float": [0, 1]}}), metric="accuracy",
                 maximize=True, trials=12, pruner="none", seed=int(sys.argv[2]))
def evaluate(params, k, *_):
    time.sleep(0.1)
    return params["x"]
run_study(plan, evaluate, 1)
"""


def test_two_workers_share_one_study_and_its_budget(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="shared", storage=storage, direction="maximize")  # avoid a creation race
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, storage, str(i)], cwd=ROOT, env=env) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    finished = [t for t in trials if t.state.is_finished()]
    assert 12 <= len(finished) <= 13  # the budget is the study's, not each worker's (one trial may be in flight)
    assert len({t.number for t in trials}) == len(trials)


def _boosting_dataset(task: str, n: int = 400):
    from sklearn.datasets import make_classification, make_regression

    from harness.datasets import Dataset

    if task == CLASSIFICATION:
        X, y = make_classification(n, 6, n_informative=4, random_state=0)
    else:
        X, y = make_regression(n, 6, noise=10.0, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["c"] = np.random.default_rng(0).choice(["u", "v"], n).astype(object)
    return Dataset("boost", frame, y, task, ["c"], "test")


@pytest.mark.parametrize("model", ["lightgbm", "xgboost"])
@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_boosting_stops_early_on_a_slice_of_the_training_rows(model, task, monkeypatch):
    """A fast learning rate with 2000 rounds must stop far earlier, using only the rows it was given."""
    from harness.engine import fit_early_stopped
    from harness.registry import Resolver

    ds = _boosting_dataset(task)
    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "b", "model": model}],
        }
    )
    resolved = Resolver(suite).resolve("b", task).with_params({"n_estimators": 2000, "learning_rate": 0.5})
    model_ = build(resolved, Columns(ds.numeric, ds.categorical, ds.has_missing))
    rows = np.arange(0, 400, 2)  # the other half plays the inner test fold
    seen: list[int] = []
    real_fit_transform = type(model_[0]).fit_transform

    def spy(self, X, y=None, **kw):
        seen.extend(X.index.tolist())
        return real_fit_transform(self, X, y, **kw)

    monkeypatch.setattr(type(model_[0]), "fit_transform", spy)
    rounds = fit_early_stopped(model_, ds, rows, rounds=20, seed=0)
    assert rounds is not None and 1 <= rounds < 200
    assert set(seen) < set(rows.tolist())  # preprocessing fitted on the fit part of `rows` only
    assert len(seen) == len(rows) - round(0.1 * len(rows))
    model_.predict(ds.X.iloc[1::2])  # the fitted pipeline predicts as usual


def test_boosting_without_early_stopping_fits_every_round():
    from harness.engine import fit_early_stopped
    from harness.registry import Resolver

    ds = _boosting_dataset(CLASSIFICATION)
    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "b", "model": "lightgbm"}],
        }
    )
    model_ = build(
        Resolver(suite).resolve("b", CLASSIFICATION).with_params({"n_estimators": 30}),
        Columns(ds.numeric, ds.categorical, ds.has_missing),
    )
    assert fit_early_stopped(model_, ds, np.arange(400), rounds=0, seed=0) is None
    assert model_[-1].booster_.num_trees() == 30


def test_tuned_boosting_refits_with_the_rounds_early_stopping_kept(tmp_path):
    raw = {
        "name": "t",
        "cv": {"folds": 2},
        "metrics": {"classification": ["accuracy"]},
        "datasets": [{"name": "bc", "source": "sklearn:breast_cancer"}],
        "estimators": [
            {
                "name": "lgbm",
                "model": "lightgbm",
                "tune": {
                    "trials": 3,
                    "inner_folds": 2,
                    "pruner": "none",
                    "early_stopping_rounds": 10,
                    "space": {"n_estimators": {"int": [1500, 2000]}, "learning_rate": {"float": [0.3, 0.5]}},
                },
            }
        ],
    }
    run_suite(parse_suite(raw), RunOptions(out=tmp_path))
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    assert (rows["status"] == "ok").all()
    for extra in rows["extra"]:
        tuning = extra["tuning"]
        best = next(h for h in tuning["history"] if h["value"] == tuning["best_value"] and "best_rounds" in h)
        assert tuning["best_params"]["n_estimators"] == round(np.mean(best["best_rounds"])) < 1500


def _boosting_model(model: str, task: str, ds, **params):
    from harness.registry import Resolver

    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "b", "model": model}],
        }
    )
    # One thread: OpenMP pools spinning against the other pytest worker slow both by 50x.
    resolved = Resolver(suite).resolve("b", task).with_params({"n_jobs": 1, **params})
    return build(resolved, Columns(ds.numeric, ds.categorical, ds.has_missing))


@pytest.mark.parametrize("model", ["lightgbm", "xgboost"])
@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_boosting_reports_its_learning_curve_and_a_report_can_stop_the_fit(model, task):
    """Every round's early-stopping score reaches `report` (lower is better: logloss / l2); raising stops the fit."""
    from harness.engine import fit_early_stopped

    ds = _boosting_dataset(task)
    seen: list[tuple[int, float, bool]] = []

    def report(round_, value, higher_is_better):
        seen.append((round_, value, higher_is_better))
        if round_ == 16:
            raise optuna.TrialPruned()

    model_ = _boosting_model(model, task, ds, n_estimators=200, learning_rate=0.05)
    with pytest.raises(optuna.TrialPruned):
        fit_early_stopped(model_, ds, np.arange(400), rounds=50, seed=0, report=report)
    assert [r for r, _, _ in seen] == list(range(1, 17))
    assert not any(h for _, _, h in seen) and all(np.isfinite(v) for _, v, _ in seen)
    assert seen[-1][1] < seen[0][1]  # the slice's loss falls as boosting learns

    seen.clear()
    fitted = _boosting_model(model, task, ds, n_estimators=30, learning_rate=0.05)
    assert fit_early_stopped(fitted, ds, np.arange(400), rounds=50, seed=0, report=lambda *a: seen.append(a)) == 30
    assert len(seen) == 30  # an unpruned fit reports every round and ends as usual


class _FakeTrial:
    def __init__(self, prune_at: int | None = None):
        self.values: dict[int, float] = {}
        self.prune_at = prune_at

    def report(self, value, step):
        self.values[step] = value

    def should_prune(self):
        return self.prune_at is not None and max(self.values) >= self.prune_at


@pytest.mark.parametrize("maximize", [True, False])
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_in_fit_reports_go_to_checkpoint_steps_oriented_like_the_study(maximize, higher_is_better):
    from harness.tuning import ROUND_CHECKPOINTS, _reporter

    assert ROUND_CHECKPOINTS[:8] == (8, 11, 16, 23, 32, 45, 64, 91) and ROUND_CHECKPOINTS[-1] == 65536
    trial, steps = _FakeTrial(), []
    report = _reporter(trial, 2, maximize, steps)
    for round_ in range(1, 70):
        report(round_, 0.25, higher_is_better)
    report(80, float("nan"), higher_is_better)  # not a checkpoint anyway; NaN is never reported
    width = len(ROUND_CHECKPOINTS)
    assert sorted(trial.values) == steps == [2 * width + j for j in range(7)]  # rounds 8 .. 64 of fold 2
    assert set(trial.values.values()) == {0.25 if higher_is_better == maximize else -0.25}
    pruning = _reporter(_FakeTrial(prune_at=2 * width + 2), 2, maximize, [])
    with pytest.raises(optuna.TrialPruned):
        for round_ in range(1, 70):
            pruning(round_, 0.25, higher_is_better)
    assert round_ == 16  # the third checkpoint


def test_boosting_trials_are_pruned_inside_their_first_fit(tmp_path):
    """With early stopping on, the pruner sees learning curves: pruned trials stop before their first fit ends."""
    from harness.engine import tune_on_rows
    from harness.registry import Resolver
    from harness.tuning import ROUND_CHECKPOINTS

    ds = _boosting_dataset(CLASSIFICATION, n=600)
    suite = parse_suite(
        {
            "name": "t",
            "datasets": [{"name": "d", "source": "sklearn:iris"}],
            "estimators": [{"name": "b", "model": "lightgbm"}],
        }
    )
    resolved = Resolver(suite).resolve("b", CLASSIFICATION)
    space = {"n_estimators": {"int": [100, 300]}, "learning_rate": {"float": [0.001, 0.3], "log": True}}
    plan = _plan(
        tmp_path, space, metric="roc_auc", sampler="random", pruner="median", trials=16, early_stopping_rounds=20
    )
    outcome = tune_on_rows(ds, resolved, np.arange(600), plan, threads=1)
    study = optuna.load_study(study_name="s", storage=plan.storage)
    width = len(ROUND_CHECKPOINTS)
    steps = [set(t.intermediate_values) for t in study.trials]
    assert all(steps) and all(s <= set(range(3 * width)) for s in steps)  # only in-fit checkpoint steps
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all({s // width for s in t.intermediate_values} == {0, 1, 2} for t in complete)  # all three folds
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert outcome.n_pruned == len(pruned) >= 1
    assert any(max(t.intermediate_values) < width for t in pruned)  # stopped inside the first inner fit
    assert all(v < 0 for t in study.trials for v in t.intermediate_values.values())  # -logloss, maximized
