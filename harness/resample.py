"""Resampling for imbalanced classes: an imbalanced-learn sampler between a fold's preprocessing and its model.

Why a step of the fold's pipeline: an imbalanced-learn `Pipeline` calls its sampler's `fit_resample` only
inside `fit` and skips it in `predict`/`transform`, so every fit (the outer fold, each inner tuning fold, an
early-stopping fit) resamples its own training rows and nothing else, and test rows are never resampled.

Why after the preprocessing: SMOTE draws new rows between nearest neighbours, so it must see the features
the model sees (imputed, scaled, encoded): distances on unscaled or string columns mean nothing. With
`method: smote` numeric missing values are therefore imputed (median) before the sampler, and when the
dataset has categorical columns SMOTE-NC is used, which treats every encoded categorical output (one-hot
children, ordinal codes, native categories) as a category: a synthetic row takes the most frequent value of
its neighbours there instead of an interpolated fraction. Random over- and under-sampling only pick rows,
so they work on any encoding (missing values included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from harness.errors import EstimatorError
from harness.preprocess import Columns, Tags

METHODS = ("smote", "random_over", "random_under")
# Keys of `resample:` that only some methods take (the rest are common: sampling_strategy, random_state).
_OWN_KEYS = {"k_neighbors": "smote", "replacement": "random_under", "shrinkage": "random_over"}


def settings_for(spec: Any, task: str, seed: int) -> dict[str, Any]:
    """The validated `resample:` settings of an estimator (JSON-ready: they enter the fold's content key).

    Raises EstimatorError naming the key when the settings cannot apply: a regression task, or a key
    the method does not take. Parameter ranges are checked when the sampler is built (`make_sampler`).
    """
    if task != "classification":
        raise EstimatorError(
            "resample: resampling rebalances classes and applies to classification only; "
            "limit this estimator with `tasks: [classification]`"
        )
    settings = {k: v for k, v in spec.model_dump().items() if v is not None}
    for key, method in _OWN_KEYS.items():
        if key in settings and settings["method"] != method:
            raise EstimatorError(f"resample.{key}: only method {method} takes {key} (method is {settings['method']})")
    settings.setdefault("random_state", seed)
    return settings


def sampler_tags(tags: Tags, settings: dict[str, Any] | None) -> Tags:
    """SMOTE needs complete numbers (nearest neighbours): median imputation before it, whatever the model's tags."""
    if settings is None or settings["method"] != "smote" or tags.impute:
        return tags
    return Tags(scale=tags.scale, impute=True, categorical=tags.categorical)


def make_sampler(settings: dict[str, Any], columns: Columns) -> Any:
    """A fresh imbalanced-learn sampler for these settings; parameters are checked now (EstimatorError)."""
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    params = {k: v for k, v in settings.items() if k != "method"}
    method = settings["method"]
    if method == "smote":
        sampler = _EncodedSMOTENC(numeric=tuple(columns.numeric), **params) if columns.categorical else SMOTE(**params)
    elif method == "random_over":
        sampler = RandomOverSampler(**params)
    else:
        sampler = RandomUnderSampler(**params)
    try:
        sampler._validate_params()
    except (TypeError, ValueError) as exc:
        raise EstimatorError(_param_message(type(sampler).__name__, str(exc).splitlines()[0])) from None
    return sampler


def _param_message(cls_name: str, message: str) -> str:
    """imbalanced-learn's "The 'k' parameter of C must be ..." as "resample.k: C: must be ..."."""
    prefix = "The '"
    if message.startswith(prefix) and "' parameter of " in message:
        key, rest = message[len(prefix) :].split("' parameter of ", 1)
        return f"resample.{key}: {rest}"
    return f"resample: {cls_name}: {message}"


def with_sampler(model: Any, settings: dict[str, Any], columns: Columns) -> Any:
    """`model` (a fold pipeline or a bare estimator) with the sampler between its preprocessing and estimator."""
    from imblearn.pipeline import Pipeline

    steps = list(model.steps[:-1]) if hasattr(model, "steps") else []
    final = model.steps[-1] if hasattr(model, "steps") else ("model", model)
    return Pipeline([*steps, ("resample", make_sampler(settings, columns)), final])


def sampler_of(model: Any) -> Any | None:
    """The fitted or unfitted sampler step of a fold model (None when it resamples nothing)."""
    steps = getattr(model, "steps", None) or []
    return next((s for _, s in steps if hasattr(s, "fit_resample")), None)


def class_counts(model: Any, y_train: np.ndarray, classes: Sequence[Any]) -> dict[str, Any] | None:
    """Training rows per class before and after the fitted model's sampler (None when it has none).

    Read from the fitted sampler, not recomputed: `sampling_strategy_` is the number of rows each
    over-sampler added per class, or the number of rows an under-sampler kept.
    """
    sampler = sampler_of(model)
    if sampler is None or not hasattr(sampler, "sampling_strategy_"):
        return None
    before = Counter(np.asarray(y_train).tolist())
    after = dict(before)
    under = type(sampler).__name__.endswith("UnderSampler")
    for label, n in sampler.sampling_strategy_.items():
        label = np.asarray(label).item()
        after[label] = int(n) if under else before.get(label, 0) + int(n)
    names = [str(c) for c in classes]

    def by_name(counts: dict[Any, int]) -> dict[str, int]:
        return {names[int(k)] if 0 <= int(k) < len(names) else str(k): int(v) for k, v in sorted(counts.items())}

    return {"method": _method_name(sampler), "before": by_name(before), "after": by_name(after)}


def _method_name(sampler: Any) -> str:
    name = type(sampler).__name__
    return {"SMOTE": "smote", "RandomOverSampler": "random_over", "RandomUnderSampler": "random_under"}.get(
        name, "smote" if "SMOTE" in name else name
    )


def fit_prep(prep: Any, X: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """Fit a pipeline's steps before its estimator on (X, y): transformed rows, resampled when it has a sampler."""
    if sampler_of(prep) is not None:
        return prep.fit_resample(X, y)
    return prep.fit_transform(X, y), y


def transform_prep(prep: Any, X: Any) -> Any:
    """What a fitted pipeline's steps before its estimator do to rows at predict time: transform, never resample."""
    for _, step in getattr(prep, "steps", [("prep", prep)]):
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        X = step.transform(X)
    return X


def _smotenc() -> type:
    from imblearn.over_sampling import SMOTENC

    return SMOTENC


class _EncodedSMOTENC(_smotenc()):  # type: ignore[misc]
    """SMOTE-NC whose categorical features are the encoded outputs of the categorical columns.

    Which outputs those are is known only once the preprocessing is fitted (one-hot children are named after
    the categories of the training part), so they are taken at `fit_resample` as every column that is not a
    numeric input column (numeric outputs keep their input names).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **{k: v for k, v in _smotenc()._parameter_constraints.items() if not k.startswith("categorical_")},
        "numeric": [tuple, list],
    }

    def __init__(
        self,
        numeric: tuple[str, ...] = (),
        *,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        k_neighbors: Any = 5,
    ) -> None:
        super().__init__(
            categorical_features="auto",
            sampling_strategy=sampling_strategy,
            random_state=random_state,
            k_neighbors=k_neighbors,
        )
        self.numeric = numeric

    def fit_resample(self, X: Any, y: Any, **params: Any) -> Any:
        numeric = set(self.numeric)
        self.categorical_features = [c for c in getattr(X, "columns", []) if c not in numeric] or "auto"
        return super().fit_resample(X, y, **params)
