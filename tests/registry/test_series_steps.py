"""Metric series (registry.metrics.series) on SQLite and PostgreSQL: the database sums the
rollup rows of each step, and every point says what merging those rows one by one in
Python says, quantiles of the merged histograms included; rows written before squares and
successful calls' latency were kept leave those figures unknown in their step only."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.merge import merge_rollups
from promptctl.registry.metrics.series import SeriesPoint, read_series
from promptctl.registry.metrics.storage import HOUR, MINUTE, RollupKey, epoch
from promptctl.registry.metrics.summary import VersionMetrics
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import MetricRollup

END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STABLE, CANARY = "a" * 64, "b" * 64
UNRECORDED = dict.fromkeys(
    (
        "input_tokens_sumsq",
        "output_tokens_sumsq",
        "cost_sumsq",
        "success_latency_sum",
        "success_latency_min",
        "success_latency_max",
        "success_latency_histogram",
    )
)


@pytest.fixture
def database(migrated_database_url: str) -> Iterator[Database]:
    db = Database(migrated_database_url)
    yield db
    db.dispose()


def calls(rng: random.Random, size: int) -> Aggregate:
    agg = Aggregate()
    for _ in range(size):
        error = rng.random() < 0.2
        latency = 0.0 if rng.random() < 0.05 else rng.lognormvariate(rng.uniform(3, 7), 1.2)
        tokens = rng.choice([None, rng.randint(0, 900)])
        cost = rng.choice([None, rng.uniform(0, 0.01)])
        quality = rng.choice([None, rng.random()])
        agg.add_event(latency, error, tokens, tokens, cost, quality)
        agg.add_outcome(error, rng.choice([None, True, False]), "stop", None, None, 0.0)
    return agg


def store(database: Database, period: int, start: datetime, end: datetime, seed: int) -> None:
    """Rows for two versions (stable and canary) in about two periods of three."""
    rng = random.Random(seed)
    rows: dict[RollupKey, Aggregate] = {}
    for at in range(epoch(start), epoch(end), period):
        for digest, variant in ((STABLE, "stable"), (CANARY, "canary")):
            if rng.random() < 0.65:
                key = ("greet", "production", period, at, digest, variant)
                rows[key] = calls(rng, rng.randint(1, 25))
    with database.session() as session:
        merge_rollups(session, rows)


def forget_squares_before(database: Database, period: int, before: datetime) -> None:
    """Make rows before `before` look written before migration 0006."""
    with database.session() as session:
        session.execute(
            update(MetricRollup)
            .where(MetricRollup.period_seconds == period, MetricRollup.period_start < before)
            .values(**UNRECORDED)
        )


def merged_in_python(
    database: Database, period: int, low: int, step: int
) -> dict[tuple[str, str], dict[int, Aggregate]]:
    """The rows of each step merged one by one, reading what a series reads."""
    found: dict[tuple[str, str], dict[int, Aggregate]] = {}
    with database.session() as session:
        for row in session.scalars(
            select(MetricRollup).where(MetricRollup.period_seconds == period)
        ):
            at = low + (epoch(row.period_start) - low) // step * step
            per = found.setdefault((row.digest, row.variant), {})
            figures = {c.name: getattr(row, c.name) for c in MetricRollup.__table__.c}
            skipped = dict.fromkeys(("latency_histogram", "error_types", "failing_traces"))
            per.setdefault(at, Aggregate()).merge_row(SimpleNamespace(**{**figures, **skipped}))
    return found


def assert_close(actual: Any, expected: Any, where: str) -> None:
    """Equal, floats to 1e-9 (the database may add a step's figures in another order)."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9), where
    else:
        assert actual == expected, where


@pytest.mark.parametrize(
    ("period", "window", "step"),
    [
        pytest.param(HOUR, timedelta(days=30), 6 * HOUR, id="30 days of hour rows, 6-hour steps"),
        pytest.param(HOUR, timedelta(days=7), 2 * HOUR, id="7 days of hour rows, 2-hour steps"),
        pytest.param(MINUTE, timedelta(hours=24), 900, id="a day of minute rows, 15 minutes"),
        pytest.param(MINUTE, timedelta(hours=1), MINUTE, id="an hour, one minute row a step"),
    ],
)
def test_each_step_holds_what_merging_its_rows_holds(database, period, window, step):
    start = END - window
    store(database, period, start, END, seed=step)
    # The oldest third of the rows predate squares and successful calls' latency.
    forget_squares_before(database, period, start + window / 3)
    found = read_series(database, "greet", "production", start=start, end=END, step=step)

    low = epoch(found.start)
    expected = merged_in_python(database, period, low, step)
    assert found.step_seconds == step
    assert {(s.digest, s.variant) for s in found.series} == set(expected)
    for s in found.series:
        per = expected[(s.digest, s.variant)]
        assert [epoch(p.start) for p in s.points] == sorted(per)
        for point in s.points:
            want = SeriesPoint.of(epoch(point.start), per[epoch(point.start)])
            assert_close(point.to_json(), want.to_json(), f"{s.variant} {point.start}")
        total = Aggregate()
        for agg in per.values():
            total.merge(agg)
        want_total = VersionMetrics.from_aggregate(s.digest, None, s.variant, total)
        assert_close(s.total.to_json(), want_total.to_json(), f"{s.variant} total")
    if period == HOUR:
        # Steps before the cut have no recorded latency; after it they do.
        points = found.series[0].points
        assert points[0].latency_p50 is None
        assert points[-1].latency_p50 is not None
        assert found.series[0].total.to_json()["latency_ms"]["p99"] is not None
