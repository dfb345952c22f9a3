"""The guard metrics a canary is judged on, their tolerances, and the analysis settings.

A metric's nature (what it reads, which direction is harmful) is fixed in `METRICS`; what
a team chooses per metric (tolerance, whether it is required, the minimum count) is a
`Guard`. The defaults, each the harm a canary may do before it fails:

| metric          | reads                                  | tolerance     | required | min/arm |
|-----------------|----------------------------------------|---------------|----------|---------|
| error_rate      | errors / calls                         | +1 pp         | yes      | 100     |
| latency         | successful calls' log-latency          | +10 % (ratio) | yes      | 50      |
| cost            | cost per call (calls with a cost)      | +10 %         | no       | 50      |
| input_tokens    | input tokens per call                  | +10 %         | no       | 50      |
| output_tokens   | output tokens per call                 | +10 %         | no       | 50      |
| quality         | mean quality score in [0, 1]           | -0.02         | no       | 50      |
| invalid_output  | invalid outputs / calls with a verdict | +1 pp         | no       | 100     |
| truncation      | truncated / calls with a finish reason | +1 pp         | no       | 100     |

Error rate and latency are required: every call reports them, so an analysis without
them has no data. The others pass or fail when their data is there and are `no data`
(never pass) when it is not; a team that always sends quality makes it required.

α is split across the guards by Bonferroni: each metric's interval is at level
1 - α/k for the k guards configured (with data or not, so the split is fixed before
the data is seen). With probability at least 1 - α every interval of every look holds
its true value, so an A/A canary (true differences 0) is judged `fail` at any look with
probability at most α, and a canary worse than a tolerance passes with at most α.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from promptctl.registry.analysis.boundaries import (
    AsymptoticCS,
    Boundary,
    FixedSample,
    check_alpha,
)
from promptctl.registry.analysis.inputs import ArmData, LatencyHistogram, Moments, Proportion
from promptctl.registry.errors import UsageError

Kind = Literal["proportion", "mean", "latency"]


@dataclass(frozen=True)
class Metric:
    """What a guard metric is: how it is read from an arm and which direction harms."""

    name: str
    label: str
    kind: Kind
    higher_is_worse: bool
    unit: str
    read: Callable[[ArmData], Proportion | Moments | LatencyHistogram]


METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        Metric("error_rate", "error rate", "proportion", True, "", lambda a: a.error),
        Metric("latency", "latency", "latency", True, "ms", lambda a: a.latency),
        Metric("cost", "cost per call", "mean", True, "USD", lambda a: a.cost),
        Metric("input_tokens", "input tokens", "mean", True, "tokens", lambda a: a.input_tokens),
        Metric("output_tokens", "output tokens", "mean", True, "tokens", lambda a: a.output_tokens),
        Metric("quality", "quality", "mean", False, "", lambda a: a.quality),
        Metric(
            "invalid_output", "invalid outputs", "proportion", True, "", lambda a: a.invalid_output
        ),
        Metric("truncation", "truncations", "proportion", True, "", lambda a: a.truncation),
    )
}


@dataclass(frozen=True)
class Tolerance:
    """The harm allowed: a difference (absolute) or a fraction of stable (relative), >= 0."""

    value: float
    relative: bool

    @classmethod
    def absolute_of(cls, value: float) -> Tolerance:
        return cls(value, False)

    @classmethod
    def relative_of(cls, fraction: float) -> Tolerance:
        return cls(fraction, True)

    def to_json(self) -> dict[str, object]:
        return {"kind": "relative" if self.relative else "absolute", "value": self.value}


@dataclass(frozen=True)
class Guard:
    """A metric the canary is judged on, with the tolerance a team chose for it."""

    metric: str
    tolerance: Tolerance
    required: bool = False
    min_count: int = 50

    def __post_init__(self) -> None:
        where = f"guard '{self.metric}'"
        if self.metric not in METRICS:
            raise UsageError(f"{where}: unknown metric (expected one of {', '.join(METRICS)})")
        value = self.tolerance.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: tolerance {value!r} is not a number")
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(
                f"{where}: tolerance {value!r} must be a finite harm >= 0 "
                "(the direction is the metric's)"
            )
        if METRICS[self.metric].kind == "latency" and not self.tolerance.relative:
            raise UsageError(
                f"{where}: latency is compared as a ratio; give a relative tolerance (0.10 = +10 %)"
            )
        if (
            isinstance(self.min_count, bool)
            or not isinstance(self.min_count, int)
            or (self.min_count < 2)
        ):
            raise UsageError(f"{where}: min_count {self.min_count!r} must be an integer >= 2")

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]


DEFAULT_GUARDS: tuple[Guard, ...] = (
    Guard("error_rate", Tolerance.absolute_of(0.01), required=True, min_count=100),
    Guard("latency", Tolerance.relative_of(0.10), required=True),
    Guard("cost", Tolerance.relative_of(0.10)),
    Guard("input_tokens", Tolerance.relative_of(0.10)),
    Guard("output_tokens", Tolerance.relative_of(0.10)),
    Guard("quality", Tolerance.absolute_of(0.02)),
    Guard("invalid_output", Tolerance.absolute_of(0.01), min_count=100),
    Guard("truncation", Tolerance.absolute_of(0.01), min_count=100),
)


@dataclass(frozen=True)
class AnalysisConfig:
    """The analysis settings: overall α, the guards, and the boundary's planned size.

    `planned_calls` is the number of observations of a metric (both arms together) where
    the confidence sequence is tightest; it shapes the width only, never the validity.
    `sequential=False` swaps in the fixed-sample interval, valid at one look only: for
    showing what peeking costs, never for a controller.
    """

    alpha: float = 0.05
    guards: tuple[Guard, ...] = DEFAULT_GUARDS
    planned_calls: int = 10_000
    sequential: bool = True

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if not self.guards:
            raise UsageError("analysis settings: at least one guard metric is needed")
        names = [g.metric for g in self.guards]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise UsageError(f"analysis settings: guard {', '.join(repeated)} given twice")
        if (
            isinstance(self.planned_calls, bool)
            or not isinstance(self.planned_calls, int)
            or (self.planned_calls < 1)
        ):
            raise UsageError(
                f"analysis setting 'planned_calls' is {self.planned_calls!r}: expected an "
                "integer >= 1"
            )

    @property
    def metric_alpha(self) -> float:
        """Each guard's level: α split evenly across the guards (Bonferroni)."""
        return self.alpha / len(self.guards)

    @property
    def boundary(self) -> Boundary:
        return AsymptoticCS(self.planned_calls) if self.sequential else FixedSample()

    def with_tolerances(self, **tolerances: Tolerance) -> AnalysisConfig:
        """Return these settings with some guards' tolerances replaced, by metric name."""
        unknown = sorted(set(tolerances) - {g.metric for g in self.guards})
        if unknown:
            raise UsageError(f"analysis settings: no guard named {', '.join(unknown)}")
        guards = tuple(
            replace(g, tolerance=tolerances[g.metric]) if g.metric in tolerances else g
            for g in self.guards
        )
        return replace(self, guards=guards)

    def strict(self) -> AnalysisConfig:
        """Return these settings with every tolerance 0: any harm shown at level α fails."""
        return replace(
            self,
            guards=tuple(
                replace(g, tolerance=replace(g.tolerance, value=0.0)) for g in self.guards
            ),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "alpha": self.alpha,
            "metric_alpha": self.metric_alpha,
            "method": self.boundary.name,
            "planned_calls": self.planned_calls,
            "guards": [
                {
                    "metric": g.metric,
                    "tolerance": g.tolerance.to_json(),
                    "required": g.required,
                    "min_count": g.min_count,
                }
                for g in self.guards
            ],
        }
