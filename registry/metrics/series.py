"""Metrics over time: a prompt's figures per version and variant, bucket by bucket.

The dashboard charts these. A series reads minute rollups for steps shorter than an hour
and hour rollups otherwise, the database summing the rows of each step into one: a point
costs the same whatever the traffic, and 30 days at a 6-hour step read 120 grouped rows
per version and variant (of 720 hour rows). `recent_traffic` answers the overview's
"calls and errors of the last hour" for every release at once, in one grouped query.

Latency is that of successful calls, as in summaries (a failed call's latency says nothing
of how fast the version answers); rows stored before the rollups kept it apart have none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Select, Text, case, cast, extract, func, select

from promptctl.registry.errors import UsageError
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.statistics import mean_ci95
from promptctl.registry.metrics.storage import (
    HOUR,
    MINUTE,
    ROLLUPS,
    epoch,
    minutes_kept_from,
    moment,
)
from promptctl.registry.metrics.summary import VersionMetrics
from promptctl.registry.prompts.promptversion import SHORT
from promptctl.registry.releases.values import timestamp
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import VersionSnapshot

MAX_POINTS = 2000  # per series: a bound on what one request may make the server merge


@dataclass(frozen=True)
class SeriesPoint:
    """The figures of one version and variant over one step."""

    start: datetime
    count: int
    errors: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    cost_mean: float | None
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    quality_mean: float | None
    quality_low: float | None
    quality_high: float | None
    outputs_checked: int
    outputs_invalid: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @property
    def invalid_output_rate(self) -> float | None:
        return self.outputs_invalid / self.outputs_checked if self.outputs_checked else None

    @property
    def tokens_mean(self) -> float | None:
        """Input plus output tokens per call (either alone when only one is known)."""
        parts = [t for t in (self.input_tokens_mean, self.output_tokens_mean) if t is not None]
        return sum(parts) if parts else None

    @classmethod
    def of(cls, start: int, agg: Aggregate) -> SeriesPoint:
        quality, low, high = mean_ci95(agg.quality_count, agg.quality_sum, agg.quality_sumsq)
        return cls(
            start=moment(start),
            count=agg.count,
            errors=agg.errors,
            latency_p50=agg.ok_quantile(0.50),
            latency_p95=agg.ok_quantile(0.95),
            latency_p99=agg.ok_quantile(0.99),
            cost_mean=agg.cost_sum / agg.cost_count if agg.cost_count else None,
            input_tokens_mean=agg.input_sum / agg.input_count if agg.input_count else None,
            output_tokens_mean=agg.output_sum / agg.output_count if agg.output_count else None,
            quality_mean=quality,
            quality_low=low,
            quality_high=high,
            outputs_checked=agg.outputs_checked,
            outputs_invalid=agg.outputs_invalid,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "start": timestamp(self.start),
            "count": self.count,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_ms": {
                "p50": self.latency_p50,
                "p95": self.latency_p95,
                "p99": self.latency_p99,
            },
            "cost_usd_mean": self.cost_mean,
            "input_tokens_mean": self.input_tokens_mean,
            "output_tokens_mean": self.output_tokens_mean,
            "quality": {
                "mean": self.quality_mean,
                "low": self.quality_low,
                "high": self.quality_high,
            },
            "outputs_checked": self.outputs_checked,
            "outputs_invalid": self.outputs_invalid,
            "invalid_output_rate": self.invalid_output_rate,
        }


@dataclass(frozen=True)
class Series:
    """One version and variant's points, oldest first; steps without calls are absent."""

    digest: str
    number: int | None
    variant: str
    points: tuple[SeriesPoint, ...]
    total: VersionMetrics  # the whole window at once (a summary's row, from the same rows)

    @property
    def label(self) -> str:
        return f"v{self.number}" if self.number else self.digest[:SHORT]

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "version": self.number,
            "label": self.label,
            "variant": self.variant,
            "points": [p.to_json() for p in self.points],
            "total": self.total.to_json(),
        }


@dataclass(frozen=True)
class MetricSeries:
    """A prompt's series in one environment over [start, end) at one step."""

    prompt: str
    environment: str
    start: datetime
    end: datetime
    step_seconds: int
    rollup_seconds: int
    series: tuple[Series, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "environment": self.environment,
            "start": timestamp(self.start),
            "end": timestamp(self.end),
            "step_seconds": self.step_seconds,
            "rollups": "minute" if self.rollup_seconds == MINUTE else "hour",
            "series": [s.to_json() for s in self.series],
        }


def read_series(
    database: Database,
    prompt: str,
    environment: str,
    *,
    start: datetime,
    end: datetime,
    step: int,
) -> MetricSeries:
    """Return the prompt's figures per version and variant in steps of `step` seconds.

    `start` is rounded down and `end` up to the rollups read (minutes below an hour's
    step, else hours); `step` must be a whole number of those.
    """
    rollup = MINUTE if step < HOUR else HOUR
    if step <= 0 or step % rollup:
        raise UsageError(f"a series step must be a whole number of {rollup}-second rollups")
    low = epoch(start) // rollup * rollup
    high = math.ceil(epoch(end) / rollup) * rollup
    if high <= low:
        raise UsageError("the window is empty: 'start' must be before 'end'")
    if (high - low) / step > MAX_POINTS:
        raise UsageError(f"at most {MAX_POINTS} points per series: choose a larger step")
    buckets: dict[tuple[str, str], dict[int, Aggregate]] = {}
    with database.session() as session:
        kept_from = minutes_kept_from(session)
        if rollup == MINUTE and kept_from is not None and low < kept_from:
            # Minute rows there are past their retention: the series is read from hour
            # rows, at a step of whole hours (the answer's step_seconds says which).
            rollup, step = HOUR, math.ceil(step / HOUR) * HOUR
            low, high = low // HOUR * HOUR, math.ceil(high / HOUR) * HOUR
        query = _grouped_rows(database.dialect, prompt, environment, rollup, low, high, step)
        for row in session.execute(query):
            agg = Aggregate()
            agg.merge_group(row, orjson.loads(row.success_latency_histograms))
            buckets.setdefault((row.digest, row.variant), {})[low + row.bucket * step] = agg
        numbers = (
            dict(
                session.execute(
                    select(VersionSnapshot.digest, VersionSnapshot.number).where(
                        VersionSnapshot.prompt == prompt,
                        VersionSnapshot.digest.in_({d for d, _ in buckets}),
                    )
                ).all()
            )
            if buckets
            else {}
        )
    series = []
    for (digest, variant), per in buckets.items():
        points = tuple(SeriesPoint.of(at, per[at]) for at in sorted(per) if per[at].count)
        total = Aggregate()
        for agg in per.values():
            total.merge(agg)
        number = numbers.get(digest)
        whole = VersionMetrics.from_aggregate(digest, number, variant, total)
        series.append(Series(digest, number, variant, points, whole))
    series.sort(key=lambda s: (-(s.number or 0), s.digest, s.variant != "stable"))
    return MetricSeries(prompt, environment, moment(low), moment(high), step, rollup, tuple(series))


# The rollup columns a step sums: counts (cast back to integers from PostgreSQL's numeric
# sums), sums of floats, and sums of squares, which rows written before 0006 lack.
_COUNTS = (
    "count",
    "errors",
    "input_tokens_count",
    "input_tokens_sum",
    "output_tokens_count",
    "output_tokens_sum",
    "cost_count",
    "quality_count",
    "outputs_checked",
    "outputs_invalid",
    "finishes",
    "truncated",
)
_SUMS = ("latency_sum", "cost_sum", "quality_sum", "quality_sumsq")
_SQUARES = ("cost_sumsq", "input_tokens_sumsq", "output_tokens_sumsq")  # NULL: not recorded


def _grouped_rows(
    dialect: str, prompt: str, environment: str, rollup: int, low: int, high: int, step: int
) -> Select[Any]:
    """One row per version, variant and step: the database sums the step's rollup rows
    (30 days at a 6-hour step: 120 rows per version and variant instead of 720), and
    hands over the successful calls' histograms of each step in one JSON list, merged
    here as the rows' would be, so the quantiles are those of the step's calls.

    What a chart never shows is not read: every call's latency histogram, error types
    and failing traces."""
    r = ROLLUPS.c
    bucket = (cast(extract("epoch", r.period_start), BigInteger) - low) // step
    recorded = r.success_latency_histogram.is_not(None)  # rows written before 0006: NULL
    # As JSON text on both databases, parsed here by orjson (a step's list in one call).
    if dialect == "postgresql":
        histograms = cast(func.json_agg(r.success_latency_histogram), Text)
    else:
        histograms = func.json_group_array(func.json(r.success_latency_histogram), type_=Text)
    columns = [
        r.digest,
        r.variant,
        bucket.label("bucket"),
        *(cast(func.sum(r[name]), BigInteger).label(name) for name in _COUNTS),
        *(func.sum(r[name]).label(name) for name in _SUMS),
        # One row without a square makes the step's square unknown, as merging rows does.
        *(
            case((func.count(r[name]) == func.count(), func.sum(r[name]))).label(name)
            for name in _SQUARES
        ),
        func.min(r.latency_min).label("latency_min"),
        func.max(r.latency_max).label("latency_max"),
        func.sum(case((recorded, r.success_latency_sum))).label("success_latency_sum"),
        func.min(r.success_latency_min).label("success_latency_min"),
        func.max(r.success_latency_max).label("success_latency_max"),
        histograms.label("success_latency_histograms"),
        func.sum(case((recorded, 0), else_=1)).label("rows_without_success"),
    ]
    return (
        select(*columns)
        .where(
            r.prompt == prompt,
            r.environment == environment,
            r.period_seconds == rollup,
            r.period_start >= moment(low),
            r.period_start < moment(high),
        )
        .group_by(r.digest, r.variant, bucket)
    )


@dataclass(frozen=True)
class Traffic:
    """Calls and errors of one release over a recent window, per variant."""

    calls: int = 0
    errors: int = 0
    canary_calls: int = 0
    canary_errors: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def stable_calls(self) -> int:
        return self.calls - self.canary_calls

    @property
    def stable_error_rate(self) -> float | None:
        stable = self.calls - self.canary_calls
        return (self.errors - self.canary_errors) / stable if stable else None

    @property
    def canary_error_rate(self) -> float | None:
        return self.canary_errors / self.canary_calls if self.canary_calls else None

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "canary_calls": self.canary_calls,
            "canary_errors": self.canary_errors,
        }


def recent_traffic(
    database: Database,
    since: datetime,
    environment: str | None = None,
    prompt: str | None = None,
) -> dict[tuple[str, str], Traffic]:
    """Return {(prompt, environment): Traffic} from the minute rollups since `since`, of
    every prompt or of `prompt` only."""
    r = ROLLUPS.c
    query = (
        select(
            r.prompt,
            r.environment,
            r.variant,
            func.sum(r.count).label("calls"),
            func.sum(r.errors).label("errors"),
        )
        .where(r.period_seconds == MINUTE, r.period_start >= moment(epoch(since) // MINUTE * 60))
        .group_by(r.prompt, r.environment, r.variant)
    )
    if environment is not None:
        query = query.where(r.environment == environment)
    if prompt is not None:
        query = query.where(r.prompt == prompt)
    found: dict[tuple[str, str], Traffic] = {}
    with database.session() as session:
        for row in session.execute(query):
            key = (row.prompt, row.environment)
            t = found.get(key, Traffic())
            calls, errors = int(row.calls or 0), int(row.errors or 0)
            canary = row.variant == "canary"
            found[key] = Traffic(
                t.calls + calls,
                t.errors + errors,
                t.canary_calls + (calls if canary else 0),
                t.canary_errors + (errors if canary else 0),
            )
    return found
