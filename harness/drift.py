"""Distribution shift between a reference dataset and a new one (`harness check-data`).

A benchmark result only transfers to new data if the new data looks like the old. This
module says, before anyone trusts a leaderboard on a fresh batch, whether it does:

- **schema**: columns added, missing or retyped (numeric vs categorical), categories that
  appeared or vanished, and missing-value rates on both sides; also the share of infinite
  values (inf/-inf) per numeric column: infinities that appear, vanish, or change share by at
  least INF_SHARE_CHANGE are a shift (a run refuses them unless the dataset says `inf: missing`);
- **adversarial validation**: a small LightGBM classifier learns to tell old rows (0) from
  new rows (1) on the shared columns; its cross-validated ROC AUC is ~0.5 when the two
  cannot be told apart and approaches 1 when they differ. One number for all columns and
  their interactions, unlike per-column tests; its feature importances say where to look;
- **per-feature drift**: two-sample Kolmogorov–Smirnov for numeric columns, population
  stability index and chi-square for categorical ones, p-values Holm-adjusted over all
  features (many columns, many tests);
- **label shift**: the target's distribution, compared on its own (never a feature).

Both sides are loaded with `harness.datasets`, exactly as a suite's dataset is, so types,
categorical detection and error messages are those of a run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.datasets import FILE_SUFFIXES, Dataset, _from_frame, _read_file, load_dataset
from harness.errors import DatasetError
from harness.metrics import CLASSIFICATION
from harness.spec import DatasetSpec

# Adversarial ROC AUC at or above this means "the model can tell the datasets apart": a
# shift. 0.5 is chance; 0.6 is a common, deliberately lenient cut-off that small samples do
# not reach by luck (the permuted-label null reported beside it shows the noise level).
AUC_THRESHOLD = 0.6
# The target counts as shifted when its distribution distance (KS D, or total variation
# for labels) is at least this large AND significant at ALPHA.
LABEL_DISTANCE_THRESHOLD = 0.1
ALPHA = 0.05
# Adversarial validation subsamples each side to at most this many rows (seeded).
MAX_ROWS = 20_000
# PSI takes the log of a ratio of proportions: an empty bin gets this proportion instead of 0.
PSI_EPS = 1e-4
MISSING_BIN = "<missing>"
# A column's share of infinite values (inf/-inf) moving by at least this much is a shift; so is
# any infinite value on one side only.
INF_SHARE_CHANGE = 0.01
_NO_TARGET = "__harness_check_data_no_target__"


# ---------------------------------------------------------------------------- statistics


def ks_test(old: np.ndarray | pd.Series, new: np.ndarray | pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value on the non-missing values.

    Missing values are compared by the missing-rate columns instead; a side with no values
    at all gives (nan, nan): nothing to test. inf/-inf are kept, as the largest/smallest
    values (their share is also compared on its own, see `schema_diff`).
    """
    from scipy.stats import ks_2samp

    a = pd.Series(old, dtype=float).dropna().to_numpy()
    b = pd.Series(new, dtype=float).dropna().to_numpy()
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def psi(old_counts: Sequence[float], new_counts: Sequence[float], eps: float = PSI_EPS) -> float:
    """Population stability index Σ (q − p)·ln(q / p) over aligned bins (p old, q new).

    Proportions below `eps` are raised to `eps`, so a category present on one side only
    adds a large but finite term. Rules of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 major.
    """
    p = np.asarray(old_counts, dtype=float)
    q = np.asarray(new_counts, dtype=float)
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def category_counts(old: pd.Series, new: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bins (sorted union of categories, plus a missing bin if either side has missing) and counts."""
    a = old.astype(object).where(old.notna(), MISSING_BIN)
    b = new.astype(object).where(new.notna(), MISSING_BIN)
    bins = sorted(set(a) | set(b), key=str)
    ca = a.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    cb = b.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    return [str(x) for x in bins], ca, cb


def categorical_test(old: pd.Series, new: pd.Series) -> tuple[float, float, float]:
    """(PSI, total variation distance, chi-square p) of one categorical column.

    Total variation (½ Σ |p − q|, the largest difference in probability of any set of
    categories) is the categorical counterpart of the KS statistic: both lie in [0, 1], so
    numeric and categorical features can be ranked on one scale.
    """
    from scipy.stats import chi2_contingency

    _, ca, cb = category_counts(old, new)
    if ca.sum() == 0 or cb.sum() == 0:
        return math.nan, math.nan, math.nan
    tvd = 0.5 * float(np.abs(ca / ca.sum() - cb / cb.sum()).sum())
    if len(ca) < 2:
        return 0.0, tvd, 1.0  # one category on both sides: nothing can differ
    p_value = float(chi2_contingency(np.vstack([ca, cb])).pvalue)
    return psi(ca, cb), tvd, p_value


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjustment (statsmodels); NaN p-values stay NaN and do not count as tests."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


# ---------------------------------------------------------------------------- loading


@dataclass
class Side:
    """One dataset as check-data sees it: features, roles, and the target if there is one."""

    role: str
    source: str
    X: pd.DataFrame
    categorical: list[str]
    target: pd.Series | None = None  # classification: original labels as strings; regression: floats
    task: str | None = None
    notes: list[str] = field(default_factory=list)


def load_side(source: str, role: str, target: str | None = None, categorical: Sequence[str] = ()) -> Side:
    """Load one side with the suite loaders; a file needs no target here (all columns are features).

    `--categorical` names may be absent from one file (a column can be dropped from a new
    batch); the caller checks that each exists on at least one side.
    """
    spec = DatasetSpec(name=role, source=source, target=target, categorical=list(categorical))
    if not source.lower().endswith(FILE_SUFFIXES):
        return side_from_dataset(load_dataset(spec, where=role), role)
    path = Path(source)
    frame = _read_file(path, role)
    frame.columns = [str(c) for c in frame.columns]
    present = [c for c in categorical if c in frame.columns]
    if target is None:
        frame = frame.copy()
        frame[_NO_TARGET] = 0.0  # the loader wants a target; a constant regression one is dropped again
        spec = spec.model_copy(update={"target": _NO_TARGET, "task": "regression", "categorical": present})
        ds = _from_frame(spec, frame, role, None, str(path), builtin_target=_NO_TARGET, keep_inf=True)
        return Side(role, str(path), ds.X, ds.categorical, notes=ds.notes)
    ds = _from_frame(spec.model_copy(update={"categorical": present}), frame, role, None, str(path), keep_inf=True)
    return side_from_dataset(ds, role)


def side_from_dataset(ds: Dataset, role: str) -> Side:
    """A loaded suite dataset as one side of a comparison (class labels as their original strings)."""
    if ds.task == CLASSIFICATION and ds.labels is not None:
        y = pd.Series([str(v) for v in ds.labels[ds.y]], dtype=object)
    else:
        y = pd.Series(ds.y, dtype=float)
    return Side(role, ds.source, ds.X, ds.categorical, y, ds.task, list(ds.notes))


# ---------------------------------------------------------------------------- report parts


@dataclass
class ColumnMissing:
    column: str
    old: float | None
    new: float | None
    change: float | None


@dataclass
class SchemaDiff:
    """What changed in the columns themselves, before any statistics."""

    added: list[str]  # in NEW only
    missing: list[str]  # in the reference only
    retyped: list[dict[str, str]]  # {"column", "old", "new"}: numeric <-> categorical
    new_categories: dict[str, list[str]]
    vanished_categories: dict[str, list[str]]
    missing_rates: list[ColumnMissing]
    # share of inf/-inf per numeric column, only columns with an infinite value on some side
    infinite_rates: list[ColumnMissing] = field(default_factory=list)

    @property
    def columns_changed(self) -> bool:
        return bool(self.added or self.missing or self.retyped)

    @property
    def infinite_changed(self) -> list[ColumnMissing]:
        """Shared columns whose infinite values appeared, vanished, or changed share by INF_SHARE_CHANGE."""
        return [
            r
            for r in self.infinite_rates
            if r.old is not None
            and r.new is not None
            and ((r.old == 0) != (r.new == 0) or abs(r.new - r.old) >= INF_SHARE_CHANGE)
        ]


@dataclass
class FeatureDrift:
    """One shared column's shift; `distance` (KS D or total variation) ranks all columns on one scale."""

    column: str
    kind: str  # numeric | categorical
    test: str  # ks | psi+chi2
    statistic: float  # KS D (numeric) or PSI (categorical)
    distance: float
    p_value: float
    p_holm: float = math.nan
    importance: float = 0.0  # share of the adversarial model's gain

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p_holm) and self.p_holm < ALPHA)


@dataclass
class Adversarial:
    """Cross-validated old-vs-new classifier: how well can the two datasets be told apart?"""

    auc_mean: float
    auc_std: float
    fold_aucs: list[float]
    null_auc_mean: float | None  # same CV with permuted old/new labels: the chance level here
    null_auc_std: float | None
    n_old: int  # rows used (after subsampling)
    n_new: int
    subsampled: bool
    folds: int
    n_estimators: int
    features: list[str]
    importance: dict[str, float]  # column -> share of total gain, largest first


@dataclass
class LabelShift:
    kind: str  # classification | regression
    test: str
    statistic: float  # KS D or PSI
    distance: float  # KS D or total variation
    p_value: float
    old: dict[str, float] | None = None  # class -> share (classification)
    new: dict[str, float] | None = None

    @property
    def shifted(self) -> bool:
        return bool(self.p_value < ALPHA and self.distance >= LABEL_DISTANCE_THRESHOLD)


@dataclass
class DriftReport:
    """Everything check-data found; `shift` is the verdict and `reasons` says why."""

    reference: str
    new: str
    target: str | None
    n_reference: int
    n_new: int
    seed: int
    schema: SchemaDiff
    adversarial: Adversarial | None
    features: list[FeatureDrift]  # most shifted first
    label: LabelShift | None
    shift: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)
    threshold: float = AUC_THRESHOLD

    @property
    def exit_code(self) -> int:
        return 1 if self.shift else 0

    @property
    def verdict(self) -> str:
        return ("SHIFT: " if self.shift else "no shift: ") + "; ".join(self.reasons)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; NaN becomes null (JSON has no NaN)."""
        out = asdict(self)
        out["verdict"] = self.verdict
        out["exit_code"] = self.exit_code
        for row, feat in zip(out["features"], self.features, strict=True):
            row["significant"] = feat.significant
        if self.label is not None:
            out["label"]["shifted"] = self.label.shifted
        out["thresholds"] = {
            "adversarial_auc": self.threshold,
            "label_distance": LABEL_DISTANCE_THRESHOLD,
            "alpha": ALPHA,
            "psi_eps": PSI_EPS,
            "max_rows": MAX_ROWS,
        }
        return _clean(out)

    def to_markdown(self) -> str:
        return _markdown(self)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---------------------------------------------------------------------------- computation


def _kind(side: Side, col: str) -> str:
    return "categorical" if col in side.categorical else "numeric"


def _canonical_codes(old: pd.Series, new: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numeric category codes spelled alike on both sides.

    The loader turns a numeric column named in `--categorical` into strings; a file with a
    missing value there reads as float ("1.0"), one without as int ("1"). Within one run
    that is harmless, across two files it would invent new and vanished categories.
    """

    def as_numbers(s: pd.Series) -> pd.Series | None:
        values = pd.to_numeric(s.dropna(), errors="coerce")
        return None if values.isna().any() else values

    a, b = as_numbers(old), as_numbers(new)
    if a is None or b is None:
        return old, new

    def spell(s: pd.Series) -> pd.Series:
        # spell each distinct value once: a column has few categories and many rows
        names = {v: str(int(float(v))) if float(v).is_integer() else str(float(v)) for v in s.dropna().unique()}
        return s.map(names)

    return spell(old), spell(new)


def schema_diff(ref: Side, new: Side) -> SchemaDiff:
    """Columns added, missing and retyped; categories new and vanished; missing rates."""
    ref_cols, new_cols = list(ref.X.columns), list(new.X.columns)
    shared = [c for c in ref_cols if c in set(new_cols)]
    retyped = [
        {"column": c, "old": _kind(ref, c), "new": _kind(new, c)} for c in shared if _kind(ref, c) != _kind(new, c)
    ]
    new_cats: dict[str, list[str]] = {}
    vanished: dict[str, list[str]] = {}
    for c in shared:
        if _kind(ref, c) == _kind(new, c) == "categorical":
            old, now = _canonical_codes(ref.X[c], new.X[c])
            a, b = set(old.dropna().astype(str)), set(now.dropna().astype(str))
            if b - a:
                new_cats[c] = sorted(b - a)
            if a - b:
                vanished[c] = sorted(a - b)
    rates = []
    for c in ref_cols + [c for c in new_cols if c not in set(ref_cols)]:
        old = float(ref.X[c].isna().mean()) if c in ref.X.columns and len(ref.X) else None
        now = float(new.X[c].isna().mean()) if c in new.X.columns and len(new.X) else None
        rates.append(ColumnMissing(c, old, now, None if old is None or now is None else now - old))
    infinite = []
    for c in ref_cols + [c for c in new_cols if c not in set(ref_cols)]:
        old, now = _infinite_share(ref, c), _infinite_share(new, c)
        if old or now:
            infinite.append(ColumnMissing(c, old, now, None if old is None or now is None else now - old))
    return SchemaDiff(
        added=[c for c in new_cols if c not in set(ref_cols)],
        missing=[c for c in ref_cols if c not in set(new_cols)],
        retyped=retyped,
        new_categories=new_cats,
        vanished_categories=vanished,
        missing_rates=rates,
        infinite_rates=infinite,
    )


def _infinite_share(side: Side, col: str) -> float | None:
    """Share of a column's rows that are inf/-inf; None when the column is absent (or no rows)."""
    if col not in side.X.columns or not len(side.X):
        return None
    values = side.X[col]
    if not pd.api.types.is_float_dtype(values):
        return 0.0  # text and integer columns hold no infinities ('inf' text is a category)
    return float(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).mean())


def feature_drift(ref: pd.DataFrame, new: pd.DataFrame, categorical: Sequence[str]) -> list[FeatureDrift]:
    """Per-column tests on shared, same-typed columns, Holm-adjusted together, largest distance first."""
    rows = []
    for col in ref.columns:
        if col in categorical:
            value, tvd, p = categorical_test(ref[col], new[col])
            rows.append(FeatureDrift(col, "categorical", "psi+chi2", value, tvd, p))
        else:
            d, p = ks_test(ref[col], new[col])
            rows.append(FeatureDrift(col, "numeric", "ks", d, d, p))
    for row, adj in zip(rows, holm([r.p_value for r in rows]), strict=True):
        row.p_holm = float(adj)
    return _ranked(rows)


def _ranked(rows: list[FeatureDrift]) -> list[FeatureDrift]:
    def key(r: FeatureDrift) -> tuple[float, float, float]:
        d = r.distance if np.isfinite(r.distance) else -1.0
        p = r.p_holm if np.isfinite(r.p_holm) else 2.0
        return (-d, p, -r.importance)

    return sorted(rows, key=key)


def _adversarial_frame(ref: pd.DataFrame, new: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    """Rows of both sides stacked; categoricals as pandas Categorical over the union of categories.

    LightGBM then splits on categories natively, and a category seen on one side only is
    one more level rather than an error.
    """
    both = pd.concat([ref, new], ignore_index=True)
    for col in both.columns:
        if col in categorical:
            cats = sorted(both[col].dropna().astype(str).unique())
            both[col] = pd.Categorical(both[col].astype(object).where(both[col].notna(), None), categories=cats)
        else:
            both[col] = both[col].astype(np.float64)
    return both


def _subsample(X: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(X) <= max_rows:
        return X
    idx = np.sort(rng.choice(len(X), size=max_rows, replace=False))
    return X.iloc[idx]


def _cv_auc(
    X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, n_estimators: int, threads: int
) -> tuple[list[float], np.ndarray]:
    """Per-fold ROC AUC of a small LightGBM classifier, and its total gain per feature."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    # LightGBM refuses column names with JSON characters (',', ':', '"', brackets), which a
    # CSV header may hold ('Unnamed: 3'); gain is positional, so the model sees f0, f1, ...
    X = X.set_axis([f"f{i}" for i in range(X.shape[1])], axis=1)
    aucs, gain = [], np.zeros(X.shape[1])
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        # Small and regularised on purpose: a flexible model fits noise columns too, which
        # blurs the importances that point at the shifted columns.
        model = lgb.LGBMClassifier(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=7,
            min_child_samples=min(50, max(5, len(train) // 20)),
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            n_jobs=threads,
            verbose=-1,
        )
        model.fit(X.iloc[train], y[train])
        aucs.append(float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1])))
        gain += model.booster_.feature_importance(importance_type="gain")
    return aucs, gain


def adversarial_validation(
    ref: pd.DataFrame,
    new: pd.DataFrame,
    categorical: Sequence[str],
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    folds: int = 5,
    n_estimators: int = 100,
    null: bool = True,
    threads: int = 1,
) -> Adversarial:
    """Old (0) vs new (1) classifier, StratifiedKFold-CV ROC AUC, and a permuted-label null.

    Each side is subsampled to `max_rows` first (seeded): AUC needs no more to be precise
    to about ±0.01, and the cost stays bounded on large files.
    """
    rng = np.random.default_rng(seed)
    a, b = _subsample(ref, max_rows, rng), _subsample(new, max_rows, rng)
    folds = min(folds, len(a), len(b))
    if folds < 2:
        raise DatasetError("check-data: adversarial validation needs at least 2 rows in each dataset")
    X = _adversarial_frame(a, b, categorical)
    y = np.r_[np.zeros(len(a), dtype=int), np.ones(len(b), dtype=int)]
    aucs, gain = _cv_auc(X, y, folds, seed, n_estimators, threads)
    null_aucs = _cv_auc(X, rng.permutation(y), folds, seed, n_estimators, threads)[0] if null else None
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share, kind="stable")
    return Adversarial(
        auc_mean=float(np.mean(aucs)),
        auc_std=float(np.std(aucs)),
        fold_aucs=aucs,
        null_auc_mean=None if null_aucs is None else float(np.mean(null_aucs)),
        null_auc_std=None if null_aucs is None else float(np.std(null_aucs)),
        n_old=len(a),
        n_new=len(b),
        subsampled=len(a) < len(ref) or len(b) < len(new),
        folds=folds,
        n_estimators=n_estimators,
        features=list(X.columns),
        importance={str(X.columns[i]): float(share[i]) for i in order},
    )


def label_shift(ref: Side, new: Side) -> LabelShift | None:
    """The target's own shift: class shares (PSI, total variation, chi-square) or KS for regression."""
    if ref.target is None or new.target is None:
        return None
    if CLASSIFICATION in (ref.task, new.task):
        old, now = ref.target.astype(str), new.target.astype(str)
        value, tvd, p = categorical_test(old, now)
        return LabelShift(
            CLASSIFICATION,
            "psi+chi2",
            value,
            tvd,
            p,
            old={str(k): float(v) for k, v in old.value_counts(normalize=True).sort_index().items()},
            new={str(k): float(v) for k, v in now.value_counts(normalize=True).sort_index().items()},
        )
    d, p = ks_test(ref.target, new.target)
    return LabelShift("regression", "ks", d, d, p)


def compare(
    ref: Side,
    new: Side,
    target: str | None = None,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    folds: int = 5,
    n_estimators: int = 100,
    null: bool = True,
    threads: int = 1,
    threshold: float = AUC_THRESHOLD,
) -> DriftReport:
    """Schema, adversarial validation, per-feature and label drift of `new` against `ref`, and the verdict."""
    schema = schema_diff(ref, new)
    retyped = {r["column"] for r in schema.retyped}
    shared = [c for c in ref.X.columns if c in set(new.X.columns) and c not in retyped]
    categorical = [c for c in shared if c in ref.categorical]
    a, b = ref.X[shared].copy(), new.X[shared].copy()
    for col in categorical:
        a[col], b[col] = _canonical_codes(a[col], b[col])
    notes = [f"{side.role}: {n}" for side in (ref, new) for n in side.notes]
    if retyped:
        notes.append(f"retyped columns left out of the comparison: {', '.join(sorted(retyped))}")
    features = feature_drift(a, b, categorical) if shared else []
    adv = None
    if shared:
        adv = adversarial_validation(a, b, categorical, seed, max_rows, folds, n_estimators, null, threads)
        for f in features:
            f.importance = adv.importance.get(f.column, 0.0)
        features = _ranked(features)  # importance breaks ties in distance
        if adv.auc_mean < 0.4:
            notes.append(
                f"adversarial AUC {adv.auc_mean:.2f} is far below 0.5: the two datasets share identical rows, "
                "and each row's twin with the other label sits in the training folds (not a shift)"
            )
        if adv.subsampled:
            notes.append(
                f"adversarial validation used a seeded subsample of at most {max_rows:,} rows per side "
                f"({adv.n_old:,} reference, {adv.n_new:,} new); per-feature tests used every row"
            )
    else:
        notes.append("no shared columns of the same type: no adversarial validation or per-feature tests")
    label = label_shift(ref, new)
    shift, reasons = _verdict(schema, adv, label, threshold, features)
    return DriftReport(
        reference=ref.source,
        new=new.source,
        target=target,
        n_reference=len(ref.X),
        n_new=len(new.X),
        seed=seed,
        schema=schema,
        adversarial=adv,
        features=features,
        label=label,
        shift=shift,
        reasons=reasons,
        notes=notes,
        threshold=threshold,
    )


def _verdict(
    schema: SchemaDiff,
    adv: Adversarial | None,
    label: LabelShift | None,
    threshold: float,
    features: Sequence[FeatureDrift] = (),
) -> tuple[bool, list[str]]:
    """Shift = adversarial AUC ≥ threshold, columns added/missing/retyped, infinities changed, or a label shift.

    Per-feature tests do not decide: on large samples they call differences significant
    that no model would notice. They are named in the reasons when the verdict is "no shift".
    """
    reasons = []
    if schema.added:
        reasons.append(f"columns new in NEW: {', '.join(schema.added)}")
    if schema.missing:
        reasons.append(f"columns missing from NEW: {', '.join(schema.missing)}")
    if schema.retyped:
        reasons.append(
            "columns retyped: " + ", ".join(f"{r['column']} ({r['old']} → {r['new']})" for r in schema.retyped)
        )
    shift = schema.columns_changed
    if schema.infinite_changed:
        shift = True
        reasons.append(
            "infinite values (inf/-inf): "
            + ", ".join(f"{r.column} {r.old:.1%} → {r.new:.1%}" for r in schema.infinite_changed)
        )
    if adv is not None:
        null = "" if adv.null_auc_mean is None else f"; permuted-label null {adv.null_auc_mean:.3f}"
        if adv.auc_mean >= threshold:
            shift = True
            top = [c for c, s in list(adv.importance.items())[:3] if s > 0]
            reasons.append(f"adversarial AUC {adv.auc_mean:.3f} ≥ {threshold:g}{null}; top features: {', '.join(top)}")
        else:
            reasons.append(f"adversarial AUC {adv.auc_mean:.3f} < {threshold:g}{null}")
    if label is not None and label.shifted:
        shift = True
        reasons.append(f"label shift: distance {label.distance:.3f}, p {label.p_value:.2g}")
    small = [f"{f.column} ({f.distance:.3f})" for f in features if f.significant]
    if small and not shift:
        reasons.append(f"significant but small per-feature differences (distance): {_listing(small, 5)}")
    return shift, reasons


def check_data(
    new_source: str,
    reference_source: str,
    target: str | None = None,
    categorical: Sequence[str] = (),
    seed: int = 0,
    **options: Any,
) -> DriftReport:
    """Load both sources as a suite would and compare them; `options` go to `compare`."""
    ref = load_side(reference_source, "reference", target, categorical)
    new = load_side(new_source, "new", target, categorical)
    for i, col in enumerate(categorical):
        if col not in ref.X.columns and col not in new.X.columns:
            raise DatasetError(f"--categorical[{i}]: column '{col}' is a feature of neither dataset")
    return compare(ref, new, target=target, seed=seed, **options)


# ---------------------------------------------------------------------------- output


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None or not np.isfinite(x) else format(x, spec)


def _pfmt(p: float | None) -> str:
    return "—" if p is None or not np.isfinite(p) else ("<1e-300" if p == 0 else f"{p:.2g}")


def _missing_cell(schema: SchemaDiff, col: str) -> str:
    rate = next((r for r in schema.missing_rates if r.column == col), None)
    if rate is None or rate.old is None or rate.new is None:
        return "—"
    return f"{rate.old:.1%}→{rate.new:.1%}"


def feature_rows(report: DriftReport, limit: int | None = None) -> list[list[str]]:
    """Table rows (most shifted first) shared by the terminal table and the Markdown."""
    rows = []
    for f in report.features[:limit]:
        rows.append(
            [
                f.column,
                "KS" if f.kind == "numeric" else "PSI",
                _fmt(f.statistic),
                _fmt(f.distance),
                _pfmt(f.p_holm),
                _fmt(f.importance, ".1%"),
                _missing_cell(report.schema, f.column),
            ]
        )
    return rows


FEATURE_HEADER = ["feature", "test", "statistic", "distance", "p (Holm)", "adv. gain", "missing old→new"]


def rich_table(report: DriftReport, limit: int | None = 30):
    """The per-feature table for the terminal (rich), most shifted first."""
    from rich.table import Table

    shown = "" if limit is None or len(report.features) <= limit else f" (top {limit} of {len(report.features)})"
    table = Table(title=f"drift of {report.new} against {report.reference}{shown}")
    for i, col in enumerate(FEATURE_HEADER):
        table.add_column(col, justify="left" if i < 2 else "right")
    for f, row in zip(report.features, feature_rows(report, limit), strict=False):
        style = "bold red" if f.significant and f.distance >= LABEL_DISTANCE_THRESHOLD else None
        table.add_row(*row, style=style)
    return table


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in esc),
    ]


def _listing(values: list[str], n: int = 20) -> str:
    return ", ".join(values[:n]) + (f", ... ({len(values)} in all)" if len(values) > n else "")


def _markdown(r: DriftReport) -> str:
    s = r.schema
    out = [
        "# check-data",
        "",
        f"- reference: `{r.reference}` ({r.n_reference:,} rows)",
        f"- new: `{r.new}` ({r.n_new:,} rows)",
        f"- target: {f'`{r.target}`' if r.target else 'none'}; seed {r.seed}",
        "",
        f"**Verdict: {r.verdict}**",
        "",
        f"Shift means: adversarial ROC AUC ≥ {r.threshold:g} (0.5 = the datasets cannot be told apart), "
        f"or columns added, missing or retyped, or infinite values that appear, vanish or change share by "
        f"≥ {INF_SHARE_CHANGE:.0%}, or a label shift (distance ≥ {LABEL_DISTANCE_THRESHOLD:g} "
        f"and p < {ALPHA:g}).",
        "",
        "## Schema",
        "",
        f"- columns new in NEW: {_listing(s.added) or 'none'}",
        f"- columns missing from NEW: {_listing(s.missing) or 'none'}",
        "- retyped: "
        + (", ".join(f"{x['column']} ({x['old']} → {x['new']})" for x in s.retyped) if s.retyped else "none"),
    ]
    for title, cats in (("new categories", s.new_categories), ("vanished categories", s.vanished_categories)):
        out.append(f"- {title}: " + ("none" if not cats else ""))
        out += [f"  - {col}: {_listing(v)}" for col, v in cats.items()]
    changed = [m for m in s.missing_rates if m.old is None or m.new is None or m.old > 0 or m.new > 0]
    if changed:
        out += ["", "Missing values per column:", ""]
        out += _md_table(
            ["column", "reference", "new", "change"],
            [[m.column, _fmt(m.old, ".1%"), _fmt(m.new, ".1%"), _fmt(m.change, "+.1%")] for m in changed],
        )
    if s.infinite_rates:
        out += ["", "Infinite values (inf/-inf) per column:", ""]
        out += _md_table(
            ["column", "reference", "new", "change"],
            [[m.column, _fmt(m.old, ".1%"), _fmt(m.new, ".1%"), _fmt(m.change, "+.1%")] for m in s.infinite_rates],
        )
    out += ["", "## Adversarial validation", ""]
    a = r.adversarial
    if a is None:
        out.append("Not run: the datasets share no column of the same type.")
    else:
        null = "not computed" if a.null_auc_mean is None else f"{a.null_auc_mean:.3f} ± {a.null_auc_std:.3f}"
        out += [
            f"A LightGBM classifier ({a.n_estimators} trees) learns to tell reference rows (0) from new rows (1) "
            f"on {len(a.features)} shared columns; stratified {a.folds}-fold CV.",
            "",
            f"- ROC AUC: **{a.auc_mean:.3f} ± {a.auc_std:.3f}** (folds: {', '.join(f'{x:.3f}' for x in a.fold_aucs)})",
            f"- permuted-label null AUC: {null}",
            f"- rows used: {a.n_old:,} reference, {a.n_new:,} new" + (" (seeded subsample)" if a.subsampled else ""),
            "",
            "Top features by the adversarial model's gain:",
            "",
        ]
        top = [[c, f"{v:.1%}"] for c, v in list(a.importance.items())[:10] if v > 0]
        out += _md_table(["feature", "share of gain"], top) if top else ["(none: the model made no splits)"]
    out += ["", "## Per-feature drift (most shifted first)", ""]
    out.append(
        "Numeric columns: two-sample Kolmogorov–Smirnov (KS; statistic = distance = KS D). Categorical columns: "
        f"population stability index (PSI; empty bins count as {PSI_EPS:g}) with a chi-square p-value; distance = "
        "total variation. Distances of both kinds lie in 0..1 and rank the table. p-values are Holm-adjusted over "
        "all features; adv. gain is the column's share of the adversarial model's gain."
    )
    out.append("")
    out += _md_table(FEATURE_HEADER, feature_rows(r)) if r.features else ["(no shared columns)"]
    out += ["", "## Label shift", ""]
    lab = r.label
    if lab is None:
        out.append("Not compared (no target on both sides).")
    else:
        out.append(
            f"{lab.kind}: {lab.test} statistic {_fmt(lab.statistic)}, distance {_fmt(lab.distance)}, "
            f"p {_pfmt(lab.p_value)}: {'shifted' if lab.shifted else 'not shifted'}"
        )
        if lab.old is not None and lab.new is not None:
            classes = sorted(set(lab.old) | set(lab.new))
            shares = [[c, _fmt(lab.old.get(c, 0.0), ".1%"), _fmt(lab.new.get(c, 0.0), ".1%")] for c in classes]
            out += ["", *_md_table(["class", "reference", "new"], shares)]
    if r.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in r.notes)]
    return "\n".join(out) + "\n"


def write_report(report: DriftReport, out_dir: Path, force: bool = False) -> tuple[Path, Path]:
    """`out_dir/check-data.md` and `out_dir/check-data.json`, built in memory and written as a set, atomically.

    Refuses (exit 2) to write over files there that are not the harness's own output, unless `force`.
    """
    from harness.fileio import write_set

    files = {
        "check-data.md": report.to_markdown(),
        "check-data.json": json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n",
    }
    md, js = write_set(Path(out_dir), files, force)
    return md, js
