"""Datasets shared with the engine's worker processes through memory, once per run.

Pickled whole, a task carried its dataset through the pipe every time: a 1,000,000 x 40
dataset is 320 MB to pickle, send and unpickle per fold, and each worker held a private
copy while it ran. Instead the driver copies each dataset's numeric columns and target
once into an anonymous memory file (Linux `memfd_create`), sends each worker its file
descriptor and the dataset's other fields (text columns, labels, groups) once, and a
task pickles only the file's token. Every worker maps the same pages read-only, so the
data costs its size once whatever the number of workers and tasks (as joblib's
memory-mapping does for cross_validate), and the memory goes with the last process
holding it: nothing is left behind in /dev/shm by a killed run. Where memfd is missing
(not Linux), or for a dataset under MIN_SHARED_BYTES, tasks carry their data as before.
"""

from __future__ import annotations

import io
import mmap
import os
import secrets
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

import numpy as np
import pandas as pd

from harness.datasets import Dataset

# Small datasets are cheaper to pickle than to map.
MIN_SHARED_BYTES = 1 << 20
_ALIGN = 64


@dataclass(frozen=True)
class Share:
    """Driver -> worker: the file descriptor that follows on the pipe holds dataset `token` (`size` bytes).

    `meta` is the rest of the dataset: its small fields and the columns that are not numbers.
    """

    token: str
    size: int
    meta: dict[str, Any]


@dataclass
class _File:
    token: str
    fd: int
    size: int
    view: mmap.mmap
    meta: dict[str, Any]


class Shared:
    """The driver's memory files, one per dataset (by identity), made when a task first needs one."""

    def __init__(self) -> None:
        self.files: dict[int, _File | None] = {}
        self.keep: list[Dataset] = []  # the identities in `files` stay valid while the pool lives

    def file(self, ds: Dataset) -> _File | None:
        if id(ds) not in self.files:
            self.keep.append(ds)
            self.files[id(ds)] = _export(ds)
        return self.files[id(ds)]

    def dumps(self, task: Any) -> tuple[bytes, list[_File]]:
        """The pickled task with each shareable dataset replaced by its token; the files it names."""
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, self)
        pickler.dump(task)
        return buffer.getvalue(), list(pickler.used.values())

    def close(self) -> None:
        for f in self.files.values():
            if f is not None:
                f.view.close()
                os.close(f.fd)
        self.files, self.keep = {}, []


class _Pickler(reduction.ForkingPickler):
    def __init__(self, file: Any, shared: Shared) -> None:
        super().__init__(file, 5)
        self.shared, self.used = shared, {}

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Dataset:
            f = self.shared.file(obj)
            if f is not None:
                self.used[f.token] = f
                return _attach, (f.token,)
        return NotImplemented


def send(conn: Any, f: _File) -> None:
    """Give the worker at the other end of `conn` the memory file `f` (once per worker)."""
    conn.send(Share(f.token, f.size, f.meta))
    reduction.send_handle(conn, f.fd, 0)


def _export(ds: Dataset) -> _File | None:
    """Copy the dataset's numeric columns and target into a new memory file; None when not worth it or possible."""
    numeric = list(ds.numeric)
    dtypes = {ds.X[c].dtype for c in numeric}
    y = np.asarray(ds.y)
    if not hasattr(os, "memfd_create") or len(dtypes) != 1 or y.dtype.kind not in "biuf":
        return None
    dtype = dtypes.pop()
    if dtype.kind != "f":
        return None
    n, k = len(ds.X), len(numeric)
    x_bytes = n * k * dtype.itemsize
    y_offset = -(-x_bytes // _ALIGN) * _ALIGN
    size = y_offset + y.nbytes
    if size < MIN_SHARED_BYTES:
        return None
    fd = os.memfd_create(f"harness-{ds.name}"[:200], os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, max(size, 1))
        view = mmap.mmap(fd, max(size, 1))
    except OSError:
        os.close(fd)
        return None
    block = np.ndarray((n, k), dtype=dtype, buffer=view, order="F")
    for j, col in enumerate(numeric):  # column by column: no temporary copy of the whole matrix
        block[:, j] = ds.X[col].to_numpy()
    np.ndarray(y.shape, dtype=y.dtype, buffer=view, offset=y_offset)[:] = y
    del block
    others = ds.X[[c for c in ds.X.columns if c not in set(numeric)]]
    meta = {
        "name": ds.name,
        "task": ds.task,
        "categorical": ds.categorical,
        "source": ds.source,
        "groups": ds.groups,
        "notes": ds.notes,
        "labels": ds.labels,
        "fingerprint": ds.fingerprint,
        "columns": list(ds.X.columns),
        "numeric": numeric,
        "dtype": dtype.str,
        "shape": (n, k),
        "y": (y.dtype.str, y.shape, y_offset),
        "others": others,
        "has_missing": ds.has_missing,
    }
    return _File(secrets.token_hex(8), fd, size, view, meta)


# ---------------------------------------------------------------- the worker's side

_MAPS: dict[str, tuple[mmap.mmap, dict[str, Any]]] = {}
_ATTACHED: dict[str, Dataset] = {}


def receive(share: Share, conn: Any) -> None:
    """Map the memory file whose descriptor follows `share` on `conn` (read-only)."""
    fd = reduction.recv_handle(conn)
    try:
        _MAPS[share.token] = (mmap.mmap(fd, max(share.size, 1), prot=mmap.PROT_READ), share.meta)
    finally:
        os.close(fd)


def _attach(token: str) -> Dataset:
    """The dataset of a memory file this worker has mapped (built once, then the same object for every task)."""
    if token in _ATTACHED:
        return _ATTACHED[token]
    view, meta = _MAPS[token]
    block = np.ndarray(meta["shape"], dtype=np.dtype(meta["dtype"]), buffer=view, order="F")
    X = pd.DataFrame(block, columns=meta["numeric"], copy=False)
    others = meta["others"]
    for loc, col in enumerate(meta["columns"]):
        if col in others.columns:
            X.insert(loc, col, others[col])
    y_dtype, y_shape, y_offset = meta["y"]
    y = np.ndarray(y_shape, dtype=np.dtype(y_dtype), buffer=view, offset=y_offset)
    ds = Dataset(
        meta["name"],
        X,
        y,
        meta["task"],
        meta["categorical"],
        meta["source"],
        groups=meta["groups"],
        notes=meta["notes"],
        labels=meta["labels"],
        fingerprint=meta["fingerprint"],
    )
    ds.__dict__["has_missing"] = meta["has_missing"]  # a cached property: not recomputed per worker
    _ATTACHED[token] = ds
    return ds
