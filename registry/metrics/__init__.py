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

Modules: `histogram` (latency buckets and quantiles) · `aggregate` (the sums of a rollup
row) · `statistics` (the t interval for quality) · `summary` (the figures a summary
reports, window bounds) · `events` (event and score validation, batch answers, errors) ·
`storage` (rollup keys, SQL per dialect, merge, retry) · `service` (MetricsService).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.events import (
    BatchResult,
    batch_items,
    parse_event,
)
from promptctl.registry.metrics.histogram import GAMMA, RELATIVE_ACCURACY, bucket_of, bucket_value
from promptctl.registry.metrics.statistics import mean_ci95, t_critical_95
from promptctl.registry.metrics.summary import MetricsSummary, VersionMetrics, parse_time

if TYPE_CHECKING:
    from promptctl.registry.metrics.service import MetricsService

__all__ = [
    "GAMMA",
    "RELATIVE_ACCURACY",
    "Aggregate",
    "BatchResult",
    "MetricsService",
    "MetricsSummary",
    "VersionMetrics",
    "batch_items",
    "bucket_of",
    "bucket_value",
    "mean_ci95",
    "parse_event",
    "parse_time",
    "t_critical_95",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the service, and SQLAlchemy with it, loads on first use, so the modules
    # without SQL (histogram, aggregate, statistics, summary, events) stay cheap to import.
    if name == "MetricsService":
        return import_module("promptctl.registry.metrics.service").MetricsService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
