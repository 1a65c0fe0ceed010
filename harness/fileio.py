"""Writing files without destroying anything: atomic writes, output sets, ownership checks.

Every file the harness writes goes through this module, for three guarantees:

- **atomic**: a file is written to a temporary file in the same folder, flushed to disk,
  then moved over the target with `os.replace`. A crash, a full disk or an exception
  while writing leaves the old file (or no file), never half of a new one.
- **as a set**: outputs that belong together (results.csv, leaderboard.md, stats.json,
  summary.md, report.html; check.md and check.json; check-data.md and check-data.json)
  are all built in memory by the caller and all written to temporary files before the
  first one is moved into place, so a failure while building or writing leaves the
  previous set whole.
- **never over someone else's file**: a path is written over only when the existing
  file is the harness's own kind of output. Files the harness *owns* (the results store
  `results.db` and its -wal/-shm/-journal, the tuning store `studies.db`, weights under
  `pretrained/`) and any file that is not of the kind about to be written are refused
  with exit 2 unless the user passes `--force`.

"Its own kind" is decided concretely, never by file extension alone:

- a baseline file is a JSON object whose `"format"` is `"harness-baseline"`, or a
  Parquet file carrying the `harness_baseline` metadata key (`is_baseline_file`);
- an output of a set is a file with one of the outputs' names that the harness wrote:
  the folder's manifest `.harness-outputs.json` (written with every set) lists it, or,
  for outputs written before manifests existed, its content reads as that output
  (`results.csv` starts with the fold table's header, `summary.md` with
  "# Benchmark summary:", `stats.json` is the analysis object, ...). A file of your own
  that happens to be called summary.md is not ours, even beside a results store.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from harness.errors import BuildError, OutputError

__all__ = ["BuildError", "OutputError"]  # raised here; defined with the other errors

MANIFEST = ".harness-outputs.json"
MANIFEST_FORMAT = "harness-outputs"
# Files the harness owns: the results store (SQLite, WAL mode) and the Optuna tuning store.
OWNED_NAMES = frozenset(
    f"{db}{suffix}" for db in ("results.db", "studies.db") for suffix in ("", "-wal", "-shm", "-journal")
)
OWNED_FOLDERS = frozenset({"pretrained"})  # pretrained weights: OUT/pretrained/<hash>.pt
_MAX_SNIFF = 64 * 1024 * 1024  # a file larger than this is not a baseline or report of ours
_TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's 0600 is too private


# ---------------------------------------------------------------- checks


def check_output_dir(path: str | Path, option: str | None = "--out") -> Path:
    """Refuse an output folder that is a file or cannot be created/written (one line, exit 2). Creates nothing.

    Call it before any expensive work (fitting, analysis), so bad input costs nothing. `option`
    (e.g. "--out") starts the message; None for a positional argument.
    """
    path = Path(path)
    option = f"{option} " if option else ""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option}{path}: is a file, not a folder")
    probe = path
    while not probe.exists():  # the nearest existing ancestor must be a writable folder
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{option}{path}: cannot create the folder ({probe} is a file)")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{option}{path}: cannot write there ({probe} is not writable)")
    return path


def is_owned(path: str | Path) -> bool:
    """A file the harness owns and no command may write over: the stores and pretrained weights."""
    path = Path(path)
    return path.name in OWNED_NAMES or path.parent.name in OWNED_FOLDERS


def _owned_what(path: Path) -> str:
    if path.name.startswith("results.db"):
        return "the harness's results store"
    if path.name.startswith("studies.db"):
        return "the harness's tuning store"
    return "the harness's pretrained weights"


def _refuse(path: Path, why: str) -> None:
    raise OutputError(f"{path}: refusing to overwrite {why}; pass --force to overwrite it anyway")


def check_target(path: str | Path, is_own_kind: Callable[[Path], bool], kind: str, force: bool = False) -> Path:
    """Refuse to write `path` when it is owned by the harness or exists and is not `kind` (unless `force`)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{path}: cannot write there ({path.parent} is a file)")
    if force:
        return path
    if is_owned(path):
        _refuse(path, _owned_what(path))
    if (path.exists() or path.is_symlink()) and not is_own_kind(path):
        _refuse(path, f"a file that is not a {kind}")
    return path


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _read_json(path: Path) -> object:
    try:
        if path.stat().st_size > _MAX_SNIFF:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_baseline_file(path: str | Path) -> bool:
    """A baseline written by `harness baseline save`: JSON with the format marker, or Parquet with its metadata."""
    path = Path(path)
    if _head(path, 4) == b"PAR1":
        try:
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
        except Exception:  # pyarrow raises many types on junk
            return False
        return b"harness_baseline" in meta
    data = _read_json(path)
    return isinstance(data, dict) and data.get("format") == "harness-baseline"


def read_manifest(folder: str | Path) -> set[str] | None:
    """Names the harness wrote in `folder` (its manifest), or None when there is no valid manifest."""
    data = _read_json(Path(folder) / MANIFEST)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), list):
        return None
    return {str(name) for name in data["files"]}


def _starts(prefix: str) -> Callable[[Path], bool]:
    raw = prefix.encode()
    return lambda path: _head(path, len(raw)) == raw


def _json_keys(*keys: str) -> Callable[[Path], bool]:
    def sniff(path: Path) -> bool:
        data = _read_json(path)
        return isinstance(data, dict) and set(keys) <= set(data)

    return sniff


def _html(path: Path) -> bool:
    head = _head(path, 2048)
    return head.startswith(b"<!DOCTYPE html>") and b"<title>Benchmark report: " in head


def _parquet_with(key: bytes) -> Callable[[Path], bool]:
    """A Parquet file whose schema metadata holds `key` (how our Parquet outputs mark themselves)."""

    def sniff(path: Path) -> bool:
        if _head(path, 4) != b"PAR1":
            return False
        try:
            import pyarrow.parquet as pq

            return key in (pq.read_schema(path).metadata or {})
        except Exception:  # pyarrow raises many types on junk
            return False

    return sniff


# How each output reads, for outputs written before manifests existed (is_own_output).
OUTPUT_KINDS: dict[str, Callable[[Path], bool]] = {
    "results.csv": _starts("dataset,estimator,repeat,fold,status,"),
    "results.parquet": _parquet_with(b"harness_results"),
    "leaderboard.md": _starts("# Leaderboard: "),
    "stats.json": _json_keys("settings", "per_dataset", "across"),
    "summary.md": _starts("# Benchmark summary: "),
    "report.html": _html,
    "check.md": _starts("## harness check: "),
    "check.json": _json_keys("verdict", "tolerance_rule", "comparisons", "mismatches"),
    "check-data.md": _starts("# check-data\n"),
    "check-data.json": _json_keys("verdict", "thresholds", "schema", "exit_code"),
}


def is_own_output(path: str | Path) -> bool:
    """A file the harness wrote as an output of a set: listed in its folder's manifest, or reads as one."""
    path = Path(path)
    listed = read_manifest(path.parent)
    if listed is not None and path.name in listed:
        return True
    sniff = OUTPUT_KINDS.get(path.name)
    return sniff is not None and sniff(path)


def check_set_targets(folder: str | Path, names: Iterable[str], force: bool = False, option: str | None = None) -> Path:
    """check_output_dir, then check_target for each output name and the manifest: call before building."""
    folder = check_output_dir(folder, option)
    for name in names:
        check_target(folder / name, is_own_output, "harness output", force)
    manifest = folder / MANIFEST
    if manifest.exists() and read_manifest(folder) is None:
        check_target(manifest, lambda _: False, "harness output manifest", force)
    return folder


# ---------------------------------------------------------------- writing


def _os_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or file system allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_beside(path: Path) -> Path:
    """A new, empty temporary file in `path`'s folder (same file system, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(name)


def _write_temp(path: Path, data: str | bytes | Callable[[Path], None], encoding: str) -> Path:
    """Write `data` to a temporary file beside `path` and flush it to disk; remove it on any failure."""
    tmp = _temp_beside(path)
    try:
        try:
            mode = path.stat().st_mode & 0o7777  # a file written over keeps its permissions
        except OSError:
            mode = _MODE  # as open() would create it; mkstemp's 0600 is too private for a report
        os.chmod(tmp, mode)
        if callable(data):
            data(tmp)  # e.g. a Parquet writer that wants a path
        else:
            payload = data.encode(encoding) if isinstance(data, str) else data
            with tmp.open("wb") as fh:
                fh.write(payload)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: str | Path, data: str | bytes | Callable[[Path], None], encoding: str = "utf-8") -> Path:
    """Write a file atomically: temporary file in the same folder, fsync, os.replace.

    `data` is text, bytes, or a function that writes the file at the path it is given.
    On any failure the target is unchanged and no temporary file is left behind.
    Checks nothing about ownership: call `check_target` first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _write_temp(path, data, encoding)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _os_error(path, exc) from None
    _fsync_dir(path.parent)
    return path


def _write_manifest(folder: Path, names: Iterable[str]) -> None:
    listed = read_manifest(folder) or set()
    manifest = {"format": MANIFEST_FORMAT, "format_version": 1, "files": sorted(listed | set(names))}
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def write_set(folder: str | Path, files: Mapping[str, str | bytes], force: bool = False) -> list[Path]:
    """Write several outputs of one folder as a set; returns their paths.

    Refuses (as `check_set_targets`) before touching anything; then writes every file
    to a temporary file beside its target, and only when all are complete lists them in
    the folder's manifest and moves each into place. If anything fails before the moves,
    the previous files are all unchanged and no temporary file is left.
    """
    folder = check_set_targets(folder, files, force)
    temps: dict[str, Path] = {}
    current = folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            current = folder / name
            temps[name] = _write_temp(current, data, "utf-8")
        _write_manifest(folder, files)  # before the moves: a crash between them leaves listed files
        for name in list(temps):
            current = folder / name
            os.replace(temps.pop(name), current)
    except OSError as exc:
        raise _os_error(current, exc) from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    _fsync_dir(folder)
    return [folder / name for name in files]


def unchanged_note(folder: str | Path, names: Iterable[str]) -> str:
    """'; the previous outputs in DIR are unchanged' when some exist there, else ''."""
    folder = Path(folder)
    if any((folder / name).exists() for name in names):
        return f"; the previous outputs in {folder} are unchanged"
    return ""
