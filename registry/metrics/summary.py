"""What a summary reports: `VersionMetrics` per version and variant, `MetricsSummary` over
a window, both with their JSON forms (the CLI rebuilds them from a server's answer), and
`parse_time` for the window's bounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from promptctl.registry.errors import UsageError
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.events import OTHER
from promptctl.registry.metrics.statistics import mean_ci95
from promptctl.registry.prompts.promptversion import SHORT

DEFAULT_WINDOW = timedelta(days=7)
_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class FlaggedTrace:
    """A recent call that failed, broke its output contract or was truncated, with its
    trace id (and a link to it when PROMPTCTL_TRACE_URL_TEMPLATE is set)."""

    trace_id: str
    at: datetime
    reason: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "created_at": self.at.astimezone(UTC).isoformat(),  # when the call was made
            "reason": self.reason,
            "url": self.url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlaggedTrace:
        return cls(
            data["trace_id"],
            datetime.fromisoformat(data.get("created_at") or data["at"]),  # "at": older servers
            data["reason"],
            data.get("url"),
        )


@dataclass(frozen=True)
class BudgetCheck:
    """A version's declared budget beside its mean figures: what it exceeds."""

    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    exceeded: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "exceeded": list(self.exceeded),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetCheck:
        return cls(
            data.get("input_tokens"),
            data.get("output_tokens"),
            data.get("cost_usd"),
            tuple(data.get("exceeded") or ()),
        )


@dataclass(frozen=True)
class VersionMetrics:
    """The figures of one version and variant in a summary's window.

    Latency is that of successful calls only (`latency_count` of them): a failed call's
    latency, often a fast refusal, would make a failing version look fast. Failed calls
    are counted apart (`errors`, `error_types`). Rollup rows stored before successful
    calls' latency was kept apart (migration 0006) and holding errors are left out of
    the latency figures, so `latency_count` can be below `count - errors`.
    """

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
    outputs_checked: int = 0
    outputs_invalid: int = 0
    finishes: int = 0
    truncated: int = 0
    # (error type, calls), most frequent first; at most 20 types and `other`.
    error_types: tuple[tuple[str, int], ...] = ()
    failing_traces: tuple[FlaggedTrace, ...] = ()
    budget: BudgetCheck | None = field(default=None)
    latency_count: int | None = None  # successful calls measured; None from older servers

    @property
    def label(self) -> str:
        return f"v{self.number}" if self.number else self.digest[:SHORT]

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @property
    def invalid_output_rate(self) -> float | None:
        """Invalid outputs among the calls whose output was checked."""
        return self.outputs_invalid / self.outputs_checked if self.outputs_checked else None

    @property
    def truncation_rate(self) -> float | None:
        """Truncated calls (finish reason length or max_tokens) among those reporting one."""
        return self.truncated / self.finishes if self.finishes else None

    def top_error_types(self, n: int = 3) -> tuple[tuple[str, int], ...]:
        return self.error_types[:n]

    @classmethod
    def from_aggregate(
        cls, digest: str, number: int | None, variant: str, agg: Aggregate
    ) -> VersionMetrics:
        quality, low, high = mean_ci95(agg.quality_count, agg.quality_sum, agg.quality_sumsq)
        ok = agg.ok_count
        return cls(
            digest=digest,
            number=number,
            variant=variant,
            count=agg.count,
            errors=agg.errors,
            latency_mean=agg.ok_sum / ok if ok else None,
            latency_p50=agg.ok_quantile(0.50),
            latency_p95=agg.ok_quantile(0.95),
            latency_p99=agg.ok_quantile(0.99),
            latency_min=agg.ok_min if ok else None,
            latency_max=agg.ok_max if ok else None,
            latency_count=ok,
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
            outputs_checked=agg.outputs_checked,
            outputs_invalid=agg.outputs_invalid,
            finishes=agg.finishes,
            truncated=agg.truncated,
            error_types=_ranked(agg.error_types),
            failing_traces=tuple(
                FlaggedTrace(trace_id, datetime.fromtimestamp(at, UTC), why)
                for at, trace_id, why in agg.traces
            ),
        )

    def with_links(self, template: str) -> VersionMetrics:
        """Give each flagged trace its link: `template` with `{trace_id}` filled in."""
        return replace(
            self,
            failing_traces=tuple(
                replace(t, url=template.replace("{trace_id}", t.trace_id))
                for t in self.failing_traces
            ),
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
                "count": self.latency_count,
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
            "outputs": {
                "checked": self.outputs_checked,
                "invalid": self.outputs_invalid,
                "invalid_rate": self.invalid_output_rate,
            },
            "finish_reasons": {
                "reported": self.finishes,
                "truncated": self.truncated,
                "truncation_rate": self.truncation_rate,
            },
            "error_types": [{"type": t, "count": n} for t, n in self.error_types],
            "failing_traces": [t.to_json() for t in self.failing_traces],
            "budget": self.budget.to_json() if self.budget is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionMetrics:
        latency, cost, quality = data["latency_ms"], data["cost_usd"], data["quality"]
        # A server older than these figures does not send them.
        outputs = data.get("outputs") or {}
        finishes = data.get("finish_reasons") or {}
        budget = data.get("budget")
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
            latency_count=latency.get("count"),
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
            outputs_checked=outputs.get("checked", 0),
            outputs_invalid=outputs.get("invalid", 0),
            finishes=finishes.get("reported", 0),
            truncated=finishes.get("truncated", 0),
            error_types=tuple((e["type"], e["count"]) for e in data.get("error_types") or ()),
            failing_traces=tuple(
                FlaggedTrace.from_json(t) for t in data.get("failing_traces") or ()
            ),
            budget=BudgetCheck.from_json(budget) if budget else None,
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
    # Where the cost of events sent without one came from: {"source": ..., "as_of": ...}.
    prices: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "environment": self.environment,
            "since": self.since.astimezone(UTC).isoformat(),
            "until": self.until.astimezone(UTC).isoformat(),
            "versions": [v.to_json() for v in self.versions],
            "prices": dict(self.prices) if self.prices is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricsSummary:
        return cls(
            prompt=data["prompt"],
            environment=data["environment"],
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            versions=[VersionMetrics.from_json(v) for v in data["versions"]],
            prices=data.get("prices"),
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


def check_budget(v: VersionMetrics, budget: Any) -> BudgetCheck:
    """Compare a version's mean tokens and cost per call with its declared budget (any
    object with `input_tokens`, `output_tokens` and `cost_usd`, None meaning no limit)."""
    exceeded = []
    for name, mean in (
        ("input_tokens", v.input_tokens_mean),
        ("output_tokens", v.output_tokens_mean),
        ("cost_usd", v.cost_mean),
    ):
        limit = getattr(budget, name, None)
        if limit is not None and mean is not None and mean > limit:
            exceeded.append(name)
    return BudgetCheck(
        getattr(budget, "input_tokens", None),
        getattr(budget, "output_tokens", None),
        getattr(budget, "cost_usd", None),
        tuple(exceeded),
    )


def _ranked(types: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Error types by calls, most first (ties by name), `other` last."""
    named = sorted(((t, n) for t, n in types.items() if t != OTHER), key=lambda x: (-x[1], x[0]))
    if types.get(OTHER):
        named.append((OTHER, types[OTHER]))
    return tuple(named)


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None
