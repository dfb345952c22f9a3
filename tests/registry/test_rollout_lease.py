"""The rollout controller's lease on SQLite and PostgreSQL: one holder at a time, taken
over once it runs out, given up at shutdown."""

from __future__ import annotations

import time

from promptctl.registry.rollouts.controller import Controller, Lease
from promptctl.registry.store.database import Database


def test_one_replica_holds_the_lease_and_another_takes_it_once_it_runs_out(
    migrated_database_url,
):
    database = Database(migrated_database_url)
    try:
        first = Lease(database, "replica-a", seconds=0.5)
        second = Lease(database, "replica-b", seconds=0.5)
        assert first.acquire() is True
        assert second.acquire() is False
        assert first.acquire() is True  # renewed by its holder
        deadline = time.monotonic() + 10
        while not second.acquire():  # replica-a stops renewing, as a dead process would
            assert time.monotonic() < deadline, "the lease never ran out"
            time.sleep(0.1)
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
