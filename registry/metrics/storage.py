"""Storage: rollup keys and the aggregation of events into them, the event inserts written
for SQLite and for PostgreSQL, the rollup reads of summaries, and the retry of a
transaction on deadlock or serialisation failure (`retrying`). Adding aggregates into
rollup rows is registry.metrics.merge's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Select, Table, select, text, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.events import Event
from promptctl.registry.store.models import (
    MetricEvent,
    MetricRollup,
    MetricWatermark,
    as_utc,
)

MINUTE, HOUR = 60, 3600
_RETRIED_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_KEY_CHUNK = 200

EVENTS: Table = MetricEvent.__table__
ROLLUPS: Table = MetricRollup.__table__
_KEY_COLUMNS = ("prompt", "environment", "period_seconds", "period_start", "digest", "variant")

# (prompt, environment, period_seconds, period_start as Unix seconds, digest, variant)
RollupKey = tuple[str, str, int, int, str, str]


def epoch(moment: datetime) -> int:
    """Return a time as whole Unix seconds."""
    return int(as_utc(moment).timestamp())


def moment(epoch: int) -> datetime:
    """Return the UTC time of whole Unix seconds."""
    return datetime.fromtimestamp(epoch, UTC)


def aggregate_events(events: Iterable[Event]) -> dict[RollupKey, Aggregate]:
    """Sum events per minute and per hour rollup key."""
    minutes: dict[tuple[str, str, str, str, int], Aggregate] = {}
    for e in events:
        key = (e.prompt, e.env, e.digest, e.variant, int(e.epoch // MINUTE) * MINUTE)
        agg = minutes.get(key)
        if agg is None:
            agg = minutes[key] = Aggregate()
        agg.add_event(e.latency, e.error, e.input_tokens, e.output_tokens, e.cost, e.quality)
        if (
            e.output_valid is not None
            or e.finish_reason is not None
            or e.error_type is not None
            or e.trace_id is not None
        ):
            agg.add_outcome(
                e.error, e.output_valid, e.finish_reason, e.error_type, e.trace_id, e.epoch
            )
    return with_hours(minutes)


def with_hours(minutes: Mapping[tuple[str, str, str, str, int], Aggregate]) -> dict:
    """Key minute aggregates by rollup key, adding the hour rows they sum into."""
    result: dict[RollupKey, Aggregate] = {}
    for (prompt, env, digest, variant, minute), agg in minutes.items():
        result[(prompt, env, MINUTE, minute, digest, variant)] = agg
        hour_key = (prompt, env, HOUR, minute // HOUR * HOUR, digest, variant)
        hour = result.get(hour_key)
        if hour is None:
            hour = result[hour_key] = Aggregate()
        hour.merge(agg)
    return result


# The event insert is the hot path of ingest, so it skips SQLAlchemy's per-row parameter
# processing (about 10 us an event, more than the database's own work): one statement
# whatever the batch size, with the values converted here as the column types would.
_EVENT_COLUMNS = (
    "event_id",
    "prompt",
    "environment",
    "digest",
    "variant",
    "ts",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "model",
    "quality",
    "error",
    "attributes",
    "error_type",
    "output_valid",
    "finish_reason",
    "trace_id",
    "received_at",
)
_SQLITE_INSERT = (
    f"INSERT INTO {EVENTS.name} ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
)
_SQLITE_CHUNK = 500  # ids per `IN (...)`, well below SQLite's limit on parameters


def sqlite_time(moment: datetime) -> str:
    """Return SQLAlchemy's storage format for DateTime on SQLite (UTC, as every time here)."""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_events_sqlite(session: Session, events: list[Event], received: datetime) -> set[str]:
    """Insert with one executemany; return the ids stored.

    Repeated ids are rare (retries), so the insert is tried first inside a savepoint:
    when every row went in, that is the answer. Otherwise the savepoint is rolled back
    and the ids already stored are looked up first; the transaction holds SQLite's write
    lock (BEGIN IMMEDIATE), so they cannot change before the insert.
    """
    connection = session.connection()
    at = sqlite_time(received)
    # A batch's events mostly share a handful of times: each is formatted once.
    times: dict[datetime, str] = {}
    for e in events:
        if e.ts not in times:
            times[e.ts] = sqlite_time(e.ts)
    rows = [
        (
            e.event_id,
            e.prompt,
            e.env,
            e.digest,
            e.variant,
            times[e.ts],
            e.latency,
            e.input_tokens,
            e.output_tokens,
            e.cost,
            e.model,
            e.quality,
            e.error,
            e.attributes,
            e.error_type,
            e.output_valid,
            e.finish_reason,
            e.trace_id,
            at,
        )
        for e in events
    ]
    connection.exec_driver_sql("SAVEPOINT metric_events_insert")
    inserted = connection.exec_driver_sql(_SQLITE_INSERT, rows).rowcount
    if inserted == len(rows):
        connection.exec_driver_sql("RELEASE metric_events_insert")
        return {row[0] for row in rows}
    connection.exec_driver_sql("ROLLBACK TO metric_events_insert")
    connection.exec_driver_sql("RELEASE metric_events_insert")
    existing: set[str] = set()
    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = [row[0] for row in rows[start : start + _SQLITE_CHUNK]]
        marks = ", ".join("?" for _ in chunk)
        found = connection.exec_driver_sql(
            f"SELECT event_id FROM {EVENTS.name} WHERE event_id IN ({marks})", tuple(chunk)
        )
        existing.update(row[0] for row in found)
    rows = [row for row in rows if row[0] not in existing]
    if rows:
        connection.exec_driver_sql(_SQLITE_INSERT, rows)
    return {row[0] for row in rows}


def _postgresql_insert() -> Any:
    """INSERT ... SELECT FROM json_to_recordset(:rows) ON CONFLICT DO NOTHING RETURNING:
    one statement and one text parameter whatever the batch size. PostgreSQL parses the
    JSON far faster than the driver adapts thousands of parameters (or arrays of them).
    `attributes` travels as the text already serialised at validation, and is cast back."""
    dialect = postgresql.dialect()
    types, values = [], []
    for name in _EVENT_COLUMNS:
        if name == "attributes":
            types.append(f"{name} text")
            values.append(f"{name}::json")
        else:
            types.append(f"{name} {EVENTS.c[name].type.compile(dialect=dialect)}")
            values.append(name)
    return text(
        f"INSERT INTO {EVENTS.name} ({', '.join(_EVENT_COLUMNS)}) "
        f"SELECT {', '.join(values)} FROM json_to_recordset(:rows) AS t({', '.join(types)}) "
        "ON CONFLICT (event_id, ts) DO NOTHING RETURNING event_id"
    )


_POSTGRESQL_INSERT = _postgresql_insert()


def insert_events_postgresql(session: Session, events: list[Event], received: datetime) -> set[str]:
    """Insert with one statement (see `_postgresql_insert`); return the ids stored.

    The events table is partitioned by day of ts, its key (event_id, ts): a retry (same
    id, same ts) conflicts in its partition. An event sent without ts got the server's
    clock, different at each delivery, so its id is looked up in every partition first.
    """
    stamped = [e.event_id for e in events if e.stamped]
    if stamped:
        known = set(
            session.execute(
                select(EVENTS.c.event_id).where(EVENTS.c.event_id.in_(stamped))
            ).scalars()
        )
        if known:
            events = [e for e in events if not (e.stamped and e.event_id in known)]
            if not events:
                return set()
    at = received
    rows = [
        {
            "event_id": e.event_id,
            "prompt": e.prompt,
            "environment": e.env,
            "digest": e.digest,
            "variant": e.variant,
            "ts": e.ts,
            "latency_ms": e.latency,
            "input_tokens": e.input_tokens,
            "output_tokens": e.output_tokens,
            "cost_usd": e.cost,
            "model": e.model,
            "quality": e.quality,
            "error": e.error,
            "attributes": e.attributes,
            "error_type": e.error_type,
            "output_valid": e.output_valid,
            "finish_reason": e.finish_reason,
            "trace_id": e.trace_id,
            "received_at": at,
        }
        for e in events
    ]
    # orjson writes the datetimes as RFC 3339 itself, five times faster than json.dumps.
    payload = orjson.dumps(rows).decode()
    return set(session.execute(_POSTGRESQL_INSERT, {"rows": payload}).scalars())


# The rollup columns a summary or an analysis reads (every figure, not the key's time).
_FIGURES = tuple(
    c
    for c in ROLLUPS.c
    if c.name not in ("id", "prompt", "environment", "period_seconds", "period_start", "updated_at")
)


def window_parts(start: int, end: int) -> list[tuple[int, int, int]]:
    """Return the (period seconds, from, to) ranges of rollup rows that cover [start, end).

    Both bounds are whole minutes (Unix seconds). Whole hours come from hour rows, the
    partial hours at either edge from minute rows, so the window is exact to the minute
    and reads at most 118 minute rows whatever its length.
    """
    first_hour = math.ceil(start / HOUR) * HOUR
    last_hour = end // HOUR * HOUR
    if first_hour < last_hour:
        parts = [(MINUTE, start, first_hour), (HOUR, first_hour, last_hour)]
        parts.append((MINUTE, last_hour, end))
    else:
        parts = [(MINUTE, start, end)]
    return [(seconds, low, high) for seconds, low, high in parts if low < high]


def minutes_kept_from(session: Session) -> int | None:
    """Return where minute rollups are kept from (Unix seconds, a whole hour), or None when
    none were ever pruned: the `minute` watermark of registry.metrics.retention."""
    at = session.scalar(
        select(MetricWatermark.pruned_before).where(MetricWatermark.kind == "minute")
    )
    return None if at is None else epoch(at)


def widen(start: int, end: int, minutes_from: int | None) -> tuple[int, int]:
    """Round a window's bounds out to whole hours where they lie before `minutes_from`
    (older minute rows may be pruned: those hours are read from their hour rows)."""
    if minutes_from is None:
        return start, end
    if start < minutes_from:
        start = start // HOUR * HOUR
    if end < minutes_from:
        end = math.ceil(end / HOUR) * HOUR
    return start, end


def rollups_query(
    prompt: str, environment: str, start: int, end: int, *, leave_out: tuple[str, ...] = ()
) -> Select[Any]:
    """Select the rollup rows of a prompt in an environment that cover [start, end).

    Each part is one range scan of the key's index (prompt, environment, period_seconds,
    period_start, ...); rows come with their digest and variant and every figure but
    those named in `leave_out` (the JSON ones are what reading a row costs).
    """
    r = ROLLUPS.c
    figures = [c for c in _FIGURES if c.name not in leave_out]
    return union_all(  # type: ignore[return-value]
        *(
            select(*figures).where(
                r.prompt == prompt,
                r.environment == environment,
                r.period_seconds == seconds,
                r.period_start >= moment(low),
                r.period_start < moment(high),
            )
            for seconds, low, high in window_parts(start, end)
        )
    )


def retrying(work: Callable[[], Any], attempts: int = 3) -> Any:
    """Run a transaction, again when PostgreSQL reports a deadlock or serialisation failure."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in _RETRIED_SQLSTATES or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
