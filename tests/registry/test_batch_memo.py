"""parse_event with a batch's memo answers every event as it does on its own: good and bad
events mixed, sharing prompts, environments, digests and ts texts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from promptctl.registry.metrics.events import BatchMemo, Event, parse_event

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
GOOD = {
    "event_id": "e",
    "prompt": "greet",
    "env": "staging",
    "digest": "a" * 64,
    "latency_ms": 12.5,
    "ts": NOW.isoformat(),
}
# Each replaces one field of a good event: the values a batch may repeat, good or bad.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"prompt": "summarize"},
    {"prompt": ["greet"]},
    {"prompt": {"name": "greet"}},
    {"prompt": ""},
    {"prompt": "gr\x00eet"},
    {"env": "production"},
    {"env": "staging\n"},
    {"env": ["staging"]},
    {"digest": "A" * 64},
    {"digest": "b" * 64},
    {"digest": "abc"},
    {"digest": ["a" * 64]},
    {"ts": (NOW - timedelta(minutes=3)).isoformat()},
    {"ts": (NOW + timedelta(hours=1)).isoformat()},
    {"ts": "1999-12-31T23:00:00Z"},
    {"ts": "yesterday"},
    {"ts": NOW.timestamp() - 5},
    {"ts": None},
    {"env": "greet"},  # an environment named as a prompt that passed
]


def answer(result: Event | str) -> Any:
    if isinstance(result, str):
        return result
    return {name: getattr(result, name) for name in Event.__slots__}


def test_a_memo_changes_no_answer():
    rng = random.Random(4)
    now = NOW.timestamp()
    batch = [{**GOOD, "event_id": f"e{i}", **rng.choice(VARIANTS)} for i in range(400)]
    batch = [{k: v for k, v in raw.items() if v is not None} for raw in batch]
    memo = BatchMemo()
    with_memo = [answer(parse_event(raw, now, memo)) for raw in batch]
    alone = [answer(parse_event(raw, now)) for raw in batch]
    assert with_memo == alone
    assert any(isinstance(a, str) for a in alone)
    assert any(isinstance(a, dict) for a in alone)
