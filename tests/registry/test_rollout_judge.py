"""The controller judges a step with the reader behind `Registry.analyze`: calls ingested as
a client sends them, the step judged from the rollups with the policy's guards, on SQLite
and PostgreSQL."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest

from promptctl.registry.analysis.ingest_sink import IngestSink
from promptctl.registry.analysis.simulation import BASELINE
from promptctl.registry.core import Registry, Settings
from promptctl.registry.releases.actions import Promote

POLICY = """\
[rollout]
default = "guarded"

[rollout.policies.guarded]
steps = [20, 50]
min_calls = 200
min_minutes = 0
max_minutes = 10

[rollout.policies.guarded.guards]
truncation = false
latency = "25%"
error_rate = 0.03
quality = 0.05
invalid_output = 0.03
"""

PROMPT = (
    "---\ninput:\n  name: {type: string}\nsamples:\n  - {name: Ada}\n---\nHello {{ name }} v%d\n"
)


@pytest.fixture
def registry(git_repo, migrated_database_url):
    git_repo.commit("v1", {"prompts/greet.prompt": PROMPT % 1, "promptctl.toml": POLICY})
    git_repo.commit("v2", {"prompts/greet.prompt": PROMPT % 2})
    registry = Registry(Settings(repo=git_repo.path, database_url=migrated_database_url))
    registry.perform(Promote(prompt="greet", environment="staging", ref="HEAD~1"))
    yield registry
    registry.close()


def send(registry: Registry, canary_profile, calls: int, seed: int) -> None:
    """Ingest `calls` calls split by the canary's weight, as the client would report them."""
    release = registry.status("greet", "staging")[0]
    digests = {"stable": release.stable.digest, "canary": release.canary.digest}
    sink = IngestSink(registry, "greet", "staging", digests)
    sink._ids = (f"{seed}-{n}" for n in range(calls))  # unique across sends
    rng = random.Random(seed)
    to_canary = sum(rng.random() < release.weight_bp / 10_000 for _ in range(calls))
    sink.record("canary", canary_profile.calls(rng, to_canary))
    sink.record("stable", BASELINE.calls(rng, calls - to_canary))


def test_a_bad_step_is_judged_from_the_rollups_as_registry_analyze_judges_it(registry):
    registry.start_rollout("greet", "staging", actor="alice")
    send(registry, replace(BASELINE, error_rate=0.4), 1500, seed=1)
    # What an operator sees now (`promptctl analyze`): the rollout's policy.
    seen = registry.analyze("greet", "staging")

    ((state, decision),) = registry.run_rollouts()

    assert decision.action == "rolled_back"
    assert re.search(r"fail: error_rate \+0\.\d+ \[\+0\.\d+, \+0\.\d+\]", decision.reason)
    judged = state.last_analysis
    assert judged["verdict"] == "fail"
    assert judged["calls"] == seen.to_json()["calls"]
    assert judged["since"] == seen.to_json()["since"]  # the step's start, to its minute
    guards = {g["metric"]: g for g in judged["settings"]["guards"]}
    assert "truncation" not in guards  # the policy's guards, not the defaults
    assert guards["latency"]["tolerance"] == {"kind": "relative", "value": 0.25}
    by_metric = {m["metric"]: m for m in judged["metrics"]}
    for metric in seen.metrics:
        if metric.metric in by_metric:
            # The same rows read the same way, with the same guards.
            assert by_metric[metric.metric]["stable"] == metric.stable
            assert by_metric[metric.metric]["canary"] == metric.canary
            assert by_metric[metric.metric]["difference"] == metric.difference
    assert by_metric["error_rate"]["verdict"] == "fail"
    row = registry.history("greet", "staging")[0]
    assert (row.action, row.actor) == ("rollback_canary", "promptctl-controller")


def test_a_good_step_with_enough_calls_advances_and_one_with_too_few_holds(registry):
    registry.start_rollout("greet", "staging")
    send(registry, BASELINE, 100, seed=2)
    ((state, decision),) = registry.run_rollouts()
    assert decision.action == "held"
    assert state.last_analysis["verdict"] == "no data"  # 100 calls per arm are required

    send(registry, BASELINE, 6000, seed=3)
    ((state, decision),) = registry.run_rollouts()
    assert decision.action == "advanced", state.last_analysis["reasons"]
    assert registry.status("greet", "staging")[0].weight_bp == 5000
    assert registry.rollout("greet", "staging").events[-1].analysis["verdict"] == "pass"


def test_analyze_under_a_live_rollout_judges_with_the_policy_the_controller_uses(registry):
    """`promptctl analyze`, status's verdict and the dashboard say what the controller
    acts on: under a live rollout, its policy's guards, named in a note."""
    before = registry.start_rollout("greet", "staging")
    send(registry, replace(BASELINE, latency_median_ms=BASELINE.latency_median_ms * 1.15), 400, 5)
    seen = registry.analyze("greet", "staging")
    ((state, decision),) = registry.run_rollouts()

    assert decision.action == "held"
    assert seen.settings == before.policy.analysis_config().to_json()
    assert [m.metric for m in seen.metrics] == [g.metric for g in before.policy.guards]
    assert seen.to_json()["settings"] == state.last_analysis["settings"]
    assert str(seen.verdict) == state.last_analysis["verdict"]
    assert any("rollout policy 'guarded'" in note for note in seen.notes)

    registry.change_rollout("abort", "greet", "staging")
    registry.perform(Promote(prompt="greet", environment="staging", canary_bp=1000))
    plain = registry.analyze("greet", "staging")  # a canary of no rollout: the defaults
    assert "truncation" in [m.metric for m in plain.metrics]
    assert not any("rollout policy" in note for note in plain.notes)
