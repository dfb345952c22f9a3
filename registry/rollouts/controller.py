"""The rollout controller: on an interval, one replica judges every running rollout and acts.

Replicas share one database; a lease row (`controller_leases`) says which one acts, until
when. The holder takes or renews it at the start of every look and again right before each
decision's transaction: judging a rollout reads its metrics and may take a while, so a
look that lasts longer than the lease's slack (half an interval) would otherwise go on
acting on a lease that has run out and that another replica may have taken. A renewal
that finds another holder stops the look before it writes anything. When the holder dies,
the lease runs out after `1.5 × interval` and the next replica to look takes it, so another
acts within two intervals. A lease is a row rather than a PostgreSQL advisory lock so that
SQLite works the same way and a replica that loses its connection cannot keep acting
unnoticed.

Clocks: the holder writes the expiry by its own clock and every other replica compares
it with its own, so the lease assumes the replicas' clocks agree to well within half an
interval (NTP keeps hosts within milliseconds; the default interval is seconds). A replica
whose clock runs ahead by more can take the lease while the holder still believes it holds
it, and for the rest of one decision both may act. That is still safe, only wasteful: every
decision is one transaction guarded by the release's revision and the rollout row's
revision, so of two replicas deciding on the same state one writes and the other is told
it was superseded; no step is taken twice and no person's action is overwritten.
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

    def __init__(self, lease: Lease, run: Callable[..., list]) -> None:
        self.lease = lease
        self.run = run  # run(may_act=...): Registry.run_rollouts

    def tick(self) -> int:
        """Look once; return how many rollouts were judged (0 without the lease)."""
        if not self.lease.acquire():
            return 0
        # Renewed again right before each decision is written: see the module docstring.
        done = self.run(may_act=self.lease.acquire)
        for state, decision in done:
            if decision.action == "yielded":
                log.info(
                    "rollout controller: %s lost the lease during a look; it stops before "
                    "deciding on %s in %s",
                    self.lease.holder,
                    state.prompt,
                    state.environment,
                )
            elif decision.action != "held":
                log.info(
                    "rollout of %s in %s: %s (%s)",
                    state.prompt,
                    state.environment,
                    decision.action,
                    decision.reason,
                )
        return len(done)
