"""Always-valid p-values for a two-arm experiment: the mixture sequential probability ratio test.

A fixed-horizon p-value is valid only when it is computed once, at a sample size fixed in
advance. Checked after every batch and stopped at the first p < 0.05, a 5% test rejects a
true null far more often than 5% of the time (`tests/test_ab.py` shows it). The mSPRT
gives a p-value that may be read after every row, as often as anyone likes:

    Robbins (1970), "Statistical methods related to the law of the iterated logarithm";
    Johari, Koomen, Pekelis & Walsh (2017), "Peeking at A/B tests: why it matters, and
    what to do about it", KDD; Johari, Pekelis & Walsh (2022), "Always valid inference:
    continuous monitoring of A/B tests", Operations Research 70(3).

With θ̂ₙ the difference of the arms' means (treatment − control) after n rows and Vₙ its
variance, the normal approximation θ̂ₙ ~ N(θ, Vₙ) and a normal mixing distribution
θ ~ N(0, τ²) give the mixture likelihood ratio against H0: θ = 0

    Λₙ = sqrt(Vₙ / (Vₙ + τ²)) · exp(τ² θ̂ₙ² / (2 Vₙ (Vₙ + τ²)))

Under H0, Λₙ is a nonnegative martingale with Λ₀ = 1, so by Ville's inequality
P(supₙ Λₙ ≥ 1/α) ≤ α: the p-value pₙ = min(1, 1 / max_{k≤n} Λₖ) is always valid,
P(pₙ ≤ α for some n) ≤ α, and non-increasing by construction. Inverting the same ratio
at θ gives the confidence sequence θ̂ₙ ± sqrt(Vₙ (Vₙ + τ²) / τ² · (2 log(1/α) + log((Vₙ + τ²) / Vₙ))),
intersected over n (it only narrows).

Choices, all stated in ab.json:
- **Vₙ**: a proportion uses the pooled rate, p̄(1 − p̄)(1/n_t + 1/n_c) (its value under H0,
  as the z-test); a mean uses each arm's sample variance, s_t²/n_t + s_c²/n_c (Welch). The
  plug-in makes the guarantee approximate, so the first look is taken only once each arm
  has `MIN_N` rows and the variance is positive: a handful of early rows cannot fake
  certainty. Starting later never breaks validity.
- **τ** (the mixing standard deviation, in the outcome's units: a difference of rates for a
  proportion). The test is most powerful against effects of about τ at the sizes the
  experiment reaches; Johari et al. recommend the spread of effects seen in past
  experiments. Here τ is `--tau` when given, else `--mde` (the effect the experiment was
  planned to detect), else 0.1 × the pooled standard deviation of the outcome (a
  standardised effect of 0.1). It is fixed once, before the log is replayed.
- **looks**: every row is a look (the strictest monitoring), in log order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_N = 10  # rows per arm before the first look
DEFAULT_TAU_SD = 0.1  # default τ, in pooled standard deviations of the outcome


@dataclass(frozen=True)
class Sequential:
    """The mSPRT over a log: the always-valid p-value at each look and where it ended."""

    tau: float
    tau_source: str  # "--tau", "--mde" or "0.1 × pooled sd"
    variance: str  # "pooled" or "per arm"
    min_n: int
    p_values: np.ndarray  # one per row of the log (1 before the first look)
    ci: tuple[float, float]  # always-valid CI of the difference after the last row (running intersection)
    first_below_alpha: int | None  # rows read when p first reached alpha, or None

    @property
    def p_value(self) -> float:
        return float(self.p_values[-1])


def default_tau(outcome: np.ndarray, tau: float | None, mde: float | None) -> tuple[float, str]:
    """τ and where it came from: --tau, else --mde, else 0.1 × the outcome's pooled standard deviation."""
    if tau is not None:
        return float(tau), "--tau"
    if mde is not None:
        return abs(float(mde)), "--mde"
    return DEFAULT_TAU_SD * float(np.std(outcome, ddof=1)), f"{DEFAULT_TAU_SD:g} × pooled sd of the outcome"


def running_moments(y: np.ndarray, treated: np.ndarray) -> dict[str, np.ndarray]:
    """After each row: count, mean and sample variance (ddof=1) of each arm, and of both together.

    Cumulative sums of the centred outcome (centring keeps y² sums exact enough for large means).
    """
    y = np.asarray(y, dtype=float)
    z = y - y.mean()
    out: dict[str, np.ndarray] = {}
    for name, mask in (("t", treated), ("c", ~treated), ("all", np.ones_like(treated))):
        n = np.cumsum(mask).astype(float)
        s1 = np.cumsum(np.where(mask, z, 0.0))
        s2 = np.cumsum(np.where(mask, z * z, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            var = np.maximum((s2 - n * mean * mean) / (n - 1), 0.0)
        out[f"n_{name}"], out[f"mean_{name}"], out[f"var_{name}"] = n, mean + y.mean(), var
    return out


def log_mixture_ratio(diff: np.ndarray, v: np.ndarray, tau: float) -> np.ndarray:
    """log Λ for differences `diff` with variances `v` and mixing variance τ² (formula above)."""
    t2 = tau * tau
    return 0.5 * np.log(v / (v + t2)) + t2 * diff * diff / (2.0 * v * (v + t2))


def msprt(
    y: np.ndarray,
    treated: np.ndarray,
    tau: float,
    alpha: float = 0.05,
    pooled: bool = False,
    tau_source: str = "--tau",
    min_n: int = MIN_N,
) -> Sequential:
    """Replay the log row by row: the always-valid p-value after each row, and the final confidence sequence.

    `pooled`: the variance of a proportion under H0 (rates); else each arm's own (means).
    """
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive and finite, got {tau}")
    m = running_moments(y, treated)
    n_t, n_c = m["n_t"], m["n_c"]
    diff = m["mean_t"] - m["mean_c"]
    with np.errstate(invalid="ignore", divide="ignore"):
        if pooled:
            rate = m["mean_all"]
            v = rate * (1.0 - rate) * (1.0 / n_t + 1.0 / n_c)
        else:
            v = m["var_t"] / n_t + m["var_c"] / n_c
    looked = (n_t >= min_n) & (n_c >= min_n) & (v > 0) & np.isfinite(v)
    log_ratio = np.full(len(diff), -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio[looked] = log_mixture_ratio(diff[looked], v[looked], tau)
    best = np.maximum.accumulate(log_ratio)
    p_values = np.minimum(1.0, np.exp(-best))
    below = np.flatnonzero(p_values <= alpha)
    return Sequential(
        tau=float(tau),
        tau_source=tau_source,
        variance="pooled" if pooled else "per arm",
        min_n=min_n,
        p_values=p_values,
        ci=_confidence_sequence(diff[looked], v[looked], tau, alpha),
        first_below_alpha=int(below[0]) + 1 if below.size else None,
    )


def _confidence_sequence(diff: np.ndarray, v: np.ndarray, tau: float, alpha: float) -> tuple[float, float]:
    """The running intersection of {θ : Λₙ(θ) < 1/α} over the looks; (-inf, inf) before any look."""
    if diff.size == 0:
        return (-math.inf, math.inf)
    t2 = tau * tau
    half = np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v)))
    low, high = float(np.max(diff - half)), float(np.min(diff + half))
    if low > high:  # the plug-in variance can make the running intersection empty: keep the last look's
        low, high = float(diff[-1] - half[-1]), float(diff[-1] + half[-1])
    return (low, high)
