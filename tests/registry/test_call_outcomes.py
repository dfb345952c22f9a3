"""How calls ended, on SQLite and PostgreSQL: the event fields (error_type, output_valid,
finish_reason, trace_id), their rollups and what summaries make of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from promptctl.registry.metrics import MetricsService
from promptctl.registry.metrics.aggregate import ERROR_TYPES_MAX, TRACES_MAX
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.releases.serving import ServingCache
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import MetricEvent, MetricRollup

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PROMPT = "---\nmodel: gpt-4o-mini\n---\nHello, greeting {n}.\n"


@pytest.fixture
def world(git_repo, make_library, migrated_database_url) -> Iterator[World]:
    git_repo.commit("greet", {"prompts/greet.prompt": PROMPT.format(n=1)})
    git_repo.commit("greet 2", {"prompts/greet.prompt": PROMPT.format(n=2)})
    database = Database(migrated_database_url)
    yield World(database, make_library(git_repo))
    database.dispose()


class World:
    def __init__(self, database: Database, library: PromptLibrary) -> None:
        self.db = database
        self.library = library
        self.releases = ReleaseService(database)
        self.cache = ServingCache(self.releases)
        self.cache.load_all()
        self.clock = NOW.timestamp()
        self.service = MetricsService(database, cache=self.cache, clock=lambda: self.clock)

    def promote(self, ref: str = "HEAD", **kw) -> str:
        version = self.library.get("greet", ref)
        self.releases.promote(version, "staging", actor="test", confirmed=True, **kw)
        self.cache.refresh_release("greet", "staging")
        return version.digest

    def summary(self, **kw):
        return self.service.summary("greet", "staging", until=NOW + timedelta(minutes=1), **kw)


def ev(digest: str, at: datetime = NOW, **changes) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "prompt": "greet",
        "env": "staging",
        "digest": digest,
        "ts": at.isoformat(),
        "latency_ms": 100.0,
        **changes,
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("error_type", "x" * 65, "error_type must be at most 64 characters, got 65"),
        ("error_type", 42, "error_type must be a string, got 42"),
        ("error_type", "", "error_type must not be empty"),
        ("error_type", "time\nout", "error_type must be printable text"),
        ("output_valid", "yes", 'output_valid must be true or false, got "yes"'),
        ("output_valid", 0, "output_valid must be true or false, got 0"),
        ("finish_reason", "s" * 33, "finish_reason must be at most 32 characters"),
        ("finish_reason", ["length"], "finish_reason must be a string"),
        ("trace_id", "t" * 65, "trace_id must be at most 64 characters"),
        ("trace_id", {"id": 1}, "trace_id must be a string"),
    ],
)
def test_a_bad_outcome_field_rejects_that_event_alone(world, field, value, reason):
    digest = world.promote()
    batch = [ev(digest, event_id="before"), ev(digest, event_id="bad", **{field: value})]
    batch.append(ev(digest, event_id="after", error_type="timeout", output_valid=False))
    result = world.service.ingest(batch)
    assert [r["status"] for r in result.results] == ["accepted", "rejected", "accepted"]
    assert result.results[1]["event_id"] == "bad"
    assert result.results[1]["reason"].startswith(reason), result.results[1]["reason"]
    with world.db.session() as session:
        ids = set(session.scalars(select(MetricEvent.event_id)))
    assert ids == {"before", "after"}


def test_outcome_fields_are_stored_with_the_event(world):
    digest = world.promote()
    trace = "0af7651916cd43dd8448eb211c80319c"
    world.service.ingest(
        [
            ev(digest, event_id="e1", error_type="rate_limit", trace_id=trace),
            ev(digest, event_id="e2", output_valid=True, finish_reason="stop"),
        ]
    )
    with world.db.session() as session:
        e1, e2 = (session.get(MetricEvent, i) for i in ("e1", "e2"))
        assert (e1.error_type, e1.error, e1.trace_id, e1.output_valid) == (
            "rate_limit",
            True,  # an error type makes the call a failure even without `error`
            trace,
            None,
        )
        assert (e2.output_valid, e2.finish_reason, e2.error, e2.error_type) == (
            True,
            "stop",
            False,
            None,
        )


def test_rates_and_error_types_per_version_and_variant_from_rollups(world):
    stable = world.promote("HEAD~1")
    canary = world.promote("HEAD", canary_bp=5000)
    hour_ago = NOW - timedelta(minutes=90)  # lands in an hour row of the window
    world.service.ingest(
        [ev(stable, output_valid=True, finish_reason="stop") for _ in range(4)]
        + [ev(canary, at=hour_ago, output_valid=False, finish_reason="max_tokens")]
        + [ev(canary, output_valid=True, finish_reason="stop")]
        + [ev(canary, error_type="timeout"), ev(canary, error_type="timeout")]
        + [ev(canary, at=hour_ago, error_type="provider_5xx"), ev(canary, error=True)]
    )
    rows = {v.variant: v for v in world.summary(since=NOW - timedelta(hours=3)).versions}
    assert rows["stable"].invalid_output_rate == 0.0
    assert rows["stable"].truncation_rate == 0.0
    assert rows["stable"].error_types == ()
    c = rows["canary"]
    assert (c.outputs_checked, c.outputs_invalid) == (2, 1)
    assert c.invalid_output_rate == 0.5
    assert (c.finishes, c.truncated) == (2, 1)
    assert c.errors == 4
    # Most frequent first; an error without a type is counted in `errors` only.
    assert c.error_types == (("timeout", 2), ("provider_5xx", 1))
    assert c.to_json()["error_types"] == [
        {"type": "timeout", "count": 2},
        {"type": "provider_5xx", "count": 1},
    ]
    # A call that does not say how it ended counts as a call, not in the rates.
    world.service.ingest([ev(stable)])
    again = {v.variant: v for v in world.summary().versions}["stable"]
    assert (again.count, again.outputs_checked, again.finishes) == (5, 4, 4)


def test_distinct_error_types_are_capped_per_row_and_per_summary(world):
    digest = world.promote()
    # Two minutes, each with more error types than the cap, partly different ones.
    first = [ev(digest, error_type=f"kind_{i:02d}") for i in range(ERROR_TYPES_MAX + 5)]
    later = NOW - timedelta(minutes=1)
    second = [
        ev(digest, at=later, error_type=f"kind_{i:02d}") for i in range(10, ERROR_TYPES_MAX + 15)
    ]
    second += [ev(digest, at=later, error_type="kind_12") for _ in range(3)]
    assert world.service.ingest(first + second).accepted == len(first) + len(second)
    with world.db.session() as session:
        for row in session.scalars(select(MetricRollup)):
            assert len(row.error_types) <= ERROR_TYPES_MAX + 1
            assert sum(row.error_types.values()) == row.errors
    (v,) = world.summary().versions
    assert len(v.error_types) == ERROR_TYPES_MAX + 1
    assert v.error_types[-1][0] == "other"
    assert sum(n for _, n in v.error_types) == v.errors == len(first) + len(second)
    assert v.error_types[0] == ("kind_12", 5)  # twice in one minute's list, and 3 more


def test_recent_flagged_traces_are_kept_newest_first_and_bounded(world):
    digest = world.promote()
    traces = [f"{i:032x}" for i in range(TRACES_MAX + 3)]
    world.service.ingest(
        [
            ev(digest, at=NOW - timedelta(seconds=10 * (len(traces) - i)), error_type="timeout",
               trace_id=t)
            for i, t in enumerate(traces)
        ]
        + [ev(digest, trace_id="f" * 32)]  # a good call: never listed
        + [ev(digest, at=NOW, output_valid=False, trace_id="e" * 32)]
        + [ev(digest, at=NOW, finish_reason="length", trace_id="d" * 32)]
    )  # fmt: skip
    (v,) = world.summary().versions
    listed = [(t.trace_id, t.reason) for t in v.failing_traces]
    assert len(listed) == TRACES_MAX
    assert set(listed[:2]) == {("e" * 32, "invalid_output"), ("d" * 32, "truncated")}
    assert listed[2:] == [(t, "timeout") for t in reversed(traces[-(TRACES_MAX - 2) :])]
    assert "f" * 32 not in {t for t, _ in listed}
