"""check-data's outputs: check-data.md, check-data.json and the terminal table.

Only formats: every function takes a finished `DriftReport` and computes nothing. Numbers,
p-values, Markdown tables and strict JSON come from `harness.report.format`, so they read
as they do in every other output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from harness.drift.result import (
    ALPHA,
    INF_SHARE_CHANGE,
    LABEL_DISTANCE_THRESHOLD,
    PSI_EPS,
    Adversarial,
    ColumnMissing,
    DriftReport,
    LabelShift,
    SchemaDiff,
    listing,
)
from harness.report.format import DASH, dumps, fmt_num, fmt_p, md_table

if TYPE_CHECKING:
    from rich.table import Table

FEATURE_HEADER = ["feature", "test", "statistic", "distance", "p (Holm)", "adv. gain", "missing old→new"]


def _pct(x: float | None, signed: bool = False) -> str:
    """A share as a percentage with one decimal (a sign for a change); a dash for a missing one."""
    if x is None or not math.isfinite(x):
        return DASH
    return format(x, "+.1%" if signed else ".1%")


def _missing_cell(schema: SchemaDiff, col: str) -> str:
    rate = next((r for r in schema.missing_rates if r.column == col), None)
    if rate is None or rate.old is None or rate.new is None:
        return DASH
    return f"{rate.old:.1%}→{rate.new:.1%}"


def feature_rows(report: DriftReport, limit: int | None = None) -> list[list[str]]:
    """Table rows (most shifted first) shared by the terminal table and the Markdown."""
    return [
        [
            f.column,
            "KS" if f.kind == "numeric" else "PSI",
            fmt_num(f.statistic, 3),
            fmt_num(f.distance, 3),
            fmt_p(f.p_holm),
            _pct(f.importance),
            _missing_cell(report.schema, f.column),
        ]
        for f in report.features[:limit]
    ]


def rich_table(report: DriftReport, limit: int | None = 30) -> Table:
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


def to_markdown(r: DriftReport) -> str:
    """check-data.md: the verdict first, then schema, adversarial validation, per-feature and label drift."""
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
        *_schema_section(r.schema),
        "",
        *_adversarial_section(r.adversarial),
        "",
        *_features_section(r),
        "",
        *_label_section(r.label),
    ]
    if r.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in r.notes)]
    return "\n".join(out) + "\n"


def _rates_table(rates: list[ColumnMissing]) -> list[str]:
    rows = [[m.column, _pct(m.old), _pct(m.new), _pct(m.change, signed=True)] for m in rates]
    return md_table(["column", "reference", "new", "change"], rows)


def _schema_section(s: SchemaDiff) -> list[str]:
    out = [
        "## Schema",
        "",
        f"- columns new in NEW: {listing(s.added) or 'none'}",
        f"- columns missing from NEW: {listing(s.missing) or 'none'}",
        "- retyped: "
        + (", ".join(f"{x['column']} ({x['old']} → {x['new']})" for x in s.retyped) if s.retyped else "none"),
    ]
    for title, cats in (("new categories", s.new_categories), ("vanished categories", s.vanished_categories)):
        out.append(f"- {title}: " + ("none" if not cats else ""))
        out += [f"  - {col}: {listing(v)}" for col, v in cats.items()]
    changed = [m for m in s.missing_rates if m.old is None or m.new is None or m.old > 0 or m.new > 0]
    if changed:
        out += ["", "Missing values per column:", "", *_rates_table(changed)]
    if s.infinite_rates:
        out += ["", "Infinite values (inf/-inf) per column:", "", *_rates_table(s.infinite_rates)]
    return out


def _adversarial_section(a: Adversarial | None) -> list[str]:
    if a is None:
        return ["## Adversarial validation", "", "Not run: the datasets share no column of the same type."]
    null = "not computed" if a.null_auc_mean is None else f"{a.null_auc_mean:.3f} ± {a.null_auc_std:.3f}"
    top = [[c, f"{v:.1%}"] for c, v in list(a.importance.items())[:10] if v > 0]
    return [
        "## Adversarial validation",
        "",
        f"A LightGBM classifier ({a.n_estimators} trees) learns to tell reference rows (0) from new rows (1) "
        f"on {len(a.features)} shared columns; stratified {a.folds}-fold CV.",
        "",
        f"- ROC AUC: **{a.auc_mean:.3f} ± {a.auc_std:.3f}** (folds: {', '.join(f'{x:.3f}' for x in a.fold_aucs)})",
        f"- permuted-label null AUC: {null}",
        f"- rows used: {a.n_old:,} reference, {a.n_new:,} new" + (" (seeded subsample)" if a.subsampled else ""),
        "",
        "Top features by the adversarial model's gain:",
        "",
        *(md_table(["feature", "share of gain"], top) if top else ["(none: the model made no splits)"]),
    ]


def _features_section(r: DriftReport) -> list[str]:
    return [
        "## Per-feature drift (most shifted first)",
        "",
        "Numeric columns: two-sample Kolmogorov–Smirnov (KS; statistic = distance = KS D). Categorical columns: "
        f"population stability index (PSI; empty bins count as {PSI_EPS:g}) with a chi-square p-value; distance = "
        "total variation. Distances of both kinds lie in 0..1 and rank the table. p-values are Holm-adjusted over "
        "all features; adv. gain is the column's share of the adversarial model's gain.",
        "",
        *(md_table(FEATURE_HEADER, feature_rows(r)) if r.features else ["(no shared columns)"]),
    ]


def _label_section(lab: LabelShift | None) -> list[str]:
    if lab is None:
        return ["## Label shift", "", "Not compared (no target on both sides)."]
    out = [
        "## Label shift",
        "",
        f"{lab.kind}: {lab.test} statistic {fmt_num(lab.statistic, 3)}, distance {fmt_num(lab.distance, 3)}, "
        f"p {fmt_p(lab.p_value)}: {'shifted' if lab.shifted else 'not shifted'}",
    ]
    if lab.old is not None and lab.new is not None:
        classes = sorted(set(lab.old) | set(lab.new))
        shares = [[c, _pct(lab.old.get(c, 0.0)), _pct(lab.new.get(c, 0.0))] for c in classes]
        out += ["", *md_table(["class", "reference", "new"], shares)]
    return out


def write_report(report: DriftReport, out_dir: Path, force: bool = False) -> tuple[Path, Path]:
    """`out_dir/check-data.md` and `out_dir/check-data.json`, built in memory and written as a set, atomically.

    Refuses (exit 2) to write over files there that are not the harness's own output, unless `force`.
    """
    from harness.fileio import write_set

    files = {"check-data.md": to_markdown(report), "check-data.json": dumps(report.to_json()) + "\n"}
    md, js = write_set(Path(out_dir), files, force)
    return md, js
