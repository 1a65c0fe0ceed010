"""Rebuild the golden store and the hashes of the outputs built from it (tests/test_golden.py).

Run `.venv/bin/python tests/data/golden/regenerate.py` only when an output is meant to change
(and say so in the commit): it runs suite.yaml into a fresh folder, keeps its results.db
(vacuumed, gzipped) and records the SHA-256 of every file `harness report` writes from it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUTS = ("results.csv", "leaderboard.md", "stats.json", "summary.md", "report.html")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        harness = [sys.executable, "-m", "harness.cli"]
        subprocess.run([*harness, "run", str(HERE / "suite.yaml"), "--out", str(out), "-j", "1"], check=False)
        with sqlite3.connect(out / "results.db") as db:
            db.execute("VACUUM")
        with (out / "results.db").open("rb") as src, gzip.GzipFile(HERE / "results.db.gz", "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        rebuilt = Path(tmp) / "rebuilt"
        rebuilt.mkdir()
        shutil.copy(out / "results.db", rebuilt / "results.db")
        subprocess.run([*harness, "report", str(rebuilt)], check=True, capture_output=True)
        hashes = {name: digest(rebuilt / name) for name in OUTPUTS}
        (HERE / "expected.json").write_text(json.dumps(hashes, indent=2) + "\n")
    print(f"wrote {HERE / 'results.db.gz'} and {HERE / 'expected.json'}")


if __name__ == "__main__":
    main()
