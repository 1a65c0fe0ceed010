"""The suite file: YAML in, a validated `Suite` out.

Suites arrive in pull requests, so they are data only: `yaml.SafeLoader` (a tag that
would build a Python object is refused; so is a key given twice, where YAML would keep
the last silently), every mapping forbids unknown keys, and every problem becomes one
line `file: key.path: what is wrong`, all reported together, before any dataset is
loaded or any estimator is built. The loader bounds what a file may expand to (depth,
values once aliases are expanded), and every number of the schema is finite and bounded.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import threading
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import SuiteError
from harness.metrics import CLASSIFICATION, DEFAULT_METRICS, METRICS, REGRESSION
from harness.tuning import MODES, PRUNERS, SAMPLERS, parse_space

Task = Literal["classification", "regression"]
SCHEMES = ("kfold", "stratified_kfold", "group_kfold", "holdout")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # fullmatch: `$` would let a final newline through
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A suite is a few hundred values. These bounds refuse a hostile file (a "billion laughs"
# alias bomb, a list nested thousands deep) while it is read, before anything is built.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000
# Seconds: beyond this a timeout is a typo (and threading's waits refuse it on some platforms).
MAX_SECONDS = min(1e7, threading.TIMEOUT_MAX)
# numpy's RandomState takes seeds in [0, 2**32 - 1]; the splits add the repeat to the seed.
MAX_SEED = 2**32 - 1
MAX_GRID = 1_000_000  # points of a grid search


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _metric_for(task: str) -> AfterValidator:
    """Checks one metric name of `metrics.<task>` (per item, so the error names its index)."""

    def check(name: str) -> str:
        metric = METRICS.get(name)
        if metric is None:
            task_names = [m for m, v in METRICS.items() if v.task == task]
            raise ValueError(f"unknown metric '{name}'{did_you_mean(name, task_names)}")
        if metric.task != task:
            raise ValueError(f"'{name}' is a {metric.task} metric")
        return name

    return AfterValidator(check)


def _plain(what: str) -> AfterValidator:
    """Names become file names and table keys: letters, digits, '_', '-', '.' only."""

    def check(name: str) -> str:
        if not _PLAIN_NAME.fullmatch(name):
            raise ValueError(f"{_quote(name)} must be a plain {what} (letters, digits, '_', '-', '.')")
        if len(name) > 100:  # file systems refuse names over 255 bytes
            raise ValueError(f"'{name[:20]}...' is longer than 100 characters")
        return name

    return AfterValidator(check)


ClassificationMetric = Annotated[str, _metric_for(CLASSIFICATION)]
RegressionMetric = Annotated[str, _metric_for(REGRESSION)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def _quote(text: Any) -> str:
    """'text' in a message; repr() when it holds a newline or another control character."""
    return f"'{text}'" if not isinstance(text, str) or not _CONTROL.search(text) else repr(text)


class _Strict(BaseModel):
    # Every float of the schema is finite: NaN passes every `ge`/`le` comparison unnoticed.
    model_config = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, v: Any, info: Any) -> Any:
        """Names, paths and columns are one line each: a newline would split a message or a folder name."""
        if info.field_name == "description":
            return v
        texts = [v] if isinstance(v, str) else list(v) if isinstance(v, list | dict) else []
        for text in texts:
            if isinstance(text, str) and _CONTROL.search(text):
                raise ValueError(f"{text!r} contains a control character (a newline or tab?)")
        return v


class CVSpec(_Strict):
    """How rows are split; identical for every estimator on a dataset."""

    scheme: str = "stratified_kfold"
    folds: int = Field(5, ge=2, le=1000)
    repeats: int = Field(1, ge=1, le=1000)
    group: str | None = None
    test_size: float = Field(0.2, gt=0, lt=1)
    valid_size: float = Field(0.0, ge=0, lt=1)

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v not in SCHEMES:
            raise ValueError(f"unknown cv scheme '{v}'{did_you_mean(v, SCHEMES)}; choose one of {', '.join(SCHEMES)}")
        return v


class MetricsSpec(_Strict):
    classification: list[ClassificationMetric] = Field(default_factory=lambda: list(DEFAULT_METRICS[CLASSIFICATION]))
    regression: list[RegressionMetric] = Field(default_factory=lambda: list(DEFAULT_METRICS[REGRESSION]))


class PrimarySpec(_Strict):
    classification: str | None = None
    regression: str | None = None


class PreprocessSpec(_Strict):
    """Overrides of an estimator's preprocessing tags (mainly for import-path models)."""

    scale: bool | None = None
    impute: bool | None = None
    categorical: Literal["onehot", "ordinal", "native"] | None = None


class DatasetSpec(_Strict):
    name: Annotated[str, _plain("name")]
    source: str
    target: str | None = None
    task: Task | None = None
    categorical: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    # Another dataset of the suite this one is checked against for shift (`harness check-data`).
    reference: str | None = None
    # inf / -inf (CSV text such as inf, -Infinity, 1e400) in a numeric feature or a numeric
    # target: "error" (default) refuses the dataset, naming the column and the row count;
    # "missing" reads them as missing values (features: fold-local imputation; target: the
    # row is dropped, with a note). Columns named in `categorical` keep "inf" as a category.
    inf: Literal["error", "missing"] = "error"
    # The type numeric features are held in: float32 halves their memory (scores may then
    # differ in the last digits); it enters the fingerprint, so results are never mixed.
    dtype: Literal["float64", "float32"] = "float64"

    # Python API: a pandas DataFrame given as `source` (the source then reads "dataframe:NAME").
    _frame: Any = PrivateAttr(default=None)

    @property
    def frame(self) -> Any:
        """The DataFrame this dataset reads, when the suite came from Python with one; else None."""
        return self._frame


class OpenMLSuiteSpec(_Strict):
    """A `datasets:` entry standing for every dataset of an OpenML benchmark suite.

    Parsing does no I/O: the data layer (harness/openml.py) expands the entry into one
    `openml:ID` dataset per suite dataset inside the limits, and lists the others as skipped.
    """

    openml_suite: int | str  # an id (99) or an alias (OpenML-CC18)
    max_rows: int | None = Field(None, ge=1)  # OpenML's NumberOfInstances
    max_features: int | None = Field(None, ge=1)  # OpenML's NumberOfFeatures (the target counts)

    @field_validator("openml_suite", mode="before")
    @classmethod
    def _id_or_alias(cls, v: Any) -> Any:
        """One message for a bad value (the int | str union would give one per member)."""
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
        if isinstance(v, str) and _PLAIN_NAME.fullmatch(v) and len(v) <= 100 and not (v.isdigit() and int(v) < 1):
            return int(v) if v.isdigit() else v
        raise ValueError(f"{_quote(v)} is not an OpenML suite id (a whole number >= 1) or alias (e.g. OpenML-CC18)")


def _entry_kind(value: Any) -> str:
    """Which model a `datasets:` entry is: a mapping with `openml_suite` is a suite, anything else a dataset."""
    if isinstance(value, dict):
        return "openml_suite" if "openml_suite" in value else "dataset"
    return "openml_suite" if isinstance(value, OpenMLSuiteSpec) else "dataset"


# A `datasets:` entry. pydantic puts the tag into error locations (datasets.0.dataset.source);
# _describe leaves it out and _model_at uses it to suggest the entry's own keys.
DatasetEntry = Annotated[
    Annotated[DatasetSpec, Tag("dataset")] | Annotated[OpenMLSuiteSpec, Tag("openml_suite")],
    Discriminator(_entry_kind),
]
_ENTRY_TAGS: dict[str, type[BaseModel]] = {"dataset": DatasetSpec, "openml_suite": OpenMLSuiteSpec}


class TuneSpec(_Strict):
    """Optuna tuning of one estimator; nested inside each outer fold unless mode says otherwise."""

    trials: int | None = Field(None, ge=1, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0, le=MAX_SECONDS)
    sampler: str = "tpe"
    pruner: str = "median"
    inner_folds: int = Field(3, ge=2, le=20)
    metric: str | None = None
    mode: str = "nested"
    space: dict[str, Any] = Field(default_factory=dict)
    # LightGBM/XGBoost inside a trial stop after this many rounds without improvement on a
    # validation slice of the inner training part (0 = fit every sampled n_estimators).
    early_stopping_rounds: int = Field(50, ge=0, le=1_000_000)
    # tune_then_cv: how many tasks run the study's trials at once, sharing its storage and
    # stopping together at its budget (on a cluster, on different workers). More than one
    # is faster, but which trial sees which history then depends on timing, so the tuned
    # parameters are reproducible only with 1.
    workers: int = Field(1, ge=1, le=1024)

    @field_validator("sampler", "pruner", "mode")
    @classmethod
    def _known(cls, v: str, info: Any) -> str:
        choices = {"sampler": SAMPLERS, "pruner": PRUNERS, "mode": MODES}[info.field_name]
        if v not in choices:
            raise ValueError(
                f"unknown {info.field_name} '{v}'{did_you_mean(v, choices)}; choose one of {', '.join(choices)}"
            )
        return v

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(f"unknown metric '{v}'{did_you_mean(v, METRICS)}")
        return v

    @field_validator("space")
    @classmethod
    def _valid_space(cls, v: dict[str, Any]) -> dict[str, Any]:
        parse_space(v)  # raises "param: problem"
        return v

    @model_validator(mode="after")
    def _grid_fits(self) -> TuneSpec:
        """A grid sampler enumerates every point: count them before anything builds the list."""
        if self.sampler != "grid":
            return self
        points = 1.0
        for d in parse_space(self.space).values():
            if d.kind == "categorical":
                points *= len(d.choices)
            elif d.step or d.kind == "int":
                points *= (d.high - d.low) / (d.step or 1) + 1
        if points > MAX_GRID:
            raise ValueError(
                f"space: the grid has more than {MAX_GRID:,} points; use a coarser step or another sampler"
            )
        return self

    @model_validator(mode="after")
    def _shared_only_after_cv(self) -> TuneSpec:
        if self.workers > 1 and self.mode != "tune_then_cv":
            raise ValueError(
                "workers: only a tune_then_cv study is shared by several workers "
                "(nested studies already run one per fold, in parallel)"
            )
        return self

    @property
    def budget_trials(self) -> int | None:
        """Trials to run: as given, else 20 when no time budget bounds the study either."""
        return self.trials if self.trials is not None or self.timeout_s is not None else 20


class TuningSpec(_Strict):
    """Suite-wide tuning settings."""

    max_total_s: float | None = Field(None, gt=0, le=MAX_SECONDS)


class AnalysisSpec(_Strict):
    """How the reports test differences (the statistics read only the results store)."""

    alpha: float = Field(0.05, gt=0, lt=0.5)
    # Region of practical equivalence per metric, in the metric's units (Bayesian tests, ties).
    rope: dict[str, float] = Field(default_factory=dict)
    # A model with no score on a dataset: ranked with the dummy baseline's score, or left out.
    failures: Literal["dummy", "drop"] = "dummy"

    @field_validator("rope")
    @classmethod
    def _known_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric '{name}'{did_you_mean(name, METRICS)}")
            if value < 0:
                raise ValueError(f"{name}: the rope is a non-negative width")
        return v


class ExplainSpec(_Strict):
    """SHAP values on a seeded sample of the test rows of a few folds (first repeat of the first seed).

    Explaining every fold cost up to half the fit time for little more insight: the first `folds` folds of
    every (dataset, estimator) cell are explained (the same folds for every estimator, so models stay paired),
    each with more rows.
    """

    enabled: bool = True
    folds: int = Field(2, ge=1, le=1000)  # folds 0..folds-1 of the first repeat are explained
    budget_share: float = Field(0.1, ge=0, le=10)  # of an explained fold's training (fit + tuning) time...
    min_s: float = Field(0.05, ge=0, le=MAX_SECONDS)  # ...but at least this many seconds per explained fold
    max_rows: int = Field(500, ge=1, le=10_000_000)
    method: Literal["shap", "lime", "both"] = "shap"  # lime and both need the `harness[lime]` extra

    @field_validator("method")
    @classmethod
    def _lime_installed(cls, v: str) -> str:
        import importlib.util

        if v != "shap" and importlib.util.find_spec("lime") is None:
            raise ValueError(f"{v} needs the lime package: pip install 'harness[lime]'")
        return v

    def settings(self) -> dict[str, Any]:
        """The settings a fold task carries (and its key): `method` only when not the default, so SHAP keys stay."""
        dumped = self.model_dump()
        return dumped if self.method != "shap" else {k: v for k, v in dumped.items() if k != "method"}


class RobustnessSpec(_Strict):
    """Score each fold again on perturbed test rows: random noise and worst-case attacks (harness.robustness).

    A level is a budget in units of each numeric column's training standard deviation. The attacks are
    bounded per fold: at most `max_rows` test rows (a seeded sample), `queries` model evaluations per row
    and level (blackbox), `steps` gradient steps per level (pgd), and `max_s` seconds of wall time for all
    of them. `{levels: [...]}` alone means `attacks: [noise]` and keeps its task keys.
    """

    levels: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5], min_length=1)
    attacks: list[Literal["noise", "pgd", "blackbox"]] = Field(default_factory=lambda: ["noise"], min_length=1)
    max_rows: int = Field(1000, ge=1, le=10_000_000)
    queries: int = Field(100, ge=1, le=100_000)
    steps: int = Field(10, ge=1, le=10_000)
    max_s: float = Field(30.0, gt=0, le=MAX_SECONDS)

    @field_validator("levels")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(level <= 0 or level > 10 for level in v):
            raise ValueError("noise levels must be in (0, 10]")
        return sorted(set(v))

    @field_validator("attacks")
    @classmethod
    def _once(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def attack_settings(self) -> dict[str, Any] | None:
        """What a fold's worst-case attacks need (None when only noise is asked: the task key stays as it was)."""
        attacks = [a for a in self.attacks if a != "noise"]
        if not attacks:
            return None
        budget = {"max_rows": self.max_rows, "queries": self.queries, "steps": self.steps, "max_s": self.max_s}
        return {"attacks": attacks, "levels": list(self.levels)} | budget


class LearningCurveSpec(_Strict):
    """Refit each fold on nested, stratified subsets of its training part, scored on the whole test fold.

    Fraction 1.0 (always included) is the fold's own fit, not a second one.
    """

    fractions: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0], min_length=1, max_length=50)

    @field_validator("fractions")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        if any(f <= 0 or f > 1 for f in v):
            raise ValueError("fractions must be in (0, 1]")
        return sorted(set(v) | {1.0})


class ValidationCurveSpec(_Strict):
    """Train and test scores of one estimator for each value of one of its parameters (a fit per value)."""

    param: str
    values: list[Any] = Field(min_length=1, max_length=100)

    @field_validator("values")
    @classmethod
    def _distinct_finite(cls, v: list[Any]) -> list[Any]:
        seen: dict[str, int] = {}
        for j, value in enumerate(v):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"[{j}]: {value} is not a finite number")
            text = json.dumps(value, sort_keys=True, default=str)
            if text in seen:
                raise ValueError(f"[{j}]: {value!r} is given twice (also [{seen[text]}])")
            seen[text] = j
        return v


class ResampleSpec(_Strict):
    """Rebalance the classes of every training part (outer fold, inner tuning folds) with imbalanced-learn.

    Only the rows a model is fitted on are resampled; test rows never are. `sampling_strategy` and the
    method's own parameters are imbalanced-learn's (checked by its constraints before anything is fitted);
    `random_state` defaults to the suite's seed, like an estimator's.
    """

    method: Literal["smote", "random_over", "random_under"]
    sampling_strategy: float | Literal["auto", "minority", "not minority", "not majority", "all", "majority"] = "auto"
    k_neighbors: int | None = Field(None, ge=1, le=10_000)  # smote only (default 5)
    replacement: bool | None = None  # random_under only
    shrinkage: float | None = Field(None, ge=0, le=1e6)  # random_over only (smoothed bootstrap)
    random_state: Seed | None = None


class PretrainSpec(_Strict):
    """Start a torch MLP from weights trained on another dataset of the suite (same features)."""

    dataset: str
    params: dict[str, Any] = Field(default_factory=dict)  # overrides for the pretraining fit (e.g. lr)


class AugmentSpec(_Strict):
    """Augment the torch MLP's training batches: Gaussian noise (in training stds of each numeric input), mixup."""

    noise: float = Field(0.0, ge=0, le=10)
    mixup: float = Field(0.0, ge=0, le=100)  # the Beta(alpha, alpha) parameter; 0 is off

    def params(self) -> dict[str, Any]:
        return {"noise": self.noise, "mixup": self.mixup}


class AdversarialTrainingSpec(_Strict):
    """Train the torch MLP on PGD examples: an L-infinity budget in training stds of each numeric input."""

    eps: float = Field(gt=0, le=10)
    steps: int = Field(3, ge=1, le=100)

    def params(self) -> dict[str, Any]:
        return {"adversarial_eps": self.eps, "adversarial_steps": self.steps}


class EstimatorSpec(_Strict):
    name: Annotated[str, _plain("name")]
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] | None = None
    timeout_s: float | None = Field(None, gt=0, le=MAX_SECONDS)
    preprocess: PreprocessSpec | None = None
    tune: TuneSpec | None = None
    pretrain: PretrainSpec | None = None
    finetune: Literal["all", "head"] | None = None
    augment: AugmentSpec | None = None  # torch MLP only: maps onto its noise / mixup params
    adversarial_training: AdversarialTrainingSpec | None = None  # torch MLP only: adversarial_eps / _steps
    resample: ResampleSpec | None = None  # classification only: rebalance each training part
    learning_curve: LearningCurveSpec | None = None  # overrides the suite's for this estimator
    curve: ValidationCurveSpec | None = None  # a validation curve over one parameter


class Suite(_Strict):
    name: Annotated[str, _plain("file name")]
    description: str = ""
    seed: Seed = 0
    # Several seeds rerun everything (splits and estimators' random_state) once per seed, so
    # reports can show how much a score moves with the seed, beside its spread over folds.
    seeds: list[Seed] | None = Field(None, min_length=1)
    cv: CVSpec = Field(default_factory=CVSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    primary: PrimarySpec = Field(default_factory=PrimarySpec)
    timeout_s: float | None = Field(None, gt=0, le=MAX_SECONDS)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    explain: ExplainSpec = Field(default_factory=ExplainSpec)
    robustness: RobustnessSpec | None = None
    learning_curve: LearningCurveSpec | None = None  # every estimator's, unless it has its own
    champion: str | None = None  # the production model: `harness check` fails when it stops being best
    datasets: list[DatasetEntry] = Field(min_length=1)  # datasets, and OpenML suites (expanded by the data layer)
    estimators: list[EstimatorSpec] = Field(min_length=1)

    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The suite file, when loaded from one (relative dataset paths start there)."""
        return self._path

    @property
    def label(self) -> str:
        return str(self._path) if self._path else f"<suite {self.name}>"

    @property
    def seed_list(self) -> list[int]:
        return list(dict.fromkeys(self.seeds)) if self.seeds else [self.seed]

    def for_seed(self, seed: int) -> Suite:
        """This suite with one seed (what a single-seed run of it would be)."""
        copy = self.model_copy(update={"seed": seed, "seeds": None})
        copy._path = self._path
        return copy

    def metric_names(self, task: str) -> list[str]:
        return list(getattr(self.metrics, task))

    def primary_metric(self, task: str) -> str:
        return getattr(self.primary, task) or self.metric_names(task)[0]

    def estimator(self, name: str) -> EstimatorSpec:
        return next(e for e in self.estimators if e.name == name)


# ---------------------------------------------------------------- loading


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raises SuiteError with every problem found."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError([f"{path}: suite file not found"])
    try:
        # _SafeLoader is a yaml.SafeLoader: plain data only, never a Python object.
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except _TooLarge as exc:
        raise SuiteError([f"{path}: {_mark(exc)}{exc.problem}"]) from None
    except RecursionError:  # a backstop: the loader bounds depth itself
        raise SuiteError([f"{path}: nested too deeply (more than {MAX_DEPTH} levels)"]) from None
    except yaml.constructor.ConstructorError as exc:
        if "constructor for the tag" not in str(exc.problem):
            raise SuiteError([f"{path}: {_mark(exc)}invalid YAML: {exc.problem}"]) from None
        raise SuiteError(
            [f"{path}: {_mark(exc)}YAML tag {exc.problem.split('tag ')[-1]} is not allowed: suites are data, not code"]
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError([f"{path}: {_mark(exc)}invalid YAML: {problem}"]) from None
    except UnicodeDecodeError:
        raise SuiteError([f"{path}: not a UTF-8 text file"]) from None
    return parse_suite(raw, label=str(path), path=path)


def parse_suite(raw: Any, label: str = "<suite>", path: Path | None = None) -> Suite:
    """Validate an already-parsed mapping (the Python API's entry point)."""
    if not isinstance(raw, dict):
        raise SuiteError([f"{label}: the suite must be a mapping with keys name, datasets, estimators, ..."])
    raw, frames = _frame_sources(raw)
    problem = _shape_problem(raw)
    if problem:
        raise SuiteError([f"{label}: {problem}"])
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError([f"{label}: {_describe(err)}" for err in exc.errors()]) from None
    suite._path = path
    for i, frame in frames.items():
        suite.datasets[i]._frame = frame
    problems = [f"{label}: {p}" for p in check_consistency(suite)]
    if problems:
        raise SuiteError(problems)
    return suite


def _frame_sources(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[int, Any]]:
    """Take DataFrame `source`s out of a suite built in Python (the caller's dict is not changed).

    Each becomes the text "dataframe:NAME" for validation and the run record; the frame
    itself rides on the parsed DatasetSpec, by position.
    """
    entries = raw.get("datasets")
    if not isinstance(entries, list):
        return raw, {}
    frames, copied = {}, list(entries)
    for i, entry in enumerate(entries):
        source = entry.get("source") if isinstance(entry, dict) else None
        if type(source).__name__ == "DataFrame" and type(source).__module__.startswith("pandas"):
            frames[i] = source
            copied[i] = {**entry, "source": f"dataframe:{entry.get('name', i)}"}
    return ({**raw, "datasets": copied}, frames) if frames else (raw, {})


class _BadShape(Exception):
    pass


def _shape_problem(raw: Any) -> str | None:
    """The loader's bounds for a mapping built in Python: depth, size (a value shared by
    several keys counted at each, as a dump would write it) and no value containing itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(value: Any, path: tuple[Any, ...]) -> int:
        if not isinstance(value, dict | list | tuple | set):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        where = _loc(path[:8]) + ("..." if len(path) > 8 else "")
        if id(value) in open_:
            raise _BadShape(f"{where}: contains itself")
        if len(path) > MAX_DEPTH:
            raise _BadShape(f"{where}: nested deeper than {MAX_DEPTH} levels")
        open_.add(id(value))
        total = 1
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            total += size(item, (*path, key if isinstance(key, int | str) else str(key))) + isinstance(value, dict)
            if total > MAX_VALUES:
                raise _BadShape(f"{where}: more than {MAX_VALUES:,} values")
        open_.discard(id(value))
        sizes[id(value)] = total
        return total

    try:
        size(raw, ())
    except _BadShape as exc:
        return str(exc)
    return None


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _TooLarge(yaml.MarkedYAMLError):
    pass


class _SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping key given twice (YAML would keep the last silently),
    and a document nested deeper than MAX_DEPTH or expanding (aliases counted at every use) to
    more than MAX_VALUES values: both are found while composing, before any object is built."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
        self._path: list[Any] = []  # keys and indexes down to the node being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its anchor is still open: `&a [*a]`
                raise _TooLarge(problem=f"{self._where(index)}: an alias refers to itself", problem_mark=mark)
            return node
        mark = self.peek_event().start_mark
        self._path.append(index)
        try:
            if len(self._path) > MAX_DEPTH:
                raise _TooLarge(problem=f"{self._where()}: nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            node = super().compose_node(parent, index)
            children = node.value if isinstance(node, yaml.SequenceNode) else []
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            size = 1 + sum(self._sizes[id(child)] for child in children)
            if size > MAX_VALUES:
                raise _TooLarge(
                    problem=f"{self._where()}: more than {MAX_VALUES:,} values once aliases are expanded"
                    " (an alias bomb?)",
                    problem_mark=mark,
                )
        finally:
            self._path.pop()
        self._sizes[id(node)] = size
        return node

    def _where(self, last: Any = None) -> str:
        """The key path of the node being composed, e.g. datasets[0].params (long ones cut)."""
        parts: list[Any] = []
        for index in [*self._path, last]:
            if isinstance(index, int):
                parts.append(index)
            elif isinstance(index, yaml.ScalarNode):
                parts.append(index.value)
        shown = _loc(tuple(parts[:8]))
        return shown + "..." if len(parts) > 8 else shown

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may override keys on purpose
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise _DuplicateKey(problem=f"duplicate key {_quote(key)}", problem_mark=key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}: " if mark is not None else ""


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and _CONTROL.search(part):
            part = repr(part)  # an unknown key "a\n" stays on one line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at `loc` (for did-you-mean on keys)."""
    cls: type[BaseModel] | None = Suite
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if _is_entry_tag(loc, i):
            cls = _ENTRY_TAGS[part]
            continue
        field = cls.model_fields.get(part) if cls else None
        if field is None:
            return None
        cls = _inner_model(field.annotation)
    return cls


def _inner_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if typing.get_origin(tp) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _inner_model(arg)
            if found:
                return found
    return None


def _is_entry_tag(loc: tuple[Any, ...], i: int) -> bool:
    """Whether loc[i] is the tag pydantic adds after a `datasets:` index (not a key of the file)."""
    return i == 2 and loc[0] == "datasets" and isinstance(loc[1], int) and loc[i] in _ENTRY_TAGS


def _describe(err: dict[str, Any]) -> str:
    tagged = tuple(err["loc"])
    loc = tuple(part for i, part in enumerate(tagged) if not _is_entry_tag(tagged, i))
    where = _loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(tagged[:-1])
        hint = did_you_mean(loc[-1], owner.model_fields) if owner else ""
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}"


# ---------------------------------------------------------------- consistency


def check_consistency(suite: Suite) -> list[str]:
    """Cross-field checks pydantic cannot express; each problem names its key path."""
    problems: list[str] = []
    named = [(i, d) for i, d in enumerate(suite.datasets) if isinstance(d, DatasetSpec)]  # not OpenML suites
    problems += _duplicates("datasets", [d.name for _, d in named], [i for i, _ in named])
    problems += _duplicates("estimators", [e.name for e in suite.estimators])
    for task in (CLASSIFICATION, REGRESSION):
        names = suite.metric_names(task)
        if not names:
            problems.append(f"metrics.{task}: list at least one metric")
        primary = getattr(suite.primary, task)
        if primary is not None and primary not in names:
            problems.append(f"primary.{task}: '{primary}' is not in metrics.{task}")
    if suite.cv.scheme == "group_kfold" and not suite.cv.group:
        problems.append("cv.group: group_kfold needs the name of the group column")
    if suite.cv.scheme == "holdout" and suite.cv.test_size + suite.cv.valid_size >= 1:
        problems.append("cv: test_size + valid_size must be below 1")
    seeds = [(f"seeds[{i}]", s) for i, s in enumerate(suite.seeds)] if suite.seeds else [("seed", suite.seed)]
    for key, seed in seeds:
        if seed + suite.cv.repeats - 1 > MAX_SEED:  # repeat r splits with seed + r
            problems.append(f"{key}: {seed} + cv.repeats - 1 exceeds the largest seed ({MAX_SEED})")
    dataset_names = [d.name for _, d in named]
    for i, e in enumerate(suite.estimators):
        if e.pretrain is not None and e.pretrain.dataset not in dataset_names:
            problems.append(
                f"estimators[{i}].pretrain.dataset: '{e.pretrain.dataset}' is not a dataset of this suite"
                f"{did_you_mean(e.pretrain.dataset, dataset_names)}"
            )
        if (e.pretrain is None) != (e.finetune is None):
            problems.append(f"estimators[{i}]: pretrain and finetune go together (finetune: all | head)")
    for i, d in named:
        if d.reference is not None and d.reference == d.name:
            problems.append(f"datasets[{i}].reference: a dataset cannot be its own reference ('{d.name}')")
        elif d.reference is not None and d.reference not in dataset_names:
            others = [n for n in dataset_names if n != d.name]
            problems.append(
                f"datasets[{i}].reference: '{d.reference}' is not another dataset of this suite"
                f"{did_you_mean(d.reference, others)}"
            )
    names = [e.name for e in suite.estimators]
    if suite.champion is not None and suite.champion not in names:
        problems.append(
            f"champion: '{suite.champion}' is not an estimator of this suite{did_you_mean(suite.champion, names)}"
        )
    return problems


def _duplicates(key: str, names: list[str], indexes: list[int] | None = None) -> list[str]:
    """Names given twice; `indexes` are the names' positions in the list when they are not 0, 1, 2, ..."""
    seen: dict[str, int] = {}
    out = []
    for i, name in zip(indexes or range(len(names)), names, strict=True):
        if name in seen:
            out.append(f"{key}[{i}].name: duplicate name '{name}' (also {key}[{seen[name]}])")
        seen.setdefault(name, i)
    return out
