"""The executor runs a task graph: needs first, failures passed on as rows, children stopped with the run."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import load_dataset
from harness.engine import (
    ERROR,
    OK,
    TIMEOUT,
    FoldResult,
    FoldTask,
    Graph,
    PretrainTask,
    StepResult,
    StudyTask,
    execute,
)
from harness.planner import study_plan
from harness.registry import Resolver
from harness.spec import DatasetSpec, parse_suite
from harness.splits import make_splits

ROOT = Path(__file__).resolve().parents[1]
ALLOW = ("sklearn", "harness", "tests")


def _suite(estimators: list[dict], tmp_path: Path):
    return parse_suite(
        {
            "name": "t",
            "cv": {"folds": 2},
            "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
            "datasets": [{"name": "iris", "source": "sklearn:iris"}],
            "estimators": estimators,
        },
        path=tmp_path / "t.yaml",
    )


def _folds(tmp_path: Path, estimator: dict, needs: tuple[str, ...] = (), timeout_s: float | None = None):
    suite = _suite([estimator], tmp_path)
    ds = load_dataset(DatasetSpec(name="iris", source="sklearn:iris"))
    resolved = Resolver(suite, ALLOW).resolve(estimator["name"], ds.task)
    splits = make_splits(ds, suite.cv, 0)
    folds = [
        FoldTask(f"{estimator['name']}-{s.fold}", ds, resolved, s, ["accuracy"], timeout_s=timeout_s, needs=needs)
        for s in splits
    ]
    return suite, ds, resolved, folds


def _study(tmp_path: Path, estimator: dict, timeout_s: float | None = None) -> tuple[StudyTask, list[FoldTask]]:
    suite, ds, resolved, _ = _folds(tmp_path, estimator)
    plan = study_plan(suite, ds, resolved, "cell-x", f"sqlite:///{tmp_path / 'studies.db'}", None)
    study = StudyTask("cell-x", ds, resolved, plan, timeout_s=timeout_s)
    _, _, _, folds = _folds(tmp_path, estimator, needs=("cell-x",))
    return study, folds


TUNED_TREE = {
    "name": "tree",
    "model": "decision_tree",
    "tune": {"mode": "tune_then_cv", "trials": 3, "inner_folds": 2, "space": {"max_depth": {"int": [1, 3]}}},
}


def test_folds_start_from_their_study_and_record_its_parameters(tmp_path):
    study, folds = _study(tmp_path, TUNED_TREE)
    results = list(execute([*folds, study]))  # plan order does not matter: needs do
    assert [r.kind for r in results] == ["study", "fold", "fold"]
    outcome = results[0].value
    assert results[0].status == OK and outcome.n_complete == 3
    for fold in results[1:]:
        assert fold.status == OK
        assert fold.extra["tuning"]["best_params"] == outcome.best_params
        assert fold.extra["tuning"]["mode"] == "tune_then_cv"


def test_a_failed_study_turns_its_folds_into_rows_naming_the_cause(tmp_path):
    broken = {
        "name": "broken",
        "model": "tests.estimators.RaisingClassifier",
        "tune": {"mode": "tune_then_cv", "trials": 2, "inner_folds": 2, "space": {"message": {"categorical": ["x"]}}},
    }
    study, folds = _study(tmp_path, broken)
    _, _, _, others = _folds(tmp_path, {"name": "tree", "model": "decision_tree"})
    results = list(execute([study, *folds, *others]))
    step = next(r for r in results if isinstance(r, StepResult))
    assert step.status == ERROR and "every trial failed (2); the first: ValueError: x" in step.error
    rows = {r.key: r for r in results if isinstance(r, FoldResult)}
    for fold in folds:
        assert rows[fold.key].status == ERROR
        assert rows[fold.key].error.startswith("tune_then_cv study of broken on iris failed: StudyFailed: every trial")
        assert "Traceback" in rows[fold.key].detail
    assert all(rows[t.key].status == OK for t in others)  # the suite goes on


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_study_past_its_time_limit_is_killed_and_its_folds_time_out(tmp_path, n_jobs):
    sleepy = {
        "name": "sleepy",
        "model": "tests.estimators.SleepyClassifier",
        "tune": {"mode": "tune_then_cv", "trials": 3, "space": {"seconds": {"float": [30, 40]}}},
    }
    study, folds = _study(tmp_path, sleepy, timeout_s=1.0)
    start = time.perf_counter()
    results = list(execute([study, *folds], n_jobs=n_jobs))
    assert time.perf_counter() - start < 20, "the study was not stopped at its limit"
    assert [r.status for r in results] == [TIMEOUT] * 3
    assert all(r.error == "tune_then_cv study of sleepy on iris timed out after 1 s" for r in results[1:])


def test_pretrained_weights_reach_the_folds_as_bytes(tmp_path):
    tiny = {"hidden_sizes": [8], "max_epochs": 3, "batch_size": 32, "early_stopping": False}
    _, ds, resolved, folds = _folds(tmp_path, {"name": "mlp", "model": "mlp", "params": tiny}, needs=("p",))
    pretrain = PretrainTask("p", ds, resolved)
    results = list(execute([pretrain, *folds]))
    weights = results[0].value
    assert results[0].status == OK and isinstance(weights, bytes) and len(weights) > 100
    import torch

    assert torch.load(io.BytesIO(weights), weights_only=True)["layer_sizes"] == [4, 8, 3]
    assert [r.status for r in results[1:]] == [OK, OK]


def test_known_results_stand_in_for_tasks_and_unknown_needs_are_a_bug(tmp_path):
    study, folds = _study(tmp_path, TUNED_TREE)
    from harness.tuning import StudyOutcome

    done = {"cell-x": study.result(OK, value=StudyOutcome({"max_depth": 1}, 0.9, 3, 0, 0, 0.1))}
    results = list(execute(folds, done=done))
    assert [r.extra["tuning"]["best_params"] for r in results] == [{"max_depth": 1}] * 2
    with pytest.raises(ValueError, match="need results nobody computes"):
        Graph(folds)


def test_closing_the_results_stops_every_running_child(tmp_path):
    """What Ctrl-C or SIGTERM does to a run: the fits in flight are killed, not left to finish."""
    mark = tmp_path / "mark"
    _, _, _, folds = _folds(
        tmp_path, {"name": "m", "model": "tests.estimators.MarkingClassifier", "params": {"mark": str(mark)}}
    )
    _, _, _, quick = _folds(tmp_path, {"name": "tree", "model": "decision_tree"})
    results = execute([*quick, *folds], n_jobs=4)
    first = next(results)
    assert first.status == OK
    results.close()  # both marking fits are running (2 s each)
    time.sleep(3)
    assert not mark.exists(), "a child kept fitting after the run stopped"


def test_a_child_that_dies_becomes_an_error_row(tmp_path):
    _, _, _, folds = _folds(tmp_path, {"name": "exit", "model": "tests.estimators.ExitingClassifier"}, timeout_s=30)
    results = list(execute(folds[:1], n_jobs=2))
    assert results[0].status == ERROR and "worker process died (exit code 7)" in results[0].error


def test_results_carry_their_identity(tmp_path):
    _, ds, resolved, folds = _folds(tmp_path, {"name": "tree", "model": "decision_tree"})
    for n_jobs in (1, 2):
        by_key = {t.key: t for t in folds}
        for result in execute(folds, n_jobs=n_jobs):
            task = by_key[result.key]
            assert result.config == resolved.config() and result.fingerprint == ds.fingerprint
            assert result.seed == 0 and result.versions["scikit-learn"]
            assert result.worker and result.started <= result.finished
            np.testing.assert_array_equal(np.sort(result.test_index), np.sort(task.split.test))


def test_workers_are_reused_and_one_past_its_limit_is_replaced(tmp_path):
    _, _, _, sleepy = _folds(
        tmp_path, {"name": "s", "model": "tests.estimators.SleepyClassifier", "params": {"seconds": 60}}, timeout_s=1
    )
    _, _, _, quick = _folds(tmp_path, {"name": "tree", "model": "decision_tree"}, timeout_s=30)
    results = list(execute([sleepy[0], *quick], n_jobs=1))
    assert [r.status for r in results] == [TIMEOUT, OK, OK]
    killed, first, second = (r.worker for r in results)
    assert first == second, "the worker was not reused"
    assert killed != first, "the worker that ran past its limit was not replaced"
