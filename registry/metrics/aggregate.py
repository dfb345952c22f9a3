"""Aggregate: the mergeable sums of one rollup row.

Count, errors, latency (sum, min, max and its histogram) of every call and, apart, of the
successful ones, tokens, cost and quality with their squares: every figure is a sum, a
minimum or a maximum, so the aggregates of a set of minutes add up to their hour's and a
summary merges stored rows without reading events.

Latency is kept twice because a failed call's latency (a fast refusal, a timeout) says
nothing of how fast the version answers: summaries and canary analysis report successful
calls' latency; the all-calls figures stay for what was stored before it was kept apart.
A row written before that (migration 0006) has None for the successful calls' latency or
for the squares: merging such a row marks the figure unknown (`success_unknown`, a None
square), and `values()` writes it back as NULL, never as a wrong number.

How calls ended merges the same way: outputs checked and invalid, finish reasons reported
and truncated, and counts per error type. Error types are labels the clients choose, so
an aggregate keeps the ERROR_TYPES_MAX most frequent and counts the rest as `other`:
a row, and a summary, holds at most ERROR_TYPES_MAX + 1 of them whatever the clients send.
The newest flagged calls (failed, invalid output or truncated) that carry a trace id are
kept too, TRACES_MAX of them, so a bad figure leads to its traces.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from promptctl.registry.metrics.events import ERROR_TYPES_MAX, OTHER, TRUNCATED
from promptctl.registry.metrics.histogram import LOG_GAMMA, histogram_json, quantile

TRACES_MAX = 5  # newest flagged trace ids per row and per summary


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
        "ok_sum",
        "ok_min",
        "ok_max",
        "ok_buckets",
        "ok_zero",
        "ok_stored",
        "success_unknown",
        "input_count",
        "input_sum",
        "input_sumsq",
        "output_count",
        "output_sum",
        "output_sumsq",
        "cost_count",
        "cost_sum",
        "cost_sumsq",
        "quality_count",
        "quality_sum",
        "quality_sumsq",
        "outputs_checked",
        "outputs_invalid",
        "finishes",
        "truncated",
        "error_types",
        "traces",
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
        # Successful calls' latency, kept as the figures above are.
        self.ok_sum = 0.0
        self.ok_min = math.inf
        self.ok_max = -math.inf
        self.ok_buckets: dict[int, int] = {}
        self.ok_zero = 0
        self.ok_stored: list[tuple[int, list[int]]] = []
        self.success_unknown = False  # a merged row did not record it (written before 0006)
        self.input_count = 0
        self.input_sum = 0
        self.input_sumsq: float | None = 0.0  # None: a merged row did not record it
        self.output_count = 0
        self.output_sum = 0
        self.output_sumsq: float | None = 0.0
        self.cost_count = 0
        self.cost_sum = 0.0
        self.cost_sumsq: float | None = 0.0
        self.quality_count = 0
        self.quality_sum = 0.0
        self.quality_sumsq = 0.0
        self.outputs_checked = 0
        self.outputs_invalid = 0
        self.finishes = 0
        self.truncated = 0
        self.error_types: dict[str, int] = {}
        # (Unix seconds, trace id, why flagged), newest first, at most TRACES_MAX.
        self.traces: list[tuple[float, str, str]] = []

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
            index = math.ceil(math.log(latency) / LOG_GAMMA)
            buckets = self.buckets
            buckets[index] = buckets.get(index, 0) + 1
            if not error:
                buckets = self.ok_buckets
                buckets[index] = buckets.get(index, 0) + 1
        else:
            self.zero += 1
            if not error:
                self.ok_zero += 1
        if not error:
            self.ok_sum += latency
            if latency < self.ok_min:
                self.ok_min = latency
            if latency > self.ok_max:
                self.ok_max = latency
        # An aggregate built from events knows every square: never None here.
        if input_tokens is not None:
            self.input_count += 1
            self.input_sum += input_tokens
            self.input_sumsq += input_tokens * input_tokens  # type: ignore[operator]
        if output_tokens is not None:
            self.output_count += 1
            self.output_sum += output_tokens
            self.output_sumsq += output_tokens * output_tokens  # type: ignore[operator]
        if cost is not None:
            self.cost_count += 1
            self.cost_sum += cost
            self.cost_sumsq += cost * cost  # type: ignore[operator]
        if quality is not None:
            self.add_quality(quality)

    def add_outcome(
        self,
        error: bool,
        output_valid: bool | None,
        finish_reason: str | None,
        error_type: str | None,
        trace_id: str | None,
        at: float,
    ) -> None:
        """Count how an event added with `add_event` ended (only events that say so)."""
        if output_valid is not None:
            self.outputs_checked += 1
            if not output_valid:
                self.outputs_invalid += 1
        truncated = False
        if finish_reason is not None:
            self.finishes += 1
            if finish_reason in TRUNCATED:
                self.truncated += 1
                truncated = True
        if error_type is not None:
            types = self.error_types
            types[error_type] = types.get(error_type, 0) + 1
            if len(types) > ERROR_TYPES_MAX + 1:
                self.error_types = cap_error_types(types)
        if trace_id is not None and (error or output_valid is False or truncated):
            if error:
                why = error_type or "error"
            else:
                why = "invalid_output" if output_valid is False else "truncated"
            self.traces = newest_traces(self.traces, [(at, trace_id, why)])

    def add_quality(self, quality: float) -> None:
        self.quality_count += 1
        self.quality_sum += quality
        self.quality_sumsq += quality * quality

    def settle(self) -> None:
        """Add the stored histograms merged so far into `buckets` and `ok_buckets`."""
        if self.stored:
            _settle(self.buckets, self.stored)
            self.stored = []
        if self.ok_stored:
            _settle(self.ok_buckets, self.ok_stored)
            self.ok_stored = []

    @property
    def ok_count(self) -> int:
        """Successful calls whose latency the `ok_*` figures hold."""
        self.settle()
        return self.ok_zero + sum(self.ok_buckets.values())

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
        self.ok_sum += other.ok_sum
        self.ok_min = min(self.ok_min, other.ok_min)
        self.ok_max = max(self.ok_max, other.ok_max)
        buckets = self.ok_buckets
        for index, n in other.ok_buckets.items():
            buckets[index] = buckets.get(index, 0) + n
        self.ok_zero += other.ok_zero
        self.success_unknown = self.success_unknown or other.success_unknown
        self.input_count += other.input_count
        self.input_sum += other.input_sum
        self.input_sumsq = _plus(self.input_sumsq, other.input_sumsq)
        self.output_count += other.output_count
        self.output_sum += other.output_sum
        self.output_sumsq = _plus(self.output_sumsq, other.output_sumsq)
        self.cost_count += other.cost_count
        self.cost_sum += other.cost_sum
        self.cost_sumsq = _plus(self.cost_sumsq, other.cost_sumsq)
        self.quality_count += other.quality_count
        self.quality_sum += other.quality_sum
        self.quality_sumsq += other.quality_sumsq
        self._merge_outcomes(
            other.outputs_checked,
            other.outputs_invalid,
            other.finishes,
            other.truncated,
            other.error_types,
            other.traces,
        )

    def _merge_outcomes(
        self,
        checked: int,
        invalid: int,
        finishes: int,
        truncated: int,
        error_types: dict[str, int] | None,
        traces: list[Any] | None,
    ) -> None:
        self.outputs_checked += checked
        self.outputs_invalid += invalid
        self.finishes += finishes
        self.truncated += truncated
        if error_types:
            types = self.error_types
            for name, n in error_types.items():
                types[name] = types.get(name, 0) + n
            if len(types) > ERROR_TYPES_MAX + 1:
                self.error_types = cap_error_types(types)
        if traces:
            self.traces = newest_traces(self.traces, [tuple(t) for t in traces])

    def merge_row(self, row: Any) -> None:
        """Add a stored rollup row (anything with the columns as attributes; a reader that
        needs neither every call's histogram nor the error types and traces may leave
        those columns out)."""
        self._merge_sums(
            row, getattr(row, "error_types", None), getattr(row, "failing_traces", None)
        )
        histogram = getattr(row, "latency_histogram", None)
        if histogram:
            if histogram.get("counts"):
                self.stored.append((histogram["offset"], histogram["counts"]))
            self.zero += histogram.get("zero", 0)
        ok = row.success_latency_histogram
        if ok is None:
            # Written before successful calls' latency was kept: left out of it, and
            # marked, so that a row written back from this aggregate says NULL again.
            self.success_unknown = True
        else:
            self._merge_success(row, (ok,))

    def merge_group(self, row: Any, histograms: Sequence[dict[str, Any] | None]) -> None:
        """Add a group of stored rollup rows the database summed (registry.metrics.series):
        each column's sum, minimum or maximum over the rows, with NULL where one of the
        rows had NULL for a sum of squares, and `rows_without_success`, how many rows did
        not record successful calls' latency (left out of its sums); `histograms` are the
        rows' successful-call histograms (None for those rows).

        Every call's histogram, the error types and the traces are not read this way."""
        self._merge_sums(row, None, None)
        if row.rows_without_success:
            self.success_unknown = True
        self._merge_success(row, [h for h in histograms if h])

    def _merge_sums(
        self, row: Any, error_types: dict[str, int] | None, traces: list[Any] | None
    ) -> None:
        """Add a row's (or a summed group's) counts, sums, minima, maxima and outcomes."""
        self.count += row.count
        self.errors += row.errors
        self.latency_sum += row.latency_sum
        if row.latency_min is not None and row.latency_min < self.latency_min:
            self.latency_min = row.latency_min
        if row.latency_max is not None and row.latency_max > self.latency_max:
            self.latency_max = row.latency_max
        self.input_count += row.input_tokens_count
        self.input_sum += row.input_tokens_sum
        self.input_sumsq = _plus(self.input_sumsq, row.input_tokens_sumsq)
        self.output_count += row.output_tokens_count
        self.output_sum += row.output_tokens_sum
        self.output_sumsq = _plus(self.output_sumsq, row.output_tokens_sumsq)
        self.cost_count += row.cost_count
        self.cost_sum += row.cost_sum
        self.cost_sumsq = _plus(self.cost_sumsq, row.cost_sumsq)
        self.quality_count += row.quality_count
        self.quality_sum += row.quality_sum
        self.quality_sumsq += row.quality_sumsq
        self._merge_outcomes(
            row.outputs_checked or 0,
            row.outputs_invalid or 0,
            row.finishes or 0,
            row.truncated or 0,
            error_types,
            traces,
        )

    def _merge_success(self, row: Any, histograms: Sequence[dict[str, Any]]) -> None:
        """Add successful calls' latency: the row's sum, minimum and maximum, and its
        stored histograms (kept to be settled densely, all at once)."""
        self.ok_sum += row.success_latency_sum or 0.0
        if row.success_latency_min is not None and row.success_latency_min < self.ok_min:
            self.ok_min = row.success_latency_min
        if row.success_latency_max is not None and row.success_latency_max > self.ok_max:
            self.ok_max = row.success_latency_max
        for ok in histograms:
            if ok.get("counts"):
                self.ok_stored.append((ok["offset"], ok["counts"]))
            self.ok_zero += ok.get("zero", 0)

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
            **self._success_values(),
            "input_tokens_count": self.input_count,
            "input_tokens_sum": self.input_sum,
            "input_tokens_sumsq": self.input_sumsq,
            "output_tokens_count": self.output_count,
            "output_tokens_sum": self.output_sum,
            "output_tokens_sumsq": self.output_sumsq,
            "cost_count": self.cost_count,
            "cost_sum": self.cost_sum,
            "cost_sumsq": self.cost_sumsq,
            "quality_count": self.quality_count,
            "quality_sum": self.quality_sum,
            "quality_sumsq": self.quality_sumsq,
            "outputs_checked": self.outputs_checked,
            "outputs_invalid": self.outputs_invalid,
            "finishes": self.finishes,
            "truncated": self.truncated,
            "error_types": cap_error_types(self.error_types) if self.error_types else None,
            "failing_traces": [list(t) for t in self.traces] if self.traces else None,
        }

    def _success_values(self) -> dict[str, Any]:
        if self.success_unknown:
            return dict.fromkeys(
                (
                    "success_latency_sum",
                    "success_latency_min",
                    "success_latency_max",
                    "success_latency_histogram",
                )
            )
        return {
            "success_latency_sum": self.ok_sum,
            "success_latency_min": self.ok_min if self.ok_min != math.inf else None,
            "success_latency_max": self.ok_max if self.ok_max != -math.inf else None,
            "success_latency_histogram": histogram_json(self.ok_buckets, self.ok_zero),
        }

    def quantile(self, q: float) -> float | None:
        """The q-quantile of every call's latency, failed ones included."""
        self.settle()
        return quantile(self.buckets, self.zero, q, self.latency_min, self.latency_max)

    def ok_quantile(self, q: float) -> float | None:
        """The q-quantile of successful calls' latency."""
        self.settle()
        return quantile(self.ok_buckets, self.ok_zero, q, self.ok_min, self.ok_max)


def _settle(buckets: dict[int, int], stored: list[tuple[int, list[int]]]) -> None:
    """Add stored (offset, dense counts) histograms into `buckets`.

    A summary merges hundreds of stored histograms of a hundred buckets or more: they are
    summed as dense lists, slice by slice, rather than bucket by bucket.
    """
    low = min(offset for offset, _ in stored)
    high = max(offset + len(counts) for offset, counts in stored)
    total = [0] * (high - low)
    for offset, counts in stored:
        i = offset - low
        total[i : i + len(counts)] = map(operator.add, total[i : i + len(counts)], counts)
    for i, n in enumerate(total, low):
        if n:
            buckets[i] = buckets.get(i, 0) + n


def _plus(a: float | None, b: float | None) -> float | None:
    """A sum that stays unknown (None) once one of its parts is."""
    return None if a is None or b is None else a + b


def cap_error_types(types: dict[str, int]) -> dict[str, int]:
    """Keep the ERROR_TYPES_MAX most frequent error types (ties by name); count the rest,
    and any already counted so, as OTHER."""
    other = types.get(OTHER, 0)
    named = sorted(((n, t) for t, n in types.items() if t != OTHER), key=_by_count)
    if len(named) <= ERROR_TYPES_MAX:
        return dict(types)
    kept = {t: n for n, t in named[:ERROR_TYPES_MAX]}
    kept[OTHER] = other + sum(n for n, _ in named[ERROR_TYPES_MAX:])
    return kept


def _by_count(item: tuple[int, str]) -> tuple[int, str]:
    return -item[0], item[1]


def newest_traces(
    kept: list[tuple[float, str, str]], more: list[Any]
) -> list[tuple[float, str, str]]:
    """The TRACES_MAX newest of two lists of (Unix seconds, trace id, why) flagged calls."""
    merged = {t[1]: (float(t[0]), str(t[1]), str(t[2])) for t in (*kept, *more)}
    return sorted(merged.values(), reverse=True)[:TRACES_MAX]
