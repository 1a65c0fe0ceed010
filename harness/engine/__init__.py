"""The engine: every fit is a task (fold, study, pretraining), run by one executor.

- `tasks`: the record types (tasks and results, statuses, seeds); the store imports them.
- `fit`: the pure units of work (`fit_and_score`, `run_study_task`, `run_pretrain`).
- `limits`: threads per worker, and child processes killed at their time limit.
- `executors`: run a task graph, independent tasks in parallel, results as they arrive.
- `cluster`: the same graph on a Dask cluster (imported on demand: dask is an extra).
"""

from harness.engine.executors import Graph, execute
from harness.engine.fit import (
    StudyFailed,
    boosting_library,
    final_step,
    fit_and_score,
    fit_early_stopped,
    fitted_extras,
    run_pretrain,
    run_study_task,
    run_task,
    tune_on_rows,
)
from harness.engine.limits import cpu_count, limit_threads, threads_per_worker
from harness.engine.tasks import (
    ERROR,
    FAILED,
    OK,
    SKIPPED,
    TIMEOUT,
    FoldResult,
    FoldTask,
    PretrainTask,
    Result,
    StepResult,
    StudyTask,
    Task,
    derive_seed,
    package_versions,
    where,
)

__all__ = [
    "ERROR",
    "FAILED",
    "OK",
    "SKIPPED",
    "TIMEOUT",
    "FoldResult",
    "FoldTask",
    "Graph",
    "PretrainTask",
    "Result",
    "StepResult",
    "StudyFailed",
    "StudyTask",
    "Task",
    "boosting_library",
    "cpu_count",
    "derive_seed",
    "execute",
    "final_step",
    "fit_and_score",
    "fit_early_stopped",
    "fitted_extras",
    "limit_threads",
    "package_versions",
    "run_pretrain",
    "run_study_task",
    "run_task",
    "threads_per_worker",
    "tune_on_rows",
    "where",
]
