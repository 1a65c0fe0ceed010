"""OpenML datasets and suites, without the network.

A loopback HTTP server answers as OpenML would, from the real responses scikit-learn's
wheel ships for a few dataset ids (sklearn/datasets/tests/data/openml/id_*/) and a
recorded-style suite listing (tests/data/openml/study-99.json: iris, penguins and
Titanic). HARNESS_OPENML_URL points the harness at it, so the whole fetch path runs:
fetch_openml, the redirect, the timeouts, the cache it fills. Every test of this module
fails loudly if anything tries to reach a host other than this machine, and the offline
tests forbid even that.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import openml
from harness.datasets import load_dataset
from harness.errors import DatasetError, SuiteError
from harness.spec import DatasetSpec, OpenMLSuiteSpec, parse_suite
from tests import openml_server
from tests.openml_server import OpenMLServer, serving

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def only_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a host other than this machine fails the test (loudly: not an OSError)."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in LOOPBACK:
            raise AssertionError(f"a test tried to reach {address}: only loopback servers are allowed")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.delenv("HARNESS_DATA_HOME", raising=False)
    monkeypatch.delenv("HARNESS_OPENML_URL", raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline: every request, even to this machine, fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access while offline")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenMLServer]:
    with serving() as srv:
        monkeypatch.setenv("HARNESS_OPENML_URL", srv.url)
        yield srv


@pytest.fixture
def dead_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HARNESS_OPENML_URL", url)
    return url


def load(source: str, home: Path, **spec: object):
    return load_dataset(DatasetSpec(name="d", source=source, **spec), where="datasets[0]", data_home=home)


def suite_file(tmp_path: Path, datasets: list[dict], **extra: object) -> Path:
    suite = {
        "name": "om",
        "cv": {"scheme": "stratified_kfold", "folds": 2},
        "explain": {"enabled": False},
        "datasets": datasets,
        "estimators": [
            {"name": "linear", "model": "linear"},
            {"name": "tree", "model": "sklearn.tree.DecisionTreeClassifier", "tasks": ["classification"]},
        ],
        **extra,
    }
    path = tmp_path / "om.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


# ---------------------------------------------------------------- sources and the data home


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("61", openml.Ref(data_id=61)),
        ("iris", openml.Ref(name="iris")),
        ("iris@2", openml.Ref(name="iris", version=2)),
        ("credit-g@1", openml.Ref(name="credit-g", version=1)),
    ],
)
def test_parse_ref(text: str, ref: openml.Ref) -> None:
    assert openml.parse_ref(text, "datasets[0]") == ref


@pytest.mark.parametrize("text", ["0", "iris@", "iris@0", "iris@x", "a b", "@1", "", "a/b"])
def test_parse_ref_refuses(text: str) -> None:
    with pytest.raises(DatasetError, match=r"^datasets\[0\]\.source: 'openml:.*' is not an OpenML dataset"):
        openml.parse_ref(text, "datasets[0]")


def test_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert openml.data_home() == Path("~/.cache/harness").expanduser()
    monkeypatch.setenv("HARNESS_DATA_HOME", str(tmp_path / "env"))
    assert openml.data_home() == tmp_path / "env"
    with openml.using_data_home(tmp_path / "scoped"):
        assert openml.data_home() == tmp_path / "scoped"
        assert openml.data_home(tmp_path / "given") == tmp_path / "given"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        openml.data_home(tmp_path / "file")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.openml.org/api/v1/json/data/61", "http://127.0.0.1:9/mirror/api/v1/json/data/61"),
        (
            "https://api.openml.org/data/v1/download/61/iris.arff",
            "http://127.0.0.1:9/mirror/data/v1/download/61/iris.arff",
        ),
        ("https://example.com/openml.org/x", "https://example.com/openml.org/x"),
        ("https://notopenml.org/x", "https://notopenml.org/x"),
    ],
)
def test_redirect(url: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_OPENML_URL", "http://127.0.0.1:9/mirror/")
    assert openml._redirect(url) == expected


# ---------------------------------------------------------------- datasets: fetch, cache, offline


def test_fetch_fills_the_cache_then_loads_offline(server: OpenMLServer, tmp_path: Path, request) -> None:
    ds = load("openml:42585", tmp_path)
    assert ds.task == "classification" and ds.X.shape == (344, 6)
    assert sorted(ds.categorical) == ["island", "sex"]  # nominal attributes; the target is species
    assert list(ds.labels) == ["Adelie", "Chinstrap", "Gentoo"]
    assert ds.source == "openml:42585 (penguins, version 1)"
    assert server.datasets_fetched() == {"/data/v1/download/21854866/penguins.arff"}
    cached = tmp_path / "openml" / "openml.org"  # scikit-learn's own layout
    assert (cached / "api/v1/json/data/42585.gz").is_file()
    assert (cached / "data/v1/download/21854866/penguins.arff.gz").is_file()

    request.getfixturevalue("no_network")
    again = load("openml:42585", tmp_path)
    assert again.fingerprint == ds.fingerprint
    assert again.X.equals(ds.X)


def test_by_name_and_version(server: OpenMLServer, tmp_path: Path) -> None:
    active, pinned = load("openml:iris", tmp_path), load("openml:iris@1", tmp_path)
    assert active.source == pinned.source == "openml:61 (iris, version 1)"
    assert active.fingerprint == pinned.fingerprint
    assert active.X.shape == (150, 4) and active.task == "classification" and not active.categorical


def test_fingerprint_is_the_contents_as_for_files(server: OpenMLServer, tmp_path: Path) -> None:
    """Another OpenML version is other content, so other keys: the fingerprint is that of a file."""
    ds = load("openml:42585", tmp_path)
    frame = ds.X.copy()
    frame["species"] = ds.labels[ds.y]
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    from_file = load(str(tmp_path / "penguins.csv"), tmp_path, target="species", categorical=["island", "sex"])
    assert from_file.fingerprint == ds.fingerprint
    frame.loc[0, "body_mass_g"] += 1  # one value changed: another fingerprint
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    changed = load(str(tmp_path / "penguins.csv"), tmp_path, target="species", categorical=["island", "sex"])
    assert changed.fingerprint != ds.fingerprint


def test_a_deactivated_version_is_noted(server: OpenMLServer, tmp_path: Path) -> None:
    # scikit-learn keeps 11 rows of anneal, all of one class: a numeric target keeps them usable
    assert not load("openml:2", tmp_path, target="carbon").notes  # version 1, active
    assert load("openml:1", tmp_path, target="carbon").notes == ["OpenML marks anneal version 2 as deactivated"]


def test_target_and_task_from_the_suite(server: OpenMLServer, tmp_path: Path) -> None:
    ds = load("openml:61", tmp_path, target="petalwidth")
    assert ds.task == "regression"  # a numeric attribute
    assert list(ds.X.columns) == ["sepallength", "sepalwidth", "petallength", "class"]
    assert ds.categorical == ["class"]  # nominal, now a feature
    with pytest.raises(DatasetError, match=r"target: column 'petal' not found in openml:61 \(iris, version 1\)"):
        load("openml:61", tmp_path, target="petal")


def test_row_id_and_ignored_attributes_are_dropped(server: OpenMLServer, tmp_path: Path) -> None:
    zoo = load("openml:62", tmp_path)  # row id: animal
    assert "animal" not in zoo.X.columns and zoo.X.shape[1] == 16
    mice = load("openml:40966", tmp_path, target="DYRK1A_N")  # row id MouseID; ignored Genotype, Treatment, Behavior
    assert not {"MouseID", "Genotype", "Treatment", "Behavior"} & set(mice.X.columns)


def test_no_default_target_asks_for_one(server: OpenMLServer, tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"^datasets\[0\]\.target: openml:40589 \(emotions, version 3\) has several default targets"
    ):
        load("openml:40589", tmp_path)


def test_unknown_dataset(server: OpenMLServer, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^datasets\[0\]: openml:999999: not found on OpenML"):
        load("openml:999999", tmp_path)


def test_uncached_and_unreachable_fails_fast(dead_server: str, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(openml.Unreachable) as err:
        load("openml:61", tmp_path)
    assert time.monotonic() - start < 5  # one retry, a second apart
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"datasets[0]: openml:61: neither cached in {tmp_path} nor reachable at {dead_server}")


def test_a_silent_server_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts and never answers costs (retries + 1) x TIMEOUT_S, not minutes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HARNESS_OPENML_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(openml, "TIMEOUT_S", 0.3)
        monkeypatch.setattr(openml, "RETRY_DELAY_S", 0.1)
        start = time.monotonic()
        with pytest.raises(openml.Unreachable, match=r"neither cached .* nor reachable"):
            load("openml:61", tmp_path)
        assert time.monotonic() - start < 5


def test_budget_bounds_a_half_cached_load(
    server: OpenMLServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata cached, data not, the server silent: scikit-learn retries the download on its own, the budget stops it."""
    load("openml:61", tmp_path)
    arff = openml.cache_root(tmp_path) / "data/v1/download/61/iris.arff.gz"
    arff.unlink()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HARNESS_OPENML_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(openml, "TIMEOUT_S", 0.8)  # 4 timed-out tries (3.4 s) without the budget
        monkeypatch.setattr(openml, "RETRY_DELAY_S", 0.1)
        monkeypatch.setattr(openml, "BUDGET_S", 1.0)
        start = time.monotonic()
        with pytest.raises(openml.Unreachable, match=r"^datasets\[0\]: openml:61: neither cached"):
            load("openml:61", tmp_path)
        assert time.monotonic() - start < 2.0
    assert (openml.cache_root(tmp_path) / "api/v1/json/data/61.gz").is_file()  # the metadata stays


def test_damaged_cache_file_is_fetched_again(server: OpenMLServer, tmp_path: Path) -> None:
    openml.dataset_info(61, tmp_path)
    cached = openml.cache_root(tmp_path) / "api/v1/json/data/61.gz"
    cached.write_bytes(b"not gzip")
    assert openml.dataset_info(61, tmp_path).name == "iris"
    assert json.loads(gzip.decompress(cached.read_bytes()))["data_set_description"]["id"] == "61"


# ---------------------------------------------------------------- suites


def test_suite_entry_is_parsed_without_io(no_network: None) -> None:
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [{"openml_suite": 99, "max_rows": 1000}, {"openml_suite": "OpenML-CC18"}],
            "estimators": [{"name": "linear", "model": "linear"}],
        }
    )
    assert suite.datasets == [
        OpenMLSuiteSpec(openml_suite=99, max_rows=1000),
        OpenMLSuiteSpec(openml_suite="OpenML-CC18"),
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"openml_suite": 0}, "datasets[0].openml_suite: '0' is not an OpenML suite id"),
        ({"openml_suite": "a b"}, "datasets[0].openml_suite: 'a b' is not an OpenML suite id"),
        ({"openml_suite": 99, "max_rows": 0}, "datasets[0].max_rows: Input should be greater than or equal to 1"),
        ({"openml_suite": 99, "max_row": 5}, "datasets[0].max_row: unknown key (did you mean 'max_rows'?)"),
        ({"name": "x", "sorce": "openml:61"}, "datasets[0].sorce: unknown key (did you mean 'source'?)"),
    ],
)
def test_suite_entry_errors(entry: dict, problem: str) -> None:
    with pytest.raises(SuiteError) as err:
        parse_suite(
            {"name": "s", "datasets": [entry], "estimators": [{"name": "l", "model": "linear"}]}, label="s.yaml"
        )
    assert any(line.startswith(f"s.yaml: {problem}") for line in err.value.problems), err.value.problems


def test_expand_suite_with_limits(server: OpenMLServer, tmp_path: Path) -> None:
    suite = parse_suite(
        {
            "name": "s",
            "datasets": [
                {"name": "penguins", "source": "sklearn:iris"},  # the name is taken: the suite's penguins gets -ID
                {"openml_suite": 99, "max_rows": 1000},
            ],
            "estimators": [{"name": "l", "model": "linear"}],
        }
    )
    expanded = openml.expand_suite(suite, tmp_path)
    assert [(d.name, d.source) for d in expanded.suite.datasets] == [
        ("penguins", "sklearn:iris"),
        ("iris", "openml:61"),
        ("penguins-42585", "openml:42585"),
    ]
    assert expanded.where["iris"] == "datasets[1] (OpenML suite 99: iris)"
    assert [str(s) for s in expanded.skipped] == [
        "Titanic (openml:40945) of OpenML suite 99: 1,309 rows > max_rows 1,000"
    ]
    assert not server.datasets_fetched()  # expanding reads listings and metadata, never data


def test_expand_suite_unreachable(dead_server: str, tmp_path: Path) -> None:
    suite = parse_suite(
        {"name": "s", "datasets": [{"openml_suite": 99}], "estimators": [{"name": "l", "model": "linear"}]},
        label="s.yaml",
    )
    with pytest.raises(SuiteError) as err:
        openml.expand_suite(suite, tmp_path)
    (line,) = err.value.problems
    assert line.startswith("<suite s>: datasets[0].openml_suite: OpenML suite 99: neither cached in")


# ---------------------------------------------------------------- the command line


def test_data_fetch_list_then_run_offline(server: OpenMLServer, tmp_path: Path, cli, request) -> None:
    home = tmp_path / "home"
    fetched = cli("data", "fetch", "99", "--max-rows", "1000", "--data-home", home)
    assert fetched.returncode == 0, fetched.stderr
    assert "skipped: Titanic (openml:40945) of OpenML suite 99: 1,309 rows > max_rows 1,000" in fetched.stdout
    assert "2 of 2 datasets in" in fetched.stdout
    assert server.datasets_fetched() == {"/data/v1/download/61/iris.arff", "/data/v1/download/21854866/penguins.arff"}

    listed = cli("data", "list", "--data-home", home)
    assert listed.returncode == 0, listed.stderr
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in listed.stdout.splitlines()]
    rows = {c[1]: c for c in cells if len(c) == 7 and c[0].isdigit()}
    assert rows["iris"][:6] == ["61", "iris", "1", "150", "5", "cached"]
    assert rows["Titanic"][:6] == ["40945", "Titanic", "1", "1,309", "14", "metadata only"]
    assert rows["penguins"][5] == "cached" and rows["penguins"][6].endswith("KiB")
    assert "OpenML-CC18 Curated Classification benchmark (excerpt)" in listed.stdout

    # Offline from here on: the run reads the cache that `data fetch` filled.
    request.getfixturevalue("no_network")
    path = suite_file(tmp_path, [{"name": "flowers", "source": "openml:61"}, {"openml_suite": 99, "max_rows": 1000}])
    dry = cli("run", path, "--out", tmp_path / "out", "--data-home", home, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "skipped: iris (openml:61) of OpenML suite 99: already in the suite as 'flowers'" in dry.stdout
    assert "skipped: Titanic (openml:40945) of OpenML suite 99: 1,309 rows > max_rows 1,000" in dry.stdout

    run = cli(
        "run", path, "--out", tmp_path / "out", "--data-home", home, "--dataset", "penguins", "--dataset", "flowers"
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(tmp_path / "out" / "results.db") as con:
        infos = {name: json.loads(info) for name, _, info in con.execute("SELECT * FROM datasets")}
        scores = con.execute("SELECT dataset, COUNT(*) FROM results WHERE status = 'ok' GROUP BY dataset").fetchall()
    assert dict(scores) == {"flowers": 4, "penguins": 4}  # 2 estimators x 2 folds
    assert (
        infos["penguins"]["n_categorical"] == 2 and infos["penguins"]["source"] == "openml:42585 (penguins, version 1)"
    )
    assert infos["flowers"]["n_categorical"] == 0
    report = (tmp_path / "out" / "report.html").read_text()  # the datasets left out are on record
    assert "Titanic (openml:40945) of OpenML suite 99: 1,309 rows &gt; max_rows 1,000" in report


def test_validate_unreachable_is_one_line(dead_server: str, tmp_path: Path, cli) -> None:
    path = suite_file(tmp_path, [{"name": "flowers", "source": "openml:61"}])
    proc = cli("validate", path, "--data-home", tmp_path / "home")
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"error: {path}: datasets[0]: openml:61: neither cached in")
    assert "nor reachable" in line


def test_data_fetch_unreachable(dead_server: str, tmp_path: Path, cli) -> None:
    proc = cli("data", "fetch", "99", "--data-home", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: data fetch: OpenML suite 99: neither cached in")


def test_data_fetch_a_suite_file(server: OpenMLServer, tmp_path: Path, cli) -> None:
    path = suite_file(
        tmp_path, [{"name": "flowers", "source": "openml:iris@1"}, {"name": "local", "source": "sklearn:wine"}]
    )
    proc = cli("data", "fetch", path, "--data-home", tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "1 of 1 datasets" in proc.stdout
    assert server.datasets_fetched() == {"/data/v1/download/61/iris.arff"}


def test_data_list_empty_home(tmp_path: Path, cli, no_network: None) -> None:
    proc = cli("data", "list", "--data-home", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "0 datasets, 0 suite listings" in proc.stdout


def test_check_data_reads_openml_from_the_data_home(server: OpenMLServer, tmp_path: Path, cli) -> None:
    home = tmp_path / "home"
    proc = cli("check-data", "openml:61", "--reference", "openml:iris@1", "--out", tmp_path / "cd", "--data-home", home)
    assert proc.returncode == 0, proc.stderr
    assert (openml.cache_root(home) / "api/v1/json/data/61.gz").is_file()


def test_the_complete_recorded_sets_fill_a_data_home_for_the_benchmarks(tmp_path: Path) -> None:
    """`python -m tests.openml_server` lays out every row of the sets bench/mlp_quality.py adds."""
    lines = openml_server.fill(tmp_path, sorted(openml_server.COMPLETE))
    cached = {d.data_id: d for d in openml.cached_datasets(tmp_path)}
    assert set(cached) == set(openml_server.COMPLETE) and all(d.has_data for d in cached.values())
    for data_id, line in zip(sorted(openml_server.COMPLETE), lines, strict=True):
        assert cached[data_id].name == openml_server.COMPLETE[data_id]
        assert line == f"openml:{data_id}: {cached[data_id].rows:,} rows"  # every row OpenML lists was recorded
    assert "HARNESS_OPENML_URL" not in os.environ  # the server's address does not outlive the fill
