"""What a summary reports: `VersionMetrics` per version and variant, `MetricsSummary` over
a window, both with their JSON forms (the CLI rebuilds them from a server's answer), and
`parse_time` for the window's bounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from promptctl.registry.errors import UsageError
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.statistics import mean_ci95
from promptctl.registry.prompts.promptversion import SHORT

DEFAULT_WINDOW = timedelta(days=7)
_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class VersionMetrics:
    """The figures of one version and variant in a summary's window."""

    digest: str
    number: int | None
    variant: str
    count: int
    errors: int
    latency_mean: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    latency_min: float | None
    latency_max: float | None
    input_tokens_mean: float | None
    input_tokens_count: int
    output_tokens_mean: float | None
    output_tokens_count: int
    cost_mean: float | None
    cost_total: float
    cost_count: int
    quality_mean: float | None
    quality_low: float | None
    quality_high: float | None
    quality_count: int

    @property
    def label(self) -> str:
        return f"v{self.number}" if self.number else self.digest[:SHORT]

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @classmethod
    def from_aggregate(
        cls, digest: str, number: int | None, variant: str, agg: Aggregate
    ) -> VersionMetrics:
        quality, low, high = mean_ci95(agg.quality_count, agg.quality_sum, agg.quality_sumsq)
        return cls(
            digest=digest,
            number=number,
            variant=variant,
            count=agg.count,
            errors=agg.errors,
            latency_mean=agg.latency_sum / agg.count if agg.count else None,
            latency_p50=agg.quantile(0.50),
            latency_p95=agg.quantile(0.95),
            latency_p99=agg.quantile(0.99),
            latency_min=agg.latency_min if agg.count else None,
            latency_max=agg.latency_max if agg.count else None,
            input_tokens_mean=_mean(agg.input_sum, agg.input_count),
            input_tokens_count=agg.input_count,
            output_tokens_mean=_mean(agg.output_sum, agg.output_count),
            output_tokens_count=agg.output_count,
            cost_mean=_mean(agg.cost_sum, agg.cost_count),
            cost_total=agg.cost_sum,
            cost_count=agg.cost_count,
            quality_mean=quality,
            quality_low=low,
            quality_high=high,
            quality_count=agg.quality_count,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "version": self.number,
            "label": self.label,
            "variant": self.variant,
            "count": self.count,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_ms": {
                "mean": self.latency_mean,
                "p50": self.latency_p50,
                "p95": self.latency_p95,
                "p99": self.latency_p99,
                "min": self.latency_min,
                "max": self.latency_max,
            },
            "input_tokens": {"mean": self.input_tokens_mean, "count": self.input_tokens_count},
            "output_tokens": {"mean": self.output_tokens_mean, "count": self.output_tokens_count},
            "cost_usd": {
                "mean": self.cost_mean,
                "total": self.cost_total,
                "count": self.cost_count,
            },
            "quality": {
                "mean": self.quality_mean,
                "ci95": [self.quality_low, self.quality_high]
                if self.quality_low is not None
                else None,
                "count": self.quality_count,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionMetrics:
        latency, cost, quality = data["latency_ms"], data["cost_usd"], data["quality"]
        ci = quality.get("ci95") or (None, None)
        return cls(
            digest=data["digest"],
            number=data.get("version"),
            variant=data["variant"],
            count=data["count"],
            errors=data["errors"],
            latency_mean=latency["mean"],
            latency_p50=latency["p50"],
            latency_p95=latency["p95"],
            latency_p99=latency["p99"],
            latency_min=latency["min"],
            latency_max=latency["max"],
            input_tokens_mean=data["input_tokens"]["mean"],
            input_tokens_count=data["input_tokens"]["count"],
            output_tokens_mean=data["output_tokens"]["mean"],
            output_tokens_count=data["output_tokens"]["count"],
            cost_mean=cost["mean"],
            cost_total=cost["total"],
            cost_count=cost["count"],
            quality_mean=quality["mean"],
            quality_low=ci[0],
            quality_high=ci[1],
            quality_count=quality["count"],
        )


@dataclass(frozen=True)
class MetricsSummary:
    """A prompt's metrics in one environment over [since, until), per version and variant.

    The window is applied at minute resolution: `since` is rounded down and `until` up
    to whole minutes, and these rounded bounds are the ones reported. Without `until` the
    window ends with the minute under way.
    """

    prompt: str
    environment: str
    since: datetime
    until: datetime
    versions: list[VersionMetrics]

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "environment": self.environment,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "versions": [v.to_json() for v in self.versions],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricsSummary:
        return cls(
            prompt=data["prompt"],
            environment=data["environment"],
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            versions=[VersionMetrics.from_json(v) for v in data["versions"]],
        )


def parse_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """Parse a window bound: ISO 8601 (UTC unless it says otherwise), `now`, or a
    duration ago such as `90s`, `15m`, `24h`, `7d`, `2w`, `1d12h`."""
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    now = now or datetime.now(UTC)
    if value == "now":
        return now
    parts = _RELATIVE.findall(value)
    try:
        if parts and _RELATIVE.sub("", value).strip() == "":
            return now - timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in parts))
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError) as exc:  # OverflowError: further back than year 1
        raise UsageError(
            f"'{text}' is not a time: use ISO 8601 (2026-11-23T10:00Z) or a duration ago "
            "(15m, 24h, 7d)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None
