"""One classifier per kind of metric, each returning a verdict with the numbers behind it.

As Kayenta's judge: a classifier looks at one metric of both arms and says `pass`, `fail`,
`inconclusive` or `no data`; the scorer (`scorer`) combines them. The rule, for an
interval on the harmful side of the difference and a tolerance τ >= 0:

- `fail`: the whole interval is beyond τ (worse than the tolerance, with confidence);
- `pass`: the whole interval is within τ (no worse than the tolerance, with confidence);
- `inconclusive`: the interval straddles τ (not enough data yet to tell);
- `no data`: an arm has fewer observations than the guard's minimum. Never a pass.

Kinds: `proportion` (error, invalid-output and truncation rates: difference of
Agresti-Caffo adjusted rates), `mean` (cost, tokens, quality: difference of means, or
Fieller's ratio for a relative tolerance), `latency` (successful calls only: the
difference of mean log-latency, i.e. the ratio of geometric means, read from the
histogram, with p50/p95/p99 of both arms beside it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

from promptctl.registry.analysis.boundaries import Boundary
from promptctl.registry.analysis.guards import Guard
from promptctl.registry.analysis.inputs import ArmData, LatencyHistogram, Moments, Proportion
from promptctl.registry.analysis.intervals import (
    ArmEstimate,
    Interval,
    difference,
    mean_estimate,
    proportion_estimate,
    ratio,
)

Scale = Literal["absolute", "relative"]
PERCENTILES = (0.50, 0.95, 0.99)


class Verdict(StrEnum):
    """A metric's, or a whole analysis's, judgement."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NO_DATA = "no data"


@dataclass(frozen=True)
class Percentile:
    """One latency percentile of both arms, in ms."""

    q: float
    stable: float | None
    canary: float | None

    def to_json(self) -> dict[str, Any]:
        return {"q": self.q, "stable": self.stable, "canary": self.canary}


@dataclass(frozen=True)
class MetricResult:
    """A guard metric's verdict and the numbers behind it.

    `stable` and `canary` are the arms' values in the metric's unit (a rate, a mean, the
    geometric mean latency in ms). `difference`, `low`, `high` and `limit` share `scale`:
    canary minus stable (absolute) or canary / stable - 1 (relative); `limit` is the
    tolerance signed in the harmful direction. `alpha` is this metric's level.
    """

    metric: str
    label: str
    verdict: Verdict
    rule: str
    required: bool
    stable: float | None
    canary: float | None
    n_stable: int
    n_canary: int
    scale: Scale
    difference: float | None
    low: float | None
    high: float | None
    limit: float
    alpha: float
    unit: str = ""
    percentiles: tuple[Percentile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "label": self.label,
            "verdict": str(self.verdict),
            "rule": self.rule,
            "required": self.required,
            "unit": self.unit,
            "stable": self.stable,
            "canary": self.canary,
            "n_stable": self.n_stable,
            "n_canary": self.n_canary,
            "scale": self.scale,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "limit": self.limit,
            "alpha": self.alpha,
            "percentiles": [p.to_json() for p in self.percentiles],
        }


Classifier = Callable[[Guard, ArmData, ArmData, float, Boundary], MetricResult]


def classify(
    guard: Guard, stable: ArmData, canary: ArmData, alpha: float, boundary: Boundary
) -> MetricResult:
    """Judge one guard metric of canary against stable at level `alpha`."""
    return CLASSIFIERS[guard.spec.kind](guard, stable, canary, alpha, boundary)


def classify_proportion(
    guard: Guard, stable: ArmData, canary: ArmData, alpha: float, boundary: Boundary
) -> MetricResult:
    """Judge a rate: errors, invalid outputs or truncations per call that reports them."""
    s, c = guard.spec.read(stable), guard.spec.read(canary)
    assert isinstance(s, Proportion)
    assert isinstance(c, Proportion)
    judge = _Judge(guard, alpha, s.n, c.n, s.rate, c.rate)
    if missing := judge.missing("calls"):
        return missing
    multiplier = boundary.multiplier(s.n + c.n, alpha)
    es, ec = proportion_estimate(s), proportion_estimate(c)
    interval = _interval(guard, ec, es, multiplier)
    plain = judge.plain_difference()
    if interval is not None and plain is not None:
        # Report the plain rates' difference; the adjusted rates only place the interval.
        interval = replace(interval, estimate=plain)
    return judge.decide(interval)


def classify_mean(
    guard: Guard, stable: ArmData, canary: ArmData, alpha: float, boundary: Boundary
) -> MetricResult:
    """Judge a mean per call: cost, input or output tokens, quality."""
    s, c = guard.spec.read(stable), guard.spec.read(canary)
    assert isinstance(s, Moments)
    assert isinstance(c, Moments)
    judge = _Judge(guard, alpha, s.n, c.n, s.mean, c.mean)
    if missing := judge.missing("calls with a value"):
        return missing
    multiplier = boundary.multiplier(s.n + c.n, alpha)
    return judge.decide(_interval(guard, mean_estimate(c), mean_estimate(s), multiplier))


def classify_latency(
    guard: Guard, stable: ArmData, canary: ArmData, alpha: float, boundary: Boundary
) -> MetricResult:
    """Judge successful calls' latency: the ratio of geometric means, from the histograms."""
    hs, hc = guard.spec.read(stable), guard.spec.read(canary)
    assert isinstance(hs, LatencyHistogram)
    assert isinstance(hc, LatencyHistogram)
    ls, lc = hs.log_moments, hc.log_moments
    percentiles = tuple(Percentile(q, hs.quantile(q), hc.quantile(q)) for q in PERCENTILES)
    judge = _Judge(
        guard,
        alpha,
        ls.n,
        lc.n,
        math.exp(ls.mean) if ls.mean is not None else None,
        math.exp(lc.mean) if lc.mean is not None else None,
        percentiles,
    )
    if missing := judge.missing("successful calls"):
        return missing
    multiplier = boundary.multiplier(ls.n + lc.n, alpha)
    log_shift = difference(mean_estimate(lc), mean_estimate(ls), multiplier)
    assert log_shift.low is not None
    assert log_shift.high is not None
    # A shift of the mean log is a ratio of geometric means: report it as a relative change.
    interval = Interval(
        math.expm1(log_shift.estimate), math.expm1(log_shift.low), math.expm1(log_shift.high)
    )
    return judge.decide(interval)


CLASSIFIERS: dict[str, Classifier] = {
    "proportion": classify_proportion,
    "mean": classify_mean,
    "latency": classify_latency,
}


def _interval(
    guard: Guard, canary: ArmEstimate, stable: ArmEstimate, multiplier: float
) -> Interval | None:
    """The interval in the tolerance's scale: a difference, or a relative change."""
    if not guard.tolerance.relative:
        return difference(canary, stable, multiplier)
    theta = ratio(canary, stable, multiplier)
    if theta is None:
        return None
    return Interval(
        theta.estimate - 1,
        theta.low - 1 if theta.low is not None else None,
        theta.high - 1 if theta.high is not None else None,
    )


class _Judge:
    """Builds one metric's result: the no-data check, then the rule on its interval."""

    def __init__(
        self,
        guard: Guard,
        alpha: float,
        n_stable: int,
        n_canary: int,
        stable: float | None,
        canary: float | None,
        percentiles: tuple[Percentile, ...] = (),
    ) -> None:
        self.guard = guard
        self.alpha = alpha
        self.n_stable, self.n_canary = n_stable, n_canary
        self.stable, self.canary = stable, canary
        self.percentiles = percentiles
        self.scale: Scale = "relative" if guard.tolerance.relative else "absolute"
        sign = 1 if guard.spec.higher_is_worse else -1
        self.limit = sign * guard.tolerance.value

    def missing(self, what: str) -> MetricResult | None:
        """Return `no data` when either arm is below the guard's minimum count."""
        need = self.guard.min_count
        if self.n_stable == 0 and self.n_canary == 0:
            return self._result(Verdict.NO_DATA, f"no data: neither arm has {what}")
        short = [
            f"{arm} has {n} {what}"
            for arm, n in (("stable", self.n_stable), ("canary", self.n_canary))
            if n < need
        ]
        if not short:
            return None
        return self._result(
            Verdict.NO_DATA, f"no data: {' and '.join(short)}, fewer than the {need} required"
        )

    def decide(self, interval: Interval | None) -> MetricResult:
        """Apply the rule: beyond the tolerance fails, within passes, across is inconclusive."""
        if interval is None:
            return self._result(
                Verdict.INCONCLUSIVE, "inconclusive: stable's mean is 0, so no relative change"
            )
        if not interval.bounded:
            return self._result(
                Verdict.INCONCLUSIVE,
                "inconclusive: stable's mean is too uncertain for a ratio (interval unbounded)",
                interval,
            )
        assert interval.low is not None
        assert interval.high is not None
        worse = self.guard.spec.higher_is_worse
        best, worst = (interval.low, interval.high) if worse else (interval.high, interval.low)
        beyond = "above" if worse else "below"
        shown = (
            f"[{self._show(interval.low)}, {self._show(interval.high)}]"
            f" at {100 * (1 - self.alpha):.2f} %"
        )
        tolerance = f"the tolerance {self._show(self.limit)}"
        if (best > self.limit) if worse else (best < self.limit):
            return self._result(
                Verdict.FAIL, f"fail: the interval {shown} lies {beyond} {tolerance}", interval
            )
        if (worst <= self.limit) if worse else (worst >= self.limit):
            return self._result(
                Verdict.PASS, f"pass: the interval {shown} lies within {tolerance}", interval
            )
        return self._result(
            Verdict.INCONCLUSIVE,
            f"inconclusive: the interval {shown} straddles {tolerance}",
            interval,
        )

    def plain_difference(self) -> float | None:
        """The arms' point difference in the tolerance's scale, None without both values."""
        if self.stable is None or self.canary is None:
            return None
        if self.scale == "absolute":
            return self.canary - self.stable
        return self.canary / self.stable - 1 if self.stable else None

    def _show(self, value: float) -> str:
        if self.scale == "relative":
            return f"{100 * value:+.1f} %"
        if self.guard.spec.kind == "proportion":
            return f"{100 * value:+.2f} pp"
        return f"{value:+.4g}" + (f" {self.guard.spec.unit}" if self.guard.spec.unit else "")

    def _result(
        self, verdict: Verdict, rule: str, interval: Interval | None = None
    ) -> MetricResult:
        return MetricResult(
            metric=self.guard.metric,
            label=self.guard.spec.label,
            verdict=verdict,
            rule=rule,
            required=self.guard.required,
            stable=self.stable,
            canary=self.canary,
            n_stable=self.n_stable,
            n_canary=self.n_canary,
            scale=self.scale,
            difference=interval.estimate if interval else self.plain_difference(),
            low=interval.low if interval else None,
            high=interval.high if interval else None,
            limit=self.limit,
            alpha=self.alpha,
            unit=self.guard.spec.unit,
            percentiles=self.percentiles,
        )
