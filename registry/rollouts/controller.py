"""The rollout controller: on an interval, one replica judges every running rollout and acts.

Replicas share one database; a lease row (`controller_leases`) says which one acts, until
when. The holder renews it on every look; when it dies, the lease runs out after
`1.5 × interval` and the next replica to look takes it, so another acts within two
intervals. A lease is a row rather than a PostgreSQL advisory lock so that SQLite works the
same way and a replica that loses its connection cannot keep acting unnoticed. Two
replicas acting at once (a lease taken over from a replica that was only slow) can still
not act twice: every decision is guarded by the release's and the rollout's revisions.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ControllerLease, as_utc, utcnow

log = logging.getLogger("promptctl.rollouts")

LEASE = "rollouts"


def replica_id() -> str:
    """A name for this process that no other replica has: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The right to act, held by one replica at a time until it expires."""

    def __init__(
        self,
        database: Database,
        holder: str,
        seconds: float,
        name: str = LEASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = database
        self.holder = holder
        self.seconds = seconds
        self.name = name
        self.clock = clock

    def acquire(self) -> bool:
        """Take or renew the lease; False when another replica holds it and it has not run out."""
        now = self.clock()
        until = now + timedelta(seconds=self.seconds)
        try:
            with self.db.session() as session:
                row = session.scalar(
                    select(ControllerLease)
                    .where(ControllerLease.name == self.name)
                    .with_for_update()
                )
                if row is None:
                    session.add(
                        ControllerLease(
                            name=self.name, holder=self.holder, expires_at=until, acquired_at=now
                        )
                    )
                    return True
                if row.holder != self.holder and as_utc(row.expires_at) > now:
                    return False
                if row.holder != self.holder:
                    log.info("rollout controller: %s takes over from %s", self.holder, row.holder)
                    row.holder = self.holder
                    row.acquired_at = now
                row.expires_at = until
                return True
        except IntegrityError:
            return False  # another replica created the row first: it holds the lease

    def release(self) -> None:
        """Give the lease up (at shutdown), so another replica may act at its next look."""
        with self.db.session() as session:
            row = session.get(ControllerLease, self.name)
            if row is not None and row.holder == self.holder:
                row.expires_at = self.clock()


class Controller:
    """One look: take the lease, then judge and act on every running rollout."""

    def __init__(self, lease: Lease, run: Callable[[], list]) -> None:
        self.lease = lease
        self.run = run

    def tick(self) -> int:
        """Look once; return how many rollouts were judged (0 without the lease)."""
        if not self.lease.acquire():
            return 0
        done = self.run()
        for state, decision in done:
            if decision.action != "held":
                log.info(
                    "rollout of %s in %s: %s (%s)",
                    state.prompt,
                    state.environment,
                    decision.action,
                    decision.reason,
                )
        return len(done)
