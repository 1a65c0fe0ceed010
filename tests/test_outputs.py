"""Nothing a careless user or a hostile file does destroys results (issue 12).

- every writing command refuses to write over the stores, pretrained weights or a file
  that is not its own kind of output unless --force, and the store stays a valid SQLite file;
- every file is written atomically: a failed write leaves the old file and no partial one;
- the report outputs are a set: a failure while building or writing leaves the previous
  set byte-identical, and the message says so;
- a malformed baseline is exit 2 with one line naming the file and the key path.

One tiny run (iris, a tree and a dummy, 2 folds) is made per module; each test works on a copy.
"""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from harness.baseline import save_baseline
from harness.fileio import MANIFEST, OutputError, atomic_write, check_output_dir, is_baseline_file
from harness.report import OUTPUT_FILES, write_outputs
from harness.runner import RunOptions, run_suite
from harness.spec import parse_suite

SUITE = {
    "name": "outputs",
    "seed": 0,
    "cv": {"folds": 2},
    "explain": {"enabled": False},
    "datasets": [{"name": "iris", "source": "sklearn:iris"}],
    "estimators": [
        {"name": "tree", "model": "decision_tree"},
        {"name": "dummy", "model": "sklearn.dummy.DummyClassifier"},
    ],
}


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "run"
    run_suite(parse_suite(SUITE), RunOptions(out=out, argv=["test"]))
    write_outputs(out)
    save_baseline(out)  # out/baseline.json
    return out


@pytest.fixture
def run_dir(master: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder (store, outputs, manifest, baseline.json)."""
    return Path(shutil.copytree(master, tmp_path / "run"))


def _snapshot(folder: Path, store: bool = True) -> dict[str, bytes]:
    """Every file under `folder` (temporary files included) by relative path; `store=False` leaves out results.db*."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (store or not p.name.startswith("results.db"))
    }


def _store_is_valid(db: Path) -> None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 4  # 2 estimators x 2 folds


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def _sqlite_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE trials (id INTEGER)")
    con.close()


def _tiny_csv(path: Path) -> Path:
    frame = pd.DataFrame({"a": [float(i % 7) for i in range(40)], "b": [float(i % 3) for i in range(40)]})
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- refusing to overwrite

# id -> (prepare(run_dir, tmp) -> target, args(run_dir, tmp) -> command line)
REFUSALS = {
    "save --to results.db": (
        lambda d, t: d / "results.db",
        lambda d, t: ["baseline", "save", d, "--to", d / "results.db"],
    ),
    "save --to results.db-wal": (
        lambda d, t: d / "results.db-wal",
        lambda d, t: ["baseline", "save", d, "--to", d / "results.db-wal"],
    ),
    "save --to studies.db": (
        lambda d, t: (_sqlite_file(d / "studies.db"), d / "studies.db")[1],
        lambda d, t: ["baseline", "save", d, "--to", d / "studies.db"],
    ),
    "save --to pretrained/": (
        lambda d, t: (
            (d.joinpath("pretrained").mkdir(), d.joinpath("pretrained", "w.pt").write_bytes(b"\x80w"))
            and d / "pretrained" / "w.pt"
        ),
        lambda d, t: ["baseline", "save", d, "--to", d / "pretrained" / "w.pt"],
    ),
    "save --to a report output": (
        lambda d, t: d / "results.csv",
        lambda d, t: ["baseline", "save", d, "--to", d / "results.csv"],
    ),
    "save --to a foreign json": (
        lambda d, t: (t.joinpath("settings.json").write_text('{"keep": "me"}'), t / "settings.json")[1],
        lambda d, t: ["baseline", "save", d, "--to", t / "settings.json"],
    ),
    "save --to a foreign parquet": (
        lambda d, t: (pd.DataFrame({"x": [1, 2]}).to_parquet(t / "data.parquet"), t / "data.parquet")[1],
        lambda d, t: ["baseline", "save", d, "--to", t / "data.parquet"],
    ),
    "save over a foreign baseline.json": (
        lambda d, t: (d.joinpath("baseline.json").write_text("my notes\n"), d / "baseline.json")[1],
        lambda d, t: ["baseline", "save", d],
    ),
    "report over a foreign summary.md": (
        lambda d, t: (
            (d.joinpath(MANIFEST).unlink(), d.joinpath("summary.md").write_text("# My notes\n")) and d / "summary.md"
        ),
        lambda d, t: ["report", d],
    ),
    "report over a foreign manifest": (
        lambda d, t: (d.joinpath(MANIFEST).write_text("not a manifest"), d / MANIFEST)[1],
        lambda d, t: ["report", d],
    ),
    "check over a foreign check.md": (
        lambda d, t: (d.joinpath("check.md").write_text("# release checklist\n"), d / "check.md")[1],
        lambda d, t: ["check", d, "--baseline", d / "baseline.json"],
    ),
    "check-data over a foreign check-data.json": (
        lambda d, t: (
            (_tiny_csv(t / "new.csv"), d.joinpath("check-data.json").write_text('{"mine": 1}'))
            and d / "check-data.json"
        ),
        lambda d, t: ["check-data", t / "new.csv", "--reference", t / "new.csv", "--out", d],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_writing_commands_refuse_to_overwrite_without_force(case, run_dir, tmp_path, cli):
    prepare, args = REFUSALS[case]
    target = prepare(run_dir, tmp_path)
    before = _snapshot(tmp_path)
    proc = cli(*args(run_dir, tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert str(target) in line and "--force" in line, line
    assert _snapshot(tmp_path) == before  # nothing at all was written, the target least of all
    _store_is_valid(run_dir / "results.db")
    if target.name.startswith("results.db"):
        return  # --force over the store works too, but then there is no store left to check
    proc = cli(*args(run_dir, tmp_path), "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.read_bytes() != before.get(target.relative_to(tmp_path).as_posix())
    _store_is_valid(run_dir / "results.db")


def test_an_optional_output_an_earlier_build_left_is_removed_but_a_foreign_one_is_refused(run_dir, cli):
    from harness.report import OPTIONAL_OUTPUT_FILES

    stale = run_dir / OPTIONAL_OUTPUT_FILES[0]
    stale.write_text("dataset,estimator\n")
    manifest = json.loads((run_dir / MANIFEST).read_text())
    (run_dir / MANIFEST).write_text(json.dumps(manifest | {"files": [*manifest["files"], stale.name]}))
    assert cli("report", run_dir).returncode == 0
    assert not stale.exists()  # ours, and this build has no curves: not left to go stale
    stale.write_text("someone else's file\n")  # the manifest still lists it, but its content is not ours
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    result = cli("report", run_dir)
    assert result.returncode == 2 and stale.name in result.stderr
    assert stale.read_text() == "someone else's file\n"


def test_own_outputs_are_rewritten_without_force_even_without_a_manifest(run_dir, tmp_path, cli):
    (run_dir / MANIFEST).unlink()  # outputs of a harness from before manifests: recognised by content
    assert cli("report", run_dir).returncode == 0
    assert json.loads((run_dir / MANIFEST).read_text())["files"] == sorted(OUTPUT_FILES)
    assert cli("baseline", "save", run_dir).returncode == 0  # over its own baseline.json
    assert cli("baseline", "save", run_dir, "--to", tmp_path / "b.parquet").returncode == 0
    assert cli("baseline", "save", run_dir, "--to", tmp_path / "b.parquet").returncode == 0  # over its own parquet
    assert is_baseline_file(tmp_path / "b.parquet") and is_baseline_file(run_dir / "baseline.json")
    for _ in range(2):
        assert cli("check", run_dir, "--baseline", tmp_path / "b.parquet").returncode == 0
    _store_is_valid(run_dir / "results.db")


@pytest.mark.parametrize(
    "args",
    [
        lambda d, t: ["report", d / "results.db"],
        lambda d, t: ["check-data", t / "x.csv", "--reference", t / "x.csv", "--out", d / "results.db"],
        lambda d, t: ["check-data", t / "x.csv", "--reference", t / "x.csv", "--out", d / "results.csv" / "sub"],
        lambda d, t: ["baseline", "save", d, "--to", d],  # a folder, not a file
    ],
    ids=["report DIR is a file", "check-data --out is a file", "check-data --out under a file", "save --to a folder"],
)
def test_an_output_path_that_is_a_file_or_under_one_is_exit_2(args, run_dir, tmp_path, cli):
    _tiny_csv(tmp_path / "x.csv")
    before = _snapshot(run_dir)
    proc = cli(*args(run_dir, tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _one_error_line(proc)
    assert _snapshot(run_dir) == before
    _store_is_valid(run_dir / "results.db")


def test_check_output_dir_refuses_files_and_creates_nothing(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(OutputError, match="is a file"):
        check_output_dir(tmp_path / "f" / "sub" / "deeper")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- atomic writes


def test_a_failed_atomic_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text("half of a new fi")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["baseline.json"]
    atomic_write(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["baseline.json"]


def test_a_full_disk_while_saving_a_baseline_is_one_line_and_keeps_the_old_file(run_dir, monkeypatch, cli):
    import harness.fileio

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.fileio.os, "fsync", no_space)
    before = _snapshot(run_dir, store=False)
    for args in (["baseline", "save", run_dir], ["baseline", "save", run_dir, "--to", run_dir / "b.parquet"]):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "No space left on device" in _one_error_line(proc)
        assert _snapshot(run_dir, store=False) == before  # old baseline.json intact, no b.parquet, no temporary file
    _store_is_valid(run_dir / "results.db")


def test_a_write_failing_mid_set_leaves_the_previous_set_whole(run_dir, monkeypatch, cli):
    import harness.fileio

    _change_the_store(run_dir)  # so that a rewritten output would differ from the old one
    before = _snapshot(run_dir, store=False)
    real = harness.fileio._write_temp

    def fail_on_summary(path: Path, data, encoding: str) -> Path:
        if path.name == "summary.md":  # results.csv, leaderboard.md, stats.json are already staged
            raise OSError(errno.EIO, "Input/output error")
        return real(path, data, encoding)

    monkeypatch.setattr(harness.fileio, "_write_temp", fail_on_summary)
    proc = cli("report", run_dir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "summary.md" in _one_error_line(proc)
    assert _snapshot(run_dir, store=False) == before  # no file of the set replaced, no temporary file left


# ---------------------------------------------------------------- outputs as a set


def _change_the_store(run_dir: Path) -> None:
    """As after a later run: other fit times, so results.csv and the reports would change if rewritten."""
    with sqlite3.connect(run_dir / "results.db") as con:
        con.execute("UPDATE results SET fit_time = fit_time + 1")
    con.close()


@pytest.mark.parametrize(
    ("where", "exc", "code"),
    [
        ("harness.report.context.load_report_data", ValueError("analysis bug"), 3),
        ("harness.report.html.render_html", KeyError("section"), 3),
        ("harness.report.markdown.summary_markdown", ZeroDivisionError("division by zero"), 3),
        ("harness.report.context.load_report_data", None, 2),  # a HarnessError keeps its exit code
    ],
    ids=["analysis", "html", "summary", "bad input"],
)
def test_a_failing_analysis_leaves_the_previous_outputs_byte_identical(where, exc, code, run_dir, cli):
    import importlib

    from harness.errors import StoreError

    error = exc if exc is not None else StoreError(f"{run_dir / 'results.db'}: damaged")
    before = {name: (run_dir / name).read_bytes() for name in (*OUTPUT_FILES, MANIFEST)}
    _change_the_store(run_dir)

    def boom(*args, **kwargs):
        raise error

    module, name = where.rsplit(".", 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.import_module(module), name, boom)  # harness.report imports its parts when it builds
        proc = cli("report", run_dir)
    assert proc.returncode == code, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert f"the previous outputs in {run_dir} are unchanged" in line, line
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert cli("report", run_dir).returncode == 0  # the store was fine all along: now they all change
    assert (run_dir / "results.csv").read_bytes() != before["results.csv"]


# ---------------------------------------------------------------- malformed baselines


def _edited(master: Path, edit) -> str:
    data = json.loads((master / "baseline.json").read_text())
    edit(data)
    return json.dumps(data)


def _first_fold(b: dict) -> dict:
    return b["cells"]["iris"]["tree"]["folds"][0]


# id -> (file name, content: str | bytes | callable(master, path) writing the file, expected text in the line)
MALFORMED = {
    "datasets value not an object": ("b.json", lambda b: b["datasets"].__setitem__("iris", 5), "datasets.iris:"),
    "cells missing": ("b.json", lambda b: b.pop("cells"), "cells: missing"),
    "datasets missing": ("b.json", lambda b: b.pop("datasets"), "datasets: missing"),
    "datasets a list": ("b.json", lambda b: b.__setitem__("datasets", ["iris"]), "datasets:"),
    "task unknown": ("b.json", lambda b: b["datasets"]["iris"].__setitem__("task", "clustering"), "datasets.iris.task"),
    "task missing": ("b.json", lambda b: b["datasets"]["iris"].pop("task"), "datasets.iris.task: missing"),
    "fingerprint a number": (
        "b.json",
        lambda b: b["datasets"]["iris"].__setitem__("fingerprint", 5),
        "datasets.iris.fingerprint: should be a string or a list",
    ),
    "seeds a string": ("b.json", lambda b: b["datasets"]["iris"]["split"].__setitem__("seeds", "0"), "split.seeds"),
    "cell a string": ("b.json", lambda b: b["cells"]["iris"].__setitem__("tree", "x"), "cells.iris.tree:"),
    "folds an object": ("b.json", lambda b: b["cells"]["iris"]["tree"].__setitem__("folds", {}), "tree.folds:"),
    "fold index a string": ("b.json", lambda b: _first_fold(b).__setitem__("fold", "zero"), "tree.folds[0].fold"),
    "repeat missing": ("b.json", lambda b: _first_fold(b).pop("repeat"), "tree.folds[0].repeat: missing"),
    "status unknown": ("b.json", lambda b: _first_fold(b).__setitem__("status", "great"), "folds[0].status"),
    "score a string": (
        "b.json",
        lambda b: _first_fold(b)["scores"].__setitem__("accuracy", "high"),
        "folds[0].scores.accuracy",
    ),
    "scores a list": ("b.json", lambda b: _first_fold(b).__setitem__("scores", [0.9]), "folds[0].scores"),
    "config a list": ("b.json", lambda b: b["cells"]["iris"]["tree"].__setitem__("config", []), "tree.config"),
    "versions not strings": ("b.json", lambda b: b["versions"].__setitem__("numpy", 2), "versions.numpy"),
    "metrics entry wrong": ("b.json", lambda b: b["metrics"].__setitem__("accuracy", True), "metrics.accuracy"),
    "cells of an unknown dataset": ("b.json", lambda b: b["cells"].__setitem__("ghost", {}), "cells.ghost"),
    "format_version a string": ("b.json", lambda b: b.__setitem__("format_version", "1"), "format_version"),
    "format_version newer": ("b.json", lambda b: b.__setitem__("format_version", 99), "newer than this harness"),
    "no format marker": ("b.json", lambda b: b.pop("format"), "not a harness baseline file"),
    "a JSON list": ("b.json", "[1, 2, 3]", "not a harness baseline file"),
    "JSON null": ("b.json", "null", "not a harness baseline file"),
    "not JSON": ("b.json", "datasets: {iris: 5}\n", "not a harness baseline file"),
    "empty file": ("b.json", "", "the file is empty"),
    "binary junk": ("b.json", b"\x00\xff\xfe\x80" * 64, "not a harness baseline file"),
    "deeply nested JSON": ("b.json", "[" * 100_000 + "]" * 100_000, "not a harness baseline file"),
    "the results store": ("results.db", "store", "not a harness baseline file"),
    "parquet that is not a baseline": ("b.parquet", "plain parquet", "without baseline metadata"),
    "parquet with damaged metadata": ("b.parquet", "damaged metadata", "harness_baseline: not JSON"),
    "parquet with bad metadata schema": ("b.parquet", "bad metadata schema", "datasets.iris.task"),
    "parquet without fold column": ("b.parquet", "no fold column", "column fold: missing"),
    "parquet rows of an unknown dataset": ("b.parquet", "unknown dataset rows", "'ghost' is not in the baseline"),
    "truncated parquet": ("b.parquet", "truncated", "not a harness baseline file"),
}


def _parquet(master: Path, path: Path, kind: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = path.with_name("good.parquet")
    save_baseline(master, good) if not good.exists() else None
    table = pq.read_table(good)
    header = json.loads(table.schema.metadata[b"harness_baseline"])
    if kind == "plain parquet":
        pd.DataFrame({"dataset": ["iris"], "x": [1.0]}).to_parquet(path)
    elif kind == "damaged metadata":
        pq.write_table(table.replace_schema_metadata({b"harness_baseline": b"{"}), path)
    elif kind == "bad metadata schema":
        header["datasets"]["iris"]["task"] = 7
        pq.write_table(table.replace_schema_metadata({b"harness_baseline": json.dumps(header).encode()}), path)
    elif kind == "no fold column":
        pq.write_table(table.drop(["fold"]), path)
    elif kind == "unknown dataset rows":
        ds = pa.array(["ghost"] * table.num_rows)
        pq.write_table(table.set_column(table.column_names.index("dataset"), "dataset", ds), path)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:200])
    good.unlink()


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_baseline_is_exit_2_with_one_line_naming_the_file_and_key(case, master, run_dir, tmp_path, cli):
    name, content, expected = MALFORMED[case]
    path = tmp_path / name
    if callable(content):
        path.write_text(_edited(master, content))
    elif name == "results.db":
        shutil.copy(master / "results.db", path)
    elif name.endswith(".parquet"):
        _parquet(master, path, content)
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = _snapshot(run_dir)
    proc = cli("check", run_dir, "--baseline", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert line.startswith(f"error: {path}: ") and expected in line, line
    assert _snapshot(run_dir) == before  # no check.md/json written


def test_run_with_a_malformed_baseline_fits_nothing(master, tmp_path, cli):
    import yaml

    bad = tmp_path / "b.json"
    bad.write_text(_edited(master, lambda b: b["datasets"].__setitem__("iris", 5)))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    proc = cli("run", suite, "--out", tmp_path / "never", "--baseline", bad)
    assert proc.returncode == 2 and "datasets.iris" in _one_error_line(proc)
    assert not (tmp_path / "never").exists()
