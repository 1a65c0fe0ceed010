"""Export a harness run to MLflow: one parent run per harness run, one child per (dataset, estimator).

Why an export and not logging during the run: the results store is the record; MLflow is
one more view of it, rebuilt from the store alone (the reports' read model, never a
refit), so it can be written at the end of a run (`harness run --mlflow URI`), later
(`harness export mlflow DIR`) or again after a failure, with the same result.

Exporting twice updates rather than duplicates: every MLflow run carries a content key
(`harness.content_key`: a hash of the harness run id and, for a child, the dataset, the
estimator and its resolved configuration) and is found again by it; a run whose logged
content is unchanged (`harness.export_digest`) is left alone, and metrics are logged with
the folds' own timestamps, so nothing is logged twice. The default tracking store is
embedded and local, `sqlite:///DIR/mlflow.db` with artifacts in `DIR/mlartifacts`: no
server, and `mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db` shows it.

MLflow is optional (`pip install "harness[mlflow]"`) and imported only here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import numbers
import os
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from harness.errors import HarnessError
from harness.fileio import is_owned

if TYPE_CHECKING:
    from harness.report.context import ReportData

EXTRA = "harness[mlflow]"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
ARTIFACTS = ("report.html", "summary.md", "results.csv")
KEY_TAG = "harness.content_key"
DIGEST_TAG = "harness.export_digest"
RUN_TAG = "harness.run_id"
# MLflow's limits (mlflow.utils.validation): longer values are cut, batches split.
MAX_PARAM = 6000
MAX_TAG = 8000
MAX_KEY = 250
BATCH_METRICS = 1000
BATCH_PARAMS_TAGS = 100
# While exporting, unless the user set MLflow's own variables: a tracking server that does
# not answer must not hang a run's end (a few short tries, not two minutes of backoff), and
# MLflow must not print a "View run" line per run to our stdout.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class MlflowError(HarnessError):
    """MLflow is missing, the tracking URI is unusable, or the tracking store refused the export (exit 2)."""


@dataclass(frozen=True)
class Target:
    """Where runs go: a tracking URI, and where a new experiment keeps artifacts (None: the store decides)."""

    tracking_uri: str
    artifact_root: str | None


@dataclass
class Record:
    """One MLflow run to write, built from the read model alone (no MLflow needed to build it)."""

    name: str
    key: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[tuple[str, float, int, int]]  # (key, value, timestamp ms, step)
    start_ms: int
    end_ms: int
    status: str  # FINISHED | FAILED | KILLED

    @property
    def digest(self) -> str:
        """What the run holds: equal digests mean a re-export has nothing to change."""
        payload = [self.name, self.tags, self.params, self.metrics, self.status]
        return _hash(payload)


@dataclass
class Exported:
    """What an export did: the experiment, the parent run and how many runs were created, updated or unchanged."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    children: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (
            f"mlflow: experiment '{self.experiment}' at {self.tracking_uri}: parent run {self.parent_run_id} and "
            f"{len(self.children)} child runs ({self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged)"
        )


# ---------------------------------------------------------------- checks (before anything is fitted)


def require_mlflow() -> None:
    """MLflow is an optional extra: say which one installs it."""
    if importlib.util.find_spec("mlflow") is None:
        raise MlflowError(f'mlflow: MLflow is not installed; install the extra: pip install "{EXTRA}"')


def target_for(out_dir: str | Path, tracking_uri: str | None = None) -> Target:
    """Check MLflow is installed and `tracking_uri` usable; the default is the embedded `sqlite:///DIR/mlflow.db`.

    Local checks only (no request is made): a scheme MLflow knows, and a SQLite file that is
    not one of harness's own stores (MLflow would add its tables to it) nor another kind of file.
    """
    require_mlflow()
    out = Path(out_dir)
    if tracking_uri is None or not tracking_uri.strip():
        db = out.resolve() / DEFAULT_DB
        _check_sqlite_file(db, f"sqlite:///{db}")
        return Target(f"sqlite:///{db}", (out.resolve() / DEFAULT_ARTIFACTS).as_uri())
    uri = tracking_uri.strip()
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        db = _sqlite_path(uri)
        if db is not None:
            _check_sqlite_file(db, uri)
            return Target(uri, (db.resolve().parent / DEFAULT_ARTIFACTS).as_uri())
        return Target(uri, None)  # sqlite:///:memory: and the like: MLflow decides
    if scheme in ("", "file"):
        path = Path(urlparse(uri).path if scheme == "file" else uri)
        if path.exists() and not path.is_dir():
            raise MlflowError(f"mlflow: {uri}: a file store is a folder, and this is a file")
        return Target(path.resolve().as_uri(), None)
    if scheme in ("http", "https", "databricks", "postgresql", "mysql", "mssql") or "+" in scheme:
        return Target(uri, None)
    raise MlflowError(
        f"mlflow: {uri}: unknown tracking URI scheme '{scheme}' "
        "(use sqlite:///PATH, a folder, http(s)://HOST:PORT or a database URL)"
    )


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (None for an in-memory database)."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _check_sqlite_file(db: Path, uri: str) -> None:
    if is_owned(db) or db.name in ("results.db", "studies.db"):
        raise MlflowError(f"mlflow: {uri}: that is a harness store; MLflow must keep its runs in a file of its own")
    if db.is_dir():
        raise MlflowError(f"mlflow: {uri}: {db} is a folder, not a database file")
    if db.parent.exists() and not db.parent.is_dir():
        raise MlflowError(f"mlflow: {uri}: {db.parent} is a file, not a folder")
    if not db.exists() or db.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        raise MlflowError(f"mlflow: {uri}: {db} is not a SQLite database") from None
    if tables and "experiments" not in tables:
        raise MlflowError(f"mlflow: {uri}: {db} is a SQLite database of another tool, not an MLflow store")


# ---------------------------------------------------------------- records (pure: the read model in, runs out)


def build_records(data: ReportData) -> tuple[Record, list[Record]]:
    """The parent run and one child per (dataset, estimator) cell, from the read model."""
    run = data.boards.run
    run_id = str(run["run_id"])
    start_ms = _ms(run.get("started"))
    end_ms = _ms(run.get("finished") or run.get("started"))
    common = _common_tags(data)
    parent_key = _hash(["run", data.boards.suite, run_id])
    parent = Record(
        name=f"{data.boards.suite} {run_id}",
        key=parent_key,
        tags={**common, "harness.kind": "run", "harness.run_status": str(run.get("status") or "")},
        params=_run_params(data),
        metrics=[
            (f"mean_rank.{r['estimator']}", float(r["mean_rank"]), end_ms, 0)
            for r in data.boards.overall.to_dict("records")
            if _finite(r.get("mean_rank"))
        ],
        start_ms=start_ms,
        end_ms=end_ms,
        status={"finished": "FINISHED", "failed": "FAILED"}.get(str(run.get("status")), "KILLED"),
    )
    children = [
        child for ds in data.boards.per_dataset for child in _cell_records(data, ds, common, run_id, start_ms, end_ms)
    ]
    return parent, children


def _common_tags(data: ReportData) -> dict[str, str]:
    run = data.boards.run
    seeds = data.settings.get("seeds") or [data.settings.get("seed", data.suite.get("seed", 0))]
    tags = {
        "harness.suite": str(data.boards.suite),
        "harness.seed": ",".join(str(s) for s in seeds),
        RUN_TAG: str(run["run_id"]),
    }
    tags |= {f"harness.version.{pkg}": str(v) for pkg, v in sorted(data.versions.items()) if v is not None}
    return tags


def _run_params(data: ReportData) -> dict[str, str]:
    """The suite-wide settings of the run: cv, seeds, metrics, primary metrics."""
    settings = data.settings
    params: dict[str, Any] = {f"cv.{k}": v for k, v in (settings.get("cv") or {}).items() if v is not None}
    params["seeds"] = settings.get("seeds") or [settings.get("seed")]
    params |= {f"metrics.{task}": names for task, names in (settings.get("metrics") or {}).items()}
    params |= {f"primary.{task}": name for task, name in (settings.get("primary") or {}).items()}
    if data.suite.get("timeout_s") is not None:
        params["timeout_s"] = data.suite["timeout_s"]
    return {k: _text(v) for k, v in params.items()}


def _cell_records(
    data: ReportData, dataset: str, common: dict[str, str], run_id: str, start_ms: int, end_ms: int
) -> Iterator[Record]:
    """One child per estimator evaluated on `dataset` (not those skipped for its task)."""
    folds = data.folds[data.folds["dataset"] == dataset]
    task = str(folds["task"].iloc[0])
    metrics = list(data.boards.metrics.get(task, []))
    table = data.boards.per_dataset[dataset].set_index("estimator")
    # One step per (seed, repeat, fold) of the dataset: the same step is the same fold for every estimator.
    idents = zip(folds["seed"], folds["repeat"], folds["fold"], strict=True)
    steps = {ident: i for i, ident in enumerate(sorted({(_int(s), int(r), int(f)) for s, r, f in idents}))}
    info = data.boards.datasets.get(dataset, {})
    for estimator, rows in folds.groupby("estimator", sort=False):
        if (rows["status"] == "skipped").all():
            continue  # the estimator has no variant for this task: nothing to show
        config = rows["config"].iloc[0] if isinstance(rows["config"].iloc[0], dict) else {}
        n_ok = int((rows["status"] == "ok").sum())
        tags = {
            **common,
            "harness.kind": "cell",
            "harness.dataset": dataset,
            "harness.estimator": str(estimator),
            "harness.task": task,
            "harness.dataset_fingerprint": str(rows["dataset_fingerprint"].iloc[0]),
        }
        if info.get("n_rows") is not None:
            tags["harness.dataset_rows"] = str(info["n_rows"])
        params = {"model": data.estimator_spec(str(estimator)).get("model", ""), **_flatten(config)}
        yield Record(
            name=f"{dataset}/{estimator}",
            key=_hash(["cell", run_id, dataset, str(estimator), config]),
            tags=tags,
            params={k: _text(v) for k, v in params.items()},
            metrics=_cell_metrics(rows, table.loc[estimator], metrics, steps, end_ms),
            start_ms=start_ms,
            end_ms=end_ms,
            status="FINISHED" if n_ok else "FAILED",
        )


def _cell_metrics(
    rows: Any, board: Any, metrics: list[str], steps: dict[tuple[int, int, int], int], end_ms: int
) -> list[tuple[str, float, int, int]]:
    """The leaderboard's mean and std per metric (step 0), every ok fold's value at its step, fold counts.

    Each fold's values carry the time the fold finished, so logging them again is logging the same values.
    """
    logged = [
        (f"{m}_{stat}", float(board[f"{m}_{stat}"]), end_ms, 0)
        for m in metrics
        for stat in ("mean", "std")
        if _finite(board.get(f"{m}_{stat}"))
    ]
    logged += [(f"{t}_mean", float(board[t]), end_ms, 0) for t in ("fit_time", "predict_time") if _finite(board.get(t))]
    for fold in rows.to_dict("records"):
        if fold["status"] != "ok":
            continue
        step = steps[(_int(fold["seed"]), int(fold["repeat"]), int(fold["fold"]))]
        stamp = _ms(fold.get("finished")) or end_ms
        logged += [
            (m, float(fold[m]), stamp, step) for m in (*metrics, "fit_time", "predict_time") if _finite(fold.get(m))
        ]
    n_ok = int((rows["status"] == "ok").sum())
    return [*logged, ("folds_ok", float(n_ok), end_ms, 0), ("folds_failed", float(len(rows) - n_ok), end_ms, 0)]


def _flatten(config: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """{"params": {"C": 1}} -> {"params.C": 1}: MLflow params are flat key/value pairs."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < 3:
            out |= _flatten(value, f"{name}.", depth + 1)
        elif not (isinstance(value, dict) and not value):
            out[name] = value
    return out


# ---------------------------------------------------------------- writing


def export_run(
    out_dir: str | Path,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    data: ReportData | None = None,
) -> Exported:
    """Export the run in `out_dir` (its results.db) to MLflow; returns what was created or updated.

    `data` is the read model when the caller holds it (the end of `harness run`); else it is
    read from the store. `experiment` defaults to the suite's name. Problems with MLflow or
    the tracking store raise MlflowError (exit 2): the results store is never touched.
    """
    out = Path(out_dir)
    target = target_for(out, tracking_uri)
    if data is None:
        from harness.api import open as open_results

        data = open_results(out).data
    parent, children = build_records(data)
    name = experiment or data.boards.suite
    with _quiet_mlflow(), _mlflow_errors(target.tracking_uri):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=target.tracking_uri)
        experiment_id = _experiment(client, name, target)
        existing = _existing_runs(client, experiment_id, str(data.boards.run["run_id"]))
        done = Exported(target.tracking_uri, name, experiment_id, "")
        done.parent_run_id = _sync(client, experiment_id, parent, existing, done, parent_id=None)
        for child in children:
            done.children.append(_sync(client, experiment_id, child, existing, done, parent_id=done.parent_run_id))
        _log_artifacts(client, done.parent_run_id, out, data)
    return done


def _experiment(client: Any, name: str, target: Target) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=target.artifact_root)
    if found.lifecycle_stage == "deleted":
        raise MlflowError(
            f"mlflow: experiment '{name}' is deleted in {target.tracking_uri}; restore it "
            "(mlflow experiments restore) or name another with --experiment"
        )
    return found.experiment_id


def _existing_runs(client: Any, experiment_id: str, run_id: str) -> dict[str, Any]:
    """This harness run's MLflow runs in the experiment, by content key (one search, paged)."""
    found: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", max_results=1000, page_token=token
        )
        for run in page:
            key = run.data.tags.get(KEY_TAG)
            if key and key not in found:
                found[key] = run
        token = page.token
        if not token:
            return found


def _sync(
    client: Any, experiment_id: str, record: Record, existing: dict[str, Any], done: Exported, parent_id: str | None
) -> str:
    """Create the record's run, or bring the run with its content key up to date; returns its MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag

    run = existing.get(record.key)
    digest = record.digest
    if run is not None and run.data.tags.get(DIGEST_TAG) == digest:
        done.unchanged += 1
        return run.info.run_id
    tags = {**record.tags, KEY_TAG: record.key}
    if parent_id is not None:
        tags["mlflow.parentRunId"] = parent_id
    if run is None:
        run_id = client.create_run(
            experiment_id, start_time=record.start_ms, tags=tags, run_name=record.name
        ).info.run_id
        done.created += 1
        logged_params: dict[str, str] = {}
        logged_metrics: set[tuple[str, int, float]] = set()
    else:
        run_id = run.info.run_id
        done.updated += 1
        logged_params = dict(run.data.params)
        logged_metrics = {
            (m.key, m.step, m.value) for key in run.data.metrics for m in client.get_metric_history(run_id, key)
        }
    params = [Param(_key(k), v[:MAX_PARAM]) for k, v in record.params.items() if _key(k) not in logged_params]
    metrics = [
        Metric(_key(k), v, ts, step) for k, v, ts, step in record.metrics if (_key(k), step, v) not in logged_metrics
    ]
    run_tags = [RunTag(_key(k), v[:MAX_TAG]) for k, v in tags.items()]
    for batch in _chunks(metrics, BATCH_METRICS):
        client.log_batch(run_id, metrics=batch)
    for batch in _chunks([*params, *run_tags], BATCH_PARAMS_TAGS):
        client.log_batch(
            run_id, params=[p for p in batch if isinstance(p, Param)], tags=[t for t in batch if isinstance(t, RunTag)]
        )
    client.set_terminated(run_id, status=record.status, end_time=record.end_ms)
    client.set_tag(run_id, DIGEST_TAG, digest)  # last: a half-written run is completed by the next export
    return run_id


def _log_artifacts(client: Any, run_id: str, out: Path, data: ReportData) -> None:
    """report.html, summary.md and results.csv on the parent run; built from the store when not in DIR."""
    missing = [name for name in ARTIFACTS if not (out / name).is_file()]
    built: dict[str, str] = {}
    if missing:
        from harness.report import build_outputs

        _, built = build_outputs(out, data)
    for name in ARTIFACTS:
        if name in built:
            client.log_text(run_id, built[name], name)
        else:
            client.log_artifact(run_id, str(out / name))


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines (creating tables, ...), run links and warnings are not the user's business; short HTTP retries."""
    import mlflow  # noqa: F401  (importing it sets its loggers up: quieten them after)

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    added = {k: v for k, v in ENV_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def _mlflow_errors(uri: str) -> Iterator[None]:
    """Whatever the tracking store raises becomes one line naming it (exit 2); our own errors pass."""
    try:
        yield
    except HarnessError:
        raise
    except Exception as exc:
        if os.environ.get("HARNESS_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:800]
        raise MlflowError(f"mlflow: {uri}: {type(exc).__name__}: {first}") from exc


# ---------------------------------------------------------------- helpers


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _ms(seconds: Any) -> int:
    return int(float(seconds) * 1000) if _finite(seconds) else 0


def _finite(value: Any) -> bool:
    """A real number that is not NaN or infinite (numpy scalars included; bools are not numbers here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> int:
    return int(value) if _finite(value) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _key(name: str) -> str:
    """MLflow keys: letters, digits, _ - . / and space, at most 250 characters."""
    cleaned = "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
    return cleaned[:MAX_KEY]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
