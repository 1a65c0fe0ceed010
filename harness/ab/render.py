"""ab.json and ab.md for each `harness ab` command, and writing them: only formats.

Every function takes a finished record (`Plan`, `TestResult`, `PairedResult`) and computes
nothing. Numbers, p-values, tables and strict JSON come from `harness.report.format`, so
they read as in every other output; the pair is written with `fileio.write_set` (atomic,
never over a file that is not ours).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.ab.power import Plan
from harness.report.format import DASH, dumps, fmt_num, fmt_p, md_table

if TYPE_CHECKING:
    from harness.ab.experiment import TestResult
    from harness.ab.paired import PairedResult

FORMAT = "harness-ab"
FILES = ("ab.json", "ab.md")


def _ci(ci: tuple[float, float] | None, digits: int = 4, pct: bool = False) -> str:
    if ci is None:
        return DASH
    if pct:
        return f"[{ci[0]:+.2%}, {ci[1]:+.2%}]"
    return f"[{fmt_num(ci[0], digits)}, {fmt_num(ci[1], digits)}]"


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{x:+.2%}"


# ---------------------------------------------------------------- plan


def plan_json(p: Plan) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": "plan",
        "metric": p.metric,
        "baseline": p.baseline,
        "mde": p.mde,
        "target": p.baseline + p.mde,
        "sd": p.sd,
        "alpha": p.alpha,
        "power": p.power,
        "alternative": "two-sided",
        "effect_size": p.effect_size,
        "n_per_arm": p.n_per_arm,
        "n_per_arm_exact": p.n_exact,
        "n_total": p.n_total,
        "method": p.method,
        "exit_code": 0,
    }


def plan_lines(p: Plan) -> list[str]:
    what = "rate" if p.metric == "proportion" else "mean"
    sd = "" if p.sd is None else f", sd {p.sd:g}"
    return [
        f"{p.n_per_arm:,} rows per arm ({p.n_total:,} in all) to detect a {what} of {p.baseline + p.mde:g}"
        f" against {p.baseline:g}{sd} (difference {p.mde:+g}, effect size {p.effect_size:.4f})",
        f"two-sided test at alpha {p.alpha:g} with power {p.power:g}; {p.method}",
    ]


def plan_markdown(p: Plan) -> str:
    return "\n".join(["# harness ab plan", "", *plan_lines(p), ""])


# ---------------------------------------------------------------- test


def test_json(r: TestResult) -> dict[str, Any]:
    s = r.sequential
    return {
        "format": FORMAT,
        "kind": "test",
        "source": r.source,
        "metric": r.metric,
        "order": r.order,
        "alpha": r.alpha,
        "direction": "higher is better" if r.higher_is_better else "lower is better",
        "control": {**vars(r.control), "chosen_by": r.control_source},
        "treatment": vars(r.treatment),
        "difference": r.difference,
        "difference_ci": r.difference_ci,
        "lift": r.lift,
        "lift_ci": r.lift_ci,
        "fixed_horizon": {
            "test": r.test,
            "statistic": r.statistic,
            "p_two_sided": r.p_two_sided,
            "p_harm": r.p_harm,
            "p_benefit": r.p_benefit,
        },
        "sequential": {
            "method": "mSPRT, normal mixture (Johari, Koomen, Pekelis & Walsh 2017)",
            "p_value": s.p_value,
            "tau": s.tau,
            "tau_from": s.tau_source,
            "variance": s.variance,
            "min_rows_per_arm": s.min_n,
            "looks": "every row, in log order",
            "rows_when_p_first_at_or_below_alpha": s.first_below_alpha,
            "difference_ci": s.ci,
        },
        "effect_size": r.effect_size,
        "power_observed": r.power_observed,
        "mde": r.mde,
        "power_at_mde": r.power_at_mde,
        "decision_uses": r.decision_uses,
        "significantly_worse": r.worse,
        "significantly_better": r.better,
        "verdict": r.verdict,
        "notes": r.notes,
        "exit_code": r.exit_code,
    }


def test_lines(r: TestResult) -> list[str]:
    """The terminal summary: what was compared, both p-values, and the verdict last."""
    unit = "rate" if r.metric == "proportion" else "mean"
    s = r.sequential
    return [
        f"control '{r.control.name}' ({r.control_source}): n {r.control.n:,}, {unit} {fmt_num(r.control.mean)};"
        f" treatment '{r.treatment.name}': n {r.treatment.n:,}, {unit} {fmt_num(r.treatment.mean)}",
        f"difference {r.difference:+.4f} {_ci(r.difference_ci)}, lift {_pct(r.lift)} {_ci(r.lift_ci, pct=True)}",
        f"{r.test}: p {fmt_p(r.p_two_sided)} (two-sided), p {fmt_p(r.p_harm)} (one-sided, harm);"
        f" always-valid mSPRT p {fmt_p(s.p_value)} (tau {s.tau:.4g} from {s.tau_source})",
        f"decision uses the {r.decision_uses} p-value at alpha {r.alpha:g}"
        f" ({'higher' if r.higher_is_better else 'lower'} is better)",
    ]


def test_markdown(r: TestResult) -> str:
    s = r.sequential
    unit = "rate" if r.metric == "proportion" else "mean"
    arms = md_table(
        ["arm", "role", "rows", unit, "sd"],
        [
            [
                r.control.name,
                f"control ({r.control_source})",
                f"{r.control.n:,}",
                fmt_num(r.control.mean),
                fmt_num(r.control.sd),
            ],
            [r.treatment.name, "treatment", f"{r.treatment.n:,}", fmt_num(r.treatment.mean), fmt_num(r.treatment.sd)],
        ],
    )
    level = f"{1 - r.alpha:.0%}"
    tests = md_table(
        ["", "value", f"{level} CI", "p (two-sided)", "p (one-sided, harm)"],
        [
            [
                "difference (treatment − control)",
                f"{r.difference:+.4f}",
                _ci(r.difference_ci),
                fmt_p(r.p_two_sided),
                fmt_p(r.p_harm),
            ],
            ["relative lift", _pct(r.lift), _ci(r.lift_ci, pct=True), DASH, DASH],
            [f"always-valid (mSPRT, tau {s.tau:.4g})", f"{r.difference:+.4f}", _ci(s.ci), fmt_p(s.p_value), DASH],
        ],
    )
    first = DASH if s.first_below_alpha is None else f"{s.first_below_alpha:,}"
    power = [f"- power against the observed effect (size {fmt_num(r.effect_size)}): {fmt_num(r.power_observed, 3)}"]
    if r.power_at_mde is not None:
        power.append(f"- power against the planned difference {r.mde:+g}: {fmt_num(r.power_at_mde, 3)}")
    return "\n".join(
        [
            f"# harness ab test: {r.treatment.name} vs {r.control.name}",
            "",
            f"**{r.verdict}**",
            "",
            f"Log `{r.source}`, {r.order}; metric: {r.metric}, {'higher' if r.higher_is_better else 'lower'}"
            f" is better; alpha {r.alpha:g}.",
            "",
            *arms,
            "",
            *tests,
            "",
            f"- fixed-horizon test: {r.test} (valid read once, at a size fixed in advance)",
            f"- always-valid p-value: mSPRT with a normal mixture, tau {s.tau:.4g} (from {s.tau_source}), "
            f"{s.variance} variance, every row a look once each arm has {s.min_n} rows; first at or below alpha "
            f"after {first} rows",
            f"- the decision uses the **{r.decision_uses}** p-value; significantly worse = one-sided harm to the "
            "control's metric",
            *power,
            *(f"- note: {n}" for n in r.notes),
            "",
        ]
    )


# ---------------------------------------------------------------- paired


def paired_json(r: PairedResult) -> dict[str, Any]:
    return {"format": FORMAT, "kind": "paired", **r.to_dict(), "verdict": r.verdict, "exit_code": r.exit_code}


def paired_rows(r: PairedResult) -> list[list[str]]:
    return [
        [
            m.name + (" (decides)" if m.name == r.decision_metric else ""),
            "higher" if m.higher_is_better else "lower",
            fmt_num(m.a),
            fmt_num(m.b),
            f"{m.difference:+.4f}" if m.difference is not None else DASH,
            _ci(m.ci),
            "worse" if m.worse else ("better" if m.better else "no sig. difference"),
        ]
        for m in r.metrics
    ]


PAIRED_HEADER = ["metric", "better", "A", "B", "B − A", "CI (bootstrap)", "B vs A"]


def paired_lines(r: PairedResult) -> list[str]:
    lines = [f"{r.n:,} rows of {r.source}; A = {r.model_a} (champion), B = {r.model_b} (challenger)"]
    if r.mcnemar is not None:
        m = r.mcnemar
        lines.append(
            f"McNemar exact: only A right {m['only_a_right']:,}, only B right {m['only_b_right']:,};"
            f" p {fmt_p(m['p_two_sided'])} (two-sided), p {fmt_p(m['p_harm'])} (one-sided, B worse)"
        )
    return lines


def paired_markdown(r: PairedResult) -> str:
    level = f"{1 - 2 * r.alpha:.0%}"
    out = [
        f"# harness ab paired: {Path(r.model_b).name} vs {Path(r.model_a).name}",
        "",
        f"**{r.verdict}**",
        "",
        f"{r.n:,} newly labelled rows of `{r.source}` (target `{r.target}`); A = `{r.model_a}` (champion),"
        f" B = `{r.model_b}` (challenger); alpha {r.alpha:g}.",
        "",
        *md_table(PAIRED_HEADER, paired_rows(r)),
        "",
        f"- CI: paired bootstrap ({r.resamples:,} resamples of the rows, percentile, seed {r.seed}), {level}"
        " two-sided, so each bound is a one-sided test at alpha",
    ]
    if r.mcnemar is not None:
        m = r.mcnemar
        out.append(
            f"- McNemar's exact test on accuracy: A right and B wrong on {m['only_a_right']:,} rows, B right and A"
            f" wrong on {m['only_b_right']:,}; p {fmt_p(m['p_two_sided'])} (two-sided), {fmt_p(m['p_harm'])}"
            " (one-sided, B worse)"
        )
    out.append(f"- the decision uses {r.decision_uses}")
    out.extend(f"- warning: {w}" for w in r.warnings)
    return "\n".join([*out, ""])


# ---------------------------------------------------------------- writing


def write(out: str | Path, data: dict[str, Any], markdown: str, force: bool = False) -> list[Path]:
    """ab.json and ab.md in `out`, as a set (neither is written when either cannot be)."""
    from harness.fileio import write_set

    return write_set(out, {"ab.json": dumps(data) + "\n", "ab.md": markdown}, force=force)
