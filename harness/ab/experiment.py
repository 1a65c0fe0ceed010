"""A two-arm experiment from logged outcomes: `harness ab test`.

Every number comes from statsmodels: the two-proportion z-test (`proportions_ztest`,
pooled variance) with Newcombe's CI of the difference and the log-adjusted CI of the
ratio (`confint_proportions_2indep`) for a rate; Welch's t-test and CI (`CompareMeans`,
`usevar="unequal"`) for a mean, whose relative lift gets a delta-method CI (statsmodels
has none for a ratio of independent means). The always-valid p-value is `sequential.py`'s.

**Which p-value decides** (`decision_uses` in ab.json):
- the fixed-horizon test, by default: valid when the log is read once, at the end of an
  experiment whose size was fixed in advance (`harness ab plan`);
- the mSPRT, with `--sequential`: valid however often the log was, or will be, looked
  at, and so the one to use while an experiment is running or when it was stopped early.

**Significantly worse** is one-sided harm to the control's metric: the treatment's mean is
lower (higher with `--lower-is-better`) and the one-sided fixed-horizon p-value is at most
alpha; sequentially, the (two-sided, so conservative) always-valid p-value is at most alpha
and the difference points to harm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from harness.ab.data import PROPORTION, ExperimentLog
from harness.ab.power import achieved_power
from harness.ab.sequential import Sequential, default_tau, msprt
from harness.errors import HarnessError

FIXED = "fixed-horizon"
SEQUENTIAL = "sequential (mSPRT)"


@dataclass(frozen=True)
class Arm:
    name: str
    n: int
    mean: float  # the rate for a proportion
    sd: float  # sample standard deviation (ddof=1)


@dataclass
class TestResult:
    """One analysed two-arm experiment and its decision."""

    source: str
    metric: str
    order: str
    control: Arm
    treatment: Arm
    control_source: str
    alpha: float
    higher_is_better: bool
    test: str
    statistic: float
    p_two_sided: float
    p_harm: float  # one-sided: the treatment is worse
    p_benefit: float  # one-sided: the treatment is better
    difference: float  # treatment − control
    difference_ci: tuple[float, float]
    lift: float | None  # difference / control mean
    lift_ci: tuple[float, float] | None
    effect_size: float  # Cohen's h or d
    power_observed: float | None
    power_at_mde: float | None
    mde: float | None
    sequential: Sequential
    decision_uses: str
    worse: bool
    better: bool
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.worse else 0

    @property
    def verdict(self) -> str:
        who = f"treatment '{self.treatment.name}'"
        if self.worse:
            return f"{who} is significantly worse than control '{self.control.name}' ({self.decision_uses})"
        if self.better:
            return f"{who} is significantly better than control '{self.control.name}' ({self.decision_uses})"
        return f"no significant difference between {who} and control '{self.control.name}' ({self.decision_uses})"


def _arm(name: str, y: np.ndarray) -> Arm:
    return Arm(name, int(y.size), float(y.mean()), float(y.std(ddof=1)))


def _proportions(t: np.ndarray, c: np.ndarray, alpha: float) -> dict:
    """Two-proportion z-test (pooled), Newcombe CI of the difference, log-adjusted CI of the ratio."""
    x_t, x_c = int(t.sum()), int(c.sum())
    count, nobs = np.array([x_t, x_c]), np.array([t.size, c.size])
    z, p_two = proportions_ztest(count, nobs, alternative="two-sided")
    _, p_smaller = proportions_ztest(count, nobs, alternative="smaller")
    _, p_larger = proportions_ztest(count, nobs, alternative="larger")
    low, high = confint_proportions_2indep(x_t, t.size, x_c, c.size, compare="diff", alpha=alpha)
    lift, lift_ci = None, None
    if x_c > 0 and x_t > 0:
        r_low, r_high = confint_proportions_2indep(x_t, t.size, x_c, c.size, compare="ratio", alpha=alpha)
        lift, lift_ci = t.mean() / c.mean() - 1.0, (float(r_low) - 1.0, float(r_high) - 1.0)
    return {
        "test": "two-proportion z-test (pooled)",
        "statistic": float(z),
        "p_two_sided": float(p_two),
        "p_smaller": float(p_smaller),
        "p_larger": float(p_larger),
        "difference_ci": (float(low), float(high)),
        "lift": lift,
        "lift_ci": lift_ci,
        "effect_size": float(proportion_effectsize(t.mean(), c.mean())),
    }


def _pooled_sd(t: np.ndarray, c: np.ndarray) -> float:
    """The within-arm pooled standard deviation: Cohen's d's denominator."""
    return math.sqrt(((t.size - 1) * t.var(ddof=1) + (c.size - 1) * c.var(ddof=1)) / (t.size + c.size - 2))


def _means(t: np.ndarray, c: np.ndarray, alpha: float) -> dict:
    """Welch's t-test and CI of the difference; the relative lift's CI by the delta method."""
    if t.var() == 0 and c.var() == 0:
        raise HarnessError(
            f"the outcome is constant within each arm ({t[0]:g} and {c[0]:g}): Welch's test is undefined"
        )
    compare = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    stat, p_two, _ = compare.ttest_ind(alternative="two-sided", usevar="unequal")
    _, p_smaller, _ = compare.ttest_ind(alternative="smaller", usevar="unequal")
    _, p_larger, _ = compare.ttest_ind(alternative="larger", usevar="unequal")
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    lift, lift_ci = None, None
    m_t, m_c = t.mean(), c.mean()
    if m_c != 0:
        from scipy.stats import norm

        # Var(m_t/m_c) ≈ (se_t² + r² se_c²) / m_c², r = m_t/m_c (first-order Taylor expansion)
        ratio = m_t / m_c
        se = math.sqrt(t.var(ddof=1) / t.size + ratio**2 * c.var(ddof=1) / c.size) / abs(m_c)
        q = float(norm.ppf(1 - alpha / 2))
        lift, lift_ci = ratio - 1.0, (ratio - 1.0 - q * se, ratio - 1.0 + q * se)
    pooled_sd = _pooled_sd(t, c)
    return {
        "test": "Welch's t-test",
        "statistic": float(stat),
        "p_two_sided": float(p_two),
        "p_smaller": float(p_smaller),
        "p_larger": float(p_larger),
        "difference_ci": (float(low), float(high)),
        "lift": None if lift is None else float(lift),
        "lift_ci": lift_ci,
        "effect_size": (m_t - m_c) / pooled_sd if pooled_sd > 0 else math.nan,
    }


def _effect_at(log: ExperimentLog, mde: float, control: Arm, pooled_sd: float) -> float:
    """The standardised effect (h or d) of an absolute difference `mde` from the control."""
    if log.metric == PROPORTION:
        target = control.mean + mde
        if not 0.0 < target < 1.0:
            raise HarnessError(f"--mde: control rate {control.mean:g} + {mde:g} is not a rate between 0 and 1")
        return float(proportion_effectsize(target, control.mean))
    return mde / pooled_sd


def check_options(alpha: float, mde: float | None, tau: float | None) -> None:
    """The options that need no data, checked before the log is read (exit 2 naming the option)."""
    if not 0.0 < alpha < 1.0:
        raise HarnessError(f"--alpha: {alpha:g} must be between 0 and 1 (exclusive)")
    if tau is not None and not (math.isfinite(tau) and tau > 0):
        raise HarnessError(f"--tau: {tau:g} must be a positive number")
    if mde is not None and not (math.isfinite(mde) and mde != 0):
        raise HarnessError(f"--mde: {mde:g} must be a non-zero number")


def analyse(
    log: ExperimentLog,
    alpha: float = 0.05,
    sequential: bool = False,
    higher_is_better: bool = True,
    mde: float | None = None,
    tau: float | None = None,
) -> TestResult:
    """The fixed-horizon test, the mSPRT, the power, and the decision (see the module's docstring)."""
    check_options(alpha, mde, tau)
    y, treated = log.outcome, log.treated
    t, c = y[treated], y[~treated]
    control, treatment = _arm(log.control, c), _arm(log.treatment, t)
    fixed = _proportions(t, c, alpha) if log.metric == PROPORTION else _means(t, c, alpha)
    p_harm, p_benefit = (
        (fixed["p_smaller"], fixed["p_larger"]) if higher_is_better else (fixed["p_larger"], fixed["p_smaller"])
    )
    tau_value, tau_source = default_tau(y, tau, mde)
    seq = msprt(y, treated, tau_value, alpha, pooled=log.metric == PROPORTION, tau_source=tau_source)
    difference = treatment.mean - control.mean
    harmful = difference < 0 if higher_is_better else difference > 0
    if sequential:
        worse = seq.p_value <= alpha and harmful
        better = seq.p_value <= alpha and not harmful and difference != 0
    else:
        worse, better = p_harm <= alpha, p_benefit <= alpha
    pooled_sd = _pooled_sd(t, c)
    notes = []
    if seq.p_values[-1] == 1.0 and min(control.n, treatment.n) < seq.min_n:
        notes.append(f"the mSPRT looks only once each arm has {seq.min_n} rows: its p-value is 1")
    return TestResult(
        source=log.source,
        metric=log.metric,
        order=log.order,
        control=control,
        treatment=treatment,
        control_source=log.control_source,
        alpha=alpha,
        higher_is_better=higher_is_better,
        test=fixed["test"],
        statistic=fixed["statistic"],
        p_two_sided=fixed["p_two_sided"],
        p_harm=p_harm,
        p_benefit=p_benefit,
        difference=difference,
        difference_ci=fixed["difference_ci"],
        lift=fixed["lift"],
        lift_ci=fixed["lift_ci"],
        effect_size=fixed["effect_size"],
        power_observed=achieved_power(log.metric, fixed["effect_size"], treatment.n, control.n, alpha),
        power_at_mde=None
        if mde is None
        else achieved_power(log.metric, _effect_at(log, mde, control, pooled_sd), treatment.n, control.n, alpha),
        mde=mde,
        sequential=seq,
        decision_uses=SEQUENTIAL if sequential else FIXED,
        worse=bool(worse),
        better=bool(better),
        notes=notes,
    )
