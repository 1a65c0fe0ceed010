"""Every output rebuilt from a fixed store is byte-identical to the recorded one (tests/data/golden).

The reports only format the read model (`report.context`), so a change to how a number is
computed or written shows up here as a changed file. When a change is meant to alter an
output, run `tests/data/golden/regenerate.py` and say so in the commit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import harness

GOLDEN = Path(__file__).parent / "data" / "golden"


def _store(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with gzip.open(GOLDEN / "results.db.gz", "rb") as src, (folder / "results.db").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return folder


def test_every_output_rebuilt_from_the_store_is_byte_identical(tmp_path, cli):
    out = _store(tmp_path / "out")
    result = cli("report", out)
    assert result.returncode == 0, result.stderr
    expected = json.loads((GOLDEN / "expected.json").read_text())
    got = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in expected}
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, f"{changed} differ from the recorded outputs (see {out}); regenerate only if intended"


def test_the_python_api_reads_the_same_numbers(tmp_path):
    out = _store(tmp_path / "out")
    results = harness.open(out)
    results.write_report()
    expected = json.loads((GOLDEN / "expected.json").read_text())
    assert hashlib.sha256((out / "stats.json").read_bytes()).hexdigest() == expected["stats.json"]
    assert json.loads((out / "stats.json").read_text()) == results.stats
