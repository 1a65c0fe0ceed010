"""The engine's record types: tasks (what to compute) and results (what came of it).

Every fit the harness makes is one of three frozen tasks, each keyed by content:
- `FoldTask`: fit on a fold's training rows and score its test rows (with its nested
  study, if any);
- `StudyTask`: a tune_then_cv study on all rows of a dataset, whose best parameters
  the folds of its cell start from;
- `PretrainTask`: an MLP fitted on a source dataset, whose weights fine-tuned folds
  start from.
A task names the tasks it `needs`; the engine gives it their results (`with_inputs`)
before it runs, or turns it into a failed result when one of them failed. Results
carry their own identity (key, seed, configuration, fingerprint, where and when they
ran), so the store writes them as they are. The store imports these types, never the
reverse.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from harness.datasets import Dataset
from harness.registry import Resolved
from harness.splits import Split
from harness.tuning import StudyOutcome, StudyPlan

OK, ERROR, TIMEOUT, SKIPPED = "ok", "error", "timeout", "skipped"
FAILED = (ERROR, TIMEOUT)

# The packages whose versions change numbers; recorded with every result.
KEY_PACKAGES = (
    "harness",
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "joblib",
    "xgboost",
    "lightgbm",
    "torch",
    "optuna",
    "shap",
)


def derive_seed(
    suite_seed: int,
    purpose: str,
    dataset: str | None = None,
    estimator: str | None = None,
    repeat: int | None = None,
    fold: int | None = None,
    index: int | None = None,
) -> int:
    """The one place seeds come from: a 31-bit seed per (suite seed, identity, purpose).

    numpy's SeedSequence mixes the parts so that nearby identities give unrelated
    streams. Leave out what must be shared: the noise of the robustness check and the
    rows SHAP explains name no estimator, so every model of a fold sees the same ones.
    """
    words = [
        suite_seed,
        *_words(purpose),
        *_words(dataset or ""),
        *_words(estimator or ""),
        -1 if repeat is None else repeat,
        -1 if fold is None else fold,
        -1 if index is None else index,
    ]
    entropy = [w % 2**32 for w in words]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0] >> 1)


def _words(text: str) -> list[int]:
    """A string as 32-bit words (length first, so 'ab','c' and 'a','bc' differ)."""
    data = text.encode()
    return [len(data), *(int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4))]


@functools.cache
def where() -> str:
    """Where a task runs: host and process id (a Dask worker's address on a cluster)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@functools.cache
def package_versions() -> dict[str, str]:
    """Versions of the packages that change numbers, in this process (cached: a task asks per result)."""
    import sys

    out = {"python": sys.version.split()[0]}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------- results


@dataclass
class FoldResult:
    """What one fold produced; a failure is a result too (status error/timeout/skipped)."""

    key: str
    dataset: str
    estimator: str
    task: str
    repeat: int
    fold: int
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    fit_time: float | None = None
    predict_time: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    error: str | None = None
    detail: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. an MLP's per-epoch history, tuning
    test_index: np.ndarray | None = None
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    proba: np.ndarray | None = None
    # SHAP values of this fold: numeric arrays (stored as .npz, no pickle) and JSON metadata.
    explanation: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None
    seed: int = 0  # the suite seed the splits and estimator come from
    config: dict[str, Any] = field(default_factory=dict)  # the resolved estimator (before tuning)
    fingerprint: str = ""  # the dataset's content
    worker: str = ""  # host:pid (or Dask worker) that computed it
    started: float | None = None  # wall-clock interval of the task (time.time())
    finished: float | None = None
    versions: dict[str, str] = field(default_factory=dict)  # of the process that computed it

    kind = "fold"

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass
class StepResult:
    """What a study or a pretraining fit produced; folds that need it start from `value`."""

    key: str
    kind: str  # "study" | "pretrain"
    description: str  # e.g. "tune_then_cv study of rf on iris"
    status: str
    value: Any = None  # StudyOutcome for a study, the weights (bytes) for a pretraining fit
    error: str | None = None
    detail: str | None = None
    worker: str = ""
    started: float | None = None
    finished: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def cause(self) -> str:
        """Why the folds that need this failed, in one line."""
        if self.status == TIMEOUT:
            return f"{self.description} {self.error}"
        return f"{self.description} failed: {self.error}"


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class FoldTask:
    """Everything one fold needs; picklable so any executor can ship it."""

    key: str
    dataset: Dataset
    resolved: Resolved
    split: Split
    metrics: tuple[str, ...] | list[str]
    seed: int = 0  # the suite seed these splits and estimator come from
    threads: int = 1
    timeout_s: float | None = None
    study: StudyPlan | None = None  # nested tuning on this fold's training rows
    explain: dict[str, Any] | None = None  # SHAP settings (ExplainSpec) when this fold is explained
    robustness: tuple[float, ...] | None = None  # noise levels to score the test rows under
    attacks: dict[str, Any] | None = None  # worst-case attacks (RobustnessSpec.attack_settings), None when off
    learning_curve: tuple[float, ...] | None = None  # training fractions to refit on (engine.curves)
    validation_curve: dict[str, Any] | None = None  # {"param": name, "values": [...]} (engine.curves)
    needs: tuple[str, ...] = ()  # keys of the study / pretraining this fold starts from
    # Filled by the engine from `needs` (with_inputs), never by the planner:
    preset: dict[str, Any] | None = None  # tune_then_cv: {"params": ..., "tuning": ...}
    pretrained: bytes | None = None  # weights to start an MLP from (fine-tuning)

    kind = "fold"

    @property
    def description(self) -> str:
        s = self.split
        return f"fold {s.fold} (repeat {s.repeat}) of {self.resolved.spec.name} on {self.dataset.name}"

    def result(self, status: str, **kw: Any) -> FoldResult:
        return FoldResult(
            self.key,
            self.dataset.name,
            self.resolved.spec.name,
            self.dataset.task,
            self.split.repeat,
            self.split.fold,
            status,
            seed=self.seed,
            config=self.resolved.config(),
            fingerprint=self.dataset.fingerprint,
            versions=package_versions(),
            **kw,
        )

    def with_inputs(self, inputs: dict[str, StepResult]) -> FoldTask:
        """A copy that starts from the results of the tasks it needs (all ok)."""
        preset, pretrained = self.preset, self.pretrained
        for key in self.needs:
            got = inputs[key]
            if got.kind == "study":
                outcome: StudyOutcome = got.value
                preset = {"params": outcome.best_params, "tuning": outcome.as_dict() | {"mode": "tune_then_cv"}}
            else:
                pretrained = got.value
        return replace(self, preset=preset, pretrained=pretrained)

    def failed_because(self, cause: StepResult, now: float) -> FoldResult:
        """The row this fold becomes when a task it needs failed or timed out."""
        return self.result(
            cause.status,
            error=cause.cause(),
            detail=cause.detail,
            n_train=len(self.split.train),
            n_test=len(self.split.test),
            worker=cause.worker,
            started=now,
            finished=now,
        )

    def timed_out(self, elapsed: float, started: float) -> FoldResult:
        return self.result(
            TIMEOUT,
            error=f"fit and predict exceeded the time limit of {self.timeout_s:g} s (stopped after {elapsed:.1f} s)",
            fit_time=elapsed,
            n_train=len(self.split.train),
            n_test=len(self.split.test),
            started=started,
            finished=started + elapsed,
        )

    def crashed(
        self, error: str, detail: str | None = None, worker: str = "", started: float | None = None
    ) -> FoldResult:
        return self.result(ERROR, error=error, detail=detail, worker=worker, started=started, finished=started)


class _Step:
    """What studies and pretraining fits share: their results are StepResults named by `description`."""

    key: str
    kind: str
    timeout_s: float | None

    @property
    def description(self) -> str:
        raise NotImplementedError

    def result(self, status: str, **kw: Any) -> StepResult:
        return StepResult(self.key, self.kind, self.description, status, **kw)

    def timed_out(self, elapsed: float, started: float) -> StepResult:
        return self.result(
            TIMEOUT, error=f"timed out after {self.timeout_s:g} s", started=started, finished=started + elapsed
        )

    def crashed(
        self, error: str, detail: str | None = None, worker: str = "", started: float | None = None
    ) -> StepResult:
        return self.result(ERROR, error=error, detail=detail, worker=worker, started=started, finished=started)

    def with_inputs(self, inputs: dict[str, StepResult]) -> Any:
        """A step's needs only order it (a study's runners fill the storage it reads): nothing to copy in."""
        return self

    def failed_because(self, cause: StepResult, now: float) -> StepResult:
        """What this step becomes when a step it needs failed or timed out."""
        return self.result(
            cause.status, error=cause.error, detail=cause.detail, worker=cause.worker, started=now, finished=now
        )


@dataclass(frozen=True)
class StudyTask(_Step):
    """A tune_then_cv study: tuned on every row of the dataset, once per (dataset, estimator) cell.

    A study shared by `tune.workers` > 1 is several tasks: runners (`runner` = 1..n) that
    run its trials at once against the same storage, and the study itself, which needs
    them and only reads the outcome (`runs_trials` False), so its folds see every trial.
    """

    key: str
    dataset: Dataset
    resolved: Resolved
    plan: StudyPlan
    threads: int = 1
    timeout_s: float | None = None
    needs: tuple[str, ...] = ()
    runner: int | None = None
    runners: int = 1
    runners_s: float = 0.0  # the study's wall time when its runners ran the trials

    kind = "study"

    def with_inputs(self, inputs: dict[str, StepResult]) -> StudyTask:
        walls = [inputs[k].value.wall_s for k in self.needs if inputs[k].kind == "study"]
        return replace(self, runners_s=max(walls, default=0.0))

    @property
    def runs_trials(self) -> bool:
        return self.runners == 1 or self.runner is not None

    @property
    def description(self) -> str:
        text = f"tune_then_cv study of {self.resolved.spec.name} on {self.dataset.name}"
        return text if self.runner is None else f"{text} (runner {self.runner} of {self.runners})"


@dataclass(frozen=True)
class PretrainTask(_Step):
    """An MLP fitted on a whole source dataset; its weights are where fine-tuned folds start."""

    key: str
    source: Dataset
    resolved: Resolved  # the estimator with its pretraining parameters
    threads: int = 1
    timeout_s: float | None = None
    needs: tuple[str, ...] = ()

    kind = "pretrain"

    @property
    def description(self) -> str:
        return f"pretraining {self.resolved.spec.name} on {self.source.name}"


Task = FoldTask | StudyTask | PretrainTask
Result = FoldResult | StepResult
