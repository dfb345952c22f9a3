"""Events with absurd values are rejected one by one: one of them must never poison a
version's percentiles or cost for good."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from promptctl.registry.metrics.events import MAX_COST_USD, MAX_LATENCY_MS, parse_event

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC).timestamp()


def event(**changes):
    raw = {
        "event_id": "e-1",
        "prompt": "greet",
        "env": "staging",
        "digest": "a" * 64,
        "latency_ms": 812.0,
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (event(latency_ms=1.7e308), "latency_ms must be at most 86400000 (a day), got 1.7e+308"),
        (event(latency_ms=MAX_LATENCY_MS + 1), "latency_ms must be at most 86400000 (a day)"),
        (event(latency_ms=float("nan")), "latency_ms must be a finite number"),
        (event(latency_ms=float("inf")), "latency_ms must be a finite number"),
        (event(cost_usd=1e300), "cost_usd must be at most 1000 for one call"),
        (event(cost_usd=float("inf")), "cost_usd must be a finite number >= 0"),
        (event(quality=float("nan")), "quality must be a number in [0, 1]"),
    ],
)
def test_an_absurd_value_rejects_its_event_with_the_reason(raw, reason):
    result = parse_event(raw, NOW)
    assert isinstance(result, str)
    assert result.startswith(reason)


def test_values_at_the_ceilings_are_still_calls():
    parsed = parse_event(event(latency_ms=MAX_LATENCY_MS, cost_usd=MAX_COST_USD), NOW)
    assert not isinstance(parsed, str)
    assert (parsed.latency, parsed.cost) == (MAX_LATENCY_MS, MAX_COST_USD)
