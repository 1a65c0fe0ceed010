"""Loading an exported model, and checking new data against the schema it was fitted on.

This is the one loader of `harness export model`'s files (`harness predict` and
`harness ab paired` both use it), with a stable interface:

- `load_exported(path) -> ExportedModel`: `.model` (the fitted pipeline: predict,
  predict_proba), `.sidecar` (the JSON beside it), `.classes` (the original label of
  each class code, None for regression);
- `check_frame(sidecar, frame, source) -> (frame, warnings)`: the frame as the model
  saw its training rows (its features, in order, with their types), and a warning per
  extra column, retyped column or unseen category; a missing or uncastable column is
  bad input (exit 2) naming `source` and the column.

The model file is read with skops, never pickle. skops refuses any type it does not
know; we trust only the types that come from libraries a run may build estimators
from (scikit-learn, LightGBM, XGBoost, harness, plus numpy/scipy containers, and the
modules the user allows with `--allow-module` / HARNESS_ALLOW_MODULES), each by its
exact name as skops reports it, never everything the file asks for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from harness.errors import HarnessError

SIDECAR_FORMAT = "harness-model"
SIDECAR_VERSION = 1
# Types from these modules may be loaded from a model file (with the estimator allow-list).
KNOWN_MODULES = ("numpy", "scipy", "builtins", "collections", "imblearn")  # imblearn: `resample:`
_EXAMPLES = 3  # values named in a message


@dataclass
class ExportedModel:
    """A fitted model from `harness export model`, with the sidecar that describes it."""

    model: Any
    sidecar: dict[str, Any]
    path: Path

    @property
    def classes(self) -> np.ndarray | None:
        """The original label of each class code the model predicts (None for regression)."""
        classes = self.sidecar.get("classes")
        return None if classes is None else np.asarray(classes, dtype=object)

    @property
    def task(self) -> str:
        return str(self.sidecar["task"])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for rows already passed through `check_frame`; class labels, not codes."""
        pred = np.asarray(self.model.predict(frame))
        classes = self.classes
        return pred if classes is None else classes[pred.astype(np.int64)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities (columns in `classes` order), or None when the model has none."""
        if self.classes is None or not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(self.model.predict_proba(frame))


def sidecar_path(model_path: str | Path) -> Path:
    """FILE.skops -> FILE.json."""
    return Path(model_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sidecar(model_path: str | Path) -> dict[str, Any]:
    """The sidecar of a model file, checked to be ours and to describe this very file (exit 2 otherwise)."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise HarnessError(f"{path}: not found (the sidecar `harness export model` writes beside {model_path})")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a model sidecar ({type(exc).__name__})") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise HarnessError(f"{path}: not a model sidecar written by `harness export model`")
    if sidecar.get("format_version", 0) > SIDECAR_VERSION:
        raise HarnessError(f"{path}: written by a newer harness (format {sidecar['format_version']}); upgrade harness")
    return sidecar


def is_exported_model(path: str | Path) -> bool:
    """A model file our export wrote: a sidecar beside it names its content hash."""
    path = Path(path)
    try:
        sidecar = read_sidecar(path)
        return path.is_file() and sidecar.get("model_sha256") == file_sha256(path)
    except (HarnessError, OSError):
        return False


def is_sidecar(path: str | Path) -> bool:
    """A JSON file our export wrote (the sidecar of some model)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT


def trusted_types(untrusted: list[str], allow_modules: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The types skops reports that we trust (from known modules), and those we refuse."""
    from harness.registry import allowed_modules

    prefixes = (*allowed_modules(allow_modules), *KNOWN_MODULES)
    ok = [t for t in untrusted if any(t == p or t.startswith(p + ".") for p in prefixes)]
    return ok, [t for t in untrusted if t not in ok]


def load_exported(path: str | Path, allow_modules: tuple[str, ...] = ()) -> ExportedModel:
    """Load FILE.skops and its sidecar FILE.json; bad or foreign files are exit 2 naming the file.

    The file must be the one the sidecar describes (same SHA-256), and every type in it
    must come from a known module (`trusted_types`): nothing else is constructed.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: model file not found")
    sidecar = read_sidecar(path)
    if sidecar.get("model_sha256") != file_sha256(path):
        raise HarnessError(
            f"{path}: does not match its sidecar {sidecar_path(path)} (changed or replaced since the export)"
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises several types on a file that is not its own
        raise HarnessError(f"{path}: not a skops model file ({type(exc).__name__}: {exc})") from None
    trusted, refused = trusted_types(untrusted, allow_modules)
    if refused:
        raise HarnessError(
            f"{path}: holds types from modules that are not allowed: {', '.join(refused[:_EXAMPLES])}"
            " (allow their module with --allow-module or HARNESS_ALLOW_MODULES if you trust it)"
        )
    try:
        model = sio.load(path, trusted=trusted)
    except Exception as exc:
        raise HarnessError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    return ExportedModel(model, sidecar, path)


# ---------------------------------------------------------------- schema checks


def check_frame(sidecar: dict[str, Any], frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[str]]:
    """`frame` restricted and ordered to the model's features, typed as in training; and warnings.

    Missing columns, numeric columns that hold text, and infinite values (unless the
    dataset read them as missing) are errors naming `source` and the column (exit 2).
    Extra columns are dropped, a numeric column read as text but holding numbers is
    cast, and categories the model never saw are kept (the fitted encoder treats them
    as it treats unseen categories in a test fold); each of those is a warning.
    """
    features = sidecar["features"]
    names = [f["name"] for f in features]
    frame = frame.rename(columns=str)
    repeated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if repeated:
        raise HarnessError(f"{source}: column {_quote(repeated)} given more than once")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise HarnessError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} {_quote(missing)} "
            f"(the model was fitted on {len(names)} features)"
        )
    warnings: list[str] = []
    ignored = {sidecar.get("target"), *sidecar.get("ignored_columns", [])}
    extra = [c for c in frame.columns if c not in set(names) and c not in ignored]
    if extra:
        warnings.append(f"{source}: extra column{'s' if len(extra) > 1 else ''} {_quote(extra)} ignored")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for feature in features:
        values = frame[feature["name"]].reset_index(drop=True)
        if feature["categorical"]:
            out[feature["name"]] = _categorical(values, feature, source, warnings)
        else:
            out[feature["name"]] = _numeric(values, feature, sidecar, source, warnings)
    return out, warnings


def _numeric(
    values: pd.Series, feature: dict[str, Any], sidecar: dict[str, Any], source: str, warnings: list[str]
) -> pd.Series:
    name, dtype = feature["name"], feature["dtype"]
    if not pdt.is_numeric_dtype(values) or pdt.is_bool_dtype(values):
        cast = pd.to_numeric(values.astype(object).where(values.notna(), np.nan), errors="coerce")
        bad = values[cast.isna() & values.notna()]
        if len(bad):
            raise HarnessError(
                f"{source}: column '{name}' must be numeric ({dtype}) but holds {_examples(bad)} "
                f"({len(bad)} {'row' if len(bad) == 1 else 'rows'})"
            )
        warnings.append(f"{source}: column '{name}' is {values.dtype}, not numeric; read as {dtype}")
        values = cast
    values = values.astype(dtype)
    inf = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
    if inf.any():
        if sidecar.get("inf") != "missing":
            raise HarnessError(
                f"{source}: column '{name}' has {int(inf.sum())} rows with infinite values (inf/-inf), "
                "which the model was never fitted on"
            )
        values = values.mask(inf)
    return values


def _categorical(values: pd.Series, feature: dict[str, Any], source: str, warnings: list[str]) -> pd.Series:
    """Text with NaN for missing, as `datasets._normalise_types` made the training column."""
    name = feature["name"]
    if pdt.is_numeric_dtype(values) and feature.get("raw_kind") == "text":
        warnings.append(f"{source}: column '{name}' is {values.dtype}, but was text in training; read as text")
    text = values.astype(object).map(lambda v: str(v) if pd.notna(v) else np.nan)
    known = feature.get("categories")
    if known is not None:
        unseen = text[text.notna() & ~text.isin(set(known))]
        if len(unseen):
            warnings.append(
                f"{source}: column '{name}' has {len(unseen)} rows with categories the model never saw: "
                f"{_examples(unseen)} (encoded as unseen categories are in a test fold)"
            )
    return text


def _quote(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _examples(values: pd.Series) -> str:
    distinct = list(dict.fromkeys(values.astype(str)))
    return ", ".join(repr(v) for v in distinct[:_EXAMPLES]) + (", ..." if len(distinct) > _EXAMPLES else "")
