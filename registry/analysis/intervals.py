"""Two-sample intervals from per-arm aggregates: a difference, or a ratio (Fieller).

How the arms combine. Each call goes to the canary with probability w (the canary
weight) and to stable otherwise, so the calls of a window are one randomized experiment
of t = n_canary + n_stable units. Waudby-Smith et al. (see `boundaries`) build the
confidence sequence for such an experiment on the per-call pseudo-outcome
φ = A·Y/w - (1 - A)·Y/(1 - w) (A = 1 for a canary call), centred on the arms' means,
whose variance is σ_c²/w + σ_s²/(1 - w). Divided by t, with n_c ≈ w·t and n_s ≈ (1-w)·t,
that is the standard error of the difference in means

    SE² = s_c²/n_c + s_s²/n_s          (each arm's own variance: no pooling)

and the interval is (ȳ_c - ȳ_s) ± m(t)·SE with the boundary's multiplier at t = n_c + n_s.
Unequal arms (a 5 % canary) are therefore handled by each arm's variance of its mean:
the small canary arm dominates SE, and the large stable arm costs nothing. The rollups
can hold this (counts, sums, sums of squares); the sequential plug-in of the paper's
AIPW estimator, which needs every call in order, they cannot, and the two agree
asymptotically. The weight is assumed constant over the window: analyse one ramp step
at a time, as a controller does, since a window that mixes weights over a trend
(traffic by time of day) compares the arms over different hours.

Proportions (error, invalid-output and truncation rates) are means of 0/1 flags with
the Agresti-Caffo adjustment (Agresti and Caffo, "Simple and effective confidence
intervals for proportions and differences of proportions result from adding two
successes and two failures", The American Statistician 54(4), 2000): one success and
one failure added to each arm, p̃ = (x + 1)/(n + 2), variance p̃(1 - p̃)/(n + 2). It keeps
a rare flag (0 errors in 200 calls) from claiming a variance of zero.

A relative tolerance (cost within +10 %) asks about θ = μ_c/μ_s. Its interval is
Fieller's (Fieller, "Some problems in interval estimation", JRSS B 16(2), 1954): the θ
for which the contrast ȳ_c - θ·ȳ_s is within the boundary,

    (ȳ_c - θ ȳ_s)² ≤ m² (v_c + θ² v_s),    v = s²/n,

a quadratic in θ, bounded when ȳ_s² > m² v_s (stable's mean is known to be nonzero).
Deciding on it is exactly testing μ_c - (1 + r)·μ_s ≤ 0, with no plug-in of μ_s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from promptctl.registry.analysis.inputs import Moments, Proportion


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's mean, the variance of that mean, and the observations behind it."""

    mean: float
    var_of_mean: float
    n: int


def mean_estimate(moments: Moments) -> ArmEstimate:
    """Return the mean and s²/n of a metric with at least two observations."""
    variance = moments.variance
    if variance is None:
        raise ValueError("a mean's interval needs at least two observations")
    return ArmEstimate(moments.total / moments.n, variance / moments.n, moments.n)


def proportion_estimate(flags: Proportion) -> ArmEstimate:
    """Return the Agresti-Caffo adjusted rate and its variance: one hit and one miss added."""
    p = (flags.hits + 1) / (flags.n + 2)
    return ArmEstimate(p, p * (1 - p) / (flags.n + 2), flags.n)


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; bounds are None when the interval is unbounded."""

    estimate: float
    low: float | None
    high: float | None

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None


def difference(canary: ArmEstimate, stable: ArmEstimate, multiplier: float) -> Interval:
    """Return μ_c - μ_s ± m·√(v_c + v_s)."""
    estimate = canary.mean - stable.mean
    half = multiplier * math.sqrt(canary.var_of_mean + stable.var_of_mean)
    return Interval(estimate, estimate - half, estimate + half)


def ratio(canary: ArmEstimate, stable: ArmEstimate, multiplier: float) -> Interval | None:
    """Return Fieller's interval for μ_c/μ_s, or None when stable's mean is 0.

    The bounds are None when stable's mean is not known to differ from 0 at this level:
    any ratio is then consistent with the data.
    """
    if stable.mean == 0:
        return None
    estimate = canary.mean / stable.mean
    m2 = multiplier * multiplier
    a = stable.mean * stable.mean - m2 * stable.var_of_mean
    if a <= 0:
        return Interval(estimate, None, None)
    b = canary.mean * stable.mean
    # The discriminant m²(v_c·a + v_s·ȳ_c²) is never negative once a > 0.
    root = math.sqrt(m2 * (canary.var_of_mean * a + stable.var_of_mean * canary.mean**2))
    return Interval(estimate, (b - root) / a, (b + root) / a)
