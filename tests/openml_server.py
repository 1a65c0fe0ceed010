"""A loopback OpenML answering from recorded responses, for the tests and the benchmarks.

scikit-learn's wheel ships real OpenML responses for a few dataset ids
(sklearn/datasets/tests/data/openml/id_*/); tests/data/openml/study-99.json adds a
recorded-style suite listing (iris, penguins and Titanic). Pointing HARNESS_OPENML_URL
at this server runs the harness's whole fetch path (fetch_openml, the redirect, the
timeouts, the cache it fills) without the network.

Run as a module, it fills a data home for the benchmarks on a machine without the
network (`bench/mlp_quality.py --openml ...` reads only the cache):

    .venv/bin/python -m tests.openml_server --data-home /tmp/openml-home 3 40945 40675 62

Most recorded data files are cut to a few rows; COMPLETE lists the classification sets
recorded whole that the quality benchmark does not already have from elsewhere.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from unittest import mock

STUDY = Path(__file__).parent / "data" / "openml" / "study-99.json"
SKLEARN_FIXTURES = Path(str(resources.files("sklearn.datasets.tests.data.openml")))


def _fixture_name(path: str) -> str:
    """The file scikit-learn's tests keep an OpenML response in (their _file_name, for a URL path)."""
    path = path.lstrip("/")
    suffix = ".json"
    if path.startswith("data/v1/download/"):
        path, suffix = path.rsplit("/", 1)[0], ".arff"  # the file name after the file id is left out
    name = re.sub(r"\W", "-", path) + suffix + ".gz"
    for long, short in (
        ("-json-data-list", "-jdl"),
        ("-json-data-features", "-jdf"),
        ("-json-data-qualities", "-jdq"),
        ("-json-data", "-jd"),
        ("-data_name", "-dn"),
        ("-download", "-dl"),
        ("-limit", "-l"),
        ("-data_version", "-dv"),
        ("-status", "-s"),
        ("-deactivated", "-dact"),
        ("-active", "-act"),
    ):
        name = name.replace(long, short)
    return name


class OpenMLServer:
    """A loopback OpenML: recorded responses, gzip-encoded as the real server sends them."""

    def __init__(self) -> None:
        self.files = {p.name: p for p in SKLEARN_FIXTURES.glob("id_*/*.gz")}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.body(self.path)
                if body is None:
                    self.send_response(412)  # OpenML's answer for an unknown id
                    body = gzip.compress(b'{"error":{"code":"111","message":"Unknown dataset"}}')
                else:
                    self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def body(self, path: str) -> bytes | None:
        if path.rstrip("/") == "/api/v1/json/study/99":
            return gzip.compress(STUDY.read_bytes())
        found = self.files.get(_fixture_name(path))
        return found.read_bytes() if found is not None else None

    def datasets_fetched(self) -> set[str]:
        return {p for p in self.requests if p.startswith("/data/v1/download/")}


COMPLETE = {3: "kr-vs-kp", 40945: "Titanic", 40675: "glass2", 62: "zoo"}  # recorded with every row


@contextmanager
def serving() -> Iterator[OpenMLServer]:
    """The server, started in a thread and shut down on exit."""
    srv = OpenMLServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def fill(home: Path, data_ids: list[int]) -> list[str]:
    """Fetch `data_ids` from the recorded responses into the data home `home`, as `harness data fetch` would."""
    from harness import openml

    with serving() as srv, mock.patch.dict(os.environ, {"HARNESS_OPENML_URL": srv.url}):
        frames = [openml.fetch_dataset(data_id, home) for data_id in data_ids]
    return [f"openml:{i}: {len(f.frame):,} rows" for i, f in zip(data_ids, frames, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fill a data home from recorded OpenML responses (no network).")
    parser.add_argument("--data-home", type=Path, required=True)
    parser.add_argument("data_ids", nargs="*", type=int, default=sorted(COMPLETE), help="default: COMPLETE")
    args = parser.parse_args(argv)
    for line in fill(args.data_home, args.data_ids):
        print(line)


if __name__ == "__main__":
    main()
