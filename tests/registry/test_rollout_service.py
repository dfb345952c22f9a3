"""Rollouts through the facade on SQLite and PostgreSQL: start, the controller's decisions
(judged by a stand-in analysis), a person's actions, and every refusal."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from promptctl.registry.analysis import ArmData, LatencyHistogram, analyze
from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import (
    NoStableForCanary,
    PolicyNotFound,
    RolloutError,
    RolloutNotFound,
)
from promptctl.registry.releases.actions import Promote, Ramp, Rollback

POLICY = """\
[rollout]
default = "quick"

[rollout.policies.quick]
steps = [10, 50]
min_calls = 100
min_minutes = 0
max_minutes = 10
on_inconclusive = "extend"

[rollout.policies.rollback]
steps = [10]
min_minutes = 1
max_minutes = 2
on_inconclusive = "rollback"
"""

PROMPT = (
    "---\ninput:\n  name: {type: string}\nsamples:\n  - {name: Ada}\n---\nHello {{ name }} v%d\n"
)


def arm(calls: int, error_rate: float, latency: float, seed: int) -> ArmData:
    rng = random.Random(seed)
    errors = int(calls * error_rate)
    latencies = [rng.lognormvariate(0, 0.3) * latency for _ in range(calls - errors)]
    return ArmData(calls=calls, errors=errors, latency=LatencyHistogram.of(latencies))


GOOD = analyze(arm(4000, 0.01, 100, 1), arm(4000, 0.01, 100, 2))
BAD = analyze(arm(4000, 0.01, 100, 1), arm(4000, 0.30, 100, 2))
EARLY = analyze(arm(10, 0.0, 100, 1), arm(10, 0.0, 100, 2))


@pytest.fixture
def registry(git_repo, migrated_database_url):
    git_repo.commit("v1", {"prompts/greet.prompt": PROMPT % 1, "promptctl.toml": POLICY})
    git_repo.commit("v2", {"prompts/greet.prompt": PROMPT % 2})
    registry = Registry(Settings(repo=git_repo.path, database_url=migrated_database_url))
    registry.perform(Promote(prompt="greet", environment="staging", ref="HEAD~1"))
    clock = {"now": datetime.now().astimezone()}
    registry.rollouts.clock = lambda: clock["now"]
    registry.clock = clock
    verdicts = {"analysis": GOOD}
    registry.rollouts.judge = lambda state, now: verdicts["analysis"]
    registry.verdicts = verdicts
    yield registry
    registry.close()


def later(registry, minutes: float) -> None:
    registry.clock["now"] += timedelta(minutes=minutes)


def test_start_puts_the_canary_at_the_first_step_with_the_policy_kept(registry):
    state = registry.start_rollout("greet", "staging", actor="alice")
    release = registry.status("greet", "staging")[0]
    assert (release.canary.number, release.weight_bp) == (2, 1000)
    assert (state.status, state.step, state.policy.name) == ("running", 0, "quick")
    assert state.policy.steps_bp == (1000, 5000)
    assert [e.action for e in state.events] == ["started"]
    assert registry.history("greet", "staging")[0].actor == "alice"


def test_a_good_canary_climbs_every_step_and_completes(registry):
    registry.start_rollout("greet", "staging")
    (state, decision), = registry.run_rollouts()
    assert decision.action == "advanced"
    assert registry.status("greet", "staging")[0].weight_bp == 5000
    (state, decision), = registry.run_rollouts()
    assert decision.action == "completed"
    release = registry.status("greet", "staging")[0]
    assert (release.stable.number, release.canary) == (2, None)
    final = registry.rollout("greet", "staging")
    assert final.status == "completed"
    assert [e.action for e in final.events] == ["started", "advanced", "completed"]
    log = registry.history("greet", "staging")
    assert [(e.action, e.actor) for e in log[:2]] == [
        ("complete", "promptctl-controller"),
        ("ramp", "promptctl-controller"),
    ]
    assert "step 2/2 (50%): pass" in log[0].reason


def test_a_failing_canary_is_rolled_back_naming_the_metric_and_its_interval(registry):
    registry.start_rollout("greet", "staging")
    registry.verdicts["analysis"] = BAD
    (_, decision), = registry.run_rollouts()
    assert decision.action == "rolled_back"
    release = registry.status("greet", "staging")[0]
    assert (release.stable.number, release.canary) == (1, None)
    row = registry.history("greet", "staging")[0]
    assert (row.action, row.actor) == ("rollback_canary", "promptctl-controller")
    assert "error_rate +0.29 [+" in row.reason
    state = registry.rollout("greet", "staging")
    assert state.status == "rolled_back"
    assert state.events[-1].analysis["verdict"] == "fail"


def test_too_few_calls_hold_then_extend_once_then_pause(registry):
    registry.start_rollout("greet", "staging")
    registry.verdicts["analysis"] = EARLY
    assert registry.run_rollouts()[0][1].action == "held"
    later(registry, 11)
    assert registry.run_rollouts()[0][1].action == "extended"
    later(registry, 10)
    decision = registry.run_rollouts()[0][1]
    assert decision.action == "paused"
    assert "calls stable 10, canary 10, 100 needed per arm" in decision.reason
    assert registry.rollout("greet", "staging").status == "paused"
    assert registry.run_rollouts() == []  # a paused rollout is left alone


def test_on_inconclusive_rollback_rolls_back_at_the_deadline(registry):
    registry.start_rollout("greet", "staging", policy="rollback")
    registry.verdicts["analysis"] = EARLY
    later(registry, 3)
    assert registry.run_rollouts()[0][1].action == "rolled_back"
    assert registry.status("greet", "staging")[0].canary is None


def test_a_manual_weight_pauses_the_rollout_and_resume_puts_the_step_back(registry):
    registry.start_rollout("greet", "staging")
    registry.perform(Ramp(prompt="greet", environment="staging", weight_bp=2000, actor="bob"))
    state = registry.rollout("greet", "staging")
    assert state.status == "paused"
    assert state.events[-1].actor == "bob"
    assert "set the canary weight to 20% by hand" in state.reason
    assert registry.run_rollouts() == []
    resumed = registry.change_rollout("resume", "greet", "staging", actor="alice")
    assert resumed.status == "running"
    assert registry.status("greet", "staging")[0].weight_bp == 1000
    assert registry.run_rollouts()[0][1].action == "advanced"


def test_a_manual_rollback_ends_the_rollout(registry):
    registry.start_rollout("greet", "staging")
    registry.perform(Rollback(prompt="greet", environment="staging", actor="bob"))
    state = registry.rollout("greet", "staging")
    assert (state.status, state.events[-1].actor) == ("rolled_back", "bob")
    with pytest.raises(RolloutNotFound, match="no live rollout"):
        registry.change_rollout("pause", "greet", "staging")


def test_pause_abort_and_promote(registry):
    registry.start_rollout("greet", "staging")
    assert registry.change_rollout("pause", "greet", "staging").status == "paused"
    with pytest.raises(RolloutError, match="already paused"):
        registry.change_rollout("pause", "greet", "staging")
    promoted = registry.change_rollout("promote", "greet", "staging", actor="carol")
    assert promoted.status == "completed"
    assert registry.status("greet", "staging")[0].stable.number == 2
    registry.perform(Rollback(prompt="greet", environment="staging"))
    registry.start_rollout("greet", "staging")
    aborted = registry.change_rollout("abort", "greet", "staging")
    assert aborted.status == "aborted"
    assert registry.status("greet", "staging")[0].canary is None


def test_a_human_action_between_look_and_decision_wins(registry):
    registry.start_rollout("greet", "staging")

    def judge_then_someone_ramps(state, now):
        registry.perform(Ramp(prompt="greet", environment="staging", weight_bp=3000))
        return BAD

    registry.rollouts.judge = judge_then_someone_ramps
    (_, decision), = registry.run_rollouts()
    assert decision.action == "superseded"
    assert registry.status("greet", "staging")[0].weight_bp == 3000
    assert registry.rollout("greet", "staging").status == "paused"


def test_refusals_leave_nothing_started(registry):
    with pytest.raises(PolicyNotFound, match="'quik'.*did you mean 'quick'"):
        registry.start_rollout("greet", "staging", policy="quik")
    with pytest.raises(NoStableForCanary):
        registry.start_rollout("greet", "development")
    registry.perform(Promote(prompt="greet", environment="staging", canary_bp=500))
    with pytest.raises(RolloutError, match="already runs"):
        registry.start_rollout("greet", "staging")
    with pytest.raises(RolloutNotFound):
        registry.rollout("greet", "staging")


def test_a_rollout_that_cannot_be_judged_is_logged_and_the_others_still_are(registry, caplog):
    """One broken rollout (its analysis raises every time) never stops the controller from
    acting on the others."""
    registry.perform(
        Promote(prompt="greet", environment="production", ref="HEAD~1", confirmed=True)
    )
    registry.start_rollout("greet", "staging")
    registry.start_rollout("greet", "production", confirmed=True)

    def judge(state, now):
        if state.environment == "staging":
            raise ValueError("a stored rollup this version cannot read")
        return GOOD

    registry.rollouts.judge = judge
    with caplog.at_level("WARNING", logger="promptctl.rollouts"):
        done = registry.run_rollouts()
    assert [(s.environment, d.action) for s, d in done] == [("production", "advanced")]
    assert registry.status("greet", "production")[0].weight_bp == 5000
    assert registry.rollout("greet", "staging").status == "running"
    assert "could not judge the rollout of greet in staging" in caplog.text
    assert "a stored rollup this version cannot read" in caplog.text


def test_an_ended_rollout_says_how_long_its_last_step_lasted_not_how_long_ago(registry):
    registry.start_rollout("greet", "staging")
    later(registry, 2)
    registry.verdicts["analysis"] = BAD
    registry.run_rollouts()
    ended = registry.rollout("greet", "staging")
    shown = ended.to_json(now=ended.ended_at + timedelta(hours=5))
    assert shown["status"] == "rolled_back"
    assert shown["seconds_in_step"] == pytest.approx(120)


def test_a_rolled_back_rollout_says_how_when_and_why_instead_of_what_comes_next(registry):
    live = registry.start_rollout("greet", "staging")
    assert live.ending is None
    assert live.to_json()["deadline"] is not None
    later(registry, 2)
    registry.verdicts["analysis"] = BAD
    registry.run_rollouts()
    ended = registry.rollout("greet", "staging")
    shown = ended.to_json(now=ended.ended_at + timedelta(hours=5))
    assert (shown["deadline"], shown["next"]) == (None, None)
    assert shown["ended"]["outcome"] == "rolled_back"
    assert shown["ended"]["by"] == "promptctl-controller"
    assert shown["ended"]["at"] == shown["ended_at"]
    assert shown["ended"]["reason"] == ended.reason
    assert "error_rate" in ended.reason
    said = ended.next_action(registry.clock["now"])
    assert said.startswith("nothing: the rollout rolled back at step 1/2 (10%) on ")
    assert " by promptctl-controller: " in said
