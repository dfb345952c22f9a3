"""PostgreSQL's metric events: one table partitioned by day of the event's `ts` (native
declarative partitioning, migration 0010), a partition `metric_events_pYYYYMMDD` per UTC
day. SQLite keeps one plain table.

Why `ts` and how ids stay unique. A primary key of a partitioned table must hold the
partition key, so it is (event_id, ts). A retried delivery carries the same id *and* the
same ts (the Python client resends an event as it was), so it lands in the same
partition and `ON CONFLICT (event_id, ts) DO NOTHING` finds it there, whatever the
number of partitions. An event sent without `ts` is stamped with the server's clock,
which differs between deliveries: its id is looked up across the partitions kept before
it is stored (`storage.insert_events_postgresql`); two such deliveries *at the same
moment* could both be stored, so clients that retry should send `ts`. Ingest refuses
events older than the raw-event retention, and a partition is dropped only once its
whole day is older than that: an id is checked for as long as a retry can be accepted.

Partitions are created ahead (`AHEAD` days) by every prune, and on demand by ingest for
a day it has not seen (an event a few minutes ahead of midnight, a late one from
yesterday), each in a short transaction of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

TABLE = "metric_events"
AHEAD = 3  # days of partitions created ahead of today
LOCK_KEY = 0x6D65_7472_6963  # "metric": the advisory lock of partition creation
NO_PARTITION = "23514"  # SQLSTATE of a row no partition accepts (check_violation)
_NAME = re.compile(r"metric_events_p(\d{4})(\d{2})(\d{2})")


def partition_name(day: date) -> str:
    """Return the name of the events partition of a UTC day."""
    return f"{TABLE}_p{day:%Y%m%d}"


def is_event_partition(name: str) -> bool:
    """Whether a table name is one of the events' daily partitions (not a model table)."""
    return _NAME.fullmatch(name) is not None


def day_of(seconds: float) -> date:
    """Return the UTC day of Unix seconds."""
    return datetime.fromtimestamp(seconds, UTC).date()


def create_sql(day: date) -> str:
    """The statement that creates a day's partition unless it exists."""
    low = datetime(day.year, day.month, day.day, tzinfo=UTC)
    high = low + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
    )


def ensure_partitions(connection: Connection, days: Iterable[date]) -> None:
    """Create the partitions of these days that do not exist yet."""
    # IF NOT EXISTS is no guard against another transaction creating the same table at
    # the same moment: creators (ingest in every replica, prunes) take turns.
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    for day in sorted(set(days)):
        connection.exec_driver_sql(create_sql(day))


def existing_partitions(connection: Connection) -> dict[date, str]:
    """Return the events partitions that exist: {UTC day: table name}."""
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)"
        ),
        {"table": TABLE},
    )
    found = {}
    for (name,) in rows:
        match = _NAME.fullmatch(name)
        if match is not None:
            found[date(int(match[1]), int(match[2]), int(match[3]))] = name
    return found
