"""OpenML datasets and benchmark suites: the data home, downloads with timeouts, offline use.

Everything OpenML lives here. Datasets are read with scikit-learn's `fetch_openml`
(`parser="pandas"`, see `_parser` for the exception): the ARFF parsing, the row-id and
ignore attributes and the MD5 check are its job. It caches under `<data home>/openml/` in its own layout
(`openml.org/api/v1/json/...`, `openml.org/data/v1/download/...`, gzipped), and this
module keeps what it fetches itself (suite listings, dataset qualities) in the same
layout, so one folder is the whole cache: `harness data fetch` fills it where there is
network, and a copy of it works on an air-gapped machine.

Offline is a first-class case: a cached file is read without any network call; an
uncached one fails fast (a socket timeout of TIMEOUT_S, one retry) with one line that
names the dataset and says it is neither cached nor reachable. HARNESS_OPENML_URL
points every OpenML request at another server (a mirror, or a loopback server in tests).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DatasetError, SuiteError
from harness.metrics import CLASSIFICATION, REGRESSION
from harness.spec import DatasetSpec, OpenMLSuiteSpec, Suite

DEFAULT_DATA_HOME = "~/.cache/harness"
OPENML_URL = "https://www.openml.org"
# Seconds a socket may wait (connect, or between bytes of a download), and one retry a
# second later: an unreachable server costs at most about 2 x TIMEOUT_S + 1, well under 30 s.
TIMEOUT_S = 10.0
RETRIES = 1
RETRY_DELAY_S = 1.0
# No new request starts later than this after a load began: scikit-learn retries a download
# that timed out once more on its own (as a damaged file), which could otherwise take 40 s.
BUDGET_S = 25.0


class Unreachable(DatasetError):
    """Data that is neither in the cache nor reachable on the server (exit 2, like any bad input)."""


_scoped_home: ContextVar[Path | None] = ContextVar("harness_data_home", default=None)
_deadline: ContextVar[float | None] = ContextVar("harness_openml_deadline", default=None)


# ---------------------------------------------------------------- data home and server


def data_home(explicit: str | Path | None = None) -> Path:
    """Where downloaded data is kept: the explicit folder, else HARNESS_DATA_HOME, else ~/.cache/harness."""
    chosen = explicit or _scoped_home.get() or os.environ.get("HARNESS_DATA_HOME") or DEFAULT_DATA_HOME
    home = Path(chosen).expanduser()
    if home.exists() and not home.is_dir():
        raise DatasetError(f"data home {home}: is a file, not a folder (--data-home / HARNESS_DATA_HOME)")
    return home


@contextlib.contextmanager
def using_data_home(home: str | Path | None) -> Iterator[None]:
    """Loaders called inside use this data home (for callers that cannot pass it down, e.g. check-data)."""
    token = _scoped_home.set(Path(home) if home is not None else None)
    try:
        yield
    finally:
        _scoped_home.reset(token)


def server_url() -> str:
    """The OpenML server: HARNESS_OPENML_URL (a mirror, a test server) or openml.org."""
    url = (os.environ.get("HARNESS_OPENML_URL") or OPENML_URL).rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DatasetError(f"HARNESS_OPENML_URL: '{url}' is not an http:// or https:// address")
    return url


def cache_root(home: Path) -> Path:
    """scikit-learn's OpenML cache inside the data home (fetch_openml caches under <home>/openml)."""
    return home / "openml" / "openml.org"


# ---------------------------------------------------------------- network


def _redirect(url: str) -> str:
    """An openml.org URL on the configured server (same path), any other URL unchanged."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host != "openml.org" and not host.endswith(".openml.org"):
        return url
    base = urllib.parse.urlsplit(server_url())
    return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _open(request: urllib.request.Request | str) -> Any:
    """Open an OpenML URL on the configured server, with a socket timeout.

    `urllib.request.urlopen` is looked up at each call, so a test that replaces it sees every request.
    """
    if isinstance(request, str):
        request = urllib.request.Request(request)
    timeout = TIMEOUT_S
    deadline = _deadline.get()
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise urllib.error.URLError(f"gave up after {BUDGET_S:g} s")
    headers = dict(request.header_items()) | {"Accept-encoding": "gzip"}
    redirected = urllib.request.Request(_redirect(request.full_url), headers=headers)
    return urllib.request.urlopen(redirected, timeout=timeout)


@contextlib.contextmanager
def _budget() -> Iterator[None]:
    """Requests made inside start within BUDGET_S of entering (a transfer under way is not cut)."""
    token = _deadline.set(time.monotonic() + BUDGET_S)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def _sklearn_through_open() -> Iterator[None]:
    """Make scikit-learn's fetch_openml open its URLs with `_open` (server redirect, timeout).

    Private scikit-learn API, used here only (checked with scikit-learn 1.9; the tests
    fail if it moves): `sklearn.datasets._openml` calls its module-level
    `urlopen(request)` with no timeout (a silent server would hang a load for minutes)
    on fixed https://www.openml.org URLs.
    The cache it writes depends on the URL's path only, so a redirected download lands
    where a direct one would.
    """
    from sklearn.datasets import _openml as sk_openml

    original = sk_openml.urlopen
    sk_openml.urlopen = lambda request, *args, **kwargs: _open(request)
    try:
        yield
    finally:
        sk_openml.urlopen = original


def _network_problem(exc: BaseException) -> str | None:
    """Why a request failed when the server could not be reached or answered; None for other errors."""
    if isinstance(exc, urllib.error.HTTPError):
        return None
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is None:  # a socket error, not a file of the cache
        return exc.strerror or str(exc)
    return None


def _fetch_json(path: str) -> bytes:
    """The body of one API response (gzip-compressed), one retry after a network error."""
    for attempt in range(RETRIES + 1):
        try:
            with contextlib.closing(_open(f"{OPENML_URL}/{path}")) as response:
                body = response.read()
                gzipped = response.headers.get("Content-Encoding", "") == "gzip"
            return body if gzipped else gzip.compress(body)
        except Exception as exc:
            if _network_problem(exc) is None or attempt == RETRIES:
                raise
            time.sleep(RETRY_DELAY_S)
    raise AssertionError("unreachable")  # the loop returns or raises


def cached_json(home: Path, path: str, download: bool = True) -> Any:
    """One OpenML API response (e.g. api/v1/json/study/99), from the cache, else downloaded into it.

    Written where scikit-learn would write it (<home>/openml/openml.org/<path>.gz), atomically,
    so fetch_openml reuses it and a damaged file is fetched again. `download=False` reads
    the cache only (FileNotFoundError when the file is not there).
    """
    local = cache_root(home) / f"{path}.gz"
    if local.is_file() or not download:
        try:
            return json.loads(gzip.decompress(local.read_bytes()))
        except (OSError, EOFError, ValueError):  # truncated or damaged: fetch it again
            if not download:
                raise
            local.unlink(missing_ok=True)
    body = _fetch_json(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=local.parent, suffix=".partial", delete=False) as tmp:
        tmp.write(body)
    os.replace(tmp.name, local)
    return json.loads(gzip.decompress(body))


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Ref:
    """Which dataset an `openml:` source names: an id, or a name with an optional version."""

    data_id: int | None = None
    name: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.data_id is not None:
            return f"openml:{self.data_id}"
        return f"openml:{self.name}" + (f"@{self.version}" if self.version is not None else "")


_NAME = re.compile(r"[\w.()+-]+")  # OpenML dataset names: letters, digits, '_', '-', '.', '+', ()


def parse_ref(text: str, where: str) -> Ref:
    """openml:ID, openml:NAME or openml:NAME@VERSION (the part after 'openml:')."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return Ref(data_id=int(text))
    name, at, version = text.partition("@")
    if _NAME.fullmatch(name) and not name.isdigit() and (not at or (version.isdigit() and int(version) > 0)):
        return Ref(name=name, version=int(version) if at else None)
    raise DatasetError(
        f"{where}.source: 'openml:{text}' is not an OpenML dataset: use openml:ID, openml:NAME or openml:NAME@VERSION"
    )


@dataclass
class OpenMLFrame:
    """One OpenML dataset as fetched: usable columns (row-id and ignore attributes dropped) and their types."""

    frame: Any  # pandas DataFrame: every usable column, the target among them
    data_id: int
    name: str
    version: int
    status: str
    types: dict[str, str]  # column -> OpenML data type (numeric, nominal, string, date)
    targets: list[str]  # the default target attribute(s)

    @property
    def label(self) -> str:
        return f"openml:{self.data_id} ({self.name}, version {self.version})"


def fetch_frame(ref: Ref, home: Path, where: str) -> OpenMLFrame:
    """Fetch (or read from the cache) one dataset with fetch_openml; network trouble becomes one line."""
    from sklearn.datasets import fetch_openml

    with _sklearn_through_open(), _budget(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inactive versions and cache repairs: the status is noted below
        try:
            data_id = ref.data_id if ref.data_id is not None else _data_id_by_name(ref, home)
            features = cached_json(home, f"api/v1/json/data/features/{data_id}")["data_features"]["feature"]
            bunch = fetch_openml(
                data_id=data_id,
                data_home=str(home),
                target_column=None,  # every usable column; the target is chosen here
                as_frame=True,
                parser=_parser(features),
                n_retries=RETRIES,
                delay=RETRY_DELAY_S,
            )
        except Exception as exc:
            raise _load_error(exc, ref, home, where) from None
    details = bunch.details
    return OpenMLFrame(
        bunch.frame,
        int(details["id"]),
        str(details["name"]),
        int(details["version"]),
        str(details.get("status", "active")),
        {f["name"]: f["data_type"] for f in features},
        [f["name"] for f in features if f.get("is_target") == "true"],
    )


def _data_id_by_name(ref: Ref, home: Path) -> int:
    """The id of openml:NAME (the active version) or openml:NAME@VERSION.

    The same requests fetch_openml makes for a name, cached at the same paths (so either
    finds the other's answer offline); asked here so the features are known before the data.
    """
    base = f"api/v1/json/data/list/data_name/{ref.name.lower()}/limit/2"  # OpenML names ignore case
    if ref.version is None:
        found = cached_json(home, f"{base}/status/active/")
    else:
        try:
            found = cached_json(home, f"{base}/data_version/{ref.version}")
        except urllib.error.HTTPError as exc:  # 412: no active dataset of that version; a deactivated one?
            if exc.code != 412:
                raise
            found = cached_json(home, f"{base}/data_version/{ref.version}/status/deactivated")
    return int(found["data"]["dataset"][0]["did"])


def _parser(features: list[dict[str, Any]]) -> str:
    """fetch_openml's pandas parser, unless a scikit-learn bug would break this dataset.

    With pandas >= 3.1, read_csv(dtype="category") reads nominal values that look like
    numbers or booleans as such, and scikit-learn's pandas ARFF parser (<= 1.9.1,
    scikit-learn#34892) then fails on them, deleting the cached file first. Such datasets
    (and, with such a pandas, those whose nominal values OpenML does not list) are read
    with its LIAC-ARFF parser: slower, the same values, as text categories.
    """
    if not _typed_categories(("1", "2")):  # this pandas reads categories as text
        return "pandas"
    for feature in features:
        if feature.get("data_type") != "nominal":
            continue
        values = feature.get("nominal_value") or []  # older OpenML answers do not list them
        values = [values] if isinstance(values, str) else values
        if not values or _typed_categories(tuple(map(str, values))):
            return "liac-arff"
    return "pandas"


@functools.lru_cache(maxsize=4096)
def _typed_categories(values: tuple[str, ...]) -> bool:
    """Whether this pandas reads these nominal values as categories that are not all text."""
    import csv
    import io

    import pandas as pd

    text = io.StringIO()
    csv.writer(text).writerows([v] for v in values)
    text.seek(0)
    try:
        column = pd.read_csv(text, header=None, dtype={0: "category"}, keep_default_na=False)[0]
    except Exception:  # values pandas cannot even read alone: not worth the pandas parser's risk
        return True
    return not all(isinstance(c, str) for c in column.cat.categories)


def _load_error(exc: BaseException, ref: Ref | str, home: Path, where: str) -> DatasetError:
    """The one line a failed OpenML request becomes; exceptions that are not about input propagate."""
    network = _network_problem(exc)
    if network is not None:
        return Unreachable(
            f"{where}: {ref}: neither cached in {home} nor reachable at {server_url()} ({network}); "
            "run `harness data fetch` where there is network, then copy the data home"
        )
    if isinstance(exc, urllib.error.HTTPError):
        what = "not found on OpenML" if exc.code in (404, 412) else f"OpenML answered HTTP {exc.code} {exc.reason}"
        return DatasetError(f"{where}: {ref}: {what} ({server_url()})")
    if isinstance(exc, OSError):
        return DatasetError(f"{where}: {ref}: cannot use the data home {home}: {_first_line(exc)}")
    if isinstance(exc, ValueError | KeyError | EOFError):  # sparse ARFF, a bad file, a checksum mismatch
        return DatasetError(f"{where}: {ref}: cannot load it: {_first_line(exc)}")
    raise exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().strip("'\"").splitlines()
    return lines[0] if lines else type(exc).__name__


def load_openml(spec: DatasetSpec, where: str, group: str | None, home: Path | None = None) -> Any:
    """A suite's `openml:` dataset as a harness Dataset (datasets._from_frame does every check).

    The target is `target:` or the dataset's default target attribute; its OpenML type
    sets the task unless `task:` is given (nominal: classification, numeric: regression);
    nominal attributes are categorical columns. The fingerprint is the content's, as for
    files, so another version of the data never reuses old results.
    """
    from harness.datasets import _from_frame

    ref = parse_ref(spec.source.partition(":")[2], where)
    home = data_home(home)
    got = fetch_frame(ref, home, where)
    columns = [str(c) for c in got.frame.columns]
    target = spec.target
    if target is None:
        if len(got.targets) != 1:
            found = f"several default targets ({', '.join(got.targets)})" if got.targets else "no default target"
            raise DatasetError(
                f"{where}.target: {got.label} has {found}; name one with target: (columns: {_head(columns)})"
            )
        target = got.targets[0]
    task = spec.task
    if task is None and target in got.types:
        task = REGRESSION if got.types[target] == "numeric" else CLASSIFICATION
    nominal = [c for c in columns if got.types.get(c) == "nominal" and c != target and c not in spec.categorical]
    resolved = spec.model_copy(update={"target": target, "task": task, "categorical": [*spec.categorical, *nominal]})
    ds = _from_frame(resolved, got.frame, where, group, got.label)
    if got.status != "active":
        ds.notes.append(f"OpenML marks {got.name} version {got.version} as {got.status}")
    return ds


def _head(cols: list[str], n: int = 12) -> str:
    return ", ".join(cols[:n]) + (", ..." if len(cols) > n else "")


# ---------------------------------------------------------------- dataset metadata and suites


@dataclass(frozen=True)
class DatasetInfo:
    """What OpenML says about a dataset without its data: name, version, size."""

    data_id: int
    name: str
    version: int
    status: str
    rows: int | None
    features: int | None  # OpenML's NumberOfFeatures (every attribute, the target included)
    file_id: str = ""


def dataset_info(data_id: int, home: Path, sizes: bool = True, download: bool = True) -> DatasetInfo:
    """The description (and with `sizes`, the qualities) of one dataset, cached like the data."""
    desc = cached_json(home, f"api/v1/json/data/{data_id}", download)["data_set_description"]
    rows = features = None
    if sizes:
        try:
            quality = cached_json(home, f"api/v1/json/data/qualities/{data_id}", download)["data_qualities"]["quality"]
        except urllib.error.HTTPError as exc:
            if exc.code not in (404, 412):  # 412: OpenML has not computed qualities for this dataset
                raise
            quality = []
        values = {q.get("name"): q.get("value") for q in quality}
        rows, features = _count(values.get("NumberOfInstances")), _count(values.get("NumberOfFeatures"))
    return DatasetInfo(
        int(desc["id"]),
        str(desc["name"]),
        int(desc["version"]),
        str(desc.get("status", "active")),
        rows,
        features,
        str(desc.get("file_id", "")),
    )


def _count(value: Any) -> int | None:
    """A whole number from OpenML's text ("150.0"), or None."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class SuiteListing:
    """An OpenML benchmark suite (a study): its datasets, in the listing's order."""

    suite: str  # as asked: id or alias
    name: str
    data_ids: list[int]


def suite_listing(suite: int | str, home: Path, download: bool = True) -> SuiteListing:
    """The suite's listing (api/v1/json/study/ID), cached in the data home like the data."""
    study = cached_json(home, f"api/v1/json/study/{suite}", download)["study"]
    ids = (study.get("data") or {}).get("data_id") or []
    ids = [ids] if isinstance(ids, str | int) else ids
    return SuiteListing(str(suite), str(study.get("name") or study.get("alias") or suite), [int(i) for i in ids])


@dataclass(frozen=True)
class Skipped:
    """A suite dataset left out, and why (shown by run, --dry-run and validate)."""

    suite: str
    name: str
    data_id: int
    reason: str

    def __str__(self) -> str:
        return f"{self.name} (openml:{self.data_id}) of OpenML suite {self.suite}: {self.reason}"


def limit_reason(info: DatasetInfo, max_rows: int | None, max_features: int | None) -> str | None:
    """Why a dataset is outside a suite entry's limits, or None when it is inside."""
    for value, limit, what, quality in (
        (info.rows, max_rows, "rows", "NumberOfInstances"),
        (info.features, max_features, "features", "NumberOfFeatures"),
    ):
        if limit is None:
            continue
        if value is None:
            return f"OpenML gives no {quality}, so max_{what} {limit:,} cannot be checked"
        if value > limit:
            return f"{value:,} {what} > max_{what} {limit:,}"
    return None


@dataclass
class Expanded:
    """A suite with every openml_suite entry replaced by its datasets."""

    suite: Suite
    where: dict[str, str]  # dataset name -> where its errors point (datasets[2], or the suite entry)
    skipped: list[Skipped]


def expand_suite(suite: Suite, home: str | Path | None = None) -> Expanded:
    """Replace each `{openml_suite: ...}` entry by DatasetSpecs `openml:ID` named after the datasets.

    Raises SuiteError with every entry whose listing or metadata is neither cached nor reachable.
    """
    entries = list(suite.datasets)
    if not any(isinstance(e, OpenMLSuiteSpec) for e in entries):
        return Expanded(suite, {e.name: f"datasets[{i}]" for i, e in enumerate(entries)}, [])
    home = data_home(home)
    names = _Names(entries)
    datasets: list[DatasetSpec] = []
    where: dict[str, str] = {}
    skipped: list[Skipped] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, DatasetSpec):
            datasets.append(entry)
            where[entry.name] = f"datasets[{i}]"
            continue
        try:
            specs, left_out = expand_entry(entry, home, names, f"datasets[{i}].openml_suite")
        except DatasetError as exc:
            problems.append(f"{suite.label}: {exc}")
            continue
        datasets += specs
        skipped += left_out
        where |= {s.name: f"datasets[{i}] (OpenML suite {entry.openml_suite}: {s.name})" for s in specs}
    if problems:
        raise SuiteError(problems)
    expanded = suite.model_copy(update={"datasets": datasets})
    expanded._path = suite.path
    return Expanded(expanded, where, skipped)


class _Names:
    """Names and OpenML ids already used by a suite's datasets, so expanded ones are unique."""

    def __init__(self, entries: list[Any] = ()) -> None:
        specs = [e for e in entries if isinstance(e, DatasetSpec)]
        self.taken = {e.name for e in specs}
        self.ids = {
            int(e.source.partition(":")[2]): e.name
            for e in specs
            if e.source.startswith("openml:") and e.source.partition(":")[2].isdigit()
        }

    def claim(self, name: str, data_id: int) -> str:
        """The OpenML name made plain (letters, digits, '_', '-', '.'), '-ID' added when taken: stable and unique."""
        plain = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-") or "openml"
        plain = plain[:80] if plain[0].isalnum() else f"d{plain[:79]}"
        unique = plain if plain not in self.taken else f"{plain}-{data_id}"
        self.taken.add(unique)
        self.ids[data_id] = unique
        return unique


def expand_entry(
    entry: OpenMLSuiteSpec, home: Path, names: _Names, where: str
) -> tuple[list[DatasetSpec], list[Skipped]]:
    """One suite entry's datasets inside its limits, and the ones outside them with the reason.

    A dataset the suite already names by id is not added twice. Sizes come from each
    dataset's qualities (NumberOfInstances, NumberOfFeatures), fetched only when a limit is set.
    """
    sizes = entry.max_rows is not None or entry.max_features is not None
    try:
        with _budget():
            listing = suite_listing(entry.openml_suite, home)
    except Exception as exc:
        raise _load_error(exc, f"OpenML suite {entry.openml_suite}", home, where) from None
    specs, skipped = [], []
    for data_id in listing.data_ids:
        try:
            with _budget():
                info = dataset_info(data_id, home, sizes=sizes)
        except Exception as exc:
            raise _load_error(exc, f"openml:{data_id} (of OpenML suite {listing.suite})", home, where) from None
        if data_id in names.ids:
            skipped.append(
                Skipped(listing.suite, info.name, data_id, f"already in the suite as '{names.ids[data_id]}'")
            )
            continue
        reason = limit_reason(info, entry.max_rows, entry.max_features)
        if reason is not None:
            skipped.append(Skipped(listing.suite, info.name, data_id, reason))
            continue
        specs.append(DatasetSpec(name=names.claim(info.name, data_id), source=f"openml:{data_id}"))
    return specs, skipped


def fetch_targets(
    target: str | Path, home: Path, max_rows: int | None = None, max_features: int | None = None
) -> tuple[list[int | Ref], list[Skipped]]:
    """What `harness data fetch TARGET` downloads: every OpenML dataset of a suite file, or of one OpenML suite.

    TARGET is a suite file (its openml: datasets and openml_suite entries, with their
    limits) or an OpenML suite id or alias (with the given limits).
    """
    from harness.spec import load_suite

    text = str(target)
    if Path(text).is_file() or text.lower().endswith((".yaml", ".yml")):
        expanded = expand_suite(load_suite(text), home)
        wanted: list[int | Ref] = []
        for i, spec in enumerate(expanded.suite.datasets):
            kind, _, rest = spec.source.partition(":")
            if kind == "openml" and rest:
                ref = parse_ref(rest, f"{text}: {expanded.where.get(spec.name, f'datasets[{i}]')}")
                wanted.append(ref.data_id if ref.data_id is not None else ref)
        return list(dict.fromkeys(wanted)), expanded.skipped
    suite: int | str = int(text) if text.isdigit() else text
    try:
        entry = OpenMLSuiteSpec(openml_suite=suite, max_rows=max_rows, max_features=max_features)
    except ValueError:  # pydantic's error repeats the text below, less plainly
        raise DatasetError(
            f"data fetch: '{text}' is neither a suite file (.yaml) nor an OpenML suite id or alias"
        ) from None
    specs, skipped = expand_entry(entry, home, _Names(), "data fetch")
    return [int(s.source.partition(":")[2]) for s in specs], skipped


def fetch_dataset(which: int | Ref, home: Path) -> OpenMLFrame:
    """Download one dataset into the data home (everything fetch_openml needs to load it offline)."""
    ref = which if isinstance(which, Ref) else Ref(data_id=which)
    return fetch_frame(ref, home, "data fetch")


# ---------------------------------------------------------------- the cache's contents


@dataclass(frozen=True)
class CachedDataset:
    data_id: int
    name: str
    version: int
    rows: int | None
    features: int | None
    has_data: bool  # the data file itself, not only its description
    bytes: int


@dataclass(frozen=True)
class CachedSuite:
    suite: str
    name: str
    n_datasets: int
    bytes: int


def cached_datasets(home: Path) -> list[CachedDataset]:
    """Every dataset with a cached description, with its size on disk (description, features, qualities, data).

    Reads the cache only: nothing is downloaded, and a damaged file is left out of the list.
    """
    root = cache_root(home)
    downloads = root / "data/v1/download"
    out = []
    for desc_path in (root / "api/v1/json/data").glob("*.gz"):
        data_id = _count(desc_path.name.removesuffix(".gz"))
        if data_id is None:
            continue
        quality = root / f"api/v1/json/data/qualities/{data_id}.gz"
        try:
            info = dataset_info(data_id, home, sizes=quality.is_file(), download=False)
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            continue
        data_files = []
        if info.file_id:  # scikit-learn <1.7 kept <file_id>.gz, later <file_id>/<name>.arff.gz
            data_files = [downloads / f"{info.file_id}.gz", *(downloads / info.file_id).glob("*.gz")]
        files = [desc_path, quality, root / f"api/v1/json/data/features/{data_id}.gz", *data_files]
        size = sum(p.stat().st_size for p in files if p.is_file())
        has_data = any(p.is_file() for p in data_files)
        out.append(CachedDataset(data_id, info.name, info.version, info.rows, info.features, has_data, size))
    return sorted(out, key=lambda d: d.data_id)


def cached_suites(home: Path) -> list[CachedSuite]:
    """Every cached suite listing (the cache only, as cached_datasets)."""
    out = []
    for path in sorted((cache_root(home) / "api/v1/json/study").glob("*.gz")):
        suite = path.name.removesuffix(".gz")
        try:
            listing = suite_listing(suite, home, download=False)
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            continue
        out.append(CachedSuite(suite, listing.name, len(listing.data_ids), path.stat().st_size))
    return out


def cache_bytes(home: Path) -> int:
    """Everything under <home>/openml (listings of names included)."""
    base = home / "openml"
    return sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) if base.is_dir() else 0
