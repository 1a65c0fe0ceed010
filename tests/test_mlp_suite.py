"""The torch MLP inside suites: fold preprocessing, stored learning curves, pretraining and fine-tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from harness.errors import SuiteError
from harness.runner import RunOptions, prepare, run_suite
from harness.spec import parse_suite
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
TINY = {"hidden_sizes": [32], "max_epochs": 15, "patience": 5, "batch_size": 32}


def test_mlp_on_categoricals_and_missing_values_keeps_its_learning_curve(tmp_path):
    suite = parse_suite(
        {
            "name": "t",
            "cv": {"folds": 3},
            "metrics": {"classification": ["accuracy", "log_loss"], "regression": ["r2"]},
            "datasets": [
                {
                    "name": "penguins",
                    "source": str(ROOT / "datasets/penguins.csv"),
                    "target": "species",
                    "drop": ["year"],
                },
                {"name": "diabetes", "source": "sklearn:diabetes"},
            ],
            "estimators": [{"name": "mlp", "model": "mlp", "params": TINY}],
        }
    )
    summary = run_suite(suite, RunOptions(out=tmp_path))
    assert summary.exit_code == 0
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    assert (rows["status"] == "ok").all()
    assert rows.loc[rows["dataset"] == "penguins", "accuracy"].min() > 0.8
    for extra in rows["extra"]:
        history = extra["history"]
        assert 1 <= len(history) <= 15 and {"epoch", "train_loss", "valid_loss", "lr"} <= set(history[0])


def _split_csvs(tmp_path: Path, n_source: int = 1500, n_target: int = 150) -> tuple[Path, Path]:
    X, y = make_classification(n_samples=n_source + n_target, n_features=12, n_informative=8, random_state=3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(12)]).assign(y=y)
    source, target = tmp_path / "source.csv", tmp_path / "target.csv"
    frame.iloc[:n_source].to_csv(source, index=False)
    frame.iloc[n_source:].to_csv(target, index=False)
    return source, target


def _pretrain_suite(source: Path, target: Path, finetune: str = "all") -> dict:
    return {
        "name": "t",
        "cv": {"folds": 3},
        "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
        "datasets": [
            {"name": "source", "source": str(source), "target": "y"},
            {"name": "target", "source": str(target), "target": "y"},
        ],
        "estimators": [
            {"name": "scratch", "model": "mlp", "params": TINY},
            {
                "name": "tuned_in",
                "model": "mlp",
                "params": {**TINY, "lr": 3e-4},
                "pretrain": {"dataset": "source", "params": {"lr": 1e-3, "max_epochs": 30}},
                "finetune": finetune,
            },
        ],
    }


@pytest.mark.parametrize("finetune", ["all", "head"])
def test_pretrained_mlp_runs_on_the_target_and_is_skipped_on_its_source(tmp_path, finetune):
    source, target = _split_csvs(tmp_path)
    suite = parse_suite(_pretrain_suite(source, target, finetune))
    run_suite(suite, RunOptions(out=tmp_path / "out"))
    with Store(tmp_path / "out" / "results.db") as store:
        rows = store.results()
    ft = rows[rows["estimator"] == "tuned_in"].set_index("dataset")
    assert set(ft.loc["source", "status"]) == {"skipped"}
    assert "its pretraining dataset" in ft.loc["source", "error"].iloc[0]
    assert (ft.loc["target", "status"] == "ok").all()
    weights = list((tmp_path / "out" / "pretrained").glob("*.pt"))
    assert len(weights) == 1  # pretrained once, shared by the folds
    assert ft.loc["target", "accuracy"].mean() > 0.7
    # a rerun reuses the weights file and computes nothing
    summary = run_suite(suite, RunOptions(out=tmp_path / "out"))
    assert sum(summary.computed.values()) == 0


def test_pretraining_data_that_overlaps_the_evaluated_rows_is_refused(tmp_path):
    source, target = _split_csvs(tmp_path)
    leaky = tmp_path / "leaky.csv"
    # Copy the rows' text, as a user's leaky file would: a parse-and-rewrite round trip is not
    # exact on every pandas release (1-ulp differences), and the check compares values exactly.
    leaky.write_text(source.read_text() + "".join(target.read_text().splitlines(keepends=True)[1:11]))
    with pytest.raises(SuiteError, match="shares 10 rows with dataset 'target'"):
        prepare(parse_suite(_pretrain_suite(leaky, target)))


def test_only_the_mlp_can_be_pretrained(tmp_path):
    source, target = _split_csvs(tmp_path)
    raw = _pretrain_suite(source, target)
    raw["estimators"][1]["model"] = "random_forest"
    raw["estimators"][1]["params"] = {}
    with pytest.raises(SuiteError, match=r"estimators\[1\]\.pretrain: only the torch MLP"):
        prepare(parse_suite(raw))


def test_changing_the_source_changes_the_keys(tmp_path):
    source, target = _split_csvs(tmp_path)
    keys1 = {
        t.key for t in prepare(parse_suite(_pretrain_suite(source, target))).tasks if t.resolved.spec.name == "tuned_in"
    }
    frame = pd.read_csv(source)
    frame.loc[0, "f0"] += 1.0
    frame.to_csv(source, index=False)
    keys2 = {
        t.key for t in prepare(parse_suite(_pretrain_suite(source, target))).tasks if t.resolved.spec.name == "tuned_in"
    }
    assert keys1.isdisjoint(keys2)
    assert np.isfinite(frame["f0"]).all()


FAST = {**TINY, "max_epochs": 8, "n_threads": 1}


def _augment_suite(**options) -> dict:
    return {
        "name": "t",
        "cv": {"folds": 2},
        "metrics": {"classification": ["accuracy"], "regression": ["r2"]},
        "explain": {"enabled": False},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [
            {"name": "plain", "model": "mlp", "params": FAST},
            {"name": "robust", "model": "mlp", "params": FAST, **options},
        ],
    }


@pytest.mark.parametrize(
    ("options", "params"),
    [
        ({"augment": {"noise": 0.1, "mixup": 0.2}}, {"noise": 0.1, "mixup": 0.2}),
        ({"augment": {"mixup": 0.4}}, {"noise": 0.0, "mixup": 0.4}),
        ({"adversarial_training": {"eps": 0.1}}, {"adversarial_eps": 0.1, "adversarial_steps": 3}),
    ],
)
def test_augment_and_adversarial_training_keys_become_mlp_params(options, params):
    plan = prepare(parse_suite(_augment_suite(**options)))
    by_name = {t.resolved.spec.name: t for t in plan.tasks}
    assert params.items() <= by_name["robust"].resolved.params.items()
    assert not {"noise", "mixup", "adversarial_eps"} & set(by_name["plain"].resolved.params)
    plain = prepare(parse_suite(_augment_suite())).tasks
    assert {t.key for t in plain if t.resolved.spec.name == "plain"} == {
        t.key for t in plan.tasks if t.resolved.spec.name == "plain"
    }  # keys of estimators without the options stay as they were


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"augment": {"noise": 0.1}}, r"estimators\[1\]\.augment: only the torch MLP"),
        ({"adversarial_training": {"eps": 0.1}}, r"estimators\[1\]\.adversarial_training: only the torch MLP"),
    ],
)
def test_augment_keys_are_refused_for_other_models(options, message):
    raw = _augment_suite(**options)
    raw["estimators"][1].update(model="random_forest", params={})
    with pytest.raises(SuiteError, match=message):
        prepare(parse_suite(raw))


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"augment": {"noise": -1}}, "augment.noise"),
        ({"augment": {"blur": 1}}, "augment.blur"),
        ({"adversarial_training": {}}, "adversarial_training.eps"),
        ({"adversarial_training": {"eps": 0.1, "steps": 0}}, "adversarial_training.steps"),
    ],
)
def test_bad_augment_values_name_the_key(options, where):
    with pytest.raises(SuiteError, match=rf"estimators\[1\]\.{where}"):
        parse_suite(_augment_suite(**options))


def test_a_suite_with_adversarial_training_runs(tmp_path):
    suite = parse_suite(_augment_suite(augment={"noise": 0.05}, adversarial_training={"eps": 0.1, "steps": 2}))
    summary = run_suite(suite, RunOptions(out=tmp_path))
    assert summary.exit_code == 0
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    assert (rows["status"] == "ok").all() and rows["accuracy"].min() > 0.6
