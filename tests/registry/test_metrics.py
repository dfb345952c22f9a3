"""Metrics on SQLite and PostgreSQL: validation, ingest, rollups, scores and summaries.

Summaries are checked against figures computed from the raw events of the same test:
counts, sums and means exactly, latency quantiles within 2 % of the exact nearest-rank
sample quantile, the quality interval against Student's t computed here.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from promptctl.registry import metrics as m
from promptctl.registry.errors import (
    BatchTooLarge,
    EnvironmentNotFound,
    NeverReleased,
    UsageError,
)
from promptctl.registry.metrics import (
    Aggregate,
    MetricsService,
    mean_ci95,
    parse_event,
    parse_time,
    t_critical_95,
)
from promptctl.registry.metrics.partitions import is_event_partition
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.releases.serving import ServingCache
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import Base, MetricEvent, MetricRollup

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PRICES = {"gpt-4o-mini": SimpleNamespace(input=0.15, output=0.60)}


def prompt_file(number: int, model: str = "gpt-4o-mini") -> str:
    return (
        f"---\nmodel: {model}\ninput:\n  name: {{type: string}}\nsamples:\n  - {{name: Ada}}\n"
        f"---\nHello {{{{ name }}}}, greeting {number}.\n"
    )


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


# -- the pure parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        lambda r: r.lognormvariate(6.5, 0.8),
        lambda r: r.uniform(0.5, 30_000),
        lambda r: r.choice((r.gauss(40, 4), r.gauss(2_000, 300))),  # cache hits and misses
        lambda r: r.expovariate(1 / 250),
    ],
    ids=["lognormal", "uniform", "bimodal", "exponential"],
)
def test_latency_quantiles_are_within_two_percent_of_the_exact_ones(sample):
    rng = random.Random(7)
    values = [abs(sample(rng)) for _ in range(20_000)]
    agg = Aggregate()
    for v in values:
        agg.add_event(v, False, None, None, None, None)
    for q in (0.5, 0.95, 0.99, 0.999, 0.0, 1.0):
        exact = exact_quantile(values, q)
        assert agg.quantile(q) == pytest.approx(exact, rel=0.02), q


def test_aggregates_merge_into_what_one_aggregate_of_everything_holds():
    rng = random.Random(3)
    events = [
        (rng.lognormvariate(5, 1), rng.random() < 0.1, rng.randint(1, 900), None, 0.001, None)
        for _ in range(3_000)
    ]
    whole, parts = Aggregate(), [Aggregate() for _ in range(7)]
    for i, event in enumerate(events):
        whole.add_event(*event)
        parts[i % 7].add_event(*event)
    merged = Aggregate()
    for part in parts:
        merged.merge_row(SimpleNamespace(**part.values()))  # as a stored rollup row
    got, want = merged.values(), whole.values()
    assert got.pop("latency_histogram") == want.pop("latency_histogram")
    assert got.pop("success_latency_histogram") == want.pop("success_latency_histogram")
    assert got == pytest.approx(want)
    assert merged.count == 3_000
    assert merged.quantile(0.95) == whole.quantile(0.95)


def test_zero_latencies_have_their_own_bucket():
    agg = Aggregate()
    for v in (0.0, 0.0, 0.0, 5.0):
        agg.add_event(v, False, None, None, None, None)
    assert agg.quantile(0.5) == 0.0
    assert agg.quantile(1.0) == 5.0
    assert agg.values()["latency_histogram"]["zero"] == 3


def test_t_critical_values_match_the_tables():
    assert t_critical_95(1) == pytest.approx(12.706, abs=1e-3)
    assert t_critical_95(10) == pytest.approx(2.228, abs=1e-3)
    assert t_critical_95(31) == pytest.approx(2.0395, abs=1e-3)
    assert t_critical_95(100) == pytest.approx(1.9840, abs=1e-3)
    assert t_critical_95(10_000) == pytest.approx(1.9602, abs=1e-3)


def test_quality_interval_is_students_t_clamped_to_zero_one():
    values = [0.2, 0.4, 0.9, 0.7, 0.6]
    mean, low, high = mean_ci95(len(values), sum(values), sum(v * v for v in values))
    half = 2.776 * statistics.stdev(values) / math.sqrt(5)
    assert mean == pytest.approx(0.56)
    assert low == pytest.approx(0.56 - half, abs=1e-3)
    assert high == pytest.approx(min(1.0, 0.56 + half), abs=1e-3)
    assert mean_ci95(1, 0.5, 0.25) == (0.5, None, None)
    assert mean_ci95(0, 0.0, 0.0) == (None, None, None)
    assert mean_ci95(3, 3.0, 3.0) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("15m", NOW - timedelta(minutes=15)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("2w", NOW - timedelta(days=14)),
        ("2026-11-20T08:30:00Z", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026-11-20T08:30:00", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T10:30:00+02:00", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        (None, None),
    ],
)
def test_window_bounds_parse_as_times_or_durations_ago(text, expected):
    assert parse_time(text, NOW) == expected


def test_a_window_bound_that_is_not_a_time_is_a_usage_error():
    with pytest.raises(UsageError, match="not a time"):
        parse_time("yesterday", NOW)


@pytest.mark.parametrize("text", ["999999d", "9999999999d", "1" + "0" * 20 + "m"])
def test_a_duration_ago_beyond_the_calendar_is_a_usage_error(text):
    with pytest.raises(UsageError, match="not a time"):
        parse_time(text, NOW)


DIGEST = "a" * 64


def event(**changes):
    base = {
        "event_id": uuid.uuid4().hex,
        "prompt": "greet",
        "env": "staging",
        "digest": DIGEST,
        "latency_ms": 120.5,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not an object", "must be a JSON object"),
        (event(latency_ms=...), "missing field 'latency_ms'"),
        (event(prompt=..., digest=...), "missing fields 'prompt', 'digest'"),
        (event(latency=3), "unknown field 'latency'"),
        (event(event_id=""), "event_id must be a non-empty string"),
        (event(event_id="x" * 129), "at most 128 printable characters"),
        (event(event_id="a\x00b"), "event_id must be a non-empty string"),
        (event(event_id="\ud800"), "event_id must be a non-empty string"),
        (event(model="gpt\n4"), "model must be a non-empty string"),
        (event(latency_ms=10**30), "latency_ms must be a finite number"),
        (event(ts=10**30), "ts must be an ISO 8601 time or Unix seconds"),
        (event(attributes={"k": "\ud800"}), "not valid Unicode"),
        (event(event_id=17), "event_id must be a non-empty string"),
        (event(prompt=["greet"]), "prompt must be a non-empty string"),
        (event(digest="abc123"), "digest must be the version's full SHA-256"),
        (event(latency_ms=-1), "latency_ms must not be negative"),
        (event(latency_ms="fast"), "latency_ms must be a finite number"),
        (event(latency_ms=True), "latency_ms must be a finite number"),
        (event(latency_ms=float("nan")), "latency_ms must be a finite number"),
        (event(latency_ms=float("inf")), "latency_ms must be a finite number"),
        (event(quality=1.5), "quality must be a number in [0, 1], got 1.5"),
        (event(quality=-0.1), "quality must be a number in [0, 1]"),
        (event(input_tokens=-3), "input_tokens must be an integer"),
        (event(output_tokens=2.5), "output_tokens must be an integer"),
        (event(input_tokens=2**40), "input_tokens must be an integer"),
        (event(cost_usd=-0.01), "cost_usd must be a finite number >= 0"),
        (event(error="yes"), "error must be true or false"),
        (event(attributes=[1, 2]), "attributes must be a JSON object"),
        (event(attributes={"k": "v" * 9000}), "attributes are over 8192 bytes"),
        (event(variant="blue"), "variant must be 'stable' or 'canary'"),
        (event(model=""), "model must be a non-empty string"),
        (event(ts="last tuesday"), "is not an ISO 8601 time"),
        (event(ts=(NOW + timedelta(hours=2)).isoformat()), "ts is 2:00:00 in the future"),
        (event(ts=NOW.timestamp() + 3600), "ts is 1:00:00 in the future"),
        (event(ts="1999-12-31T23:00:00Z"), "ts is before 2000-01-01"),
        (event(ts=12.0), "ts is before 2000-01-01"),
        (event(ts={"at": 1}), "ts must be an ISO 8601 time or Unix seconds"),
    ],
)
def test_malformed_events_are_rejected_with_a_clear_reason(raw, reason):
    result = parse_event(raw, NOW.timestamp())
    assert isinstance(result, str)
    assert reason in result


def test_a_well_formed_event_is_normalised():
    parsed = parse_event(
        event(
            digest="A" * 64,
            ts="2026-11-23T13:59:00+02:00",
            output_tokens=40.0,
            error=None,
            attributes={},
        ),
        NOW.timestamp(),
    )
    assert not isinstance(parsed, str)
    assert parsed.digest == DIGEST
    assert parsed.ts == datetime(2026, 11, 23, 11, 59, tzinfo=UTC)
    assert parsed.output_tokens == 40
    assert parsed.error is False
    assert parsed.attributes is None
    assert parsed.variant is None


def test_ts_defaults_to_the_time_received_and_a_few_minutes_of_skew_are_allowed():
    parsed = parse_event(event(), NOW.timestamp())
    assert parsed.ts == NOW
    ahead = parse_event(event(ts=(NOW + timedelta(minutes=4)).isoformat()), NOW.timestamp())
    assert not isinstance(ahead, str)


# -- against a database ---------------------------------------------------------------------


@pytest.fixture
def library(git_repo, make_library) -> PromptLibrary:
    """greet v1..v3 (model gpt-4o-mini), summarize v1 (a model without a price)."""
    git_repo.commit(
        "greet and summarize",
        {
            "prompts/greet.prompt": prompt_file(1),
            "prompts/summarize.prompt": prompt_file(1, model="unpriced"),
        },
    )
    git_repo.commit("greet 2", {"prompts/greet.prompt": prompt_file(2)})
    git_repo.commit("greet 3", {"prompts/greet.prompt": prompt_file(3)})
    return make_library(git_repo)


@pytest.fixture
def database(migrated_database_url: str) -> Iterator[Database]:
    db = Database(migrated_database_url)
    yield db
    db.dispose()


class World:
    """Releases, the serving cache and the metrics service over one database."""

    def __init__(self, database: Database, library: PromptLibrary) -> None:
        self.db = database
        self.library = library
        self.releases = ReleaseService(database)
        self.cache = ServingCache(self.releases)
        self.cache.load_all()
        self.clock = NOW.timestamp()
        self.service = MetricsService(
            database, cache=self.cache, prices=PRICES, clock=lambda: self.clock, max_batch=1000
        )

    def promote(self, name: str = "greet", ref: str = "HEAD", env: str = "staging", **kw) -> str:
        version = self.library.get(name, ref)
        self.releases.promote(version, env, actor="test", confirmed=True, **kw)
        self.cache.refresh_release(name, env)
        return version.digest

    def events(self, model=MetricEvent, **where):
        with self.db.session() as session:
            query = select(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return list(session.scalars(query))

    def count(self, model=MetricEvent) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def world(database, library) -> World:
    return World(database, library)


def ev(digest: str, **changes):
    return event(**{"digest": digest, "ts": NOW.isoformat(), **changes})


def statuses(result) -> list[str]:
    return [r["status"] for r in result.results]


def test_valid_events_are_kept_when_others_in_the_batch_are_rejected(world):
    digest = world.promote()
    batch = [
        ev(digest, event_id="good-1"),
        ev(digest, event_id="bad-latency", latency_ms=-5),
        {"event_id": "no-fields"},
        ev(digest, event_id="good-2", error=True),
        ev(digest, event_id="bad-quality", quality=2),
    ]
    result = world.service.ingest(batch)
    assert statuses(result) == ["accepted", "rejected", "rejected", "accepted", "rejected"]
    assert [r["event_id"] for r in result.results] == [
        "good-1", "bad-latency", "no-fields", "good-2", "bad-quality"
    ]  # fmt: skip
    assert "missing fields 'prompt', 'env', 'digest', 'latency_ms'" in result.results[2]["reason"]
    assert (result.accepted, result.duplicate, result.rejected) == (2, 0, 3)
    assert sorted(e.event_id for e in world.events()) == ["good-1", "good-2"]
    summary = world.service.summary("greet", "staging")
    (version,) = summary.versions
    assert (version.count, version.errors, version.error_rate) == (2, 1, 0.5)


def test_unknown_prompt_environment_or_version_is_a_rejection_not_an_error(world):
    digest = world.promote()
    other = world.library.get("greet", "HEAD~1").digest  # never released
    result = world.service.ingest(
        [
            ev(digest, prompt="nope"),
            ev(digest, env="qa"),
            ev(digest, env="production"),  # greet has no release there
            ev(other),
            ev(digest),
        ]
    )
    reasons = [r.get("reason") for r in result.results]
    assert statuses(result) == ["rejected"] * 4 + ["accepted"]
    assert reasons[0] == "'nope' has no release in staging"
    assert reasons[1].startswith("unknown environment 'qa'")
    assert reasons[2] == "'greet' has no release in production"
    assert reasons[3] == f"unknown version {other[:12]} of 'greet': no release of it was ever made"
    assert world.count() == 1


def test_a_repeated_event_id_is_counted_once(world):
    digest = world.promote()
    first = ev(digest, event_id="e-1", latency_ms=100)
    result = world.service.ingest([first, ev(digest, event_id="e-2"), dict(first)])
    assert statuses(result) == ["accepted", "accepted", "duplicate"]
    assert result.results[2]["reason"] == "repeated in this batch"
    again = world.service.ingest([dict(first, latency_ms=999), ev(digest, event_id="e-3")])
    assert statuses(again) == ["duplicate", "accepted"]
    assert again.results[0]["reason"] == "already stored"
    (version,) = world.service.summary("greet", "staging").versions
    assert version.count == 3
    assert world.events(event_id="e-1")[0].latency_ms == 100  # the first delivery wins


def test_a_rejected_event_can_be_sent_again_fixed(world):
    digest = world.promote()
    assert statuses(world.service.ingest([ev(digest, event_id="x", quality=3)])) == ["rejected"]
    assert statuses(world.service.ingest([ev(digest, event_id="x", quality=1)])) == ["accepted"]


def test_variant_comes_from_the_event_or_else_from_the_release(world):
    stable = world.promote(ref="HEAD~1")
    canary = world.promote(ref="HEAD", canary_bp=1000)
    old = world.library.get("greet", "HEAD~2").digest
    world.promote(ref="HEAD~2", env="development")  # released somewhere: a known version
    world.service.ingest(
        [
            ev(stable, event_id="s"),
            ev(canary, event_id="c"),
            ev(stable, event_id="told", variant="canary"),
            ev(old, event_id="late"),  # a late event of a version no longer served
        ]
    )
    variants = {e.event_id: e.variant for e in world.events()}
    assert variants == {"s": "stable", "c": "canary", "told": "canary", "late": "stable"}
    summary = world.service.summary("greet", "staging")
    assert [(v.label, v.variant, v.count) for v in summary.versions] == [
        ("v3", "canary", 1),
        ("v2", "stable", 1),
        ("v2", "canary", 1),
        ("v1", "stable", 1),
    ]


def test_cost_is_derived_from_tokens_with_the_price_table(world):
    greet = world.promote()
    summarize = world.promote("summarize")
    world.service.ingest(
        [
            ev(greet, event_id="derived", input_tokens=1000, output_tokens=500),
            ev(greet, event_id="input-only", input_tokens=2000),
            ev(greet, event_id="given", input_tokens=1000, output_tokens=500, cost_usd=0.5),
            ev(greet, event_id="own-model", input_tokens=1000, model="unpriced"),
            ev(summarize, event_id="no-price", prompt="summarize", input_tokens=1000),
            ev(greet, event_id="no-tokens"),
        ]
    )
    cost = {e.event_id: e.cost_usd for e in world.events()}
    model = {e.event_id: e.model for e in world.events()}
    assert cost["derived"] == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert cost["input-only"] == pytest.approx(2000 * 0.15 / 1e6)
    assert cost["given"] == 0.5
    assert cost["own-model"] is None
    assert cost["no-price"] is None
    assert cost["no-tokens"] is None
    assert model["derived"] == "gpt-4o-mini"
    assert model["own-model"] == "unpriced"
    (version,) = world.service.summary("greet", "staging").versions
    assert version.cost_count == 3
    assert version.cost_mean == pytest.approx((0.00045 + 0.0003 + 0.5) / 3)
    assert version.input_tokens_count == 4


def test_a_version_released_elsewhere_prices_from_its_snapshot(world):
    world.promote(ref="HEAD")
    old = world.promote(ref="HEAD~2", env="development")
    world.service._versions.clear()  # a fresh process: known from the snapshot only
    result = world.service.ingest([ev(old, event_id="old", input_tokens=1000)])
    assert statuses(result) == ["accepted"]
    assert world.events()[0].cost_usd == pytest.approx(0.00015)


def test_stored_events_read_back_exactly(world):
    digest = world.promote()
    world.service.ingest(
        [
            ev(
                digest,
                event_id="full",
                ts="2026-11-23T11:58:30.250+00:00",
                input_tokens=10,
                output_tokens=20,
                quality=0.75,
                error=True,
                attributes={"tenant": "acme", "tags": ["a", "é", "nul\x00"]},
            ),
            ev(digest, event_id="bare"),
        ]
    )
    full, bare = sorted(world.events(), key=lambda e: e.event_id != "full")
    assert full.ts.replace(tzinfo=UTC) == datetime(2026, 11, 23, 11, 58, 30, 250000, tzinfo=UTC)
    assert full.attributes == {"tenant": "acme", "tags": ["a", "é", "nul\x00"]}
    assert (full.input_tokens, full.output_tokens, full.quality, full.error) == (10, 20, 0.75, True)
    assert full.received_at.replace(tzinfo=UTC) == NOW
    assert full.scored_at is None
    assert bare.attributes is None
    assert bare.error is False
    assert bare.quality is None


def test_summary_figures_agree_with_the_raw_events(world):
    stable = world.promote(ref="HEAD~1")
    canary = world.promote(ref="HEAD", canary_bp=2000)
    rng = random.Random(11)
    start = NOW - timedelta(hours=3)
    raw = []
    for i in range(2_000):
        at = start + timedelta(seconds=rng.uniform(0, 3 * 3600))
        raw.append(
            ev(
                canary if rng.random() < 0.25 else stable,
                ts=at.isoformat(),
                latency_ms=rng.lognormvariate(6, 0.7),
                input_tokens=rng.randint(100, 900),
                output_tokens=rng.randint(10, 300),
                error=rng.random() < 0.05,
                quality=round(rng.random(), 3) if i % 3 == 0 else None,
            )
        )
    for chunk in range(0, len(raw), 500):
        assert world.service.ingest(raw[chunk : chunk + 500]).accepted == 500
    since, until = NOW - timedelta(minutes=150), NOW - timedelta(minutes=20)  # 09:30..11:40
    summary = world.service.summary("greet", "staging", since=since, until=until)
    assert (summary.since, summary.until) == (since, until)
    assert {(v.digest, v.variant) for v in summary.versions} == {
        (stable, "stable"),
        (canary, "canary"),
    }
    for version in summary.versions:
        mine = [
            e
            for e in raw
            if e["digest"] == version.digest and since <= datetime.fromisoformat(e["ts"]) < until
        ]
        # Latency is successful calls' only: failed calls are counted apart.
        latencies = [e["latency_ms"] for e in mine if not e["error"]]
        qualities = [e["quality"] for e in mine if e.get("quality") is not None]
        assert version.count == len(mine)
        assert version.errors == sum(e["error"] for e in mine) > 0
        assert version.latency_count == len(latencies)
        assert version.latency_mean == pytest.approx(statistics.fmean(latencies))
        assert version.latency_min == min(latencies)
        assert version.latency_max == max(latencies)
        for q, got in ((0.5, version.latency_p50), (0.95, version.latency_p95),
                       (0.99, version.latency_p99)):  # fmt: skip
            assert got == pytest.approx(exact_quantile(latencies, q), rel=0.02)
        assert version.input_tokens_mean == pytest.approx(
            statistics.fmean(e["input_tokens"] for e in mine)
        )
        assert version.output_tokens_mean == pytest.approx(
            statistics.fmean(e["output_tokens"] for e in mine)
        )
        cost = [(e["input_tokens"] * 0.15 + e["output_tokens"] * 0.6) / 1e6 for e in mine]
        assert version.cost_mean == pytest.approx(statistics.fmean(cost))
        assert version.cost_total == pytest.approx(sum(cost))
        assert version.quality_count == len(qualities)
        half = (
            t_critical_95(len(qualities) - 1)
            * statistics.stdev(qualities)
            / math.sqrt(len(qualities))
        )
        assert version.quality_mean == pytest.approx(statistics.fmean(qualities))
        assert version.quality_low == pytest.approx(statistics.fmean(qualities) - half)
        assert version.quality_high == pytest.approx(statistics.fmean(qualities) + half)


def test_hour_rollups_hold_the_sum_of_their_minutes(world):
    digest = world.promote()
    rng = random.Random(5)
    batch = [
        ev(digest, ts=(NOW - timedelta(seconds=rng.uniform(0, 7200))).isoformat(),
           latency_ms=rng.uniform(1, 500), quality=rng.random())
        for _ in range(600)
    ]  # fmt: skip
    world.service.ingest(batch[:300])
    world.service.ingest(batch[300:])
    rows = world.events(MetricRollup)
    hours = {r.period_start.replace(tzinfo=UTC): r for r in rows if r.period_seconds == 3600}
    assert len(hours) == 2
    for start, hour in hours.items():
        minutes = [
            r
            for r in rows
            if r.period_seconds == 60
            and start <= r.period_start.replace(tzinfo=UTC) < start + timedelta(hours=1)
        ]
        merged = Aggregate()
        for row in minutes:
            merged.merge_row(row)
        assert merged.count == hour.count
        assert merged.values()["latency_histogram"] == hour.latency_histogram
        assert merged.quality_sum == pytest.approx(hour.quality_sum)
        assert merged.latency_min == hour.latency_min
    assert sum(h.count for h in hours.values()) == 600


def test_the_window_counts_whole_minutes_from_hour_and_minute_rollups(world):
    digest = world.promote()
    at = [
        "2026-11-23T08:59:59Z",  # before
        "2026-11-23T09:00:00Z",  # first minute in
        "2026-11-23T09:30:10Z",
        "2026-11-23T10:15:00Z",  # a whole hour, read from its hour row
        "2026-11-23T11:04:59Z",  # last minute in
        "2026-11-23T11:05:00Z",  # after
    ]
    world.service.ingest([ev(digest, ts=t) for t in at])
    summary = world.service.summary(
        "greet",
        "staging",
        since=datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC),  # rounded down to 09:00
        until=datetime(2026, 11, 23, 11, 4, 1, tzinfo=UTC),  # rounded up to 11:05
    )
    assert summary.since == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert summary.until == datetime(2026, 11, 23, 11, 5, tzinfo=UTC)
    assert summary.versions[0].count == 4
    narrow = world.service.summary(
        "greet",
        "staging",
        since=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
        until=datetime(2026, 11, 23, 9, 31, tzinfo=UTC),
    )
    assert narrow.versions[0].count == 1


def test_default_window_is_the_last_seven_days(world):
    digest = world.promote()
    world.service.ingest(
        [
            ev(digest, ts=(NOW - timedelta(days=6)).isoformat()),
            ev(digest, ts=(NOW - timedelta(days=8)).isoformat()),
        ]
    )
    summary = world.service.summary("greet", "staging")
    assert summary.until == NOW + timedelta(minutes=1)  # the minute under way
    assert summary.since == NOW - timedelta(days=7)
    assert summary.versions[0].count == 1


def test_summary_refuses_an_empty_window_unknown_environment_and_unreleased_prompt(world):
    world.promote()
    with pytest.raises(UsageError, match="window is empty"):
        world.service.summary("greet", "staging", since=NOW, until=NOW - timedelta(hours=1))
    with pytest.raises(EnvironmentNotFound):
        world.service.summary("greet", "qa")
    with pytest.raises(NeverReleased, match="'nope' has never been released"):
        world.service.summary("nope", "staging")
    assert world.service.summary("greet", "production").versions == []


def test_a_score_attaches_quality_once(world):
    digest = world.promote()
    world.service.ingest(
        [ev(digest, event_id="a"), ev(digest, event_id="b"), ev(digest, event_id="q", quality=0.1)]
    )
    result = world.service.score(
        [
            {"event_id": "a", "quality": 0.9},
            {"event_id": "b", "quality": 0.5},
            {"event_id": "a", "quality": 0.1},
            {"event_id": "q", "quality": 0.8},
            {"event_id": "missing", "quality": 0.5},
            {"event_id": "b", "quality": 7},
            {"event_id": "c"},
        ]
    )
    assert statuses(result) == [
        "accepted", "accepted", "duplicate", "duplicate", "rejected", "rejected", "rejected"
    ]  # fmt: skip
    assert result.results[3]["reason"] == "the event already has a quality score"
    assert result.results[4]["reason"] == "unknown event_id: no event with this id is stored"
    assert "quality must be a number in [0, 1]" in result.results[5]["reason"]
    assert result.results[6]["reason"] == "missing field 'quality'"
    again = world.service.score([{"event_id": "a", "quality": 0.2}])
    assert statuses(again) == ["duplicate"]
    scored = {e.event_id: (e.quality, e.scored_at is not None) for e in world.events()}
    assert scored == {"a": (0.9, True), "b": (0.5, True), "q": (0.1, False)}
    (version,) = world.service.summary("greet", "staging").versions
    assert version.quality_count == 3
    assert version.quality_mean == pytest.approx(0.5)
    hours = [r for r in world.events(MetricRollup) if r.period_seconds == 3600]
    assert hours[0].quality_sumsq == pytest.approx(0.81 + 0.25 + 0.01)


def test_the_authorizer_rejects_events_of_environments_it_refuses(world):
    digest = world.promote()
    world.promote(env="development")
    result = world.service.ingest(
        [ev(digest), ev(digest, env="development")],
        authorize=lambda env: None if env == "development" else f"not allowed in {env}",
    )
    assert statuses(result) == ["rejected", "accepted"]
    assert result.results[0]["reason"] == "not allowed in staging"
    scored = world.service.score(
        [{"event_id": result.results[1]["event_id"], "quality": 1}],
        authorize=lambda env: "no",
    )
    assert statuses(scored) == ["rejected"]


def test_a_batch_over_the_limit_is_refused_whole(world):
    digest = world.promote()
    service = MetricsService(world.db, cache=world.cache, max_batch=3)
    with pytest.raises(BatchTooLarge, match="4 items, over the limit of 3"):
        service.ingest([ev(digest) for _ in range(4)])
    with pytest.raises(BatchTooLarge):
        service.score([{"event_id": "a", "quality": 1}] * 4)
    assert world.count() == 0


def test_a_release_made_by_another_process_is_seen_at_ingest(world):
    world.promote()
    other = ReleaseService(world.db)  # as another replica or the CLI would
    other.promote(world.library.get("summarize", "HEAD"), "staging", actor="cli")
    digest = world.library.get("summarize", "HEAD").digest
    result = world.service.ingest([ev(digest, prompt="summarize")])
    assert statuses(result) == ["accepted"]


def test_concurrent_batches_on_the_same_rollups_lose_nothing(world):
    digest = world.promote()
    ids = [f"e{i}" for i in range(400)]
    errors: list[BaseException] = []

    def send(offset: int) -> None:
        try:
            for start in range(offset, 400, 100):
                # Overlapping batches: each id is sent by two threads.
                chunk = ids[start : start + 100] + ids[(start + 50) % 400 : (start + 50) % 400 + 50]
                world.service.ingest([ev(digest, event_id=i, latency_ms=10) for i in chunk])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert world.count() == 400
    (version,) = world.service.summary("greet", "staging").versions
    assert version.count == 400
    assert version.latency_mean == pytest.approx(10)


def test_metrics_tables_agree_with_the_migration(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # PostgreSQL's daily events partitions are the server's, not models.
                "include_name": lambda name, kind, _: not (
                    kind == "table" and is_event_partition(name)
                ),
            },
        )
        diffs = compare_metadata(context, Base.metadata)
    ours = [d for d in diffs if "metric_" in repr(d)]
    assert ours == []


def test_buckets_bound_the_relative_error():
    for value in (0.001, 0.5, 1.0, 3.7, 812.0, 65_000.0):
        estimate = m.bucket_value(m.bucket_of(value))
        assert abs(estimate - value) / value <= m.RELATIVE_ACCURACY + 1e-12
