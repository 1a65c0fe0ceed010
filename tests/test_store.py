"""The results store: one row per key, committed at once, predictions round-trip without pickle."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from harness.errors import StoreError
from harness.store import SCHEMA_VERSION, FoldResult, Store, pack, unpack


def _result(key: str, status: str = "ok", acc: float | None = 0.9) -> FoldResult:
    return FoldResult(
        key,
        "iris",
        "tree",
        "classification",
        0,
        1,
        status,
        metrics={"accuracy": acc},
        fit_time=0.1,
        predict_time=0.01,
        n_train=100,
        n_test=50,
        test_index=np.arange(5),
        y_true=np.array([0, 1, 2, 1, 0]),
        y_pred=np.array([0, 1, 1, 1, 0]),
        proba=np.full((5, 3), 1 / 3),
    )


def test_rows_are_committed_at_once_and_visible_to_another_connection(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(
            replace(_result("k1"), seed=0, config={"class": "x"}, versions={"python": "3"}, fingerprint="fp"), "run"
        )
        with sqlite3.connect(tmp_path / "r.db") as other:  # as a killed process's successor would see it
            assert other.execute("SELECT key, status FROM results").fetchall() == [("k1", "ok")]


def test_same_key_never_duplicates(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1", "error", None), "run1")
        store.add(_result("k1", "ok", 0.8), "run2")
        rows = store.results()
        assert len(rows) == 1 and rows["status"].iloc[0] == "ok" and rows["accuracy"].iloc[0] == 0.8
        assert store.done_keys(("ok",)) == {"k1"} and store.done_keys(("error",)) == set()


def test_predictions_round_trip(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1"), "run")
        pred = store.predictions("k1")
    np.testing.assert_array_equal(pred["test_index"], np.arange(5))
    np.testing.assert_array_equal(pred["y_pred"], [0, 1, 1, 1, 0])
    assert pred["proba"].shape == (5, 3)


def test_missing_or_foreign_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no results store"):
        Store(tmp_path / "nope.db", create=False)
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a harness results store"):
        Store(bad)


def test_explanations_round_trip_without_pickle_and_follow_their_fold(tmp_path):
    values = np.random.default_rng(0).normal(size=(4, 3, 1)).astype(np.float32)
    result = _result("k1")
    result.explanation = ({"values": values, "rows": np.arange(4)}, {"features": ["a", "b", "c"], "explainer": "tree"})
    with Store(tmp_path / "r.db") as store:
        store.add(result, "run")
        arrays, meta = store.explanations(["k1", "missing"])["k1"]
        np.testing.assert_array_equal(arrays["values"], values)
        assert arrays["values"].dtype == np.float32 and meta["features"] == ["a", "b", "c"]
        store.add(_result("k1", status="error", acc=None), "run2")  # a rerun that failed
        assert store.explanations(["k1"]) == {}


# ---------------------------------------------------------------- schema versions, foreign and damaged files

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, suite_json TEXT NOT NULL, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, argv TEXT, versions TEXT, settings TEXT
);
CREATE TABLE run_cells (run_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, key));
CREATE TABLE results (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, dataset TEXT NOT NULL, estimator TEXT NOT NULL,
    task TEXT NOT NULL, repeat INTEGER NOT NULL, fold INTEGER NOT NULL, status TEXT NOT NULL,
    metrics TEXT NOT NULL, fit_time REAL, predict_time REAL, n_train INTEGER, n_test INTEGER,
    error TEXT, detail TEXT, notes TEXT, seed INTEGER, config TEXT, versions TEXT,
    dataset_fingerprint TEXT, created REAL NOT NULL, extra TEXT
);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO results VALUES ('old', 'r0', 'iris', 'tree', 'classification', 0, 0, 'ok', '{"accuracy": 0.5}',
    0.1, 0.1, 10, 5, NULL, NULL, '{}', 0, '{}', '{}', 'fp', 0, '{}');
"""


def test_a_version_1_store_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as con:
        con.executescript(V1_SCHEMA)
    with Store(db) as store:
        store.add(_result("new"), "run")
        rows = store.results()
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    assert set(rows["key"]) == {"old", "new"}
    assert rows.set_index("key").loc["old", "accuracy"] == 0.5


# ---------------------------------------------------------------- compact predictions (schema 3)

_RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "arr",
    [
        np.sort(_RNG.choice(10**6, 3000, replace=False)).astype(np.int64),  # test indices: deltas
        np.array([7, 3, 9, -4, 0], dtype=np.int64),  # not ascending, negative
        np.array([2**40, 5, 2**40 + 1], dtype=np.int64),  # too wide to narrow
        np.array([0, 2**64 - 1], dtype=np.uint64),
        np.array([], dtype=np.int64),
        np.array([42], dtype=np.int64),
        np.array([True, False, True]),
        _RNG.normal(size=1000),  # regression targets and predictions: float64, exactly
        _RNG.normal(size=(50, 3)).astype(np.float32),
        np.array(["setosa", "virginica"]),  # labels as text: kept as .npy
    ],
    ids=["indices", "unsorted", "wide", "uint64", "empty", "one", "bool", "float64", "float32-2d", "text"],
)
def test_pack_round_trips_exactly(arr):
    back = unpack(pack(arr))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_probabilities_are_kept_to_float32_precision_and_read_as_float64():
    proba = _RNG.dirichlet([1, 1, 1], size=500)
    proba[0] = [1e-30, 1 - 1e-12, 1e-12]  # tiny probabilities keep their relative precision (log loss reads them)
    back = unpack(pack(proba, float32=True))
    assert back.dtype == np.float64 and back.shape == proba.shape
    np.testing.assert_array_equal(back, proba.astype(np.float32))
    np.testing.assert_allclose(back, proba, rtol=1e-7)


def test_a_binary_classifiers_predictions_take_under_a_quarter_of_the_npy_bytes():
    n = 100_000
    index = np.sort(_RNG.choice(3 * n, n, replace=False)).astype(np.int64)
    y_true = _RNG.integers(0, 2, n).astype(np.int64)
    p = np.clip(_RNG.beta(0.5, 0.5, n), 1e-9, 1 - 1e-9)
    arrays = [(index, False), (y_true, False), ((p > 0.5).astype(np.int64), False), (np.c_[1 - p, p], True)]
    compact = sum(len(pack(a, float32=f)) for a, f in arrays)
    assert compact < 0.25 * sum(a.nbytes for a, _ in arrays)  # .npy: 40 bytes a prediction


def test_a_blob_in_an_unknown_format_is_a_store_error(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.add(_result("k1"), "run")
        store.db.execute("UPDATE predictions SET y_pred = ? WHERE key = 'k1'", (b"garbage",))
        with pytest.raises(StoreError, match="unknown format"):
            store.predictions("k1")


def _version_2_store(path, results):
    """A store as schema 2 wrote it: the current tables, predictions as .npy bytes."""
    from harness.store import _npy

    with Store(path) as store:
        for r in results:
            store.add(r, "old-run")
        for r in results:
            store.db.execute(
                "UPDATE predictions SET test_index = ?, y_true = ?, y_pred = ?, proba = ? WHERE key = ?",
                (_npy(r.test_index), _npy(r.y_true), _npy(r.y_pred), _npy(r.proba), r.key),
            )
        store.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        store.db.commit()


def test_a_version_2_store_is_migrated_to_compact_predictions_that_read_back_the_same(tmp_path):
    n = 2000
    clf = replace(
        _result("clf"),
        test_index=np.arange(0, 3 * n, 3),
        y_true=_RNG.integers(0, 3, n),
        y_pred=_RNG.integers(0, 3, n),
        proba=_RNG.dirichlet([1, 1, 1], size=n),
    )
    reg = replace(
        _result("reg"), test_index=np.arange(n), y_true=_RNG.normal(size=n), y_pred=_RNG.normal(size=n), proba=None
    )
    db = tmp_path / "r.db"
    _version_2_store(db, [clf, reg])
    size = (
        "SELECT SUM(length(test_index) + length(y_true) + length(y_pred) + ifnull(length(proba), 0)) FROM predictions"
    )
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT substr(y_pred, 1, 6) FROM predictions").fetchall()[0][0] == b"\x93NUMPY"
        before = con.execute(size).fetchone()[0]
    with Store(db) as store:
        version = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        blobs = store.db.execute("SELECT test_index, y_true, y_pred FROM predictions").fetchall()
        got = {k: store.predictions(k) for k in ("clf", "reg")}
        after = store.db.execute(size).fetchone()[0]
    assert version == (str(SCHEMA_VERSION),)
    assert all(bytes(b).startswith(b"HZP") for row in blobs for b in row)
    for r in (clf, reg):
        for name in ("test_index", "y_true", "y_pred"):
            np.testing.assert_array_equal(got[r.key][name], getattr(r, name))
            assert got[r.key][name].dtype == getattr(r, name).dtype
    np.testing.assert_allclose(got["clf"]["proba"], clf.proba, rtol=1e-7)
    assert got["reg"]["proba"] is None
    assert after < 0.6 * before


def test_a_failed_migration_leaves_the_version_2_store_as_it_was(tmp_path, monkeypatch):
    import harness.store as store_module

    db = tmp_path / "r.db"
    _version_2_store(db, [_result("k1")])
    before = sqlite3.connect(db).execute("SELECT * FROM predictions").fetchall()

    def broken(con):
        store_module._compact_predictions(con)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setitem(store_module._MIGRATIONS, 2, broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        Store(db)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        assert con.execute("SELECT * FROM predictions").fetchall() == before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda con: con.executescript(V1_SCHEMA.replace("'1'", "'9'")),
            "written by a newer harness \\(store schema 9",
        ),
        (
            lambda con: con.execute("CREATE TABLE customers (id INTEGER)"),
            "not a harness results store \\(tables: customers",
        ),
        (lambda con: con.executescript(V1_SCHEMA.replace("'1'", "'one'")), "not a harness results store"),
        (lambda con: con.executescript("CREATE TABLE meta (key TEXT, value TEXT);"), "not a harness results store"),
    ],
    ids=["newer", "foreign-sqlite", "unreadable-version", "half-a-store"],
)
def test_newer_and_foreign_stores_are_refused_before_anything_is_written(tmp_path, make, message):
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as con:
        make(con)
    before = db.read_bytes()
    with pytest.raises(StoreError, match=message):
        Store(db)
    assert db.read_bytes() == before


def _damaged(tmp_path):
    """A real run's store whose pages past the header are overwritten, as a bad disk or a half-copied file leaves it."""
    from harness.baseline import save_baseline
    from harness.runner import RunOptions, run_suite
    from harness.spec import parse_suite

    suite = {
        "name": "t",
        "cv": {"folds": 2, "repeats": 10},
        "explain": {"enabled": False},
        "datasets": [{"name": "iris", "source": "sklearn:iris"}],
        "estimators": [{"name": "tree", "model": "decision_tree"}],
    }
    out = tmp_path / "out"
    run_suite(parse_suite(suite), RunOptions(out=out))
    save_baseline(out, tmp_path / "b.json")  # a valid baseline, so `check` meets the store first
    db = out / "results.db"
    with Store(db) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    return db


def test_a_damaged_store_is_a_store_error_not_a_crash(tmp_path):
    db = _damaged(tmp_path)
    with pytest.raises(StoreError, match=r"results\.db: not a harness results store, or a damaged one"):
        Store(db)


class _Broken:
    """A connection to a file that breaks after it was opened (a page read fails mid-query)."""

    def execute(self, *args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    executemany = execute

    def cursor(self):  # pandas queries through a cursor
        return self

    def close(self):
        pass

    rollback = commit = close


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.results(),
        lambda s: s.done_keys(),
        lambda s: s.latest_run(),
        lambda s: s.add(_result("k"), "run"),
        lambda s: s.finish_run("run", "finished"),
    ],
    ids=["results", "done_keys", "latest_run", "add", "finish_run"],
)
def test_damage_found_mid_query_is_a_store_error_naming_the_file(tmp_path, call):
    with Store(tmp_path / "r.db") as store:
        store.db = _Broken()
        with pytest.raises(StoreError, match=r"r\.db: cannot use the results store: database disk image is malformed"):
            call(store)


@pytest.mark.parametrize(
    "command",
    [
        lambda out: ["report", out],
        lambda out: ["baseline", "save", out, "--to", out.parent / "b.json"],
        lambda out: ["check", out, "--baseline", out.parent.parent / "b.json"],
        lambda out: ["run", "suites/smoke.yaml", "--out", out],
    ],
    ids=["report", "baseline-save", "check", "run"],
)
def test_every_command_meets_a_damaged_store_with_one_line_and_exit_2(tmp_path, cli, command):
    db = _damaged(tmp_path)
    result = cli(*command(db.parent))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
