"""The results store: one SQLite file, one row per finished fold, committed as it arrives.

Only the driver writes (workers return results), so there is one writer and no
locking dance. Every row carries its content key; a rerun skips keys already present
and `INSERT OR REPLACE` means a key never appears twice. Out-of-fold predictions are
stored beside the rows in a compact binary form (never pickle; see `pack`), so
analysis and reports rebuild from this file alone, without refitting. Studies and pretraining fits are
recorded too (status, cause, where and when they ran).

The file carries a schema version, checked when it is opened, before anything is
fitted: an older store is migrated in place, a newer or foreign one is refused, and
a damaged one is a `StoreError` (exit 2), never a crash halfway through a run.
"""

from __future__ import annotations

import functools
import io
import json
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.engine.tasks import ERROR, FAILED, OK, SKIPPED, TIMEOUT, FoldResult, StepResult
from harness.errors import StoreError
from harness.report.format import jsonable_lax

__all__ = ["ERROR", "FAILED", "OK", "SCHEMA_VERSION", "SKIPPED", "TIMEOUT", "FoldResult", "StepResult", "Store"]

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, suite_json TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, argv TEXT, versions TEXT, settings TEXT, reason TEXT
);
CREATE TABLE IF NOT EXISTS run_cells (run_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL, fingerprint TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (name, fingerprint)
);
CREATE TABLE IF NOT EXISTS metrics (name TEXT PRIMARY KEY, task TEXT NOT NULL, greater_is_better INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, dataset TEXT NOT NULL, estimator TEXT NOT NULL,
    task TEXT NOT NULL, repeat INTEGER NOT NULL, fold INTEGER NOT NULL, status TEXT NOT NULL,
    metrics TEXT NOT NULL, fit_time REAL, predict_time REAL, n_train INTEGER, n_test INTEGER,
    error TEXT, detail TEXT, notes TEXT, seed INTEGER, config TEXT, versions TEXT,
    dataset_fingerprint TEXT, created REAL NOT NULL, extra TEXT, worker TEXT, started REAL, finished REAL
);
CREATE TABLE IF NOT EXISTS predictions (
    key TEXT PRIMARY KEY, test_index BLOB NOT NULL, y_true BLOB NOT NULL, y_pred BLOB NOT NULL, proba BLOB
);
CREATE TABLE IF NOT EXISTS checks (name TEXT PRIMARY KEY, ident TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS explanations (key TEXT PRIMARY KEY, arrays BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, description TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, detail TEXT, worker TEXT, started REAL, finished REAL
);
"""

_TABLES = ("meta", "runs", "results")


def _npy(arr: np.ndarray | None) -> bytes | None:
    if arr is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------- compact predictions (schema 3)

# A packed array: MAGIC, the header's length (uint32), a JSON header, then zlib of the stored bytes.
_MAGIC = b"HZP\x01"
_NPY_MAGIC = b"\x93NUMPY"
_LEVEL = 3  # zlib: level 3 is within 2% of level 6's size at half its time


def pack(arr: np.ndarray | None, float32: bool = False) -> bytes | None:
    """An out-of-fold array in few bytes: 7.4 per prediction of a binary classifier, where .npy took 40.

    Integers are stored in the narrowest type that holds them; an ascending integer
    vector (test indices) as its first value and the differences (mostly 1 to 5, one
    byte each). Floats keep their type unless `float32` (probabilities: float32's 7
    digits are more than any metric reads; they come back as float64). Bytes are then
    shuffled (all first bytes, then all second bytes...: a float's sign and exponent
    bytes repeat, so zlib finds them) and compressed. Integers and float64 values come
    back exactly; anything else (text labels) is stored as .npy.
    """
    if arr is None:
        return None
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf" or a.dtype.byteorder == ">":
        return _npy(a)
    head: dict[str, Any] = {"dtype": a.dtype.str, "shape": list(a.shape)}
    flat = a.ravel()
    if a.dtype.kind in "iu" and a.ndim == 1 and flat.size > 1 and bool(np.all(flat[1:] >= flat[:-1])):
        head["codec"], head["first"] = "delta", int(flat[0])
        stored = _narrow(np.diff(flat.astype(np.int64)))
    elif a.dtype.kind in "biu":
        head["codec"] = "int"
        stored = _narrow(flat.astype(np.int64)) if a.dtype != np.uint64 else flat
    else:
        head["codec"] = "float"
        stored = flat.astype(np.float32) if float32 and a.dtype.itemsize > 4 else flat
    head["stored"] = stored.dtype.str
    header = json.dumps(head).encode()
    return _MAGIC + struct.pack("<I", len(header)) + header + zlib.compress(_shuffle(stored), _LEVEL)


def unpack(blob: bytes | None) -> np.ndarray | None:
    """The array `pack` stored (or one stored as .npy by schema 2 and earlier)."""
    if blob is None:
        return None
    blob = bytes(blob)
    if blob.startswith(_NPY_MAGIC):
        return np.load(io.BytesIO(blob), allow_pickle=False)
    if not blob.startswith(_MAGIC):
        raise sqlite3.DatabaseError("a prediction blob in an unknown format")
    (length,) = struct.unpack_from("<I", blob, len(_MAGIC))
    start = len(_MAGIC) + 4
    head = json.loads(blob[start : start + length])
    shape = tuple(head["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    stored_dtype = np.dtype(head["stored"])
    count = size - 1 if head["codec"] == "delta" else size
    stored = _unshuffle(zlib.decompress(blob[start + length :]), stored_dtype, count)
    if head["codec"] == "delta":
        values = np.empty(size, dtype=np.int64)
        values[0] = head["first"]
        np.cumsum(stored, dtype=np.int64, out=values[1:])
        values[1:] += head["first"]
        stored = values
    return stored.astype(np.dtype(head["dtype"]), copy=False).reshape(shape)


def _narrow(values: np.ndarray) -> np.ndarray:
    """int64 values in the narrowest integer type that holds them all."""
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    for kind in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return values.astype(kind)
    return values


def _shuffle(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    if a.itemsize == 1:
        return a.tobytes()
    return a.view(np.uint8).reshape(-1, a.itemsize).T.tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    planes = np.frombuffer(raw, dtype=np.uint8)
    if dtype.itemsize == 1:
        return planes.view(dtype)[:count]
    return planes.reshape(dtype.itemsize, count).T.copy().view(dtype).ravel()


def _compact_predictions(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: every stored prediction re-packed (.npy -> `pack`), one fold at a time."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'predictions'").fetchone() is None:
        return  # a store from before predictions were kept: the table is created as it is now
    keys = [k for (k,) in db.execute("SELECT key FROM predictions")]
    for key in keys:
        row = db.execute("SELECT test_index, y_true, y_pred, proba FROM predictions WHERE key = ?", (key,)).fetchone()
        index, y_true, y_pred, proba = (unpack(b) for b in row)
        db.execute(
            "UPDATE predictions SET test_index = ?, y_true = ?, y_pred = ?, proba = ? WHERE key = ?",
            (pack(index), pack(y_true), pack(y_pred), pack(proba, float32=True), key),
        )


# What each older schema version lacks, applied in order (version N -> N + 1): SQL, or a function of the connection.
_MIGRATIONS: dict[int, Any] = {
    1: """
ALTER TABLE runs ADD COLUMN reason TEXT;
ALTER TABLE results ADD COLUMN worker TEXT;
ALTER TABLE results ADD COLUMN started REAL;
ALTER TABLE results ADD COLUMN finished REAL;
""",
    2: _compact_predictions,
}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _from_npz(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Store:
    """A results database at `path` (created on first use)."""

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no results store here (run `harness run` first)")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: is not a file (the results store is a SQLite file)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path.parent}: cannot create the output folder ({exc.strerror or exc})") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the results store ({exc})") from None
        try:
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a harness results store, or a damaged one ({exc})") from None
        except StoreError:
            self.db.close()
            raise

    def _check_schema(self) -> None:
        """Create a new store, migrate an older one, refuse a newer or foreign one: before anything is fitted."""
        tables = {t for (t,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
            return
        row = (
            self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if "meta" in tables
            else None
        )
        if row is None or not str(row[0]).isdigit() or not set(_TABLES) <= tables:
            shown = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self.path}: a SQLite database, but not a harness results store (tables: {shown}); "
                "choose another --out"
            )
        found = int(row[0])
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer harness (store schema {found}; this harness reads up to "
                f"{SCHEMA_VERSION}): upgrade harness, or choose another --out"
            )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if found < SCHEMA_VERSION:
            self._migrate(found)
        self.db.executescript(_SCHEMA)  # tables added since (IF NOT EXISTS)

    def _migrate(self, found: int) -> None:
        """Bring an older store up to SCHEMA_VERSION in one transaction (all or nothing)."""
        self.db.isolation_level = None  # explicit transaction: SQLite's DDL is transactional
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for version in range(found, SCHEMA_VERSION):
                step = _MIGRATIONS[version]
                if callable(step):
                    step(self.db)
                    continue
                for statement in filter(str.strip, step.split(";")):
                    self.db.execute(statement)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self.db.isolation_level = ""

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ runs

    def start_run(
        self, run_id: str, suite: str, suite_json: str, argv: list[str], versions: dict, settings: dict
    ) -> None:
        self.db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, NULL, 'running', ?, ?, ?, NULL)",
            (run_id, suite, suite_json, time.time(), json.dumps(argv), json.dumps(versions), json.dumps(settings)),
        )
        self.db.commit()

    def finish_run(self, run_id: str, status: str, reason: str | None = None) -> None:
        """Close a run: finished, interrupted (by which signal) or failed (why)."""
        self.db.execute(
            "UPDATE runs SET finished = ?, status = ?, reason = ? WHERE run_id = ?",
            (time.time(), status, reason, run_id),
        )
        self.db.commit()

    def record_plan(self, run_id: str, keys: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO run_cells VALUES (?, ?)", [(run_id, k) for k in keys])
        self.db.commit()

    def record_datasets(self, infos: Iterable[dict[str, Any]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?)",
            [(i["name"], i["fingerprint"], json.dumps(i)) for i in infos],
        )
        self.db.commit()

    def record_metrics(self, metrics: Iterable[tuple[str, str, bool]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)", [(n, t, int(g)) for n, t, g in metrics])
        self.db.commit()

    def latest_run(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1").fetchone()
        if row is None:
            return None
        cols = [d[0] for d in self.db.execute("SELECT * FROM runs LIMIT 0").description]
        return dict(zip(cols, row, strict=True))

    # ------------------------------------------------------------ results

    def done_keys(self, statuses: tuple[str, ...] | None = None) -> set[str]:
        if statuses is None:
            return {k for (k,) in self.db.execute("SELECT key FROM results")}
        marks = ",".join("?" * len(statuses))
        return {k for (k,) in self.db.execute(f"SELECT key FROM results WHERE status IN ({marks})", statuses)}

    def add(self, result: FoldResult, run_id: str) -> None:
        """Write one fold and commit at once: a killed run keeps every finished fold."""
        r = result
        row = {
            "key": r.key,
            "run_id": run_id,
            "dataset": r.dataset,
            "estimator": r.estimator,
            "task": r.task,
            "repeat": r.repeat,
            "fold": r.fold,
            "status": r.status,
            "metrics": json.dumps(r.metrics),
            "fit_time": r.fit_time,
            "predict_time": r.predict_time,
            "n_train": r.n_train,
            "n_test": r.n_test,
            "error": r.error,
            "detail": r.detail,
            "notes": json.dumps(r.notes),
            "seed": r.seed,
            "config": json.dumps(r.config, sort_keys=True, default=str),
            "versions": json.dumps(r.versions),
            "dataset_fingerprint": r.fingerprint,
            "created": time.time(),
            "extra": json.dumps(r.extra, default=jsonable_lax),
            "worker": r.worker,
            "started": r.started,
            "finished": r.finished,
        }
        names = ", ".join(row)
        self.db.execute(
            f"INSERT OR REPLACE INTO results ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
        if r.y_pred is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?)",
                (r.key, pack(r.test_index), pack(r.y_true), pack(r.y_pred), pack(r.proba, float32=True)),
            )
        else:
            self.db.execute("DELETE FROM predictions WHERE key = ?", (r.key,))
        if r.explanation is not None:
            arrays, meta = r.explanation
            self.db.execute(
                "INSERT OR REPLACE INTO explanations VALUES (?,?,?)",
                (r.key, _npz(arrays), json.dumps(meta, default=jsonable_lax)),
            )
        else:
            self.db.execute("DELETE FROM explanations WHERE key = ?", (r.key,))
        self.db.commit()

    def add_step(self, result: StepResult, run_id: str) -> None:
        """Record how a study or pretraining fit ended (its folds carry the cause when it failed)."""
        r = result
        self.db.execute(
            "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?)",
            (r.key, run_id, r.kind, r.description, r.status, r.error, r.detail, r.worker, r.started, r.finished),
        )
        self.db.commit()

    def steps(self) -> pd.DataFrame:
        """One row per study or pretraining fit: key, kind, description, status, cause, where and when."""
        return pd.read_sql_query("SELECT * FROM steps ORDER BY started", self.db)

    def current_keys(self) -> set[str]:
        """The folds of the latest suite version, each under the key its newest run planned.

        Runs of the same suite text add up: runs filtered with --dataset/--estimator each
        plan some folds. A fold planned again under another key (its data file changed,
        or a new harness version keys it anew) counts only under the newer key, so no
        report averages two versions of one fold. Rows of an older suite version (changed
        parameters, data or splits) stay in the file but are not current.
        """
        latest = self.latest_run()
        if latest is None:
            return set()
        rows = self.db.execute(
            "SELECT c.key, MAX(r.started), s.dataset, s.estimator, s.seed, s.repeat, s.fold FROM run_cells c "
            "JOIN runs r ON r.run_id = c.run_id JOIN results s ON s.key = c.key WHERE r.suite_json = ? "
            "GROUP BY c.key ORDER BY MAX(r.started), c.key",
            (latest["suite_json"],),
        )
        newest = {tuple(cell): key for key, _, *cell in rows}  # in planning order: the newest key wins
        return set(newest.values())

    def results(self, keys: set[str] | None = None) -> pd.DataFrame:
        """One row per fold, metrics expanded to columns; only `keys` when given.

        Typed: the JSON columns (extra, config, notes, versions) come back as dicts, so no
        reader parses them again.
        """
        frame = pd.read_sql_query("SELECT * FROM results ORDER BY dataset, estimator, repeat, fold", self.db)
        if keys is not None:
            frame = frame[frame["key"].isin(keys)].reset_index(drop=True)
        for col in ("extra", "config", "notes", "versions"):
            frame[col] = [json.loads(v) if v else {} for v in frame[col]]
        metrics = pd.DataFrame([json.loads(m) for m in frame["metrics"]], index=frame.index)
        return pd.concat([frame.drop(columns=["metrics"]), metrics], axis=1)

    def metric_directions(self) -> dict[str, bool]:
        return {n: bool(g) for n, g in self.db.execute("SELECT name, greater_is_better FROM metrics")}

    def dataset_infos(self) -> dict[str, dict[str, Any]]:
        return {fp: json.loads(info) for _, fp, info in self.db.execute("SELECT * FROM datasets")}

    def predictions(self, key: str) -> dict[str, np.ndarray | None] | None:
        row = self.db.execute(
            "SELECT test_index, y_true, y_pred, proba FROM predictions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("test_index", "y_true", "y_pred", "proba"), map(unpack, row), strict=True))

    def explanations(self, keys: Iterable[str]) -> dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """Stored SHAP values by fold key (arrays and metadata), for the keys that have them."""
        wanted = set(keys)
        rows = self.db.execute("SELECT key, arrays, meta FROM explanations")
        return {k: (_from_npz(a), json.loads(m)) for k, a, m in rows if k in wanted}

    def record_check(self, name: str, ident: str, payload: dict[str, Any]) -> None:
        """A data check's result (e.g. shift of a dataset against its reference), by name."""
        self.db.execute("INSERT OR REPLACE INTO checks VALUES (?,?,?)", (name, ident, json.dumps(payload)))
        self.db.commit()

    def checks(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {n: (i, json.loads(p)) for n, i, p in self.db.execute("SELECT name, ident, payload FROM checks")}


def _guarded(method: Any) -> Any:
    """A store call that meets a damaged or locked file raises StoreError (one line, exit 2), not sqlite's error."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            exc = exc.__cause__ or exc  # pandas wraps sqlite's error in one that quotes the whole query
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"{self.path}: cannot use the results store: {cause}") from None

    return wrapper


for _name, _method in list(vars(Store).items()):
    if callable(_method) and not _name.startswith("_") and _name not in ("close",):
        setattr(Store, _name, _guarded(_method))
