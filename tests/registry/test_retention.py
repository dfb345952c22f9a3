"""Metric retention on SQLite and PostgreSQL: what a prune deletes, that summaries and the
canary analysis agree before and after it, a prune stopped midway, a live canary's window,
and pruning while ingest runs."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from promptctl.registry.analysis.stored import analyze_canary
from promptctl.registry.metrics import MetricsService
from promptctl.registry.metrics.partitions import existing_partitions
from promptctl.registry.metrics.retention import Retention, prune
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.releases.serving import ServingCache
from promptctl.registry.settings import Settings
from promptctl.registry.store.database import Database, downgrade, make_engine, upgrade
from promptctl.registry.store.models import MetricEvent, MetricRollup, MetricWatermark

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SHORT = Retention(events=timedelta(days=3), minute_rollups=timedelta(days=5), batch=50)


def prompt_file(number: int) -> str:
    return f"---\nmodel: gpt-4o-mini\n---\nHello, greeting {number}.\n"


@pytest.fixture
def library(git_repo, make_library) -> PromptLibrary:
    git_repo.commit("greet", {"prompts/greet.prompt": prompt_file(1)})
    git_repo.commit("greet 2", {"prompts/greet.prompt": prompt_file(2)})
    return make_library(git_repo)


@pytest.fixture
def database(migrated_database_url: str) -> Iterator[Database]:
    db = Database(migrated_database_url)
    yield db
    db.dispose()


def events_cutoff(world: World, cutoff: datetime) -> datetime:
    """SQLite deletes events up to the cutoff; PostgreSQL drops whole days before it."""
    if world.db.dialect == "sqlite":
        return cutoff
    return cutoff.replace(hour=0, minute=0, second=0, microsecond=0)


class World:
    """A stable greet v1 and a canary v2 in staging, and ingest with a settable clock."""

    def __init__(self, database: Database, library: PromptLibrary) -> None:
        self.db = database
        releases = ReleaseService(database)
        cache = ServingCache(releases)
        cache.load_all()
        self.stable = library.get("greet", "HEAD~1")
        self.canary = library.get("greet", "HEAD")
        releases.promote(self.stable, "staging", actor="test", confirmed=True)
        releases.promote(self.canary, "staging", actor="test", confirmed=True, canary_bp=3000)
        cache.refresh_release("greet", "staging")
        self.clock = NOW.timestamp()
        self.service = MetricsService(
            database, cache=cache, clock=lambda: self.clock, event_retention=timedelta(days=7)
        )

    def event(self, at: datetime, rng: random.Random, **changes) -> dict:
        canary = rng.random() < 0.3
        return {
            "event_id": uuid.uuid4().hex,
            "prompt": "greet",
            "env": "staging",
            "digest": (self.canary if canary else self.stable).digest,
            "ts": at.isoformat(),
            "latency_ms": rng.lognormvariate(5, 0.7),
            "error": rng.random() < 0.05,
            "input_tokens": rng.randint(10, 500),
            "quality": rng.random() if rng.random() < 0.3 else None,
            **changes,
        }

    def fill(self, days: int, per_day: int, seed: int = 1) -> int:
        """Ingest `per_day` events a day for `days` days up to NOW, each day at its time."""
        rng = random.Random(seed)
        accepted = 0
        for day in range(days, 0, -1):
            self.clock = (NOW - (day - 1) * DAY).timestamp()
            batch = [
                self.event(NOW - day * DAY + timedelta(seconds=rng.uniform(0, 86_399)), rng)
                for _ in range(per_day)
            ]
            batch = [{k: v for k, v in e.items() if v is not None} for e in batch]
            accepted += self.service.ingest(batch).accepted
        self.clock = NOW.timestamp()
        return accepted

    def count(self, model, *where) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))

    def hour_calls(self) -> int:
        with self.db.session() as session:
            return session.scalar(
                select(func.sum(MetricRollup.count)).where(MetricRollup.period_seconds == 3600)
            )

    def summary(self, since: datetime, until: datetime = NOW) -> list[dict]:
        result = self.service.summary("greet", "staging", since=since, until=until)
        return [v.to_json() for v in result.versions]


@pytest.fixture
def world(database, library) -> World:
    return World(database, library)


def test_a_prune_deletes_what_is_past_retention_and_summaries_agree_before_and_after(world):
    accepted = world.fill(days=8, per_day=120)
    windows = [
        (NOW - 8 * DAY, NOW),  # over the minute horizon: read from hour rows after
        (NOW - 4 * DAY + timedelta(minutes=17), NOW - timedelta(hours=2, minutes=5)),
        (NOW - 7 * DAY, NOW - 6 * DAY),  # wholly before it
    ]
    before = [world.summary(*w) for w in windows]
    calls_before = world.hour_calls()

    report = prune(world.db, SHORT, now=NOW)

    assert report.complete
    assert not report.warnings
    events, minutes, hours = report.kinds
    assert events.cutoff == events_cutoff(world, NOW - 3 * DAY)
    assert minutes.cutoff == NOW - 5 * DAY  # a whole hour already
    assert events.rows > 0
    assert minutes.rows > 0
    assert hours.rows == 0
    assert world.count(MetricEvent, MetricEvent.ts < events.cutoff) == 0
    assert world.count(MetricEvent) == accepted - events.rows
    if world.db.dialect == "postgresql":  # whole days dropped, the cutoff's day kept
        assert events.partitions == tuple(f"metric_events_p202611{d}" for d in range(15, 20))
    assert (
        world.count(
            MetricRollup,
            MetricRollup.period_seconds == 60,
            MetricRollup.period_start < NOW - 5 * DAY,
        )
        == 0
    )
    assert world.hour_calls() == calls_before == accepted
    assert [world.summary(*w) for w in windows] == before


def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing(world):
    world.fill(days=7, per_day=60)
    rows = world.count(MetricEvent) + world.count(MetricRollup)

    dry = prune(world.db, SHORT, now=NOW, dry_run=True)

    assert world.count(MetricEvent) + world.count(MetricRollup) == rows
    assert world.count(MetricWatermark) == 0
    done = prune(world.db, SHORT, now=NOW)
    assert [(k.kind, k.rows, k.cutoff) for k in dry.kinds] == [
        (k.kind, k.rows, k.cutoff) for k in done.kinds
    ]


def test_a_prune_stopped_midway_leaves_readers_whole_and_the_next_one_finishes(world):
    world.fill(days=8, per_day=120)
    window = (NOW - 8 * DAY, NOW)
    before = world.summary(*window)
    batches = iter([True, True])  # two batches of 50, then stop: in the middle of events
    first_two_days = world.count(MetricEvent, MetricEvent.ts < datetime(2026, 11, 17, tzinfo=UTC))

    stopped = prune(world.db, SHORT, now=NOW, keep_going=lambda: next(batches, False))

    assert not stopped.complete
    assert [k.kind for k in stopped.kinds] == ["events"]
    # Two batches of 50 rows on SQLite, two whole days on PostgreSQL.
    assert stopped.kinds[0].rows == (100 if world.db.dialect == "sqlite" else first_two_days)
    assert world.summary(*window) == before
    finished = prune(world.db, SHORT, now=NOW)
    assert finished.complete
    assert world.count(MetricEvent, MetricEvent.ts < finished.kinds[0].cutoff) == 0
    assert world.summary(*window) == before


def test_summary_and_canary_analysis_agree_across_the_minute_horizon(world):
    world.fill(days=8, per_day=120)
    prune(world.db, SHORT, now=NOW)
    since = NOW - 6 * DAY - timedelta(minutes=23)  # before the minute rows kept

    report = analyze_canary(world.db, "greet", "staging", since=since, now=NOW)
    summary = world.service.summary("greet", "staging", since=since)

    assert report.since == summary.since == NOW - 6 * DAY - timedelta(hours=1)
    calls = {v.variant: v.count for v in summary.versions}
    assert (report.stable_calls, report.canary_calls) == (calls["stable"], calls["canary"])
    assert any("past their retention" in note for note in report.notes)


def test_events_older_than_their_retention_are_refused_at_ingest(world):
    rng = random.Random(3)
    old = world.event(NOW - 8 * DAY, rng, quality=None)
    fresh = world.event(NOW - 6 * DAY, rng, quality=None)

    result = world.service.ingest([old, fresh])

    assert [r["status"] for r in result.results] == ["rejected", "accepted"]
    assert "older than the 7 days events are kept" in result.results[0]["reason"]
    assert "PROMPTCTL_RETENTION_EVENTS" in result.results[0]["reason"]


def test_a_retention_shorter_than_a_live_canarys_window_is_stretched_with_a_warning(world):
    # The canary's step started when the test promoted it (the real clock): prune as if
    # twenty days later with rollups kept two and three days.
    started = datetime.now(UTC)
    later = started + 20 * DAY
    retention = Retention(events=DAY, minute_rollups=2 * DAY, hour_rollups=3 * DAY, batch=50)

    report = prune(world.db, retention, now=later)

    events, minutes, hours = report.kinds
    start_hour = started.replace(minute=0, second=0, microsecond=0)
    assert (minutes.cutoff, minutes.stretched) == (start_hour, True)
    assert (hours.cutoff, hours.stretched) == (start_hour, True)
    assert not events.stretched
    assert len(report.warnings) == 2
    assert "canary of 'greet' in staging" in report.warnings[0]
    assert "PROMPTCTL_RETENTION_MINUTE_ROLLUPS (2 days)" in report.warnings[0]


def test_pruning_while_ingest_runs_loses_and_double_counts_nothing(world):
    # Events of the last two hours; minute rows older than an hour are pruned meanwhile.
    retention = Retention(events=timedelta(hours=3), minute_rollups=timedelta(hours=1), batch=20)
    world.service.event_retention = timedelta(hours=3)
    errors: list[BaseException] = []
    sent: list[list[dict]] = []
    done = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(12):
                batch = [
                    world.event(NOW - timedelta(seconds=rng.uniform(0, 7200)), rng, quality=None)
                    for _ in range(40)
                ]
                world.service.ingest(batch)
                world.service.ingest(batch[:15])  # a retry of part of it: duplicates
                sent.append(batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def pruner() -> None:
        try:
            while not done.is_set():
                prune(world.db, retention, now=NOW)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(3)]
    cleaner = threading.Thread(target=pruner)
    cleaner.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    cleaner.join()
    prune(world.db, retention, now=NOW)

    assert errors == []
    ids = {e["event_id"] for batch in sent for e in batch}
    assert world.count(MetricEvent) == len(ids) == 3 * 12 * 40
    assert world.hour_calls() == len(ids)
    kept_from = NOW - timedelta(hours=1)
    recent = [e for batch in sent for e in batch if datetime.fromisoformat(e["ts"]) >= kept_from]
    assert world.summary(kept_from)[0]["count"] + world.summary(kept_from)[1]["count"] == len(
        recent
    )
    assert (
        world.count(
            MetricRollup, MetricRollup.period_seconds == 60, MetricRollup.period_start < kept_from
        )
        == 0
    )


def test_the_migration_moves_stored_events_into_daily_partitions_and_back(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0009")
    rows = [{"event_id": f"e{n}", "ts": NOW - n * timedelta(hours=20), "at": NOW} for n in range(6)]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO metric_events (event_id, prompt, environment, digest, variant, "
                "ts, latency_ms, error, received_at) VALUES (:event_id, 'greet', 'staging', "
                "'d', 'stable', :ts, 1.5, false, :at)"
            ),
            rows,
        )

    upgrade(engine)

    with engine.connect() as connection:
        stored = connection.execute(text("SELECT event_id, ts FROM metric_events")).all()
        assert sorted(r[0] for r in stored) == [f"e{n}" for n in range(6)]
        if engine.dialect.name == "postgresql":
            days = existing_partitions(connection)
            for n in range(6):
                assert (NOW - n * timedelta(hours=20)).date() in days
    downgrade(engine, "0009")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM metric_events")).scalar() == 6
    engine.dispose()


def test_retention_settings_read_durations_and_hour_rollups_must_outlive_minute_ones():
    settings = Settings(retention_events="36h", retention_minute_rollups="2w")
    assert settings.retention_events == timedelta(hours=36)
    assert settings.retention_minute_rollups == timedelta(days=14)
    assert Settings(retention_events=3).retention_events == timedelta(days=3)
    with pytest.raises(ValueError, match="HOUR_ROLLUPS .1 day. must be at least"):
        Settings(retention_hour_rollups="1d")
    with pytest.raises(ValueError, match="'soon' is not a duration"):
        Settings(retention_events="soon")


def test_a_retry_is_a_duplicate_with_or_without_ts_whatever_day_it_lands_in(world):
    rng = random.Random(5)
    with_ts = world.event(NOW - timedelta(minutes=3), rng, quality=None)
    without_ts = {k: v for k, v in world.event(NOW, rng, quality=None).items() if k != "ts"}
    assert world.service.ingest([with_ts, without_ts]).accepted == 2

    world.clock = (NOW + DAY + timedelta(hours=1)).timestamp()  # the next day's partition
    again = world.service.ingest([with_ts, without_ts])

    assert [r["status"] for r in again.results] == ["duplicate", "duplicate"]
    assert world.count(MetricEvent) == 2
    assert world.hour_calls() == 2
