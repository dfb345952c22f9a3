"""How wide an interval must be: an anytime-valid boundary, and the fixed-sample one.

Both give a multiplier m such that an interval is estimate ± m · SE, where SE is the
standard error of the estimate (see `intervals`).

**AsymptoticCS** (ours): the asymptotic confidence sequence of Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
sequences", Annals of Statistics 52(6), 2024 (arXiv:2103.06476): their Gaussian-mixture
asymptotic CS for a mean, the mixture boundary of Robbins (1970) as written in Howard,
Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 49(2), 2021, with the variance estimated from the
data. For the mean of t observations with sample standard deviation σ̂_t:

    μ̂_t ± σ̂_t · √( 2(tρ² + 1) / (t²ρ²) · log( √(tρ² + 1) / α ) )

which is μ̂_t ± m(t) · σ̂_t/√t with

    m(t) = √( (1 + 1/(tρ²)) · (log(1 + tρ²) + 2 log(1/α)) ).

With probability at least 1 - α (asymptotically), the interval holds the true mean at
every t at once, so the analysis may be re-run every minute, forever, without the false
alarms of repeated fixed-sample tests. The price: a wider interval than a fixed-sample
one at any single t (m is about 3.7 where z would be 2.7 at α = 0.00625).

ρ > 0 tunes the sample size where the boundary is tightest. For a planned size t*, the
ρ² minimising m(t*) is x*/t* with x* the root of x = 2 log(1/α) + log(1 + x) (a
contraction, solved by iteration; x* = -W₋₁(-α²/e) - 1 with Lambert's W, and the
paper's closed form (2 log(1/α) + log(1 + 2 log(1/α)))/t* is one step of it). The
choice of t* changes only the width, never the validity: choose it before looking.

**FixedSample**: the normal quantile z(1 - α/2), valid at one pre-planned look only;
kept to show what peeking costs (the simulation checks both the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Protocol

from promptctl.registry.errors import UsageError


class Boundary(Protocol):
    """A multiplier of the standard error for an interval at level 1 - alpha."""

    name: str

    def multiplier(self, t: int, alpha: float) -> float: ...


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return alpha if it is a level strictly between 0 and 1, else raise UsageError."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise UsageError(f"analysis setting '{name}' is {alpha!r}: expected a number in (0, 1)")
    return float(alpha)


@lru_cache(maxsize=64)
def optimal_tuning(alpha: float) -> float:
    """Return x* = t*·ρ², the root of x = 2 log(1/α) + log(1 + x) that minimises m(t*)."""
    check_alpha(alpha)
    log_term = 2 * math.log(1 / alpha)
    x = log_term
    for _ in range(100):
        following = log_term + math.log1p(x)
        if abs(following - x) < 1e-12:
            return following
        x = following
    return x


def mixture_rho2(planned: float, alpha: float) -> float:
    """Return the ρ² whose boundary is tightest after `planned` observations."""
    if not planned > 0:
        raise UsageError(f"analysis setting 'planned_calls' is {planned!r}: expected > 0")
    return optimal_tuning(alpha) / planned


def mixture_multiplier(t: int, rho2: float, alpha: float) -> float:
    """Return m(t) of the Gaussian-mixture boundary: the half-width in standard errors."""
    if t < 1:
        raise ValueError("the boundary needs at least one observation")
    x = t * rho2
    return math.sqrt((1 + 1 / x) * (math.log1p(x) + 2 * math.log(1 / alpha)))


@dataclass(frozen=True)
class AsymptoticCS:
    """Anytime-valid: the asymptotic confidence sequence tuned for `planned` observations."""

    planned: int = 10_000
    name: str = "confidence sequence"

    def multiplier(self, t: int, alpha: float) -> float:
        return mixture_multiplier(t, mixture_rho2(self.planned, alpha), alpha)


@dataclass(frozen=True)
class FixedSample:
    """Valid at one planned look only: z(1 - α/2), the plain z-test's interval."""

    name: str = "fixed sample"

    def multiplier(self, t: int, alpha: float) -> float:
        return NormalDist().inv_cdf(1 - alpha / 2)
