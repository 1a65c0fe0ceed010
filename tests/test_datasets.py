"""Hostile and careless dataset files: refused with one line naming the file and the column.

Each malformed file is written into tmp_path (CSV as raw text, so the header is exactly
what a user or a pull request would commit; Parquet with pyarrow, which writes repeated
column names as given). Loading must raise DatasetError before anything is fitted; the
CLI must turn that into exit 2, one line, no traceback and no results.db.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.datasets import load_dataset
from harness.errors import DatasetError
from harness.spec import DatasetSpec

N = 20


def rows(n: int = N, extra: Callable[[int], str] | None = None) -> str:
    """Data lines `a,b,y` (y a float), deterministic; `extra(i)` appends one more field."""
    out = []
    for i in range(n):
        line = f"{i * 0.1:.1f},{(i * 7) % 5},{i * 0.37:.2f}"
        out.append(line + (f",{extra(i)}" if extra else ""))
    return "\n".join(out) + "\n"


def with_values(column: str, values: dict[int, str], header: str = "a,b,y") -> str:
    """A CSV text whose `column` holds the given text at the given rows."""
    names = header.split(",")
    lines = [header]
    for line in rows().splitlines():
        cells = line.split(",")
        lines.append(",".join(cells))
    for i, text in values.items():
        cells = lines[i + 1].split(",")
        cells[names.index(column)] = text
        lines[i + 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


def parquet(names: list[str], columns: list[list[float]]) -> pa.Table:
    return pa.table([pa.array(c) for c in columns], names=names)


FLOATS = [i * 0.37 for i in range(N)]
INTS = [float(i % 3) for i in range(N)]

# (id, file name, content (CSV text or a pyarrow table), spec overrides, column the message must name)
MALFORMED_WITH_COLUMN = [
    ("csv-duplicate-target", "d.csv", "a,b,y,y\n" + rows(extra=lambda i: f"{i * 0.37:.2f}"), {}, "'y'"),
    ("csv-duplicate-feature", "d.csv", "a,a,b,y\n" + rows(extra=lambda i: "1"), {}, "'a'"),
    # pandas would call the third column 'a.2' next to a genuine 'a.1': the file says 'a' twice
    ("csv-mangling-lookalike", "d.csv", "a,a.1,a,y\n" + rows(extra=lambda i: "1"), {}, "'a'"),
    ("csv-space-lookalike-target", "d.csv", "a,b,y, y\n" + rows(extra=lambda i: "1"), {}, "' y'"),
    ("csv-inf-text", "d.csv", with_values("a", {1: "inf", 4: "inf", 9: "inf"}), {}, "column 'a' has 3 rows"),
    ("csv-minus-infinity", "d.csv", with_values("b", {2: "-Infinity"}), {}, "column 'b' has 1 row"),
    ("csv-overflow-1e400", "d.csv", with_values("a", {0: "1e400", 3: "-1e999"}), {}, "column 'a' has 2 rows"),
    ("csv-inf-regression-target", "d.csv", with_values("y", {5: "inf", 6: "+Inf"}), {}, "target column 'y' has 2"),
    (
        "csv-inf-classification-target",
        "d.csv",
        "a,y\n" + "".join(f"{i},{['0', '1', 'inf'][i % 3]}\n" for i in range(N)),
        {"task": "classification"},
        "target column 'y' has 6 rows",
    ),
    (
        "csv-group-without-value",
        "d.csv",
        "a,g,y\n" + "".join(f"{i},{'' if i == 4 else i % 4},{i % 2}\n" for i in range(N)),
        {"group": "g"},
        "'g'",
    ),
    ("parquet-duplicate-target", "d.parquet", parquet(["a", "y", "y"], [FLOATS, INTS, INTS]), {}, "'y'"),
    ("parquet-duplicate-feature", "d.parquet", parquet(["a", "a", "y"], [FLOATS, FLOATS, INTS]), {}, "'a'"),
    (
        "parquet-inf-feature",
        "d.parquet",
        parquet(["a", "y"], [[np.inf if i % 4 == 0 else v for i, v in enumerate(FLOATS)], INTS]),
        {},
        "column 'a' has 5 rows",
    ),
    (
        "parquet-nested-list",
        "d.parquet",
        pa.table({"a": FLOATS, "l": [[i, i + 1] for i in range(N)], "y": INTS}),
        {},
        "column 'l' holds nested values",
    ),
    (
        "parquet-nested-struct-target",
        "d.parquet",
        pa.table({"a": FLOATS, "y": [{"k": i % 2} for i in range(N)]}),
        {},
        "column 'y' holds nested values",
    ),
    (
        "parquet-minus-inf-target",
        "d.parquet",
        parquet(["a", "y"], [INTS, [-np.inf if i == 3 else v for i, v in enumerate(FLOATS)]]),
        {},
        "target column 'y' has 1 row",
    ),
]

# Files broken as a whole: the message names the file and says what is wrong.
MALFORMED_FILE = [
    ("csv-empty", "d.csv", "", "is empty"),
    ("csv-blank-lines-only", "d.csv", "\n\n   \n", "is empty"),
    ("csv-header-only", "d.csv", "a,b,y\n", "has no rows"),
    ("csv-binary", "d.csv", bytes(range(256)) * 8, "not UTF-8"),
    ("csv-latin1-header", "d.csv", "café,y\n1,0\n2,1\n".encode("latin-1"), "not UTF-8"),
    ("csv-latin1-rows", "d.csv", "c,y\ncafé,0\nthé,1\n".encode("latin-1"), "cannot read"),
    # one more field per row than names: pandas would shift every name one column right
    ("csv-rows-wider-than-header", "d.csv", "a,b,y\n" + rows(extra=lambda i: "9"), "more fields than the header"),
    # the same with row numbers 0..n-1 in front: the index pandas would infer looks like its default one
    (
        "csv-row-numbers-without-a-name",
        "d.csv",
        "a,b,y\n" + "".join(f"{i},{line}\n" for i, line in enumerate(rows().splitlines())),
        "more fields than the header",
    ),
    ("csv-ragged-row", "d.csv", "a,b,y\n1,2,3\n4,5,6,7\n", "cannot read"),
    ("csv-all-nan-target", "d.csv", "a,b,y\n" + "".join(f"{i},{i},\n" for i in range(N)), "no rows with a target"),
    ("parquet-not-parquet", "d.parquet", "a,b,y\n1,2,3\n", "cannot read"),
    ("parquet-no-rows", "d.parquet", parquet(["a", "y"], [[], []]), "has no rows"),
]


def write(path: Path, content: str | bytes | pa.Table) -> Path:
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load(path: Path, group: str | None = None, **spec) -> object:
    return load_dataset(DatasetSpec(name="d", source=str(path), target="y", **spec), group=group, where="datasets[0]")


@pytest.mark.parametrize(
    ("name", "content", "spec", "column"),
    [c[1:] for c in MALFORMED_WITH_COLUMN],
    ids=[c[0] for c in MALFORMED_WITH_COLUMN],
)
def test_malformed_file_names_the_file_and_the_column(tmp_path: Path, name, content, spec, column) -> None:
    path = write(tmp_path / name, content)
    spec = dict(spec)
    group = spec.pop("group", None)
    with pytest.raises(DatasetError) as info:
        load(path, group, **spec)
    message = str(info.value)
    assert "\n" not in message and message.startswith("datasets[0]")
    assert str(path) in message and column in message, message


@pytest.mark.parametrize(
    ("name", "content", "expected"), [c[1:] for c in MALFORMED_FILE], ids=[c[0] for c in MALFORMED_FILE]
)
def test_malformed_file_names_the_file(tmp_path: Path, name, content, expected) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DatasetError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("datasets[0]")
    assert str(path) in message and expected in message, message


def test_distinct_names_that_look_mangled_are_fine(tmp_path: Path) -> None:
    """'y' and 'y.1' really written so are two columns; only a repeated name is refused."""
    path = write(tmp_path / "d.csv", "a,y.1,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(N)))
    ds = load(path)
    assert list(ds.X.columns) == ["a", "y.1"]


def test_a_dropped_nested_column_is_no_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", pa.table({"a": FLOATS, "l": [[i] for i in range(N)], "y": INTS}))
    assert list(load(path, drop=["l"]).X.columns) == ["a"]


def test_inf_missing_reads_features_as_missing_and_drops_target_rows(tmp_path: Path) -> None:
    text = with_values("a", {1: "inf", 4: "-inf"})
    lines = text.splitlines()
    lines[8] = lines[8].rsplit(",", 1)[0] + ",inf"  # row 7: an infinite target
    path = write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    ds = load(path, inf="missing")
    assert len(ds.X) == N - 1 and np.isfinite(ds.y).all()
    assert int(ds.X["a"].isna().sum()) == 2 and not np.isinf(ds.X.to_numpy(dtype=float)).any()
    assert ds.notes == [
        "read infinite values as missing: a (2 rows), y (1 row)",
        "dropped 1 rows with a missing target",
    ]


def test_inf_as_text_in_a_categorical_column_is_a_label(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "c,y\n" + "".join(f"{['inf', 'red', 'blue'][i % 3]},{i % 2}\n" for i in range(N)))
    ds = load(path)
    assert ds.categorical == ["c"] and set(ds.X["c"]) == {"inf", "red", "blue"}


def test_inf_policy_is_validated_by_the_suite_schema() -> None:
    from pydantic import ValidationError

    assert DatasetSpec(name="d", source="x.csv").inf == "error"
    with pytest.raises(ValidationError):
        DatasetSpec(name="d", source="x.csv", inf="zero")


# ---------------------------------------------------------------------------- end to end


def suite(tmp_path: Path, source: str, extra: str = "", folds: int = 2) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: t\n"
        f"cv: {{folds: {folds}, scheme: kfold}}\n"
        "explain: {enabled: false}\n"
        "datasets:\n"
        f"  - {{name: d, source: {source}, target: y{extra}}}\n"
        "estimators:\n"
        "  - {name: tree, model: decision_tree}\n",
        encoding="utf-8",
    )
    return path


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


CLI_CASES = [
    ("duplicate-target", "d.csv", "a,b,y,y\n" + rows(extra=lambda i: f"{i * 0.37:.2f}"), "column 'y' appears twice"),
    ("inf-feature", "d.csv", with_values("a", {1: "inf", 4: "inf", 9: "inf"}), "column 'a' has 3 rows with infinite"),
    ("parquet-duplicate", "d.parquet", parquet(["a", "y", "y"], [FLOATS, INTS, INTS]), "column 'y' appears twice"),
    ("empty", "d.csv", "", "is empty"),
    ("header-only", "d.csv", "a,b,y\n", "has no rows"),
    ("binary", "d.csv", bytes(range(256)) * 8, "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "expected"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_malformed_data_before_fitting(cli, tmp_path: Path, name, content, expected) -> None:
    data = write(tmp_path / name, content)
    path = suite(tmp_path, name)
    out = tmp_path / "out"
    for proc in (cli("validate", path), cli("run", path, "--out", out)):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr and "internal error" not in proc.stderr
        lines = error_lines(proc)
        assert len(lines) == 1, proc.stderr
        assert str(data) in lines[0] and expected in lines[0], lines[0]
    assert not (out / "results.db").exists()


def test_inf_missing_runs_and_scores_the_folds(cli, tmp_path: Path) -> None:
    write(tmp_path / "d.csv", with_values("a", {1: "inf", 4: "-inf", 9: "Infinity"}))
    out = tmp_path / "out"
    refused = cli("run", suite(tmp_path, "d.csv"), "--out", out)
    assert refused.returncode == 2 and "column 'a' has 3 rows with infinite values" in refused.stderr
    proc = cli("run", suite(tmp_path, "d.csv", extra=", inf: missing"), "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "RuntimeWarning" not in proc.stdout + proc.stderr
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 and (results["status"] == "ok").all()
    assert results["r2"].notna().all()


# ---------------------------------------------------------------- fast loading: pyarrow's reader, columns, dtype

READER_CASES = {
    "numeric": "a,b,y\n1,0.5,0\n2,1.5,1\n3,-2.25,0\n4,1e-300,1\n",
    "missing": "a,b,y\n1,,0\n,NA,1\n3,nan,0\n4,NULL,1\n5,#N/A,0\n",
    "padded": "a,b,y\n 1, 0.5,0\n2 ,1.5 ,1\n3,2,0\n",
    "quoted": 'a,b,y\n"1","0.5",0\n"2","1.5",1\n3,2,0\n',
    "digits": "a,b,y\n0.1000000000000000055511151231257827,3.141592653589793238,0\n1,2,1\n2,3,0\n",
    "huge-int": "a,b,y\n9223372036854775808,1,0\n1,2,1\n2,3,0\n",
    "text": "a,b,y\nx,1,0\ny,2,1\n,3,0\n",
    "dates": "a,b,y\n2024-01-01,1,0\n2024-01-02,2,1\n2024-01-03,3,0\n",
    "booleans": "a,b,y\nTrue,1,0\nFalse,2,1\nTrue,3,0\n",
    "booleans-gap": "a,b,y\nTrue,1,0\n,2,1\nFalse,3,0\n",
    "empty-column": "a,b,y\n,1,0\n,2,1\n,3,0\n",
    "bom-crlf": "\ufeffa,b,y\r\n1,2,0\r\n3,4,1\r\n\r\n5,6,0\r\n",
    "short-row": "a,b,y\n1,2,0\n3,4\n5,6,1\n",
    "blank-name": "a,,y\n1,2,0\n3,4,1\n5,6,0\n",
    "None-text": "a,b,y\nNone,1,0\n2,2,1\n3,3,0\n",
}


@pytest.mark.parametrize("text", READER_CASES.values(), ids=READER_CASES.keys())
def test_pyarrow_reader_gives_what_pandas_c_reader_gives(tmp_path: Path, monkeypatch, text: str) -> None:
    """Whichever reader a file takes, the dataset is the same: values, types, categories, fingerprint."""
    import harness.datasets as datasets

    path = tmp_path / "d.csv"
    path.write_bytes(text.encode())
    spec = DatasetSpec(name="d", source=str(path), target="y", task="classification")
    fast = load_dataset(spec)
    monkeypatch.setattr(datasets, "_arrow_csv", lambda *args: None)
    reference = load_dataset(spec)
    pd.testing.assert_frame_equal(fast.X, reference.X)
    np.testing.assert_array_equal(fast.y, reference.y)
    assert (fast.categorical, fast.fingerprint) == (reference.categorical, reference.fingerprint)


def test_a_numeric_csv_is_read_by_pyarrow(tmp_path: Path, monkeypatch) -> None:
    import harness.datasets as datasets

    path = tmp_path / "d.csv"
    path.write_text(READER_CASES["numeric"])
    seen = []
    arrow = datasets._arrow_csv
    monkeypatch.setattr(datasets, "_arrow_csv", lambda *args: seen.append(arrow(*args)) or seen[-1])
    load_dataset(DatasetSpec(name="d", source=str(path), target="y"))
    assert isinstance(seen[0], pa.Table)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_dropped_columns_are_not_read(tmp_path: Path, monkeypatch, suffix: str) -> None:
    import harness.datasets as datasets

    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "junk": ["x", "y", "z", "w"], "g": [1, 1, 2, 2], "y": [0, 1, 0, 1]})
    path = tmp_path / f"d{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    read = []
    original = datasets._read_columns
    monkeypatch.setattr(datasets, "_read_columns", lambda *a, **k: read.append(original(*a, **k)) or read[-1])
    spec = DatasetSpec(name="d", source=str(path), target="y", drop=["junk", "g"])
    ds = load_dataset(spec, group="g")  # a dropped group column is still read: the splits need it
    assert list(read[0][0].columns) == ["a", "g", "y"] and read[0][1] == ["junk"]
    assert list(ds.X.columns) == ["a"] and list(ds.groups) == [1, 1, 2, 2]
    with pytest.raises(DatasetError, match=r"drop\[1\]: column 'nope' not found"):
        load_dataset(spec.model_copy(update={"drop": ["junk", "nope"]}))


def test_float32_halves_the_features_and_changes_the_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,y\n" + "".join(f"{i / 3},{i % 4},x{i % 2},{i % 2}\n" for i in range(50)))
    spec = DatasetSpec(name="d", source=str(path), target="y")
    wide, narrow = load_dataset(spec), load_dataset(spec.model_copy(update={"dtype": "float32"}))
    assert list(narrow.X.dtypes.astype(str))[:2] == ["float32", "float32"] and narrow.categorical == ["c"]
    wide_bytes, narrow_bytes = (ds.X[["a", "b"]].memory_usage(index=False).sum() for ds in (wide, narrow))
    assert narrow_bytes * 2 == wide_bytes
    np.testing.assert_array_equal(narrow.X["a"], wide.X["a"].astype(np.float32))
    np.testing.assert_array_equal(narrow.y, wide.y)  # the target keeps its type
    assert narrow.fingerprint != wide.fingerprint


def test_loading_keeps_one_copy_of_the_numeric_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": np.arange(1000.0), "c": ["x", "y"] * 500, "y": [0, 1] * 500}).to_parquet(path)
    X = load_dataset(DatasetSpec(name="d", source=str(path), target="y")).X
    assert list(X.columns) == ["a", "c"] and X["a"].to_numpy().flags.owndata is False  # arrow's buffer, not a copy


def test_dtype_is_validated_by_the_suite_schema() -> None:
    from harness.errors import SuiteError
    from harness.spec import parse_suite

    suite = {
        "name": "t",
        "datasets": [{"name": "d", "source": "sklearn:iris", "dtype": "float16"}],
        "estimators": [{"name": "lin", "model": "linear"}],
    }
    with pytest.raises(SuiteError, match=r"datasets\[0\]\.dtype"):
        parse_suite(suite)


@pytest.mark.parametrize("late", ["2.5", "text", ""], ids=["float", "text", "missing"])
def test_a_column_that_changes_type_after_the_first_block_reads_as_pandas_reads_it(
    tmp_path: Path, monkeypatch, late: str
) -> None:
    import harness.datasets as datasets

    lines = [f"{i % 97},{i % 3},{i % 2}" for i in range(200_000)]  # 1.6 MB: more than pyarrow's first block
    lines[-1] = f"{late},1,0"
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + "\n".join(lines) + "\n")
    spec = DatasetSpec(name="d", source=str(path), target="y")
    fast = load_dataset(spec)
    monkeypatch.setattr(datasets, "_arrow_csv", lambda *args: None)
    reference = load_dataset(spec)
    pd.testing.assert_frame_equal(fast.X, reference.X)
    assert fast.fingerprint == reference.fingerprint
