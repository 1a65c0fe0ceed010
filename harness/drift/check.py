"""check-data end to end: both sides compared every way, and the verdict with its reasons.

A benchmark result only transfers to new data if the new data looks like the old. The
verdict is "shift" when a model can tell the datasets apart (adversarial AUC), when
columns were added, dropped or retyped, when infinities changed, or when the label moved;
per-feature tests inform but do not decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.drift.adversarial import adversarial_validation
from harness.drift.result import (
    AUC_THRESHOLD,
    MAX_ROWS,
    Adversarial,
    DriftReport,
    FeatureDrift,
    LabelShift,
    SchemaDiff,
    listing,
)
from harness.drift.schema import canonical_codes, schema_diff
from harness.drift.sides import Side, load_side
from harness.drift.statistics import feature_drift, label_shift, ranked
from harness.errors import DatasetError


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
        a[col], b[col] = canonical_codes(a[col], b[col])
    notes = [f"{side.role}: {n}" for side in (ref, new) for n in side.notes]
    if retyped:
        notes.append(f"retyped columns left out of the comparison: {', '.join(sorted(retyped))}")
    features = feature_drift(a, b, categorical) if shared else []
    adv = None
    if shared:
        adv = adversarial_validation(a, b, categorical, seed, max_rows, folds, n_estimators, null, threads)
        for f in features:
            f.importance = adv.importance.get(f.column, 0.0)
        features = ranked(features)  # importance breaks ties in distance
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
        reasons.append(f"significant but small per-feature differences (distance): {listing(small, 5)}")
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
