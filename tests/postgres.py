"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start on loopback.

Debian's `postgresql` package puts its binaries in /usr/lib/postgresql/<version>/bin. PostgreSQL
refuses to run as root, so as root every server command runs as the `postgres` system user the
package creates, and the temporary folder belongs to that user. Authentication is `trust` and
the server listens on 127.0.0.1 only, on a free port, with its unix socket inside the folder.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

REQUIRE = "HARNESS_REQUIRE_POSTGRES"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (holding initdb and pg_ctl), or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def require_postgres() -> Path:
    """The bin folder; skips the test when PostgreSQL or its Python driver is missing (fails under HARNESS_REQUIRE_POSTGRES=1)."""
    missing = []
    bin_dir = postgres_bin()
    if bin_dir is None:
        missing.append("the PostgreSQL server binaries (initdb, pg_ctl)")
    elif os.geteuid() == 0 and not _has_user("postgres"):
        missing.append("the `postgres` system user (PostgreSQL refuses to run as root)")
    driver = _driver()
    try:
        importlib.import_module(driver)
    except ImportError:
        missing.append(f"the {driver} driver that postgresql:// URLs use (pip install -e '.[dask]')")
    if missing:
        why = " and ".join(missing) + " not installed"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {why}")
        pytest.skip(why)
    return bin_dir


def _driver() -> str:
    """The DBAPI module SQLAlchemy loads for a plain postgresql:// URL (psycopg from SQLAlchemy 2.1, psycopg2 before)."""
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect.driver


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server in its own temporary folder; `stop()` kills it and removes the folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-"))  # short: a socket path has ~107 bytes
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "sock", self.root / "server.log"
        self.socket_dir.mkdir()
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = 0
        self.started = False
        try:
            self._pg(
                "initdb",
                "-D",
                self.data,
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            self._start()
        except BaseException:
            self.stop()
            raise

    def _pg(self, tool: str, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [*self.as_postgres, str(self.bin_dir / tool), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n{log}")
        return proc

    def _start(self) -> None:
        # A test server: durability off. A port taken between _free_port and the bind is retried.
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            try:
                self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "30", "start")
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            self.started = True
            return

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
