"""The suite file's JSON Schema, generated from the pydantic model in `spec.py`.

Why generated: the schema an editor checks a suite against must say what `harness
validate` says, and other modules add suite keys all the time; a hand-written schema
would drift. `suite_schema()` takes pydantic's `model_json_schema()` of `Suite` and adds
what pydantic cannot see: a description of every key (`DESCRIPTIONS`, worded as in the
README's suite reference; `tests/test_schema.py` checks the two agree), the choices that
field validators check against constants (`cv.scheme`, samplers, metric names), and the
pattern of plain names. Only the shape is expressible here: cross-field checks (a
champion that is an estimator, `primary` in `metrics`) stay with `harness validate`.

`suites/suite.schema.json` is this function's output, committed so that editors find it
next to the suites (`# yaml-language-server: $schema=./suite.schema.json`); a test keeps
it equal to `harness schema`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.metrics import CLASSIFICATION, METRICS, REGRESSION
from harness.spec import _PLAIN_NAME, SCHEMES, Suite
from harness.tuning import MODES, PRUNERS, SAMPLERS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_TITLE = "harness suite"

# Key path -> description. A path joins keys with "."; "[]" stands for any item of a list
# (datasets[].source). One sentence each, in the README's words.
DESCRIPTIONS: dict[str, str] = {
    "name": "The suite's name; outputs go to reports/<name>/ (a plain file name).",
    "description": "Free text about the suite.",
    "seed": "Seed of the splits and of every estimator's random_state.",
    "seeds": "Several seeds: everything reruns per seed (splits and random_state); overrides seed.",
    "cv": "How rows are split into folds; identical for every estimator on a dataset.",
    "cv.scheme": "stratified_kfold, kfold, group_kfold or holdout.",
    "cv.folds": "Number of folds.",
    "cv.repeats": "Repeats of the k-fold split (RepeatedKFold), or holdout splits.",
    "cv.group": "group_kfold: the group column (not a feature).",
    "cv.test_size": "holdout: the share of rows held out for testing.",
    "cv.valid_size": "holdout: a share of all rows carved from the training part and not fitted on.",
    "metrics": "Metrics per task; the first of each list is the primary metric unless primary names another.",
    "metrics.classification": "Classification metrics (harness list metrics).",
    "metrics.regression": "Regression metrics (harness list metrics).",
    "primary": "The metric that ranks the leaderboard, per task (default: the first of metrics).",
    "primary.classification": "Primary classification metric; must be in metrics.classification.",
    "primary.regression": "Primary regression metric; must be in metrics.regression.",
    "timeout_s": "Time limit in seconds of every task (fold, study, pretraining).",
    "tuning": "Suite-wide tuning settings.",
    "tuning.max_total_s": "Wall-clock cap in seconds on all tuning of the suite.",
    "analysis": "How the reports test differences (see Statistics).",
    "analysis.alpha": "Significance level of the tests.",
    "analysis.rope": "Region of practical equivalence per metric, in the metric's units.",
    "analysis.failures": "A model that failed on a dataset: ranked with the dummy baseline's score, or dropped.",
    "explain": "SHAP explanations of the first folds of every estimator.",
    "explain.enabled": "false turns SHAP explanations off.",
    "explain.folds": "How many folds (of the first repeat of the first seed) are explained.",
    "explain.budget_share": "Share of an explained fold's training time its explanation may spend.",
    "explain.min_s": "Seconds an explained fold may spend at least.",
    "explain.max_rows": "Most test rows explained per fold.",
    "robustness": "Rescore every fold's model on noisy copies of its test rows.",
    "robustness.levels": "Noise levels, in units of the training part's standard deviation.",
    "champion": "The production model: harness check fails when it is significantly worse than the best.",
    "datasets": "Datasets, and OpenML suites (each expands into its datasets).",
    "datasets[].name": "The dataset's name (a plain name; --dataset NAME selects it).",
    "datasets[].source": "sklearn:NAME, synthetic:KIND, openml:ID or openml:NAME@VERSION, or a .csv/.parquet path relative to the suite file.",
    "datasets[].target": "The target column (required for files).",
    "datasets[].task": "classification or regression; inferred from the target otherwise.",
    "datasets[].categorical": "Columns to treat as categorical (non-numeric columns are anyway).",
    "datasets[].drop": "Columns to leave out.",
    "datasets[].params": "Parameters of a synthetic: source (make_classification, ...).",
    "datasets[].reference": "Another dataset of the suite this one is checked against for shift at the start of each run.",
    "datasets[].inf": "error (default) refuses infinite values; missing reads them as missing values.",
    "datasets[].dtype": "float64, or float32 to halve the memory of numeric features.",
    "datasets[].openml_suite": "An OpenML benchmark suite id or alias; expands into one dataset per suite dataset.",
    "datasets[].max_rows": "OpenML suite: skip datasets with more rows.",
    "datasets[].max_features": "OpenML suite: skip datasets with more features (the target counts).",
    "estimators": "Estimators, each fitted on every dataset's folds.",
    "estimators[].name": "The estimator's name (a plain name; --estimator NAME selects it).",
    "estimators[].model": "A registry name (harness list estimators) or an allow-listed import path.",
    "estimators[].params": "Constructor parameters, checked before anything is fitted.",
    "estimators[].tasks": "Limit the estimator to these tasks; skipped elsewhere.",
    "estimators[].timeout_s": "Time limit in seconds of this estimator's tasks.",
    "estimators[].preprocess": "Overrides of the preprocessing the estimator's tags choose.",
    "estimators[].preprocess.scale": "Standard-scale numeric columns.",
    "estimators[].preprocess.impute": "Median-impute numeric columns.",
    "estimators[].preprocess.categorical": "onehot, ordinal or native categorical columns.",
    "estimators[].tune": "Optuna tuning of this estimator (see Tuning).",
    "estimators[].tune.trials": "Trials per study (default 20 when neither trials nor timeout_s is given).",
    "estimators[].tune.timeout_s": "Time budget in seconds per study.",
    "estimators[].tune.sampler": "tpe, random, grid, cmaes or qmc.",
    "estimators[].tune.pruner": "median, successive_halving, hyperband or none.",
    "estimators[].tune.inner_folds": "Inner folds that score each trial.",
    "estimators[].tune.metric": "The metric tuned (default: the task's primary metric).",
    "estimators[].tune.mode": "nested (default: a study per outer fold) or tune_then_cv (optimistic).",
    "estimators[].tune.space": "Search space: {int: [low, high]}, {float: [low, high]} (log, step) or {categorical: [...]} per parameter.",
    "estimators[].tune.early_stopping_rounds": "LightGBM/XGBoost inside trials: rounds without improvement before stopping (0: off).",
    "estimators[].tune.workers": "tune_then_cv: tasks running the study's trials at once.",
    "estimators[].pretrain": "Start the torch MLP from weights fitted on another dataset of the suite (same features).",
    "estimators[].pretrain.dataset": "The pretraining dataset (a suite dataset with the same features).",
    "estimators[].pretrain.params": "Parameter overrides of the pretraining fit (e.g. lr).",
    "estimators[].finetune": "With pretrain: all layers, or head only (a frozen body).",
    # Keys added in issues 17 and 18 (their README sections hold the details).
    "explain.method": "shap (default), lime, or both (lime needs the harness[lime] extra).",
    "robustness.attacks": "noise (random), pgd (gradient) and/or blackbox (query) attacks.",
    "robustness.max_rows": "Most test rows attacked per fold (a seeded sample).",
    "robustness.queries": "blackbox: model evaluations per row and level.",
    "robustness.steps": "pgd: gradient steps per level.",
    "robustness.max_s": "Seconds of wall time per fold for all attacks.",
    "learning_curve": "Refit each fold on nested, stratified shares of its training part (every estimator).",
    "learning_curve.fractions": "Shares of the training part, in (0, 1]; 1.0 is always included.",
    "estimators[].learning_curve": "This estimator's learning curve, overriding the suite's.",
    "estimators[].learning_curve.fractions": "Shares of the training part, in (0, 1]; 1.0 is always included.",
    "estimators[].curve": "A validation curve: train and test scores for each value of one parameter.",
    "estimators[].curve.param": "The estimator parameter the curve varies.",
    "estimators[].curve.values": "The parameter's values (distinct; a fit each).",
    "estimators[].resample": "Rebalance the classes of every training part with imbalanced-learn (classification).",
    "estimators[].resample.method": "smote, random_over or random_under.",
    "estimators[].resample.sampling_strategy": "imbalanced-learn's sampling_strategy: a ratio or auto, minority, ...",
    "estimators[].resample.k_neighbors": "smote: neighbours that new samples are drawn between (default 5).",
    "estimators[].resample.replacement": "random_under: draw with replacement.",
    "estimators[].resample.shrinkage": "random_over: a smoothed bootstrap's shrinkage.",
    "estimators[].resample.random_state": "The resampler's seed (default: the suite's).",
    "estimators[].augment": "torch MLP only: augment training batches.",
    "estimators[].augment.noise": "Gaussian noise, in training standard deviations of each numeric input.",
    "estimators[].augment.mixup": "mixup's Beta(alpha, alpha) parameter; 0 is off.",
    "estimators[].adversarial_training": "torch MLP only: train on PGD adversarial examples.",
    "estimators[].adversarial_training.eps": "L-infinity budget, in training standard deviations of each numeric input.",
    "estimators[].adversarial_training.steps": "PGD steps per adversarial example.",
}

# Key path -> the choices a field validator checks, where the model only says "string".
METRIC_NAMES = list(METRICS)
ENUMS: dict[str, list[str]] = {
    "cv.scheme": list(SCHEMES),
    "metrics.classification[]": [m for m, v in METRICS.items() if v.task == CLASSIFICATION],
    "metrics.regression[]": [m for m, v in METRICS.items() if v.task == REGRESSION],
    "estimators[].tune.sampler": list(SAMPLERS),
    "estimators[].tune.pruner": list(PRUNERS),
    "estimators[].tune.mode": list(MODES),
    "estimators[].tune.metric": METRIC_NAMES,
}
# Key path -> a metric-name key set (analysis.rope: {accuracy: 0.01}).
METRIC_KEYED = ("analysis.rope",)
PLAIN_NAMES = ("name", "datasets[].name", "estimators[].name")


def suite_schema() -> dict[str, Any]:
    """The suite's JSON Schema (draft 2020-12): pydantic's, with descriptions, choices and name patterns."""
    schema = copy.deepcopy(Suite.model_json_schema(mode="validation"))
    defs = schema.get("$defs", {})
    for path, node in key_nodes(schema, defs):
        node.pop("title", None)  # pydantic's "Timeout S": the key and its description say more
        if path in DESCRIPTIONS:
            node["description"] = DESCRIPTIONS[path]
        if path in ENUMS:
            _string_node(node, defs)["enum"] = ENUMS[path]
        if path in PLAIN_NAMES:
            _string_node(node, defs).update(pattern=f"^(?:{_PLAIN_NAME.pattern})$", maxLength=100)
        if path in METRIC_KEYED:
            node["propertyNames"] = {"enum": METRIC_NAMES}
    return {
        "$schema": DIALECT,
        "title": SCHEMA_TITLE,
        "description": "A harness benchmark suite: datasets, estimators, cross-validation and metrics "
        "(validate completely with `harness validate SUITE`).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    """`harness schema`'s output and suites/suite.schema.json's content: stable, indented JSON."""
    return json.dumps(suite_schema(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def key_nodes(schema: dict[str, Any], defs: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key path, its schema node) for every key of the suite, and every list's items ("x[]").

    Nodes inside `$defs` are yielded in place, so what the caller sets lands in the schema.
    """
    yield from _walk(schema, "", defs, depth=0)


def _walk(node: dict[str, Any], path: str, defs: dict[str, Any], depth: int) -> Iterator[tuple[str, dict[str, Any]]]:
    if depth > 50:  # the suite model is not recursive; a guard all the same
        return
    for branch in _branches(node, defs):
        for key, child in branch.get("properties", {}).items():
            child_path = f"{path}.{key}" if path else key
            yield child_path, child
            yield from _walk(child, child_path, defs, depth + 1)
        items = branch.get("items")
        if isinstance(items, dict):
            yield f"{path}[]", items
            yield from _walk(items, f"{path}[]", defs, depth + 1)


def _branches(node: dict[str, Any], defs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The node itself and what it stands for: its $ref target and anyOf/oneOf/allOf members."""
    yield node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        yield from _branches(defs[ref.removeprefix("#/$defs/")], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        for member in node.get(key, []):
            yield from _branches(member, defs)


def _string_node(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The string member of `node` (itself, or the string branch of `str | None`)."""
    for branch in _branches(node, defs):
        if branch.get("type") == "string":
            return branch
    return node


def is_schema_file(path: Path) -> bool:
    """A file `harness schema --out` wrote (JSON titled "harness suite"): the only kind it writes over."""
    try:
        if path.stat().st_size > 16 * 2**20:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("title") == SCHEMA_TITLE
