"""Prometheus series of the LLM calls applications report, per prompt version.

Fed by ingest in this process (every accepted event, after its transaction commits) and
rendered from memory, so a scrape never queries the database. Counters are this
replica's own, as Prometheus expects of counters: sum them across replicas with `sum by`.

Labels: `prompt`, `environment`, `version` (`v3`, or the short digest of a version
with no number), `digest` (12 hex characters) and `variant`. Series:

    promptctl_llm_calls_total              calls
    promptctl_llm_errors_total             failed calls, by `error_type` (`unspecified`
                                           when the client gave none)
    promptctl_llm_latency_seconds          histogram of the calls' latency
    promptctl_llm_input_tokens_total       tokens sent, as reported
    promptctl_llm_output_tokens_total      tokens answered, as reported
    promptctl_llm_cost_usd_total           cost, as sent or priced from the tokens
    promptctl_llm_outputs_checked_total    outputs checked against the version's contract
    promptctl_llm_invalid_outputs_total    ... and found invalid
    promptctl_llm_finish_reasons_total     calls that reported a finish reason
    promptctl_llm_truncations_total        ... that was `length` or `max_tokens`

Cardinality is bounded: a version has series only while it serves traffic (stable or
canary of a release) or for an hour after its last event; error types are capped at
ERROR_TYPES_MAX per version (the rest count as `other`); and at most MAX_VERSIONS
(prompt, environment, version, variant) keys exist at once (events of further keys are
counted in promptctl_llm_calls_unrecorded_total instead).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from promptctl.registry.metrics.events import ERROR_TYPES_MAX, OTHER, TRUNCATED

if TYPE_CHECKING:
    from promptctl.registry.metrics.events import Event
    from promptctl.registry.metrics.service import MetricsService
    from promptctl.registry.releases.serving import ServingCache

SEEN_FOR = 3600.0  # seconds a version keeps its series after its last event
MAX_VERSIONS = 2000
SHORT = 12
# Seconds: LLM calls take from a tenth of a second to minutes.
LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
UNSPECIFIED = "unspecified"

# (prompt, environment, digest, variant)
Key = tuple[str, str, str, str]
_COUNTERS = (
    ("calls", "promptctl_llm_calls_total", "LLM calls reported."),
    ("input_tokens", "promptctl_llm_input_tokens_total", "Input tokens of the calls."),
    ("output_tokens", "promptctl_llm_output_tokens_total", "Output tokens of the calls."),
    ("cost", "promptctl_llm_cost_usd_total", "Cost of the calls in USD."),
    (
        "outputs_checked",
        "promptctl_llm_outputs_checked_total",
        "Calls whose output was checked against the version's contract.",
    ),
    ("outputs_invalid", "promptctl_llm_invalid_outputs_total", "Outputs found invalid."),
    (
        "finishes",
        "promptctl_llm_finish_reasons_total",
        "Calls that reported a finish reason.",
    ),
    (
        "truncated",
        "promptctl_llm_truncations_total",
        "Calls truncated (finish reason length or max_tokens).",
    ),
)


class _Series:
    """The counters of one (prompt, environment, digest, variant)."""

    __slots__ = (
        "calls",
        "input_tokens",
        "output_tokens",
        "cost",
        "outputs_checked",
        "outputs_invalid",
        "finishes",
        "truncated",
        "errors",
        "buckets",
        "latency_sum",
        "seen",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.outputs_checked = 0
        self.outputs_invalid = 0
        self.finishes = 0
        self.truncated = 0
        self.errors: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.seen = 0.0


class CallMetrics:
    """Per-version call counters for /metrics, bounded as the module says."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._series: dict[Key, _Series] = {}
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str], int] = {}  # (prompt, digest) -> number
        self.unrecorded = 0
        self.serving: Callable[[], Iterable[tuple[str, str, str, int | None]]] = tuple

    def attach(self, cache: ServingCache, metrics: MetricsService) -> None:
        """Count what `metrics` ingests; keep the series of what `cache` serves."""
        self.serving = lambda: _serving(cache)
        metrics.observers.append(self.add)

    def add(self, events: Sequence[Event]) -> None:
        """Count accepted events."""
        now = self.clock()
        with self._lock:
            series = self._series
            for e in events:
                key = (e.prompt, e.env, e.digest, e.variant or "stable")
                s = series.get(key)
                if s is None:
                    if len(series) >= MAX_VERSIONS:
                        self._prune(now, set())
                    if len(series) >= MAX_VERSIONS:
                        self.unrecorded += 1
                        continue
                    s = series[key] = _Series()
                s.seen = now
                s.calls += 1
                seconds = e.latency / 1000
                s.buckets[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
                s.latency_sum += seconds
                if e.input_tokens is not None:
                    s.input_tokens += e.input_tokens
                if e.output_tokens is not None:
                    s.output_tokens += e.output_tokens
                if e.cost is not None:
                    s.cost += e.cost
                if e.error:
                    kind = e.error_type or UNSPECIFIED
                    if kind not in s.errors and len(s.errors) >= ERROR_TYPES_MAX:
                        kind = OTHER
                    s.errors[kind] = s.errors.get(kind, 0) + 1
                if e.output_valid is not None:
                    s.outputs_checked += 1
                    if not e.output_valid:
                        s.outputs_invalid += 1
                if e.finish_reason is not None:
                    s.finishes += 1
                    if e.finish_reason in TRUNCATED:
                        s.truncated += 1

    def _prune(self, now: float, serving: set[Key]) -> None:
        """Forget series neither serving nor seen within SEEN_FOR (under the lock)."""
        stale = [
            key
            for key, s in self._series.items()
            if now - s.seen > SEEN_FOR and key[:3] not in serving
        ]
        for key in stale:
            del self._series[key]

    def render(self) -> list[str]:
        """The series in the Prometheus text exposition format."""
        serving: set[Any] = set()
        numbers: dict[tuple[str, str], int] = {}
        for prompt, environment, digest, number in self.serving():
            serving.add((prompt, environment, digest))
            if number:
                numbers[(prompt, digest)] = number
        with self._lock:
            self._prune(self.clock(), serving)
            items = sorted(self._series.items())
            # Numbers of versions that still have series only: the map stays as bounded as
            # the series are, and a version no longer served keeps the number it was seen with.
            kept = {(key[0], key[2]) for key, _ in items}
            self._numbers = {
                pd: n for pd, n in {**self._numbers, **numbers}.items() if pd in kept
            }
            snapshot = [(key, _copy(s)) for key, s in items]
            unrecorded = self.unrecorded
        labelled = [(self._labels(key), s) for key, s in snapshot]
        lines: list[str] = []
        for attribute, name, help_text in _COUNTERS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines += [
                f"{name}{{{labels}}} {_number(getattr(s, attribute))}" for labels, s in labelled
            ]
        name = "promptctl_llm_errors_total"
        lines += [f"# HELP {name} Failed LLM calls by error type.", f"# TYPE {name} counter"]
        for labels, s in labelled:
            for kind, n in sorted(s.errors.items()):
                lines.append(f'{name}{{{labels},error_type="{_escape(kind)}"}} {n}')
        name = "promptctl_llm_latency_seconds"
        lines += [f"# HELP {name} Latency of the LLM calls.", f"# TYPE {name} histogram"]
        for labels, s in labelled:
            cumulative = 0
            for bound, n in zip((*LATENCY_BOUNDS, None), s.buckets, strict=True):
                cumulative += n
                le = "+Inf" if bound is None else repr(bound)
                lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f"{name}_sum{{{labels}}} {s.latency_sum!r}")
            lines.append(f"{name}_count{{{labels}}} {cumulative}")
        name = "promptctl_llm_calls_unrecorded_total"
        lines += [
            f"# HELP {name} Calls not counted per version: over {MAX_VERSIONS} versions.",
            f"# TYPE {name} counter",
            f"{name} {unrecorded}",
        ]
        return lines

    def _labels(self, key: Key) -> str:
        prompt, environment, digest, variant = key
        number = self._numbers.get((prompt, digest))
        version = f"v{number}" if number else digest[:SHORT]
        return (
            f'prompt="{_escape(prompt)}",environment="{_escape(environment)}",'
            f'version="{version}",digest="{digest[:SHORT]}",variant="{variant}"'
        )


def _serving(cache: ServingCache) -> Iterable[tuple[str, str, str, int | None]]:
    for served in cache.entries():
        state = served.state
        for resolved in (served.stable, served.canary):
            if resolved is not None:
                version = resolved.version
                yield state.prompt, state.environment, version.digest, version.number


def _copy(s: _Series) -> _Series:
    copy = _Series()
    for name in _Series.__slots__:
        value = getattr(s, name)
        setattr(copy, name, value.copy() if isinstance(value, dict | list) else value)
    return copy


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
