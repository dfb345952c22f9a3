"""The rollout controller's lease on SQLite and PostgreSQL: one holder at a time, taken
over once it runs out, given up at shutdown."""

from __future__ import annotations

from datetime import timedelta

from promptctl.registry.rollouts.controller import Controller, Lease
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import utcnow


def test_one_replica_holds_the_lease_and_another_takes_it_once_it_runs_out(
    migrated_database_url,
):
    """On a clock of the test's own: how long the machine takes never decides who holds."""
    database = Database(migrated_database_url)
    now = {"at": utcnow()}

    def clock():
        return now["at"]

    def later(seconds: float) -> None:
        now["at"] += timedelta(seconds=seconds)

    try:
        first = Lease(database, "replica-a", seconds=30, clock=clock)
        second = Lease(database, "replica-b", seconds=30, clock=clock)
        assert first.acquire() is True
        later(29)
        assert second.acquire() is False
        assert first.acquire() is True  # renewed by its holder: 30 s from now
        later(29)
        assert second.acquire() is False
        later(2)  # replica-a stopped renewing, as a dead process would
        assert second.acquire() is True
        assert first.acquire() is False
        later(29)
        assert first.acquire() is False
    finally:
        database.dispose()


def test_a_released_lease_is_taken_at_the_next_look_and_only_the_holder_acts(
    migrated_database_url,
):
    database = Database(migrated_database_url)
    try:
        looks: list[str] = []
        a = Controller(Lease(database, "a", seconds=60), lambda: looks.append("a") or [])
        b = Controller(Lease(database, "b", seconds=60), lambda: looks.append("b") or [])
        a.tick()
        b.tick()
        assert looks == ["a"]
        a.lease.release()
        b.tick()
        a.tick()
        assert looks == ["a", "b"]
    finally:
        database.dispose()
