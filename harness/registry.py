"""The estimator registry: suite names become scikit-learn estimators with fold-local preprocessing.

A registry entry names the classifier and regressor classes (as import paths, so
heavy libraries load only when used), their defaults, the preprocessing tags they
need and tiny parameters for tests. A suite may also name any estimator class by
import path; the path is checked against an allow-list of module prefixes before
anything is imported, and the class must be a scikit-learn estimator before it is
called. The allow-list never comes from the suite file (suites arrive in pull
requests); users extend it with `--allow-module` or HARNESS_ALLOW_MODULES.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.pipeline import make_pipeline as sk_make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.errors import EstimatorError
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.preprocess import Columns, Tags, make_pipeline
from harness.resample import sampler_tags, settings_for, with_sampler
from harness.spec import EstimatorSpec, Suite, did_you_mean
from harness.tuning import parse_space

DEFAULT_ALLOWED_MODULES = ("sklearn", "xgboost", "lightgbm", "harness")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")

LINEAR = Tags(scale=True, impute=True, categorical="onehot")
TREE = Tags(scale=False, impute=False, categorical="ordinal")
TREE_NEEDS_IMPUTE = Tags(scale=False, impute=True, categorical="ordinal")
NATIVE = Tags(scale=False, impute=False, categorical="native")
ENSEMBLE = Tags(scale=False, impute=False, categorical="none")  # members bring their own


@dataclass(frozen=True)
class Entry:
    """One registry name: a classifier and/or regressor and how to feed them."""

    name: str
    classifier: str | None
    regressor: str | None
    tags: Tags
    description: str
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # per task
    tiny: dict[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()  # params that name other estimators of the suite

    def class_path(self, task: str) -> str | None:
        return self.classifier if task == CLASSIFICATION else self.regressor


def _e(name, clf, reg, tags, desc, defaults=None, tiny=None, members=()):
    return Entry(name, clf, reg, tags, desc, defaults or {}, tiny or {}, members)


_SK = "sklearn."
REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in [
        _e(
            "linear",
            _SK + "linear_model.LogisticRegression",
            _SK + "linear_model.Ridge",
            LINEAR,
            "L2-regularised logistic regression / ridge",
            {CLASSIFICATION: {"max_iter": 1000}},
        ),
        _e(
            "lasso",
            _SK + "linear_model.LogisticRegression",
            _SK + "linear_model.Lasso",
            LINEAR,
            "L1-regularised logistic regression (saga) / lasso",
            {CLASSIFICATION: {"l1_ratio": 1.0, "solver": "saga", "max_iter": 2000}, REGRESSION: {"max_iter": 5000}},
            {"max_iter": 200},
        ),
        _e(
            "elastic_net",
            _SK + "linear_model.LogisticRegression",
            _SK + "linear_model.ElasticNet",
            LINEAR,
            "elastic-net logistic regression (saga) / elastic net",
            {
                CLASSIFICATION: {"l1_ratio": 0.5, "solver": "saga", "max_iter": 2000},
                REGRESSION: {"l1_ratio": 0.5, "max_iter": 5000},
            },
            {"max_iter": 200},
        ),
        _e(
            "svm",
            _SK + "svm.SVC",
            _SK + "svm.SVR",
            LINEAR,
            "RBF-kernel support vector machine (no probabilities: log_loss is missing, roc_auc uses decision scores)",
        ),
        _e(
            "linear_svm",
            _SK + "svm.LinearSVC",
            _SK + "svm.LinearSVR",
            LINEAR,
            "linear support vector machine",
            {CLASSIFICATION: {"max_iter": 5000}, REGRESSION: {"max_iter": 5000}},
        ),
        _e(
            "knn",
            _SK + "neighbors.KNeighborsClassifier",
            _SK + "neighbors.KNeighborsRegressor",
            LINEAR,
            "k nearest neighbours",
        ),
        _e(
            "decision_tree",
            _SK + "tree.DecisionTreeClassifier",
            _SK + "tree.DecisionTreeRegressor",
            TREE,
            "CART decision tree",
            tiny={"max_depth": 3},
        ),
        _e(
            "random_forest",
            _SK + "ensemble.RandomForestClassifier",
            _SK + "ensemble.RandomForestRegressor",
            TREE,
            "random forest",
            tiny={"n_estimators": 5, "max_depth": 4},
        ),
        _e(
            "extra_trees",
            _SK + "ensemble.ExtraTreesClassifier",
            _SK + "ensemble.ExtraTreesRegressor",
            TREE,
            "extremely randomised trees",
            tiny={"n_estimators": 5, "max_depth": 4},
        ),
        _e(
            "adaboost",
            _SK + "ensemble.AdaBoostClassifier",
            _SK + "ensemble.AdaBoostRegressor",
            TREE_NEEDS_IMPUTE,
            "AdaBoost over shallow trees",
            tiny={"n_estimators": 5},
        ),
        _e(
            "gradient_boosting",
            _SK + "ensemble.GradientBoostingClassifier",
            _SK + "ensemble.GradientBoostingRegressor",
            TREE_NEEDS_IMPUTE,
            "scikit-learn gradient boosting",
            tiny={"n_estimators": 5, "max_depth": 2},
        ),
        _e(
            "hist_gradient_boosting",
            _SK + "ensemble.HistGradientBoostingClassifier",
            _SK + "ensemble.HistGradientBoostingRegressor",
            NATIVE,
            "histogram gradient boosting (native categoricals)",
            tiny={"max_iter": 5},
        ),
        _e(
            "xgboost",
            "xgboost.XGBClassifier",
            "xgboost.XGBRegressor",
            NATIVE,
            "XGBoost (hist, native categoricals)",
            {
                CLASSIFICATION: {"tree_method": "hist", "enable_categorical": True},
                REGRESSION: {"tree_method": "hist", "enable_categorical": True},
            },
            {"n_estimators": 5, "max_depth": 2},
        ),
        _e(
            "lightgbm",
            "lightgbm.LGBMClassifier",
            "lightgbm.LGBMRegressor",
            NATIVE,
            "LightGBM (native categoricals)",
            {CLASSIFICATION: {"verbose": -1}, REGRESSION: {"verbose": -1}},
            {"n_estimators": 5, "num_leaves": 4},
        ),
        _e(
            "mlp",
            "harness.models.TorchMLPClassifier",
            "harness.models.TorchMLPRegressor",
            LINEAR,
            "torch multilayer perceptron (GPU when present; early stopping; fine-tuning via pretrain:)",
            tiny={"hidden_sizes": [16], "max_epochs": 5},
        ),
        _e(
            "bagging",
            _SK + "ensemble.BaggingClassifier",
            _SK + "ensemble.BaggingRegressor",
            TREE,
            "bagging (of a suite estimator named by `estimator`, default trees)",
            tiny={"n_estimators": 3},
            members=("estimator",),
        ),
        _e(
            "voting",
            _SK + "ensemble.VotingClassifier",
            _SK + "ensemble.VotingRegressor",
            ENSEMBLE,
            "voting over suite estimators named in `estimators` (soft voting by default)",
            {CLASSIFICATION: {"voting": "soft"}},
            members=("estimators",),
        ),
        _e(
            "stacking",
            _SK + "ensemble.StackingClassifier",
            _SK + "ensemble.StackingRegressor",
            ENSEMBLE,
            "stacking: `estimators` and `final_estimator` name suite estimators; out-of-fold scheme of scikit-learn",
            members=("estimators", "final_estimator"),
        ),
    ]
}


# ---------------------------------------------------------------- default search spaces


def _log(low: float, high: float, kind: str = "float") -> dict[str, Any]:
    return {kind: [low, high], "log": True}


_BOOSTING = {"learning_rate": _log(0.01, 0.3), "n_estimators": _log(50, 1000, "int")}
_FOREST = {
    "n_estimators": _log(50, 500, "int"),
    "max_features": {"float": [0.1, 1.0]},
    "min_samples_leaf": _log(1, 20, "int"),
}
# Per registry name: one space for both tasks, or {task: space} where the models differ.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "linear": {CLASSIFICATION: {"C": _log(1e-3, 1e3)}, REGRESSION: {"alpha": _log(1e-3, 1e3)}},
    "lasso": {CLASSIFICATION: {"C": _log(1e-3, 1e2)}, REGRESSION: {"alpha": _log(1e-4, 10)}},
    "elastic_net": {
        CLASSIFICATION: {"C": _log(1e-3, 1e2), "l1_ratio": {"float": [0.05, 0.95]}},
        REGRESSION: {"alpha": _log(1e-4, 10), "l1_ratio": {"float": [0.05, 0.95]}},
    },
    "svm": {"C": _log(1e-2, 1e3), "gamma": _log(1e-4, 1.0)},
    "linear_svm": {"C": _log(1e-3, 1e2)},
    "knn": {"n_neighbors": _log(1, 50, "int"), "weights": {"categorical": ["uniform", "distance"]}},
    "decision_tree": {"max_depth": {"int": [2, 20]}, "min_samples_leaf": _log(1, 50, "int")},
    "random_forest": _FOREST,
    "extra_trees": _FOREST,
    "adaboost": {"n_estimators": _log(25, 400, "int"), "learning_rate": _log(0.01, 2.0)},
    "gradient_boosting": {
        **_BOOSTING,
        "n_estimators": _log(50, 500, "int"),
        "max_depth": {"int": [2, 8]},
        "subsample": {"float": [0.5, 1.0]},
    },
    "hist_gradient_boosting": {
        "learning_rate": _log(0.01, 0.3),
        "max_leaf_nodes": _log(8, 128, "int"),
        "min_samples_leaf": _log(5, 100, "int"),
        "l2_regularization": _log(1e-6, 10.0),
    },
    "xgboost": {
        **_BOOSTING,
        "max_depth": {"int": [2, 10]},
        "subsample": {"float": [0.5, 1.0]},
        "colsample_bytree": {"float": [0.5, 1.0]},
        "min_child_weight": _log(1e-2, 10.0),
        "reg_lambda": _log(1e-3, 10.0),
    },
    "lightgbm": {
        **_BOOSTING,
        "num_leaves": _log(8, 256, "int"),
        "min_child_samples": _log(5, 100, "int"),
        "colsample_bytree": {"float": [0.5, 1.0]},
        "reg_lambda": _log(1e-3, 10.0),
    },
    "bagging": {"n_estimators": _log(5, 100, "int"), "max_samples": {"float": [0.5, 1.0]}},
    "mlp": {
        "lr": _log(1e-4, 1e-2),
        "weight_decay": _log(1e-6, 1e-2),
        "dropout": {"float": [0.0, 0.5]},
        "hidden_sizes": {"categorical": [[128], [256, 256], [512, 256], [256, 256, 256]]},
        "batch_size": {"categorical": ["auto", 128, 256, 512]},  # "auto": the default (several steps per epoch)
    },
}


def default_space(name: str, task: str) -> dict[str, Any]:
    """The registry's search space for a name and task ({} for import paths and ensembles)."""
    space = DEFAULT_SPACES.get(name, {})
    return dict(space.get(task, {})) if set(space) <= {CLASSIFICATION, REGRESSION} else dict(space)


# ---------------------------------------------------------------- import paths


def allowed_modules(extra: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """Default prefixes, plus HARNESS_ALLOW_MODULES (comma separated), plus `extra`."""
    env = [m.strip() for m in os.environ.get("HARNESS_ALLOW_MODULES", "").split(",") if m.strip()]
    return tuple(dict.fromkeys([*DEFAULT_ALLOWED_MODULES, *env, *extra]))


def _is_allowed(path: str, allowed: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in allowed)


def import_estimator_class(path: str, allowed: tuple[str, ...]) -> type:
    """Import `pkg.mod.Class` only after the allow-list check; the result must be an estimator class."""
    if not _DOTTED.fullmatch(path):
        raise EstimatorError(
            f"'{path}' is neither a registry name{did_you_mean(path, REGISTRY)} nor a dotted import path"
        )
    if not _is_allowed(path, allowed):
        raise EstimatorError(
            f"import path '{path}' is outside the allowed modules ({', '.join(allowed)}); "
            "allow it with --allow-module or HARNESS_ALLOW_MODULES"
        )
    module_name, _, cls_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EstimatorError(f"cannot import module '{module_name}': {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        public = [n for n in dir(module) if not n.startswith("_")]
        raise EstimatorError(f"module '{module_name}' has no '{cls_name}'{did_you_mean(cls_name, public)}")
    if not (inspect.isclass(cls) and issubclass(cls, BaseEstimator)):
        raise EstimatorError(f"'{path}' is not a scikit-learn estimator class")
    return cls


def _class(path: str) -> type:
    module_name, _, cls_name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), cls_name)


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    """A suite estimator resolved for one task: what to build, and its config for keys."""

    spec: EstimatorSpec
    task: str
    cls_path: str
    params: dict[str, Any]
    tags: Tags
    members: dict[str, Any]  # member param -> Resolved | list[Resolved]
    skipped: str | None = None  # why this estimator does not run on this task
    tune: dict[str, Any] | None = None  # TuneSpec fields with the full (default + suite) space
    resample: dict[str, Any] | None = None  # the `resample:` settings (harness.resample), classification only

    def config(self) -> dict[str, Any]:
        """JSON-ready identity of the estimator: enters result keys."""
        members = {k: [m.config() for m in v] if isinstance(v, list) else v.config() for k, v in self.members.items()}
        out = {"class": self.cls_path, "params": self.params, "tags": self.tags.as_dict(), "members": members}
        if self.tune is not None:  # how many workers share a study is how it runs, not what (like --n-jobs)
            out["tune"] = {k: v for k, v in self.tune.items() if k != "workers"}
        if self.resample is not None:  # only when set: keys of estimators without it stay as they were
            out["resample"] = self.resample
        return out

    def with_params(self, params: dict[str, Any]) -> Resolved:
        """The same estimator with some parameters replaced (a tuned configuration)."""
        return replace(self, params={**self.params, **params})


class Resolver:
    """Resolves a suite's estimators per task, checking names, members and classes."""

    def __init__(self, suite: Suite, allowed: tuple[str, ...] = DEFAULT_ALLOWED_MODULES):
        self.suite = suite
        self.allowed = allowed
        self._by_name = {e.name: e for e in suite.estimators}

    def resolve(self, name: str, task: str, _stack: tuple[str, ...] = ()) -> Resolved:
        resolved = self._resolve(name, task, _stack)
        spec = resolved.spec
        if spec.resample is not None and not resolved.skipped:
            settings = settings_for(spec.resample, task, self.suite.seed)
            resolved = replace(resolved, resample=settings, tags=sampler_tags(resolved.tags, settings))
        if (spec.augment is not None or spec.adversarial_training is not None) and not resolved.skipped:
            resolved = _mlp_training_options(resolved)
        if (
            spec.pretrain is not None
            and not resolved.skipped
            and not hasattr(_class(resolved.cls_path), "save_pretrained")
        ):
            raise EstimatorError("pretrain: only the torch MLP (model: mlp) can start from pretrained weights")
        if resolved.skipped or spec.tune is None:
            return resolved
        space = {**default_space(spec.model, task), **spec.tune.space}
        if not space:
            raise EstimatorError(f"tune.space: '{spec.model}' has no default search space; write one")
        _check_param_names(_class(resolved.cls_path), space, "tune.space")
        parsed = parse_space(space)
        if spec.tune.sampler == "grid":
            for pname, dist in parsed.items():
                try:
                    dist.grid()
                except ValueError as exc:
                    raise EstimatorError(f"tune.space.{pname}: {exc}") from None
        tune = spec.tune.model_dump() | {"space": {k: d.as_dict() for k, d in parsed.items()}}
        tune["trials"] = spec.tune.budget_trials
        return replace(resolved, tune=tune)

    def _resolve(self, name: str, task: str, _stack: tuple[str, ...] = ()) -> Resolved:
        spec = self._by_name[name]
        if name in _stack:
            raise EstimatorError(f"params: members form a cycle: {' -> '.join([*_stack, name])}")
        if spec.tasks is not None and task not in spec.tasks:
            return self._skip(spec, task, f"declared for {', '.join(spec.tasks)} only")
        entry = REGISTRY.get(spec.model)
        if entry is not None:
            return self._from_entry(spec, entry, task, (*_stack, name))
        try:
            cls = import_estimator_class(spec.model, self.allowed)
        except EstimatorError as exc:
            raise EstimatorError(f"model: {exc}") from None
        task_of_cls = _task_of(cls)
        if task_of_cls is not None and task_of_cls != task:
            return self._skip(spec, task, f"{cls.__name__} is a {task_of_cls} estimator")
        tags = import_path_tags(cls, spec.params).override(spec.preprocess)
        return Resolved(spec, task, spec.model, dict(spec.params), tags, {})

    def _from_entry(self, spec: EstimatorSpec, entry: Entry, task: str, stack: tuple[str, ...]) -> Resolved:
        cls_path = entry.class_path(task)
        if cls_path is None:
            return self._skip(spec, task, f"'{entry.name}' has no {task} variant")
        params = {**entry.defaults.get(task, {}), **spec.params}
        if spec.finetune is not None and hasattr(_class(cls_path), "save_pretrained"):
            params["finetune"] = spec.finetune
        members: dict[str, Any] = {}
        for key in entry.members:
            if key not in params:
                continue
            value = params.pop(key)
            names = value if isinstance(value, list) else [value]
            resolved = []
            for i, member in enumerate(names):
                where = f"params.{key}" + (f"[{i}]" if isinstance(value, list) else "")
                if not isinstance(member, str) or member not in self._by_name:
                    raise EstimatorError(
                        f"{where}: '{member}' is not an estimator of this suite{did_you_mean(member, self._by_name)}"
                    )
                r = self.resolve(member, task, stack)
                if r.skipped:
                    return self._skip(spec, task, f"member '{member}' is skipped ({r.skipped})")
                if r.resample is not None and key in ("estimator", "final_estimator"):  # bare models: no sampler
                    raise EstimatorError(
                        f"{where}: '{member}' resamples (resample:), but as {key} it is fitted bare inside "
                        f"'{spec.name}'; give `resample:` to '{spec.name}' itself"
                    )
                resolved.append(r)
            members[key] = resolved if isinstance(value, list) else resolved[0]
        if "estimators" in entry.members and "estimators" not in members:
            raise EstimatorError("params.estimators: name the suite estimators to combine")
        cls = _class(cls_path)
        if "random_state" in inspect.signature(cls).parameters and "random_state" not in params:
            params["random_state"] = self.suite.seed
        tags = entry.tags
        if "estimator" in members:  # bagging: the member's preprocessing runs once, outside the bags
            member_tags = members["estimator"].tags
            native = member_tags.categorical == "native"  # bags see arrays, not dtypes: use codes
            tags = replace(member_tags, categorical="ordinal") if native else member_tags
        return Resolved(spec, task, cls_path, params, tags.override(spec.preprocess), members)

    def _skip(self, spec: EstimatorSpec, task: str, why: str) -> Resolved:
        return Resolved(spec, task, spec.model, {}, Tags(), {}, skipped=why)


def _mlp_training_options(resolved: Resolved) -> Resolved:
    """`augment:` and `adversarial_training:` become the torch MLP's parameters; any other model refuses them."""
    accepted = inspect.signature(_class(resolved.cls_path)).parameters
    params = dict(resolved.params)
    for key in ("augment", "adversarial_training"):
        option = getattr(resolved.spec, key)
        if option is None:
            continue
        if not set(option.params()) <= set(accepted):
            raise EstimatorError(
                f"{key}: only the torch MLP (model: mlp) trains on augmented or adversarial batches; "
                f"'{resolved.spec.model}' does not"
            )
        params.update(option.params())
    return replace(resolved, params=params)


def import_path_tags(cls: type, params: dict[str, Any]) -> Tags:
    """What a class named by import path gets: only what the data requires, so its scores are scikit-learn's.

    No scaling (a tree's thresholds, a forest's votes would move); one-hot encoding only
    where there are categorical columns; median imputation only where there are missing
    values and the estimator's own tags say it cannot take NaN (unknown: impute). A suite
    asks for more with `preprocess:`.
    """
    from sklearn.utils import get_tags

    try:
        allow_nan = bool(get_tags(cls(**params)).input_tags.allow_nan)
    except Exception:  # a constructor that needs more, or tags it cannot give: assume it needs clean input
        allow_nan = False
    return Tags(scale=False, impute=not allow_nan, categorical="onehot")


def _task_of(cls: type) -> str | None:
    try:
        inst = cls()
    except Exception:  # constructors with required arguments: trust the user's `tasks`
        return None
    if is_classifier(inst):
        return CLASSIFICATION
    if is_regressor(inst):
        return REGRESSION
    return None


def build(resolved: Resolved, columns: Columns) -> Any:
    """A fresh unfitted estimator: the model behind its fold-local preprocessing.

    Voting and stacking members are built as full pipelines of their own, so each sees
    the raw columns with the preprocessing its tags ask for, as in a hand-written
    scikit-learn ensemble. A bagged member and a stacking final estimator are bare
    models: bags see the bagging pipeline's preprocessed arrays, the final estimator
    the members' numeric outputs (scaled when its tags ask for it).
    """
    model = make_pipeline(_bare(resolved, columns), resolved.tags, columns)
    # resample: an imbalanced-learn pipeline whose sampler runs in fit only (harness.resample)
    return model if resolved.resample is None else with_sampler(model, resolved.resample, columns)


def _bare(resolved: Resolved, columns: Columns) -> Any:
    params = dict(resolved.params)
    for key, value in resolved.members.items():
        if key == "final_estimator":
            final = _bare(value, columns)
            params[key] = sk_make_pipeline(StandardScaler(), final) if value.tags.scale else final
        elif key == "estimator":
            params[key] = _bare(value, columns)
        else:
            params[key] = [(m.spec.name, build(m, columns)) for m in value]
    return _instantiate(resolved.cls_path, params)


def _check_param_names(cls: type, params: dict[str, Any], where: str) -> None:
    accepted = inspect.signature(cls).parameters
    has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for key in params:
        if key in accepted:
            continue
        if not has_kwargs:
            raise EstimatorError(f"{where}.{key}: {cls.__name__} has no parameter '{key}'{did_you_mean(key, accepted)}")
        # **kwargs (LightGBM, XGBoost) take any booster parameter; a near-miss of a named one is a typo.
        close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.8)
        if close:
            raise EstimatorError(f"{where}.{key}: {cls.__name__} has no parameter '{key}' (did you mean '{close[0]}'?)")


# Parameters where a non-finite number means something (XGBoost's marker for missing values).
_NON_FINITE_OK = {"missing"}


def _instantiate(cls_path: str, params: dict[str, Any]) -> Any:
    cls = _class(cls_path)
    _check_param_names(cls, params, "params")
    if not hasattr(cls, "_parameter_constraints"):  # nothing checks its ranges: at least refuse nan and inf
        for key, value in params.items():
            if isinstance(value, float) and not math.isfinite(value) and key not in _NON_FINITE_OK:
                raise EstimatorError(f"params.{key}: {cls.__name__}: {value} is not a finite number")
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise EstimatorError(f"params: {cls.__name__}: {exc}") from None
    validate = getattr(model, "_validate_params", None)
    if callable(validate) and hasattr(
        model, "_parameter_constraints"
    ):  # scikit-learn checks types and ranges only at fit; check now
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise EstimatorError(_invalid_param(cls.__name__, str(exc).splitlines()[0])) from None
    return model


def _invalid_param(cls_name: str, message: str) -> str:
    """scikit-learn's "The 'x' parameter of C must be ..." (or our "x=... must be ...") as "params.x: C: must be ..."."""
    found = re.match(rf"The '(\w+)' parameter of {re.escape(cls_name)} (.*)", message) or re.match(
        r"(\w+)=\S+ (.*)", message
    )
    if found is None:
        return f"params: {cls_name}: {message}"
    return f"params.{found[1]}: {cls_name}: {found[2]}"
