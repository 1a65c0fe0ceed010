"""How many rows each arm needs: `harness ab plan`, and the power an experiment reached.

statsmodels' power classes do the work: `NormalIndPower` with Cohen's h
(`proportion_effectsize`, the arcsine transform) for a rate, `TTestIndPower` with Cohen's d
(mde / sd) for a mean. The test they size is two-sided at `alpha`, as `harness ab test`'s
fixed-horizon test reports it; equal arms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from harness.ab.data import MEAN, METRIC_KINDS, PROPORTION
from harness.errors import HarnessError


@dataclass(frozen=True)
class Plan:
    """A planned experiment and the rows per arm it needs."""

    metric: str
    baseline: float
    mde: float
    alpha: float
    power: float
    sd: float | None
    effect_size: float  # Cohen's h (proportion) or d (mean)
    n_per_arm: int  # rounded up
    n_exact: float  # before rounding, as statsmodels solved it
    method: str

    @property
    def n_total(self) -> int:
        return 2 * self.n_per_arm


def _check_probability(value: float, option: str) -> None:
    if not (0.0 < value < 1.0):
        raise HarnessError(f"{option}: {value:g} must be between 0 and 1 (exclusive)")


def check_plan_inputs(metric: str, baseline: float, mde: float, alpha: float, power: float, sd: float | None) -> None:
    """Refuse what no sample size answers (exit 2, one line naming the option)."""
    for value, option in ((baseline, "--baseline"), (mde, "--mde"), (alpha, "--alpha"), (power, "--power")):
        if not math.isfinite(value):
            raise HarnessError(f"{option}: must be a finite number, got {value}")
    if metric not in METRIC_KINDS:
        raise HarnessError(f"--metric: '{metric}' is not one of {', '.join(METRIC_KINDS)}")
    _check_probability(alpha, "--alpha")
    _check_probability(power, "--power")
    if power <= alpha:
        raise HarnessError(f"--power: {power:g} must exceed --alpha {alpha:g}")
    if mde == 0:
        raise HarnessError("--mde: must not be 0 (the smallest difference worth detecting)")
    if metric == PROPORTION:
        if sd is not None:
            raise HarnessError("--sd: applies to --metric mean only (a rate's spread follows from --baseline)")
        _check_probability(baseline, "--baseline")
        if not 0.0 < baseline + mde < 1.0:
            raise HarnessError(f"--mde: --baseline + --mde = {baseline + mde:g} is not a rate between 0 and 1")
    elif sd is None:
        raise HarnessError("--sd: required with --metric mean (the outcome's standard deviation)")
    elif not (math.isfinite(sd) and sd > 0):
        raise HarnessError(f"--sd: {sd:g} must be a positive number")


def plan(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    metric: str = PROPORTION,
    sd: float | None = None,
) -> Plan:
    """Rows per arm to detect an absolute difference `mde` from `baseline` (two-sided test at `alpha`)."""
    check_plan_inputs(metric, baseline, mde, alpha, power, sd)
    if metric == PROPORTION:
        effect = abs(float(proportion_effectsize(baseline + mde, baseline)))
        n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
        method = "two-proportion z-test: statsmodels NormalIndPower, Cohen's h (arcsine)"
    else:
        effect = abs(mde) / float(sd)  # type: ignore[arg-type]
        n = TTestIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
        method = "two-sample t-test: statsmodels TTestIndPower, Cohen's d = mde / sd"
    n = float(n)
    return Plan(metric, baseline, mde, alpha, power, sd, effect, math.ceil(n - 1e-9), n, method)


def achieved_power(metric: str, effect: float, n_treatment: int, n_control: int, alpha: float) -> float | None:
    """The power of the two-sided test at these arm sizes against a standardised effect (h or d)."""
    if not math.isfinite(effect) or effect == 0:
        return None if not math.isfinite(effect) else alpha  # no effect: the power is the test's size
    cls = NormalIndPower() if metric == PROPORTION else TTestIndPower()
    return float(cls.power(effect_size=abs(effect), nobs1=n_treatment, alpha=alpha, ratio=n_control / n_treatment))


__all__ = ["MEAN", "PROPORTION", "Plan", "achieved_power", "check_plan_inputs", "plan"]
