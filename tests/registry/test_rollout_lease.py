"""The rollout controller's lease on SQLite and PostgreSQL: one holder at a time, taken
over once it runs out, given up at shutdown, renewed before each decision of a long look."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from promptctl.registry.analysis import ArmData, LatencyHistogram, analyze
from promptctl.registry.core import Registry, Settings
from promptctl.registry.releases.actions import Promote
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
        a = Controller(Lease(database, "a", seconds=60), lambda **_: looks.append("a") or [])
        b = Controller(Lease(database, "b", seconds=60), lambda **_: looks.append("b") or [])
        a.tick()
        b.tick()
        assert looks == ["a"]
        a.lease.release()
        b.tick()
        a.tick()
        assert looks == ["a", "b"]
    finally:
        database.dispose()


POLICY = """\
[rollout.policies.quick]
steps = [10, 50]
min_calls = 100
min_minutes = 0
max_minutes = 10
"""
PROMPT = "---\ninput:\n  name: {type: string}\n---\nHello {{ name }} v%d\n"
ENVIRONMENTS = ("development", "staging", "production")


def passing():
    """An analysis whose canary passes: two arms drawn alike, with plenty of calls."""
    rng = random.Random(1)

    def arm() -> ArmData:
        latencies = [rng.lognormvariate(0, 0.3) * 100 for _ in range(3960)]
        return ArmData(calls=4000, errors=40, latency=LatencyHistogram.of(latencies))

    return analyze(arm(), arm())


@pytest.fixture
def rollouts(git_repo, migrated_database_url):
    """A registry with a running rollout in each of three environments, judged by a stand-in
    that passes, on a clock of the test's own shared by the rollouts and two leases."""
    git_repo.commit("v1", {"prompts/greet.prompt": PROMPT % 1, "promptctl.toml": POLICY})
    git_repo.commit("v2", {"prompts/greet.prompt": PROMPT % 2})
    registry = Registry(Settings(repo=git_repo.path, database_url=migrated_database_url))
    now = {"at": utcnow()}
    registry.rollouts.clock = lambda: now["at"]
    for env in ENVIRONMENTS:
        registry.perform(Promote(prompt="greet", environment=env, ref="HEAD~1", confirmed=True))
        registry.start_rollout("greet", env, policy="quick", confirmed=True)
    registry.now = now
    registry.good = passing()
    yield registry
    registry.close()


def leases(registry, seconds: float = 30) -> tuple[Lease, Lease]:
    def clock():
        return registry.now["at"]

    return (
        Lease(registry.database, "replica-a", seconds=seconds, clock=clock),
        Lease(registry.database, "replica-b", seconds=seconds, clock=clock),
    )


def weights(registry) -> list[int]:
    return [registry.status("greet", env)[0].weight_bp for env in ENVIRONMENTS]


def test_a_look_longer_than_the_lease_renews_it_before_each_decision(rollouts):
    """Each judging takes 20 s of a 30 s lease: without a renewal before each decision the
    lease would lapse during the look and the other replica could take it while the first
    still acts."""
    holder, other = leases(rollouts)
    others_tries: list[bool] = []

    def slow_judge(state, now):
        rollouts.now["at"] += timedelta(seconds=20)
        others_tries.append(other.acquire())
        return rollouts.good

    rollouts.rollouts.judge = slow_judge
    assert Controller(holder, rollouts.run_rollouts).tick() == 3
    assert others_tries == [False, False, False]
    assert weights(rollouts) == [5000, 5000, 5000]  # every rollout advanced, once


def test_a_look_that_lost_its_lease_stops_before_writing_its_decision(rollouts, caplog):
    """The other replica takes the lapsed lease while the second rollout is judged: the
    first replica writes nothing for it, judges no more, and the other acts on them."""
    holder, other = leases(rollouts)
    judged: list[str] = []

    def judge(state, now):
        judged.append(state.environment)
        if len(judged) == 2:  # this judging outlasts the lease, and the other takes it
            rollouts.now["at"] += timedelta(seconds=45)
            assert other.acquire() is True
        return rollouts.good

    rollouts.rollouts.judge = judge
    with caplog.at_level("INFO", logger="promptctl.rollouts"):
        assert Controller(holder, rollouts.run_rollouts).tick() == 2
    assert judged == ["development", "staging"]
    assert weights(rollouts) == [5000, 1000, 1000]
    staging = rollouts.rollout("greet", "staging")
    assert (staging.status, staging.step, staging.events[-1].action) == ("running", 0, "started")
    assert "replica-a lost the lease during a look" in caplog.text
    assert "before deciding on greet in staging" in caplog.text

    assert Controller(holder, rollouts.run_rollouts).tick() == 0  # not its lease any more
    rollouts.rollouts.judge = lambda state, now: rollouts.good
    assert Controller(other, rollouts.run_rollouts).tick() == 3
    states = [rollouts.rollout("greet", env) for env in ENVIRONMENTS]
    assert [(s.status, s.step) for s in states] == [
        ("completed", 1),
        ("running", 1),
        ("running", 1),
    ]
