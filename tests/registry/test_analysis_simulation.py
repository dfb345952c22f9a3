"""The analysis run the way a controller runs it: after every batch of seeded traffic.

A/A canaries (identical to stable) must be judged `fail` at some look in at most α of the
runs, whereas the fixed-sample interval checked as often fails far more often; each of
the four regressions must be judged `fail`, on its own metric. Seeds are fixed, so the
figures are the same on every run of the suite.
"""

from __future__ import annotations

import random

import pytest

from promptctl.registry.analysis import (
    AnalysisConfig,
    ArmData,
    LatencyHistogram,
    Moments,
    Proportion,
    Verdict,
)
from promptctl.registry.analysis.simulation import (
    BASELINE,
    InMemorySink,
    Scenario,
    SimulatedCall,
    aa_scenario,
    configurations,
    regression_scenarios,
    run,
    simulate,
)

ALPHA = 0.05


@pytest.mark.slow
def test_an_identical_canary_is_rarely_failed_however_often_it_is_analysed():
    # 200 runs of 5,000 calls, half to the canary, analysed every 250 calls: 20 looks each.
    configs = configurations(ALPHA)
    del configs["fixed sample"]  # with default tolerances it is rarely wrong either
    summaries = simulate(aa_scenario(0.5, batch=250, max_calls=5_000), range(200), configs)
    ours = summaries["confidence sequence"]
    ours_strict = summaries["confidence sequence, zero tolerance"]
    fixed_strict = summaries["fixed sample, zero tolerance"]
    assert ours.runs == 200
    assert ours.fail_rate <= ALPHA
    # With zero tolerances every true difference of 0 sits on the edge: the hardest case.
    assert ours_strict.fail_rate <= ALPHA
    # The same intervals at a fixed-sample width, peeked at 20 times, alarm far more often.
    assert fixed_strict.fail_rate > ALPHA
    assert fixed_strict.failed > 3 * max(1, ours_strict.failed)


@pytest.mark.slow
def test_an_identical_small_canary_beside_a_large_stable_is_rarely_failed():
    summaries = simulate(
        aa_scenario(0.1, batch=500, max_calls=6_000),
        range(1000, 1100),
        {"ours": AnalysisConfig(alpha=ALPHA).strict()},
    )
    assert summaries["ours"].fail_rate <= ALPHA


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("latency +20 %", "latency"),
        ("errors 1 % -> 3 %", "error_rate"),
        ("quality -0.05", "quality"),
        ("cost +15 %", "cost"),
    ],
)
def test_each_regression_is_judged_fail_on_its_own_metric(name, metric):
    scenario = regression_scenarios(0.5, batch=250, max_calls=40_000)[name]
    summary = simulate(scenario, range(5), {"ours": AnalysisConfig(alpha=ALPHA)},
                       stop_on_fail=True)["ours"]  # fmt: skip
    assert summary.failed == summary.runs == 5
    assert summary.passed_before_failing == 0
    for result in summary.results:
        assert result.first_fail is not None
        assert result.first_fail.metrics == (metric,)
        assert result.final is Verdict.FAIL
    median = summary.canary_calls_to_fail(0.5)
    assert median is not None
    assert median <= summary.canary_calls_to_fail(0.9)


def test_a_run_is_the_same_for_the_same_seed():
    scenario = regression_scenarios(0.2, batch=200, max_calls=6_000)["latency +20 %"]
    configs = {"ours": AnalysisConfig()}
    assert run(scenario, 7, configs) == run(scenario, 7, configs)
    assert run(scenario, 7, configs) != run(scenario, 8, configs)


def test_the_in_memory_sink_aggregates_what_the_analysis_reads():
    calls = BASELINE.calls(random.Random(1), 3_000)
    sink = InMemorySink()
    sink.record("canary", calls[:1000])
    sink.record("canary", calls[1000:])
    stable, canary = sink.arms()
    assert stable == ArmData()
    ok = [c for c in calls if not c.error]

    def values(field: str) -> Moments:
        return Moments.of(getattr(c, field) for c in calls if getattr(c, field) is not None)

    expected = ArmData(
        calls=3_000,
        errors=sum(c.error for c in calls),
        latency=LatencyHistogram.of(c.latency_ms for c in ok),
        cost=values("cost_usd"),
        input_tokens=values("input_tokens"),
        output_tokens=values("output_tokens"),
        quality=values("quality"),
        invalid_output=Proportion(len(ok), sum(not c.output_valid for c in ok)),
        truncation=Proportion(len(ok), sum(c.finish_reason == "length" for c in ok)),
    )
    assert canary.calls == expected.calls
    assert canary.errors == expected.errors > 0
    assert canary.latency == expected.latency
    assert canary.invalid_output == expected.invalid_output
    assert canary.truncation == expected.truncation
    for field in ("cost", "input_tokens", "output_tokens", "quality"):
        got, want = getattr(canary, field), getattr(expected, field)
        assert got.n == want.n > 0
        assert got.total == pytest.approx(want.total)
        assert got.sumsq == pytest.approx(want.sumsq)


class CountingSink(InMemorySink):
    """A sink of our own: the harness must send every call through it."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded = {"stable": 0, "canary": 0}

    def record(self, arm, calls: list[SimulatedCall]) -> None:  # type: ignore[override]
        self.recorded[arm] += len(calls)
        super().record(arm, calls)


def test_the_harness_sends_traffic_through_the_sink_it_is_given_at_the_canary_weight():
    sink = CountingSink()
    scenario = Scenario("A/A", canary_weight=0.2, batch=1_000, max_calls=20_000)
    result = run(scenario, 3, {"ours": AnalysisConfig()}, sink=sink)["ours"]
    assert result.looks == 20
    assert sum(sink.recorded.values()) == 20_000
    assert sink.recorded["canary"] == pytest.approx(4_000, rel=0.05)
    stable, canary = sink.arms()
    assert (stable.calls, canary.calls) == (sink.recorded["stable"], sink.recorded["canary"])
