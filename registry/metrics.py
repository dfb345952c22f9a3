"""Metrics: the calls applications report, rolled up into mergeable aggregates.

An event is one LLM call made with a released prompt version: `event_id`, `prompt`,
`env`, `digest` (the version actually served), `latency_ms`, and optionally `ts`,
`input_tokens`, `output_tokens`, `cost_usd`, `quality` in [0, 1], `error`, `variant`,
`model` and free `attributes`.

Ingest (`MetricsService.ingest`) answers every event of a batch on its own:

- `accepted`: stored, and counted in its rollups;
- `duplicate`: its `event_id` is already stored (or repeats earlier in the batch). The
  first delivery wins, so retrying a batch never counts an event twice;
- `rejected`, with a reason: malformed, unknown prompt, environment or version, a `ts`
  more than five minutes ahead of the server's clock, a token that may not write to that
  environment. Nothing of a rejected event is stored; the rest of its batch is.

Decisions a user of the API sees:

- Required: `event_id`, `prompt`, `env`, `digest`, `latency_ms`. `ts` defaults to the time
  the server received the event; it is ISO 8601 (a time without offset is UTC) or Unix
  seconds. `error` defaults to false. Unknown fields are refused, so a typo never passes.
- The prompt must have a release in the environment, and the digest must be a version of
  the prompt that was released somewhere (so late events of a version that was rolled
  back still count).
- `variant` (stable or canary) is what the client says it served; without it the server
  derives it from the release it serves now: the canary's digest is `canary`, anything
  else `stable`.
- `cost_usd` as sent wins. Without it, cost is derived from the tokens and the price
  table (USD per million input and output tokens) for the event's `model`, else the model
  in the version's front matter. No price for that model: the cost stays unknown, and
  means are taken over the events whose cost is known (the same holds for tokens and
  quality).
- A score (`MetricsService.score`) attaches a quality to an event afterwards, once: a
  second score for an event that has a quality (sent with it or scored before) is a
  `duplicate` and changes nothing, exactly as a repeated event. Retried score batches are
  therefore harmless; correcting a score is not supported.

Rollups: every accepted event lands in two rows of `metric_rollups`, keyed by (prompt,
environment, digest, variant) and the minute, and the hour, it falls in. A row holds
sums (count, errors, latency, tokens, cost, quality and its squares) and a latency
histogram with logarithmic buckets of growth γ = 1.01/0.99: a bucket's representative
value is within 1 % of every value in it, so a quantile read from merged histograms is
within 1 % of the exact sample quantile (nearest rank), whatever the number of events.
A summary reads hour rows for the whole hours of its window and minute rows for the
edges: its cost depends on the window's length, never on the number of events.

Every mutation is one transaction. On PostgreSQL, concurrent batches touching one
rollup row serialise on that row's lock; rows are locked in key order, so they never
deadlock (and a deadlock or serialisation failure is retried).
"""

from __future__ import annotations

import json
import math
import operator
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, select, text, tuple_, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from promptctl.registry.database import Database
from promptctl.registry.errors import (
    EnvironmentNotFound,
    NotFound,
    RegistryError,
    ReleaseNotFound,
    UsageError,
)
from promptctl.registry.models import MetricEvent, MetricRollup, VersionSnapshot, as_utc, utcnow
from promptctl.registry.promptfile import parse_prompt_file
from promptctl.registry.releases import find_environment
from promptctl.registry.serving import ServedRelease, ServingCache
from promptctl.registry.promptversion import SHORT

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MINUTE, HOUR = 60, 3600
MAX_CLOCK_SKEW = 300  # seconds an event's ts may be ahead of the server's clock
OLDEST_TS = 946_684_800  # 2000-01-01: anything earlier is a client bug, not a call
EVENT_ID_MAX = 128
NAME_MAX = 255
ATTRIBUTES_MAX_BYTES = 8192
INT_MAX = 2**31 - 1
DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_MAX_BATCH = 1000

REQUIRED = ("event_id", "prompt", "env", "digest", "latency_ms")
OPTIONAL = (
    "ts",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "quality",
    "error",
    "attributes",
    "variant",
    "model",
)
FIELDS = frozenset(REQUIRED + OPTIONAL)
SCORE_FIELDS = frozenset(("event_id", "quality"))
VARIANTS = ("stable", "canary")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RETRIED_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_KEY_CHUNK = 200

_EVENTS: Table = MetricEvent.__table__
_ROLLUPS: Table = MetricRollup.__table__
_KEY_COLUMNS = ("prompt", "environment", "period_seconds", "period_start", "digest", "variant")

# (prompt, environment, period_seconds, period_start as Unix seconds, digest, variant)
RollupKey = tuple[str, str, int, int, str, str]


class Price(Protocol):
    """USD per million input and output tokens of one model."""

    input: float
    output: float


class BatchTooLarge(RegistryError):
    """A batch with more events than the server takes at once."""

    status = 413
    title = "Batch too large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the batch has {size} items, over the limit of {limit}: split it and send again"
        )


class InvalidBatch(RegistryError):
    """A batch that is not a list of objects under its key."""

    status = 422
    title = "Invalid metrics batch"


class NeverReleased(NotFound):
    """A prompt with no released version has no metrics."""

    title = "Prompt not released"

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        super().__init__(f"'{prompt}' has never been released, so it has no metrics")


# -- the latency histogram ------------------------------------------------------------


def bucket_of(latency_ms: float) -> int:
    """Return the histogram bucket of a latency > 0: values in (γ^(i-1), γ^i] share i."""
    return math.ceil(math.log(latency_ms) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The value that represents bucket `index`: within RELATIVE_ACCURACY of its members."""
    return 2 * GAMMA**index / (GAMMA + 1)


def histogram_json(buckets: Mapping[int, int], zero: int) -> dict[str, Any]:
    """Dense storage form: counts from the lowest to the highest bucket in use."""
    if not buckets:
        return {"zero": zero, "offset": 0, "counts": []}
    low, high = min(buckets), max(buckets)
    return {
        "zero": zero,
        "offset": low,
        "counts": [buckets.get(i, 0) for i in range(low, high + 1)],
    }


def quantile(
    buckets: Mapping[int, int], zero: int, q: float, low: float, high: float
) -> float | None:
    """Return the q-quantile (nearest rank) of a histogram, clamped to the observed range."""
    total = zero + sum(buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    if rank <= zero:
        return 0.0
    seen = zero
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return min(max(bucket_value(index), low), high)
    return high


# -- aggregates -------------------------------------------------------------------------


class Aggregate:
    """Mergeable sums over a set of events: exactly what one rollup row stores."""

    __slots__ = (
        "count",
        "errors",
        "latency_sum",
        "latency_min",
        "latency_max",
        "buckets",
        "zero",
        "stored",
        "input_count",
        "input_sum",
        "output_count",
        "output_sum",
        "cost_count",
        "cost_sum",
        "quality_count",
        "quality_sum",
        "quality_sumsq",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.latency_min = math.inf
        self.latency_max = -math.inf
        self.buckets: dict[int, int] = {}
        self.zero = 0
        # Stored histograms merged in but not yet added to `buckets`: (offset, counts).
        self.stored: list[tuple[int, list[int]]] = []
        self.input_count = 0
        self.input_sum = 0
        self.output_count = 0
        self.output_sum = 0
        self.cost_count = 0
        self.cost_sum = 0.0
        self.quality_count = 0
        self.quality_sum = 0.0
        self.quality_sumsq = 0.0

    def add_event(
        self,
        latency: float,
        error: bool,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
        quality: float | None,
    ) -> None:
        self.count += 1
        if error:
            self.errors += 1
        self.latency_sum += latency
        if latency < self.latency_min:
            self.latency_min = latency
        if latency > self.latency_max:
            self.latency_max = latency
        if latency > 0:
            index = math.ceil(math.log(latency) / _LOG_GAMMA)
            buckets = self.buckets
            buckets[index] = buckets.get(index, 0) + 1
        else:
            self.zero += 1
        if input_tokens is not None:
            self.input_count += 1
            self.input_sum += input_tokens
        if output_tokens is not None:
            self.output_count += 1
            self.output_sum += output_tokens
        if cost is not None:
            self.cost_count += 1
            self.cost_sum += cost
        if quality is not None:
            self.add_quality(quality)

    def add_quality(self, quality: float) -> None:
        self.quality_count += 1
        self.quality_sum += quality
        self.quality_sumsq += quality * quality

    def settle(self) -> None:
        """Add the stored histograms merged so far into `buckets`.

        A summary merges hundreds of stored histograms of a hundred buckets or more: they
        are summed as dense lists, slice by slice, rather than bucket by bucket.
        """
        if not self.stored:
            return
        low = min(offset for offset, _ in self.stored)
        high = max(offset + len(counts) for offset, counts in self.stored)
        total = [0] * (high - low)
        for offset, counts in self.stored:
            i = offset - low
            total[i : i + len(counts)] = map(operator.add, total[i : i + len(counts)], counts)
        buckets = self.buckets
        for i, n in enumerate(total, low):
            if n:
                buckets[i] = buckets.get(i, 0) + n
        self.stored = []

    def merge(self, other: Aggregate) -> None:
        other.settle()
        self.count += other.count
        self.errors += other.errors
        self.latency_sum += other.latency_sum
        self.latency_min = min(self.latency_min, other.latency_min)
        self.latency_max = max(self.latency_max, other.latency_max)
        buckets = self.buckets
        for index, n in other.buckets.items():
            buckets[index] = buckets.get(index, 0) + n
        self.zero += other.zero
        self.input_count += other.input_count
        self.input_sum += other.input_sum
        self.output_count += other.output_count
        self.output_sum += other.output_sum
        self.cost_count += other.cost_count
        self.cost_sum += other.cost_sum
        self.quality_count += other.quality_count
        self.quality_sum += other.quality_sum
        self.quality_sumsq += other.quality_sumsq

    def merge_row(self, row: Any) -> None:
        """Add a stored rollup row (anything with the columns as attributes)."""
        self.count += row.count
        self.errors += row.errors
        self.latency_sum += row.latency_sum
        if row.latency_min is not None and row.latency_min < self.latency_min:
            self.latency_min = row.latency_min
        if row.latency_max is not None and row.latency_max > self.latency_max:
            self.latency_max = row.latency_max
        histogram = row.latency_histogram
        if histogram:
            if histogram.get("counts"):
                self.stored.append((histogram["offset"], histogram["counts"]))
            self.zero += histogram.get("zero", 0)
        self.input_count += row.input_tokens_count
        self.input_sum += row.input_tokens_sum
        self.output_count += row.output_tokens_count
        self.output_sum += row.output_tokens_sum
        self.cost_count += row.cost_count
        self.cost_sum += row.cost_sum
        self.quality_count += row.quality_count
        self.quality_sum += row.quality_sum
        self.quality_sumsq += row.quality_sumsq

    def values(self) -> dict[str, Any]:
        """The rollup row's columns (without its key)."""
        self.settle()
        return {
            "count": self.count,
            "errors": self.errors,
            "latency_sum": self.latency_sum,
            "latency_min": self.latency_min if self.latency_min != math.inf else None,
            "latency_max": self.latency_max if self.latency_max != -math.inf else None,
            "latency_histogram": histogram_json(self.buckets, self.zero),
            "input_tokens_count": self.input_count,
            "input_tokens_sum": self.input_sum,
            "output_tokens_count": self.output_count,
            "output_tokens_sum": self.output_sum,
            "cost_count": self.cost_count,
            "cost_sum": self.cost_sum,
            "quality_count": self.quality_count,
            "quality_sum": self.quality_sum,
            "quality_sumsq": self.quality_sumsq,
        }

    def quantile(self, q: float) -> float | None:
        self.settle()
        return quantile(self.buckets, self.zero, q, self.latency_min, self.latency_max)


# -- summaries ----------------------------------------------------------------------------

# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_critical_95(df: int) -> float:
    """Return t(0.975, df): a table to 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci95(
    n: int, total: float, sumsq: float
) -> tuple[float | None, float | None, float | None]:
    """Return (mean, low, high) of a 95 % t interval for the mean, clamped to [0, 1].

    The bounds are None below two observations.
    """
    if n == 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max(0.0, (sumsq - n * mean * mean) / (n - 1))
    half = t_critical_95(n - 1) * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


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
    if parts and _RELATIVE.sub("", value).strip() == "":
        return now - timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in parts))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(
            f"'{text}' is not a time: use ISO 8601 (2026-11-23T10:00Z) or a duration ago "
            "(15m, 24h, 7d)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- ingest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """The answer to a batch: one result per item, in the batch's order, and the counts."""

    results: list[dict[str, Any]]
    accepted: int
    duplicate: int
    rejected: int

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "results": self.results,
        }


class _Event:
    """An event that passed the format checks."""

    __slots__ = (
        "event_id",
        "prompt",
        "env",
        "digest",
        "epoch",
        "ts",
        "latency",
        "input_tokens",
        "output_tokens",
        "cost",
        "quality",
        "error",
        "attributes",
        "variant",
        "model",
        "index",
    )

    def __init__(
        self,
        event_id: str,
        prompt: str,
        env: str,
        digest: str,
        epoch: float,
        ts: datetime,
        latency: float,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
        quality: float | None,
        error: bool,
        attributes: str | None,
        variant: str | None,
        model: str | None,
    ) -> None:
        self.event_id = event_id
        self.prompt = prompt
        self.env = env
        self.digest = digest
        self.epoch = epoch
        self.ts = ts
        self.latency = latency
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost = cost
        self.quality = quality
        self.error = error
        self.attributes = attributes  # as JSON text
        self.variant = variant
        self.model = model
        self.index = 0


def _reject(raw: Any, reason: str) -> dict[str, Any]:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return {
        "event_id": event_id if isinstance(event_id, str) else None,
        "status": REJECTED,
        "reason": reason,
    }


def _is_number(value: Any) -> bool:
    """A finite JSON number that fits a float (JSON integers may be arbitrarily long)."""
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (kind is int and -_BIG < value < _BIG)


_BIG = 2**63


def _is_text(value: Any, limit: int) -> bool:
    """A non-empty string up to `limit` characters of printable text: no NUL or other
    control characters, no lone surrogates, which neither database could store."""
    return type(value) is str and 0 < len(value) <= limit and value.isprintable()


def _token_count(raw: dict[str, Any], name: str) -> int | None | str:
    """A token count that is not a plain int: an integral float, or the reason it is bad."""
    value = raw.get(name)
    if type(value) is float and value.is_integer() and 0 <= value <= INT_MAX:
        return int(value)
    if type(value) is int and 0 <= value <= INT_MAX:
        return value
    return _token_reason(raw, name)


def _token_reason(raw: dict[str, Any], name: str) -> str:
    return f"{name} must be an integer from 0 to {INT_MAX}, got {_show(raw.get(name))}"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_ts(value: Any, now: float) -> tuple[float, datetime] | str:
    if value is None:
        return now, datetime.fromtimestamp(now, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return f"ts {_show(value)} is not an ISO 8601 time or Unix seconds"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        epoch = moment.timestamp()
    elif _is_number(value):
        epoch = float(value)
        if not OLDEST_TS <= epoch <= now + MAX_CLOCK_SKEW:
            moment = None  # reported below without building an out-of-range datetime
        else:
            moment = datetime.fromtimestamp(epoch, UTC)
    else:
        return f"ts must be an ISO 8601 time or Unix seconds, got {_show(value)}"
    if epoch > now + MAX_CLOCK_SKEW:
        ahead = timedelta(seconds=round(epoch - now))
        return (
            f"ts is {ahead} in the future (more than {MAX_CLOCK_SKEW // 60} minutes ahead of "
            "the server's clock)"
        )
    if epoch < OLDEST_TS:
        return "ts is before 2000-01-01"
    assert moment is not None
    return epoch, moment.astimezone(UTC)


def parse_event(raw: Any, now: float) -> _Event | str:
    """Check one event's format; return it, or the reason it is rejected.

    Written flat, without helpers for the common case: it runs for every event ingested.
    """
    if type(raw) is not dict:
        return "an event must be a JSON object"
    if not FIELDS.issuperset(raw):
        unknown = sorted(k for k in raw if k not in FIELDS)
        return "unknown field " + ", ".join(f"'{k}'" for k in unknown[:5])
    get = raw.get
    event_id, prompt, env = get("event_id"), get("prompt"), get("env")
    digest, latency = get("digest"), get("latency_ms")
    if event_id is None or prompt is None or env is None or digest is None or latency is None:
        missing = [k for k in REQUIRED if get(k) is None]
        return ("missing field " if len(missing) == 1 else "missing fields ") + ", ".join(
            f"'{k}'" for k in missing
        )
    if not _is_text(event_id, EVENT_ID_MAX):
        return f"event_id must be a non-empty string of at most {EVENT_ID_MAX} printable characters"
    if not _is_text(prompt, NAME_MAX):
        return f"prompt must be a non-empty string, got {_show(prompt)}"
    if not _is_text(env, NAME_MAX):
        return f"env must be a non-empty string, got {_show(env)}"
    if type(digest) is not str or not _HEX64.fullmatch(digest):
        if type(digest) is str and _HEX64.fullmatch(digest.lower()):
            digest = digest.lower()
        else:
            return (
                "digest must be the version's full SHA-256 (64 hex characters, as resolve "
                f"returns it), got {_show(digest)}"
            )
    if type(latency) is not float:
        if not _is_number(latency):
            return f"latency_ms must be a finite number, got {_show(latency)}"
        latency = float(latency)
    elif not math.isfinite(latency):
        return f"latency_ms must be a finite number, got {_show(latency)}"
    if latency < 0:
        return f"latency_ms must not be negative, got {_show(get('latency_ms'))}"
    ts = _parse_ts(get("ts"), now)
    if type(ts) is str:
        return ts
    epoch, moment = ts
    input_tokens = get("input_tokens")
    if input_tokens is not None and (
        type(input_tokens) is not int or not 0 <= input_tokens <= INT_MAX
    ):
        input_tokens = _token_count(raw, "input_tokens")
        if type(input_tokens) is str:
            return input_tokens
    output_tokens = get("output_tokens")
    if output_tokens is not None and (
        type(output_tokens) is not int or not 0 <= output_tokens <= INT_MAX
    ):
        output_tokens = _token_count(raw, "output_tokens")
        if type(output_tokens) is str:
            return output_tokens
    cost = get("cost_usd")
    if cost is not None:
        if not _is_number(cost) or cost < 0:
            return f"cost_usd must be a finite number >= 0, got {_show(cost)}"
        cost = float(cost)
    quality = get("quality")
    if quality is not None:
        if not _is_number(quality) or not 0 <= quality <= 1:
            return f"quality must be a number in [0, 1], got {_show(quality)}"
        quality = float(quality)
    error = get("error")
    if error is None:
        error = False
    elif type(error) is not bool:
        return f"error must be true or false, got {_show(error)}"
    attributes = get("attributes")
    if attributes is not None:
        if type(attributes) is not dict:
            return f"attributes must be a JSON object, got {_show(attributes)}"
        if not attributes:
            attributes = None
        else:
            # Serialised once: the size check and the stored text are the same string.
            attributes = _compact_json(attributes)
            try:
                size = len(attributes.encode())
            except UnicodeEncodeError:
                return "attributes contain text that is not valid Unicode (a lone surrogate)"
            if size > ATTRIBUTES_MAX_BYTES:
                return f"attributes are over {ATTRIBUTES_MAX_BYTES} bytes of JSON"
    variant = get("variant")
    if variant is not None and variant not in VARIANTS:
        return f"variant must be 'stable' or 'canary', got {_show(variant)}"
    model = get("model")
    if model is not None and not _is_text(model, NAME_MAX):
        return f"model must be a non-empty string, got {_show(model)}"
    return _Event(
        event_id,
        prompt,
        env,
        digest,
        epoch,
        moment,
        latency,
        input_tokens,
        output_tokens,
        cost,
        quality,
        error,
        attributes,
        variant,
        model,
    )


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _epoch(moment: datetime) -> int:
    return int(as_utc(moment).timestamp())


def _moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _rollup_key(row: Any) -> RollupKey:
    return (
        row.prompt,
        row.environment,
        row.period_seconds,
        _epoch(row.period_start),
        row.digest,
        row.variant,
    )


def _aggregate(events: Iterable[_Event]) -> dict[RollupKey, Aggregate]:
    """Sum events per minute and per hour rollup key."""
    minutes: dict[tuple[str, str, str, str, int], Aggregate] = {}
    for e in events:
        key = (e.prompt, e.env, e.digest, e.variant, int(e.epoch // MINUTE) * MINUTE)
        agg = minutes.get(key)
        if agg is None:
            agg = minutes[key] = Aggregate()
        agg.add_event(e.latency, e.error, e.input_tokens, e.output_tokens, e.cost, e.quality)
    return _with_hours(minutes)


def _with_hours(minutes: Mapping[tuple[str, str, str, str, int], Aggregate]) -> dict:
    result: dict[RollupKey, Aggregate] = {}
    for (prompt, env, digest, variant, minute), agg in minutes.items():
        result[(prompt, env, MINUTE, minute, digest, variant)] = agg
        hour_key = (prompt, env, HOUR, minute // HOUR * HOUR, digest, variant)
        hour = result.get(hour_key)
        if hour is None:
            hour = result[hour_key] = Aggregate()
        hour.merge(agg)
    return result


# The event insert is the hot path of ingest, so it skips SQLAlchemy's per-row parameter
# processing (about 10 us an event, more than the database's own work): one statement
# whatever the batch size, with the values converted here as the column types would.
_EVENT_COLUMNS = (
    "event_id",
    "prompt",
    "environment",
    "digest",
    "variant",
    "ts",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "model",
    "quality",
    "error",
    "attributes",
    "received_at",
)
_SQLITE_INSERT = (
    f"INSERT INTO {_EVENTS.name} ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
)
_SQLITE_CHUNK = 500  # ids per `IN (...)`, well below SQLite's limit on parameters


def _sqlite_time(moment: datetime) -> str:
    """SQLAlchemy's storage format for DateTime on SQLite (UTC, as every time here)."""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_events_sqlite(session: Session, events: list[_Event], received: datetime) -> set[str]:
    """Insert with one executemany; return the ids stored.

    Repeated ids are rare (retries), so the insert is tried first inside a savepoint:
    when every row went in, that is the answer. Otherwise the savepoint is rolled back
    and the ids already stored are looked up first; the transaction holds SQLite's write
    lock (BEGIN IMMEDIATE), so they cannot change before the insert.
    """
    connection = session.connection()
    at = _sqlite_time(received)
    rows = [
        (
            e.event_id,
            e.prompt,
            e.env,
            e.digest,
            e.variant,
            _sqlite_time(e.ts),
            e.latency,
            e.input_tokens,
            e.output_tokens,
            e.cost,
            e.model,
            e.quality,
            e.error,
            e.attributes,
            at,
        )
        for e in events
    ]
    connection.exec_driver_sql("SAVEPOINT metric_events_insert")
    inserted = connection.exec_driver_sql(_SQLITE_INSERT, rows).rowcount
    if inserted == len(rows):
        connection.exec_driver_sql("RELEASE metric_events_insert")
        return {row[0] for row in rows}
    connection.exec_driver_sql("ROLLBACK TO metric_events_insert")
    connection.exec_driver_sql("RELEASE metric_events_insert")
    existing: set[str] = set()
    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = [row[0] for row in rows[start : start + _SQLITE_CHUNK]]
        marks = ", ".join("?" for _ in chunk)
        found = connection.exec_driver_sql(
            f"SELECT event_id FROM {_EVENTS.name} WHERE event_id IN ({marks})", tuple(chunk)
        )
        existing.update(row[0] for row in found)
    rows = [row for row in rows if row[0] not in existing]
    if rows:
        connection.exec_driver_sql(_SQLITE_INSERT, rows)
    return {row[0] for row in rows}


def _postgresql_insert() -> Any:
    """INSERT ... SELECT FROM json_to_recordset(:rows) ON CONFLICT DO NOTHING RETURNING:
    one statement and one text parameter whatever the batch size. PostgreSQL parses the
    JSON far faster than the driver adapts thousands of parameters (or arrays of them).
    `attributes` travels as the text already serialised at validation, and is cast back."""
    dialect = postgresql.dialect()
    types, values = [], []
    for name in _EVENT_COLUMNS:
        if name == "attributes":
            types.append(f"{name} text")
            values.append(f"{name}::json")
        else:
            types.append(f"{name} {_EVENTS.c[name].type.compile(dialect=dialect)}")
            values.append(name)
    return text(
        f"INSERT INTO {_EVENTS.name} ({', '.join(_EVENT_COLUMNS)}) "
        f"SELECT {', '.join(values)} FROM json_to_recordset(:rows) AS t({', '.join(types)}) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


_POSTGRESQL_INSERT = _postgresql_insert()


def _insert_events_postgresql(
    session: Session, events: list[_Event], received: datetime
) -> set[str]:
    at = received.isoformat()
    rows = [
        {
            "event_id": e.event_id,
            "prompt": e.prompt,
            "environment": e.env,
            "digest": e.digest,
            "variant": e.variant,
            "ts": e.ts.isoformat(),
            "latency_ms": e.latency,
            "input_tokens": e.input_tokens,
            "output_tokens": e.output_tokens,
            "cost_usd": e.cost,
            "model": e.model,
            "quality": e.quality,
            "error": e.error,
            "attributes": e.attributes,
            "received_at": at,
        }
        for e in events
    ]
    return set(session.execute(_POSTGRESQL_INSERT, {"rows": json.dumps(rows)}).scalars())


def _dialect_insert(session: Session) -> Callable[..., Any]:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _locked_rollups(session: Session, keys: Sequence[RollupKey]) -> dict[RollupKey, Any]:
    """Read rollup rows by key, locking them (PostgreSQL) in key order."""
    found: dict[RollupKey, Any] = {}
    columns = [_ROLLUPS.c[name] for name in _KEY_COLUMNS]
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        wanted = [(p, e, s, _moment(t), d, v) for p, e, s, t, d, v in chunk]
        query = (
            select(_ROLLUPS)
            .where(tuple_(*columns).in_(wanted))
            .order_by(*columns)
            .with_for_update()
        )
        for row in session.execute(query):
            found[_rollup_key(row)] = row
    return found


def merge_rollups(session: Session, aggregates: Mapping[RollupKey, Aggregate]) -> None:
    """Add aggregates into their rollup rows (read, merge, write under the row locks)."""
    if not aggregates:
        return
    now = utcnow()
    keys = sorted(aggregates)
    rows = _locked_rollups(session, keys)
    missing = [k for k in keys if k not in rows]
    if missing:
        insert = _dialect_insert(session)
        statement = (
            insert(_ROLLUPS)
            .on_conflict_do_nothing(index_elements=list(_KEY_COLUMNS))
            .returning(*(_ROLLUPS.c[name] for name in _KEY_COLUMNS))
        )
        values = [
            {
                "prompt": p,
                "environment": e,
                "period_seconds": s,
                "period_start": _moment(t),
                "digest": d,
                "variant": v,
                "updated_at": now,
                **aggregates[(p, e, s, t, d, v)].values(),
            }
            for p, e, s, t, d, v in missing
        ]
        created = {_rollup_key(row) for row in session.execute(statement, values)}
        raced = [k for k in missing if k not in created]
        if raced:  # another transaction created them first: merge into its rows
            rows.update(_locked_rollups(session, raced))
    updates = []
    for key, row in rows.items():
        merged = Aggregate()
        merged.merge_row(row)
        merged.merge(aggregates[key])
        updates.append({"rollup_id": row.id, "updated_at": now, **merged.values()})
    if updates:
        session.execute(
            update(_ROLLUPS).where(_ROLLUPS.c.id == bindparam("rollup_id")),
            updates,
        )


def _retrying(work: Callable[[], Any], attempts: int = 3) -> Any:
    """Run a transaction, again when PostgreSQL reports a deadlock or serialisation failure."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in _RETRIED_SQLSTATES or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


class MetricsService:
    """Ingest, scores and summaries of metric events in one database.

    Ingest needs the serving cache (to know releases and variants without a query); the
    summaries do not, so the CLI builds this service without one.
    """

    def __init__(
        self,
        database: Database,
        *,
        cache: ServingCache | None = None,
        prices: Mapping[str, Price] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = database
        self.cache = cache
        self.prices = prices or {}
        self.max_batch = max_batch
        self.clock = clock
        # (prompt, digest) -> the model in its front matter, for every released version
        # seen so far; a miss is looked up in the snapshots once per batch.
        self._versions: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()
        # SQLite has one writer at a time, and a writer that finds the database locked
        # sleeps for up to tens of milliseconds before it retries: this process's
        # writers queue here instead, and take the lock the moment it is free.
        self._writer: AbstractContextManager[Any] = (
            threading.Lock() if database.dialect == "sqlite" else nullcontext()
        )

    # -- ingest ------------------------------------------------------------------------

    def ingest(
        self,
        events: Sequence[Any],
        *,
        authorize: Callable[[str], str | None] | None = None,
    ) -> BatchResult:
        """Validate and store a batch of events; answer each one.

        `authorize(env)` returns why the caller may not write to that environment, or
        None when it may.
        """
        if len(events) > self.max_batch:
            raise BatchTooLarge(len(events), self.max_batch)
        if self.cache is None:
            raise RegistryError("ingest needs the serving cache")
        now = self.clock()
        results: list[dict[str, Any] | None] = [None] * len(events)
        parsed: list[_Event] = []
        for index, raw in enumerate(events):
            event = parse_event(raw, now)
            if isinstance(event, str):
                results[index] = _reject(raw, event)
            else:
                event.index = index
                parsed.append(event)
        releases = self._releases({(e.prompt, e.env) for e in parsed})
        self._learn_versions(
            {(e.prompt, e.digest) for e in parsed if isinstance(releases[(e.prompt, e.env)], tuple)}
        )
        allowed: dict[str, str | None] = {}
        seen: set[str] = set()
        candidates: list[_Event] = []
        for e in parsed:
            reason = self._place(e, releases[(e.prompt, e.env)])
            if reason is None and authorize is not None:
                if e.env not in allowed:
                    allowed[e.env] = authorize(e.env)
                reason = allowed[e.env]
            if reason is not None:
                results[e.index] = {"event_id": e.event_id, "status": REJECTED, "reason": reason}
            elif e.event_id in seen:
                results[e.index] = {
                    "event_id": e.event_id,
                    "status": DUPLICATE,
                    "reason": "repeated in this batch",
                }
            else:
                seen.add(e.event_id)
                candidates.append(e)
        stored = self._store(candidates, datetime.fromtimestamp(now, UTC)) if candidates else set()
        for e in candidates:
            if e.event_id in stored:
                results[e.index] = {"event_id": e.event_id, "status": ACCEPTED}
            else:
                results[e.index] = {
                    "event_id": e.event_id,
                    "status": DUPLICATE,
                    "reason": "already stored",
                }
        return _batch_result(results)

    def _releases(
        self, pairs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str | None, dict[str, str | None]] | str]:
        """Per (prompt, env): (canary digest, {served digest: model}), or why not."""
        assert self.cache is not None
        found: dict[tuple[str, str], Any] = {}
        refreshed = False
        for prompt, env in sorted(pairs):
            try:
                served = self.cache.served(prompt, env)
            except (EnvironmentNotFound, ReleaseNotFound) as exc:
                if refreshed:
                    found[(prompt, env)] = str(exc)
                    continue
                # Maybe another replica just released it: look once per batch.
                self.cache.refresh_if_changed()
                refreshed = True
                try:
                    served = self.cache.served(prompt, env)
                except (EnvironmentNotFound, ReleaseNotFound) as again:
                    found[(prompt, env)] = str(again)
                    continue
            found[(prompt, env)] = _served_versions(served)
        return found

    def _learn_versions(self, pairs: set[tuple[str, str]]) -> None:
        """Look up, in one query, the released versions not seen yet."""
        missing = {pair for pair in pairs if pair not in self._versions}
        if not missing:
            return
        with self.db.session() as session:
            rows = session.execute(
                select(
                    VersionSnapshot.prompt,
                    VersionSnapshot.digest,
                    VersionSnapshot.relpath,
                    VersionSnapshot.files,
                ).where(
                    VersionSnapshot.prompt.in_({p for p, _ in missing}),
                    VersionSnapshot.digest.in_({d for _, d in missing}),
                )
            ).all()
        with self._lock:
            for prompt, digest, relpath, files in rows:
                self._versions[(prompt, digest)] = _model_of(relpath, files)

    def _place(self, e: _Event, release: Any) -> str | None:
        """Check an event against what is released; set its variant, model and cost."""
        if isinstance(release, str):
            return release
        canary, served = release
        if e.digest in served:
            version_model = served[e.digest]
        elif (e.prompt, e.digest) in self._versions:
            version_model = self._versions[(e.prompt, e.digest)]
        else:
            return (
                f"unknown version {e.digest[:SHORT]} of '{e.prompt}': no release of it was "
                "ever made"
            )
        if e.variant is None:
            e.variant = "canary" if e.digest == canary else "stable"
        if e.model is None:
            e.model = version_model
        priced = e.cost is None and e.model in self.prices
        if priced and (e.input_tokens is not None or e.output_tokens is not None):
            price = self.prices[e.model]
            e.cost = (
                (e.input_tokens or 0) * price.input + (e.output_tokens or 0) * price.output
            ) / 1e6
        return None

    def _store(self, events: list[_Event], received: datetime) -> set[str]:
        """Insert events (first delivery wins) and add the new ones to their rollups."""
        # Sorted by id, so concurrent batches sharing ids take their locks in one order.
        events.sort(key=lambda e: e.event_id)
        # Aggregated before the transaction, for the usual case of no duplicates.
        aggregates = _aggregate(events)

        def work() -> set[str]:
            with self._writer, self.db.session() as session:
                if session.get_bind().dialect.name == "postgresql":
                    stored = _insert_events_postgresql(session, events, received)
                else:
                    stored = _insert_events_sqlite(session, events, received)
                fresh = aggregates
                if len(stored) != len(events):
                    fresh = _aggregate(e for e in events if e.event_id in stored)
                merge_rollups(session, fresh)
                return stored

        return _retrying(work)

    # -- scores ------------------------------------------------------------------------

    def score(
        self,
        scores: Sequence[Any],
        *,
        authorize: Callable[[str], str | None] | None = None,
    ) -> BatchResult:
        """Attach quality scores to stored events, once each; answer each score."""
        if len(scores) > self.max_batch:
            raise BatchTooLarge(len(scores), self.max_batch)
        results: list[dict[str, Any] | None] = [None] * len(scores)
        wanted: dict[str, tuple[int, float]] = {}
        for index, raw in enumerate(scores):
            reason = _check_score(raw)
            if reason is not None:
                results[index] = _reject(raw, reason)
            elif raw["event_id"] in wanted:
                results[index] = {
                    "event_id": raw["event_id"],
                    "status": DUPLICATE,
                    "reason": "repeated in this batch",
                }
            else:
                wanted[raw["event_id"]] = (index, float(raw["quality"]))
        if wanted:

            def work() -> list[tuple[int, dict[str, Any]]]:
                with self._writer:
                    return self._apply_scores(wanted, authorize)

            for index, result in _retrying(work):
                results[index] = result
        return _batch_result(results)

    def _apply_scores(
        self,
        wanted: Mapping[str, tuple[int, float]],
        authorize: Callable[[str], str | None] | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        answers: list[tuple[int, dict[str, Any]]] = []
        allowed: dict[str, str | None] = {}
        now = utcnow()
        with self.db.session() as session:
            ids = sorted(wanted)
            found: dict[str, Any] = {}
            for start in range(0, len(ids), 500):
                query = (
                    select(
                        _EVENTS.c.event_id,
                        _EVENTS.c.prompt,
                        _EVENTS.c.environment,
                        _EVENTS.c.digest,
                        _EVENTS.c.variant,
                        _EVENTS.c.ts,
                        _EVENTS.c.quality,
                    )
                    .where(_EVENTS.c.event_id.in_(ids[start : start + 500]))
                    .order_by(_EVENTS.c.event_id)
                    .with_for_update()
                )
                found.update((row.event_id, row) for row in session.execute(query))
            minutes: dict[tuple[str, str, str, str, int], Aggregate] = {}
            updates = []
            for event_id in ids:
                index, quality = wanted[event_id]
                row = found.get(event_id)
                reason = None
                if row is None:
                    reason = "unknown event_id: no event with this id is stored"
                elif authorize is not None:
                    if row.environment not in allowed:
                        allowed[row.environment] = authorize(row.environment)
                    reason = allowed[row.environment]
                if reason is not None:
                    answers.append(
                        (index, {"event_id": event_id, "status": REJECTED, "reason": reason})
                    )
                    continue
                if row.quality is not None:
                    answers.append(
                        (
                            index,
                            {
                                "event_id": event_id,
                                "status": DUPLICATE,
                                "reason": "the event already has a quality score",
                            },
                        )
                    )
                    continue
                minute = _epoch(row.ts) // MINUTE * MINUTE
                key = (row.prompt, row.environment, row.digest, row.variant, minute)
                agg = minutes.get(key)
                if agg is None:
                    agg = minutes[key] = Aggregate()
                agg.add_quality(quality)
                updates.append({"score_id": event_id, "quality": quality, "scored_at": now})
                answers.append((index, {"event_id": event_id, "status": ACCEPTED}))
            if updates:
                session.execute(
                    update(_EVENTS).where(_EVENTS.c.event_id == bindparam("score_id")),
                    updates,
                )
                merge_rollups(session, _with_hours(minutes))
        return answers

    # -- summaries ---------------------------------------------------------------------

    def summary(
        self,
        prompt: str,
        environment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> MetricsSummary:
        """Return count, error rate, latency quantiles, cost, tokens and quality per
        version and variant over [since, until) (default: the last 7 days)."""
        end_at = until or datetime.fromtimestamp(self.clock(), UTC)
        start_at = since or end_at - DEFAULT_WINDOW
        start = math.floor(as_utc(start_at).timestamp() / MINUTE) * MINUTE
        if until is None:  # up to now: the minute under way is included
            end = math.floor(as_utc(end_at).timestamp() / MINUTE) * MINUTE + MINUTE
        else:
            end = math.ceil(as_utc(end_at).timestamp() / MINUTE) * MINUTE
        if start >= end:
            raise UsageError("the window is empty: 'since' must be before 'until'")
        first_hour = math.ceil(start / HOUR) * HOUR
        last_hour = end // HOUR * HOUR
        # Whole hours from hour rows, the edges from minute rows: each part one range scan
        # of the key's index (prompt, environment, period_seconds, period_start, ...).
        if first_hour < last_hour:
            parts = [(HOUR, first_hour, last_hour), (MINUTE, start, first_hour)]
            parts.append((MINUTE, last_hour, end))
        else:
            parts = [(MINUTE, start, end)]
        r = _ROLLUPS.c
        columns = (
            r.digest,
            r.variant,
            r.count,
            r.errors,
            r.latency_sum,
            r.latency_min,
            r.latency_max,
            r.latency_histogram,
            r.input_tokens_count,
            r.input_tokens_sum,
            r.output_tokens_count,
            r.output_tokens_sum,
            r.cost_count,
            r.cost_sum,
            r.quality_count,
            r.quality_sum,
            r.quality_sumsq,
        )
        query = union_all(
            *(
                select(*columns).where(
                    r.prompt == prompt,
                    r.environment == environment,
                    r.period_seconds == seconds,
                    r.period_start >= _moment(low),
                    r.period_start < _moment(high),
                )
                for seconds, low, high in parts
                if low < high
            )
        )
        with self.db.session() as session:
            find_environment(session, environment)
            groups: dict[tuple[str, str], Aggregate] = {}
            for row in session.execute(query):
                agg = groups.get((row.digest, row.variant))
                if agg is None:
                    agg = groups[(row.digest, row.variant)] = Aggregate()
                agg.merge_row(row)
            numbers = dict(
                session.execute(
                    select(VersionSnapshot.digest, VersionSnapshot.number).where(
                        VersionSnapshot.prompt == prompt
                    )
                ).all()
            )
            if not groups and not numbers:
                raise NeverReleased(prompt)
        versions = [
            VersionMetrics.from_aggregate(digest, numbers.get(digest), variant, agg)
            for (digest, variant), agg in groups.items()
            if agg.count
        ]
        versions.sort(key=lambda v: (-(v.number or 0), v.digest, VARIANTS.index(v.variant)))
        return MetricsSummary(prompt, environment, _moment(start), _moment(end), versions)


def _served_versions(served: ServedRelease) -> tuple[str | None, dict[str, str | None]]:
    versions = {served.stable.version.digest: served.stable.version.prompt.model}
    canary = None
    if served.canary is not None:
        canary = served.canary.version.digest
        versions[canary] = served.canary.version.prompt.model
    return canary, versions


def _model_of(relpath: str, files: Mapping[str, str]) -> str | None:
    try:
        model = parse_prompt_file(relpath, files[relpath]).model
    except (RegistryError, KeyError):
        return None  # a snapshot promoted with --force may not parse; it has no price
    return model if isinstance(model, str) else None


def _check_score(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return "a score must be a JSON object"
    if not SCORE_FIELDS.issuperset(raw):
        unknown = sorted(k for k in raw if k not in SCORE_FIELDS)
        return "unknown field " + ", ".join(f"'{k}'" for k in unknown[:5])
    event_id, quality = raw.get("event_id"), raw.get("quality")
    if event_id is None or quality is None:
        missing = [k for k in ("event_id", "quality") if raw.get(k) is None]
        return "missing field " + ", ".join(f"'{k}'" for k in missing)
    if not _is_text(event_id, EVENT_ID_MAX):
        return f"event_id must be a non-empty string of at most {EVENT_ID_MAX} printable characters"
    if not _is_number(quality) or not 0 <= quality <= 1:
        return f"quality must be a number in [0, 1], got {_show(quality)}"
    return None


def _batch_result(results: list[dict[str, Any] | None]) -> BatchResult:
    counts = {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}
    for result in results:
        assert result is not None
        counts[result["status"]] += 1
    return BatchResult(results, counts[ACCEPTED], counts[DUPLICATE], counts[REJECTED])


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


def batch_items(body: Any, key: str) -> list[Any]:
    """Return the list of a batch body: `{key: [...]}` or a bare JSON list."""
    items = body.get(key) if isinstance(body, dict) else body
    if isinstance(body, dict) and not set(body) <= {key}:
        unknown = ", ".join(f"'{k}'" for k in sorted(set(body) - {key}))
        raise InvalidBatch(f'unknown field {unknown}: the body is {{"{key}": [...]}}')
    if not isinstance(items, list):
        raise InvalidBatch(f'the body must be {{"{key}": [...]}} (or a JSON list of {key})')
    return items
