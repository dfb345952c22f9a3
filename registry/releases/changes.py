"""Release changes, told as they happen: to the streams of this process, and between
processes on PostgreSQL.

Every release action appends one row to the release log; that row's id is the change's
*cursor*. Ids come from one database sequence, so a cursor means the same on every
replica: a client that read up to cursor N on one replica resumes on any other with
`Last-Event-ID: N`, and is sent what changed in its environment after N (`replay`).

How a change travels:

- The action's own transaction calls `announce`, which on PostgreSQL queues a `NOTIFY`
  (delivered at commit, never for an action rolled back). Every server process LISTENs
  on a dedicated connection (`Listener`) and reloads that one release at once.
- A server process that made the change itself refreshes its serving cache right away.
- Whatever the database, each server also polls a fingerprint of the releases (see
  ServingCache.refresh_if_changed): on SQLite, how a change made by the CLI or another
  process arrives; on PostgreSQL, the fallback when a notification was missed.

The serving cache reports what it loaded to its `ChangeHub`, which hands one prebuilt
event to every subscriber on their event loop. Nothing here blocks a request.

Cursors are given out at insert, not at commit: of two concurrent actions, the one with
the lower cursor may commit second. So a resume from cursor N resends the current state
of every release changed after N - REPLAY_MARGIN, not only after N: a change whose cursor
was given before N but committed after the client saw N is sent too (a release the client
already has costs one event, which it drops). Our clients also compare the revisions of
`ready` with theirs, and keep revalidating on their TTL while they stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from promptctl.registry.errors import TooManyStreams
from promptctl.registry.store.models import ReleaseLog

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger("promptctl.server")

CHANNEL = "promptctl_releases"
# What one subscriber may have waiting; past it the subscriber is slow, and is sent the
# whole state once it reads again instead of every change in between.
QUEUE_CAPACITY = 256
# How many cursors before its own a resume resends: more than the release actions that
# can be between insert and commit at one time.
REPLAY_MARGIN = 100


@dataclass(frozen=True)
class ReleaseChange:
    """A release's new state as every subscriber is sent it."""

    prompt: str
    environment: str
    revision: int
    cursor: int
    etag: str
    body: bytes  # the release document, as GET /v1/prompts/{name}/release answers it

    @cached_property
    def payload(self) -> bytes:
        """The change as one line of JSON, built once for every subscriber: prompt,
        environment, revision, etag and the release document."""
        head = {
            "prompt": self.prompt,
            "environment": self.environment,
            "revision": self.revision,
            "etag": self.etag,
        }
        return (
            json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "release": ' + self.body + b"}"
        )


# -- in the release action's transaction ----------------------------------------------


def announce(session: Session, prompt: str, environment: str, revision: int) -> None:
    """Tell the other processes of this database, at commit, that a release changed.

    A no-op but on PostgreSQL. The payload names the schema, so that registries sharing a
    database in separate schemas (tests do) ignore each other's changes.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text(
            "SELECT pg_notify(:channel, json_build_object('schema', current_schema(), "
            "'prompt', CAST(:prompt AS text), 'environment', CAST(:environment AS text), "
            "'revision', CAST(:revision AS integer))::text)"
        ),
        {"channel": CHANNEL, "prompt": prompt, "environment": environment, "revision": revision},
    )


# -- cursors --------------------------------------------------------------------------


def latest_cursor(session: Session) -> int:
    """The newest cursor in the database (0 before the first release action)."""
    return int(session.execute(select(func.coalesce(func.max(ReleaseLog.id), 0))).scalar_one())


def cursors_of(
    session: Session, changed: Iterable[tuple[str, str, int]]
) -> dict[tuple[str, str, int], int]:
    """The cursor of each (prompt, environment, revision): the log row that made it."""
    found: dict[tuple[str, str, int], int] = {}
    for prompt, environment, revision in changed:
        row = session.execute(
            select(func.max(ReleaseLog.id)).where(
                ReleaseLog.prompt == prompt,
                ReleaseLog.environment == environment,
                ReleaseLog.revision <= revision,
            )
        ).scalar_one()
        found[(prompt, environment, revision)] = int(row or 0)
    return found


def changed_since(session: Session, environment: str, after: int) -> dict[str, int] | None:
    """The prompts of `environment` changed after cursor `after` (or in the
    REPLAY_MARGIN cursors before it), each with its newest cursor; None when `after` is
    past the newest cursor (a cursor of another database, or of one restored from a
    backup): nothing can be replayed from it."""
    if after > latest_cursor(session):
        return None
    rows = session.execute(
        select(ReleaseLog.prompt, func.max(ReleaseLog.id))
        .where(ReleaseLog.environment == environment, ReleaseLog.id > after - REPLAY_MARGIN)
        .group_by(ReleaseLog.prompt)
    ).all()
    return {prompt: int(cursor) for prompt, cursor in rows}


# -- fan-out to subscribers ----------------------------------------------------------


class Subscription:
    """One stream's view of the hub: the changes of its environment (and prompts), in
    order, on its own event loop."""

    def __init__(self, hub: ChangeHub, environment: str, prompts: frozenset[str]) -> None:
        self.hub = hub
        self.environment = environment
        self.prompts = prompts
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[ReleaseChange | None] = asyncio.Queue(QUEUE_CAPACITY)
        self.overflowed = False  # changes were left out: the stream must resend everything
        self.ended = False  # the server is shutting down

    def wants(self, change: ReleaseChange) -> bool:
        return change.environment == self.environment and (
            not self.prompts or change.prompt in self.prompts
        )

    def deliver(self, change: ReleaseChange | None) -> None:
        """Queue a change (None: the end); called on the subscriber's loop."""
        if change is None:
            self.ended = True
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True
            if change is None:  # the end must get through: make room for it
                self.queue.get_nowait()
                self.queue.put_nowait(None)

    async def next(self, timeout: float) -> ReleaseChange | None:
        """The next change; None when the server is shutting down; TimeoutError after
        `timeout` seconds without one."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        self.hub.unsubscribe(self)


class ChangeHub:
    """Hands each release change to the subscribers that want it; `publish` from any
    thread, `subscribe` on an event loop."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.cursor = 0  # the newest cursor the serving cache reflects
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closed = False
        self.published = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, environment: str, prompts: Iterable[str] = ()) -> Subscription:
        """Start receiving the changes of `environment` (only `prompts`, when given);
        TooManyStreams past the limit."""
        subscription = Subscription(self, environment, frozenset(prompts))
        with self._lock:
            if len(self._subscribers) >= self.limit:
                raise TooManyStreams(self.limit)
            if self.closed:
                subscription.ended = True
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, changes: list[ReleaseChange]) -> None:
        """Send each change to the subscribers that want it, in order."""
        if not changes:
            return
        with self._lock:
            self.cursor = max(self.cursor, *(c.cursor for c in changes))
            self.published += len(changes)
            by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
            for subscription in self._subscribers:
                by_loop.setdefault(subscription.loop, []).append(subscription)
        for loop, subscriptions in by_loop.items():
            _call_soon(loop, _deliver_all, subscriptions, changes)

    def close(self) -> None:
        """End every stream (the server is shutting down); safe from a signal handler."""
        with self._lock:
            self.closed = True
            subscriptions = list(self._subscribers)
        for subscription in subscriptions:
            _call_soon(subscription.loop, subscription.deliver, None)

    def reopen(self) -> None:
        self.closed = False


def _deliver_all(subscriptions: list[Subscription], changes: list[ReleaseChange]) -> None:
    for change in changes:
        for subscription in subscriptions:
            if subscription.wants(change):
                subscription.deliver(change)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: its streams are gone with it
        loop.call_soon_threadsafe(callback, *args)


# -- PostgreSQL: LISTEN on a connection of its own -------------------------------------


class Listener:
    """Listens for release notifications on a dedicated PostgreSQL connection, in a
    thread; calls `on_change(prompt, environment, revision)` for each one of this schema,
    and `on_gap()` after every (re)connection, when notifications may have been missed."""

    def __init__(
        self,
        engine: Engine,
        on_change: Callable[[str, str, int], None],
        on_gap: Callable[[], None],
        *,
        retry: float = 1.0,
    ) -> None:
        self.engine = engine
        self.on_change = on_change
        self.on_gap = on_gap
        self.retry = retry
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promptctl-listen", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _connect(self) -> Any:
        import psycopg  # the driver of postgresql+psycopg URLs; only a server listening needs it

        dialect = self.engine.dialect
        args, kwargs = dialect.create_connect_args(self.engine.url)
        return psycopg.connect(*args, **kwargs, autocommit=True)

    def _run(self) -> None:
        delay = self.retry
        while not self._stop.is_set():
            try:
                with self._connect() as connection:
                    schema = connection.execute("SELECT current_schema()").fetchone()[0]
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = self.retry
                    self._safely(self.on_gap)
                    while not self._stop.is_set():
                        for notify in connection.notifies(timeout=0.5):
                            self._handle(notify.payload, schema)
            except Exception as exc:  # the database went away: poll until it is back
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.warning(
                    "release notifications lost (%s); polling until the database is back", exc
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _handle(self, payload: str, schema: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("schema") != schema:
                return
            prompt, environment, revision = data["prompt"], data["environment"], data["revision"]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed release notification: %.200s", payload)
            return
        self._safely(self.on_change, prompt, environment, int(revision))

    @staticmethod
    def _safely(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.warning("could not apply a release notification", exc_info=True)
