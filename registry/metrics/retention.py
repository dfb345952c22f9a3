"""Retention: how long raw events, minute rollups and hour rollups are kept, and the prune
that applies it (the server's background task and `promptctl db prune`).

How a prune goes, kind by kind (events, then minute rows, then hour rows):

1. The cutoff: now minus the kind's retention; rollups are cut at a whole hour (an hour
   row stands for the minute rows of its hour, so they go or stay together).
2. A retention shorter than the analysis window of a live canary is stretched to that
   window's start (the start of the canary's current weight step, as `analyze` reads
   it), with a warning: the canary's judgement keeps every row it reads.
3. The kind's watermark (`metric_watermarks`) moves to the cutoff in a transaction of its
   own, *before* anything is deleted. Readers read minute rows only from the minute mark
   on and hour rows before it (`storage.minutes_kept_from`), so from the moment the mark
   moves no reader looks at a row about to go. The mark never moves back.
4. Rows below the mark are deleted in batches of `batch` rows, one short transaction
   each; PostgreSQL drops whole daily partitions of events instead of deleting rows.
   A prune stopped midway (or killed) leaves whole batches deleted and the mark already
   where readers expect it; the next prune deletes the rest.

Hour rows need no rolling up before minute rows go: ingest and scores add every event
to its minute row and its hour row in the same transaction (`storage.with_hours`).

Idempotency. A retried delivery counts once as long as its event is stored, so an event
whose `ts` is older than the raw-event retention is refused at ingest (its id could no
longer be checked). An event accepted at time t has ts >= t - retention; its row goes
only once ts < now - retention, and a retry after that is refused too: never counted
twice. The Python client resends an event as it was (same id, same ts), with backoff
capped at 10 s, for as long as the application runs, and spools what it could not send
at exit for the next start; a spooled event replayed more than the retention after its
call is refused (the client counts it rejected), never double counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.orm import Session

from promptctl.registry.errors import DatabaseError
from promptctl.registry.metrics.partitions import (
    AHEAD,
    day_of,
    ensure_partitions,
    existing_partitions,
)
from promptctl.registry.metrics.storage import (
    EVENTS,
    HOUR,
    MINUTE,
    ROLLUPS,
    moment,
    sqlite_time,
)
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import (
    Environment,
    MetricWatermark,
    Release,
    ReleaseLog,
    as_utc,
    utcnow,
)

DEFAULT_BATCH = 5000
DAY = 86_400
LOCK_TIMEOUT = "2s"  # the longest a partition's DROP may hold ingest back
KINDS = ("events", "minute", "hour")
STEP_ACTIONS = ("canary_start", "ramp")  # as registry.analysis.stored reads a step's start
SETTINGS = {
    "events": "PROMPTCTL_RETENTION_EVENTS",
    "minute": "PROMPTCTL_RETENTION_MINUTE_ROLLUPS",
    "hour": "PROMPTCTL_RETENTION_HOUR_ROLLUPS",
}


@dataclass(frozen=True)
class Retention:
    """How long each kind of metric row is kept, and how many rows a prune deletes per
    transaction."""

    events: timedelta = timedelta(days=7)
    minute_rollups: timedelta = timedelta(days=30)
    hour_rollups: timedelta = timedelta(days=400)
    batch: int = DEFAULT_BATCH

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        """Read PROMPTCTL_RETENTION_* from settings."""
        return cls(
            settings.retention_events,
            settings.retention_minute_rollups,
            settings.retention_hour_rollups,
        )

    def of(self, kind: str) -> timedelta:
        return {"events": self.events, "minute": self.minute_rollups}.get(kind, self.hour_rollups)


@dataclass(frozen=True)
class PrunedKind:
    """What a prune did (or, dry, would do) to one kind of metric row."""

    kind: str
    retention: timedelta
    cutoff: datetime  # rows older than this go (the watermark after the prune)
    rows: int  # deleted, or that would be deleted
    partitions: tuple[str, ...] = ()  # PostgreSQL event partitions dropped (or to drop)
    stretched: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "retention_days": self.retention / timedelta(days=1),
            "cutoff": self.cutoff.astimezone(UTC).isoformat(),
            "rows": self.rows,
            "partitions": list(self.partitions),
            "stretched": self.stretched,
        }


@dataclass(frozen=True)
class PruneReport:
    """A prune's outcome: per kind, and the warnings (retentions stretched)."""

    dry_run: bool
    at: datetime
    kinds: tuple[PrunedKind, ...]
    warnings: tuple[str, ...] = ()
    complete: bool = True  # False: stopped before the last batch (the next prune goes on)

    @property
    def rows(self) -> int:
        return sum(k.rows for k in self.kinds)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": self.at.astimezone(UTC).isoformat(),
            "complete": self.complete,
            "kinds": [k.to_json() for k in self.kinds],
            "warnings": list(self.warnings),
        }


@dataclass
class _Plan:
    cutoffs: dict[str, int]  # kind -> Unix seconds
    stretched: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


def prune(
    database: Database,
    retention: Retention,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    keep_going: Callable[[], bool] = lambda: True,
) -> PruneReport:
    """Delete the metric rows older than their retention, in small transactions; with
    `dry_run`, only count them. `keep_going()` is asked between batches."""
    at = as_utc(now) if now is not None else utcnow()
    with database.session() as session:
        plan = _plan(session, retention, at)
        marks = _watermarks(session)
        if database.dialect == "postgresql":
            # Events go a whole day at a time: the partition of the cutoff's day stays.
            plan.cutoffs["events"] = plan.cutoffs["events"] // DAY * DAY
            if not dry_run:
                today = day_of(at.timestamp())
                days = [today + timedelta(days=n) for n in range(-1, AHEAD + 1)]
                ensure_partitions(session.connection(), days)
    kinds: list[PrunedKind] = []
    complete = True
    for kind in KINDS:
        # The mark never moves back: rows below it may be gone already.
        cutoff = max(plan.cutoffs[kind], marks.get(kind, 0))
        if dry_run:
            rows, partitions = _count(database, kind, cutoff)
        else:
            _move_watermark(database, kind, cutoff, at)
            rows, partitions, done = _delete(database, kind, cutoff, retention.batch, keep_going)
            complete = complete and done
        kinds.append(
            PrunedKind(
                kind,
                retention.of(kind),
                moment(cutoff),
                rows,
                tuple(partitions),
                kind in plan.stretched,
            )
        )
        if not complete:
            break
    return PruneReport(dry_run, at, tuple(kinds), tuple(plan.warnings), complete)


def _plan(session: Session, retention: Retention, at: datetime) -> _Plan:
    now = at.timestamp()
    cutoffs = {
        "events": math.floor(now - retention.events.total_seconds()),
        "minute": _hour_floor(now - retention.minute_rollups.total_seconds()),
        "hour": _hour_floor(now - retention.hour_rollups.total_seconds()),
    }
    plan = _Plan(cutoffs)
    for prompt, environment, started in live_canary_windows(session):
        start = _hour_floor(as_utc(started).timestamp())
        for kind in ("minute", "hour"):
            if start < plan.cutoffs[kind]:
                plan.cutoffs[kind] = start
                plan.stretched.add(kind)
                plan.warnings.append(
                    f"{SETTINGS[kind]} ({_days(retention.of(kind))}) is shorter than the "
                    f"analysis window of the canary of '{prompt}' in {environment} (its "
                    f"step started {as_utc(started):%Y-%m-%d %H:%M} UTC): {kind} rollups "
                    f"are kept from {moment(start):%Y-%m-%d %H:%M} UTC while it runs"
                )
    return plan


def live_canary_windows(session: Session) -> list[tuple[str, str, datetime]]:
    """(prompt, environment, start of the current weight step) of every running canary."""
    canaries = session.execute(
        select(Release.prompt, Environment.name, Release.canary_digest, Release.updated_at)
        .join(Environment, Release.environment_id == Environment.id)
        .where(Release.canary_digest.is_not(None))
        .order_by(Release.id)
    ).all()
    found = []
    for prompt, environment, digest, updated_at in canaries:
        started = session.scalar(
            select(ReleaseLog.created_at)
            .where(
                ReleaseLog.prompt == prompt,
                ReleaseLog.environment == environment,
                ReleaseLog.action.in_(STEP_ACTIONS),
                ReleaseLog.to_digest == digest,
            )
            .order_by(ReleaseLog.id.desc())
            .limit(1)
        )
        found.append((prompt, environment, started if started is not None else updated_at))
    return found


def _watermarks(session: Session) -> dict[str, int]:
    rows = session.execute(select(MetricWatermark.kind, MetricWatermark.pruned_before))
    return {kind: math.floor(as_utc(at).timestamp()) for kind, at in rows}


def _move_watermark(database: Database, kind: str, cutoff: int, at: datetime) -> None:
    with database.session() as session:
        row = session.get(MetricWatermark, kind, with_for_update=True)
        if row is None:
            session.add(MetricWatermark(kind=kind, pruned_before=moment(cutoff), updated_at=at))
        elif as_utc(row.pruned_before).timestamp() < cutoff:
            row.pruned_before = moment(cutoff)
            row.updated_at = at


def _count(database: Database, kind: str, cutoff: int) -> tuple[int, list[str]]:
    with database.session() as session:
        if kind == "events" and database.dialect == "postgresql":
            names = _old_partitions(session, cutoff)
            rows = sum(_rows_in(session, name) for name in names)
            return rows, names
        if kind == "events":
            query = select(func.count()).select_from(EVENTS).where(EVENTS.c.ts < moment(cutoff))
        else:
            query = (
                select(func.count())
                .select_from(ROLLUPS)
                .where(
                    ROLLUPS.c.period_seconds == _SECONDS[kind],
                    ROLLUPS.c.period_start < moment(cutoff),
                )
            )
        return int(session.scalar(query) or 0), []


_SECONDS = {"minute": MINUTE, "hour": HOUR}


def _delete(
    database: Database, kind: str, cutoff: int, batch: int, keep_going: Callable[[], bool]
) -> tuple[int, list[str], bool]:
    """Delete a kind's rows below the cutoff, `batch` at a time; return (rows, partitions
    dropped, whether it finished)."""
    if kind == "events" and database.dialect == "sqlite":
        return _delete_sqlite_events(database, cutoff, batch, keep_going)
    if kind == "events":
        return _drop_partitions(database, cutoff, keep_going)
    if kind == "events":
        query = select(EVENTS.c.event_id, EVENTS.c.ts).where(EVENTS.c.ts < moment(cutoff))
        key = (EVENTS.c.event_id, EVENTS.c.ts)
        table = EVENTS
    else:
        query = select(ROLLUPS.c.id).where(
            ROLLUPS.c.period_seconds == _SECONDS[kind],
            ROLLUPS.c.period_start < moment(cutoff),
        )
        key = (ROLLUPS.c.id,)
        table = ROLLUPS
    total = 0
    while keep_going():
        with database.session() as session:
            picked = query.limit(batch)
            if database.dialect == "postgresql":
                # Another replica pruning at the same moment takes other rows, and rows an
                # ingest has locked wait for the next batch instead of blocking this one.
                picked = picked.with_for_update(skip_locked=True)
            rows = session.execute(picked).all()
            if rows:
                if len(key) == 1:
                    session.execute(delete(table).where(key[0].in_([r[0] for r in rows])))
                else:
                    pairs = [tuple(r) for r in rows]
                    session.execute(delete(table).where(tuple_(*key).in_(pairs)))
        total += len(rows)
        if len(rows) < batch:
            return total, [], True
    return total, [], False


def _old_partitions(session: Session, cutoff: int) -> list[str]:
    """The events partitions whose whole day is before the cutoff, oldest first."""
    found = existing_partitions(session.connection())
    last = day_of(cutoff)  # the cutoff is a day's start: that day stays
    return [found[day] for day in sorted(found) if day < last]


def _rows_in(session: Session, name: str) -> int:
    return int(session.connection().exec_driver_sql(f"SELECT count(*) FROM {name}").scalar())


def _drop_partitions(
    database: Database, cutoff: int, keep_going: Callable[[], bool]
) -> tuple[int, list[str], bool]:
    """Drop the events partitions before the cutoff, one short transaction each.

    DROP waits for the ingest transactions that use the table (short ones) and holds
    new ones back while it waits: a lock timeout bounds that, and a day that could not
    be dropped now is dropped by the next prune.
    """
    with database.session() as session:
        names = _old_partitions(session, cutoff)
    total, dropped = 0, []
    for name in names:
        if not keep_going():
            return total, dropped, False
        try:
            with database.session() as session:
                connection = session.connection()
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                rows = _rows_in(session, name)
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        except DatabaseError:
            return total, dropped, False
        total += rows
        dropped.append(name)
    return total, dropped, True


def _delete_sqlite_events(
    database: Database, cutoff: int, batch: int, keep_going: Callable[[], bool]
) -> tuple[int, list[str], bool]:
    """SQLite's events have no index on ts (none costs ingest): walk the table in rowid
    order, a batch of old rows per transaction, once per prune."""
    after, total, limit = 0, 0, sqlite_time(moment(cutoff))
    pick = text(
        f"SELECT rowid FROM {EVENTS.name} WHERE rowid > :after AND ts < :cutoff "
        "ORDER BY rowid LIMIT :batch"
    )
    while keep_going():
        with database.session() as session:
            connection = session.connection()
            found = connection.execute(pick, {"after": after, "cutoff": limit, "batch": batch})
            ids = [r[0] for r in found]
            if ids:
                marks = ", ".join(str(int(i)) for i in ids)
                connection.exec_driver_sql(f"DELETE FROM {EVENTS.name} WHERE rowid IN ({marks})")
        total += len(ids)
        if len(ids) < batch:
            return total, [], True
        after = ids[-1]
    return total, [], False


def _hour_floor(seconds: float) -> int:
    return math.floor(seconds / HOUR) * HOUR


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")
