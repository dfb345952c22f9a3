"""The rollup upsert (registry.metrics.merge), on SQLite and PostgreSQL: a row written in
several batches holds exactly what merging those batches in Python holds, every figure
and every JSON column included."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from promptctl.registry.metrics.aggregate import ERROR_TYPES_MAX, TRACES_MAX, Aggregate
from promptctl.registry.metrics.merge import merge_rollups
from promptctl.registry.metrics.storage import HOUR, MINUTE, RollupKey, epoch
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import MetricRollup

START = epoch(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
KEY: RollupKey = ("greet", "staging", MINUTE, START, "a" * 64, "stable")
FIGURES = [c.name for c in MetricRollup.__table__.c if c.name not in ("id", "updated_at")]


@pytest.fixture
def database(migrated_database_url: str) -> Iterator[Database]:
    db = Database(migrated_database_url)
    yield db
    db.dispose()


def batch(rng: random.Random, size: int, types: list[str], at: float) -> Aggregate:
    """An aggregate of `size` random calls, failing ones with a type from `types`."""
    agg = Aggregate()
    for n in range(size):
        error = rng.random() < 0.4
        latency = 0.0 if rng.random() < 0.05 else rng.lognormvariate(rng.uniform(1, 9), 1.5)
        tokens = rng.choice([None, rng.randint(0, 900)])
        cost = rng.choice([None, rng.uniform(0, 0.01)])
        quality = rng.choice([None, rng.random()])
        agg.add_event(latency, error, tokens, tokens, cost, quality)
        error_type = rng.choice(types) if error and types else None
        finish = rng.choice([None, "stop", "length"])
        valid = rng.choice([None, True, False])
        trace = f"trace-{rng.randint(0, 12)}" if rng.random() < 0.5 else None
        agg.add_outcome(error, valid, finish, error_type, trace, at + n)
    return agg


def merged_in_python(stored: dict[str, Any] | None, more: Aggregate) -> dict[str, Any]:
    """What a stored row plus a batch's row holds, by `Aggregate.merge_row`."""
    if stored is None:
        return more.values()
    merged = Aggregate()
    merged.merge_row(SimpleNamespace(**stored))
    merged.merge_row(SimpleNamespace(**more.values()))
    return merged.values()


def stored(database: Database, key: RollupKey = KEY) -> dict[str, Any]:
    with database.session() as session:
        row = session.scalars(
            select(MetricRollup).where(
                MetricRollup.period_seconds == key[2], MetricRollup.digest == key[4]
            )
        ).one()
        return {name: getattr(row, name) for name in FIGURES if name not in _KEY_NAMES}


_KEY_NAMES = ("prompt", "environment", "period_seconds", "period_start", "digest", "variant")


def merge(database: Database, aggregates: dict[RollupKey, Aggregate]) -> None:
    with database.session() as session:
        merge_rollups(session, aggregates)


def assert_same(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert row.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, float):
            assert row[name] == pytest.approx(value, rel=1e-12), name
        else:
            assert row[name] == value, name


def test_batches_merge_into_a_row_as_python_merges_them(database):
    rng = random.Random(7)
    # 30 error types in all: past the cap of 20 only once the batches add up, with ties.
    names = [f"type-{i:02d}" for i in range(30)]
    expected = None
    for b in range(8):
        types = names[b * 4 : b * 4 + 9] if b < 7 else ["other", "type-00"]
        agg = batch(rng, rng.randint(1, 60), types, START + b)
        merge(database, {KEY: agg})
        expected = merged_in_python(expected, agg)
        assert_same(stored(database), expected)
    row = stored(database)
    assert len(row["error_types"]) == ERROR_TYPES_MAX + 1
    assert len(row["failing_traces"]) == TRACES_MAX


def test_histograms_with_gaps_and_without_buckets_merge_densely(database):
    expected = None
    for latencies in ([0.0], [5000.0], [0.0, 0.001], [3.0, 3.0, 40_000.0], [0.0]):
        agg = Aggregate()
        for latency in latencies:
            agg.add_event(latency, latency > 1000, None, None, None, None)
        merge(database, {KEY: agg})
        expected = merged_in_python(expected, agg)
        assert_same(stored(database), expected)


def test_a_row_written_before_squares_and_successful_latency_stays_unknown(database):
    rng = random.Random(3)
    first = batch(rng, 20, ["timeout"], START)
    merge(database, {KEY: first})
    old = dict.fromkeys(
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
    with database.session() as session:
        session.execute(update(MetricRollup).values(**old))
    more = batch(rng, 20, ["timeout"], START + 30)
    merge(database, {KEY: more})
    row = stored(database)
    assert_same(row, merged_in_python({**first.values(), **old}, more))
    assert all(row[name] is None for name in old)


def test_a_score_only_aggregate_adds_quality_and_nothing_else(database):
    rng = random.Random(11)
    calls = batch(rng, 30, ["timeout"], START)
    merge(database, {KEY: calls})
    scores = Aggregate()
    for _ in range(4):
        scores.add_quality(rng.random())
    merge(database, {KEY: scores})
    assert_same(stored(database), merged_in_python(calls.values(), scores))


def test_minute_and_hour_rows_of_one_batch_go_in_one_call(database):
    rng = random.Random(5)
    hour_key: RollupKey = ("greet", "staging", HOUR, START // HOUR * HOUR, "a" * 64, "stable")
    canary_key: RollupKey = (*KEY[:4], "b" * 64, "canary")
    minute, canary = batch(rng, 10, ["x"], START), batch(rng, 5, ["y"], START)
    hour = Aggregate()
    hour.merge(batch(rng, 10, ["x"], START))
    merge(database, {KEY: minute, hour_key: hour, canary_key: canary})
    merge(database, {KEY: minute, hour_key: hour, canary_key: canary})
    assert_same(stored(database), merged_in_python(minute.values(), minute))
    assert_same(stored(database, hour_key), merged_in_python(hour.values(), hour))
    assert_same(stored(database, canary_key), merged_in_python(canary.values(), canary))


def test_concurrent_merges_into_the_same_rows_add_up(database):
    keys = [(*KEY[:3], START + MINUTE * i, *KEY[4:]) for i in range(5)]
    errors: list[BaseException] = []

    def send(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(10):
                aggs = {}
                for key in rng.sample(keys, 3):
                    aggs[key] = Aggregate()
                    aggs[key].add_event(10.0, False, 1, 1, 0.5, None)
                merge(database, aggs)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        counts = session.scalars(select(MetricRollup.count)).all()
    assert sum(counts) == 4 * 10 * 3
