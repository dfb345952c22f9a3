"""Classifiers and scorer: each metric's verdict with its numbers, and the overall verdict.

Arms are built from aggregates with known means and spreads, so every verdict here is
decided by the rule (interval beyond, within or across the tolerance), not by luck.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from promptctl.registry.analysis import (
    DEFAULT_GUARDS,
    AnalysisConfig,
    ArmData,
    Guard,
    LatencyHistogram,
    Moments,
    Proportion,
    Tolerance,
    Verdict,
    analyze,
)
from promptctl.registry.errors import UsageError


def moments(n: int, mean: float, sd: float) -> Moments:
    """The aggregates of n values with this mean and sample standard deviation."""
    return Moments(n, n * mean, (n - 1) * sd * sd + n * mean * mean)


def latencies(n: int, median_ms: float, seed: int) -> LatencyHistogram:
    rng = random.Random(seed)
    return LatencyHistogram.of(rng.lognormvariate(math.log(median_ms), 0.5) for _ in range(n))


def arm(
    calls: int = 20_000,
    error_rate: float = 0.01,
    median_ms: float = 800.0,
    cost: float = 0.0024,
    quality: float = 0.85,
    invalid: float = 0.02,
    seed: int = 1,
) -> ArmData:
    errors = round(calls * error_rate)
    ok = calls - errors
    return ArmData(
        calls=calls,
        errors=errors,
        latency=latencies(ok, median_ms, seed),
        cost=moments(ok, cost, cost * 0.35),
        input_tokens=moments(ok, 600, 180),
        output_tokens=moments(ok, 250, 130),
        quality=moments(ok // 3, quality, 0.12),
        invalid_output=Proportion(ok, round(ok * invalid)),
        truncation=Proportion(ok, round(ok * 0.01)),
    )


STABLE = arm(calls=100_000, seed=1)


def test_an_identical_canary_passes_every_metric_with_its_numbers():
    report = analyze(STABLE, arm(calls=100_000, seed=2))
    assert report.verdict is Verdict.PASS
    latency = report.metric("latency")
    assert latency.verdict is Verdict.PASS
    assert latency.scale == "relative"
    assert latency.low < 0 < latency.high < 0.10
    assert latency.limit == 0.10
    assert latency.stable == pytest.approx(800, rel=0.02)  # the geometric mean, in ms
    assert [p.q for p in latency.percentiles] == [0.5, 0.95, 0.99]
    assert latency.percentiles[0].canary == pytest.approx(800, rel=0.03)
    errors = report.metric("error_rate")
    assert (errors.stable, errors.canary, errors.difference) == (0.01, 0.01, 0.0)
    assert errors.n_stable == errors.n_canary == 100_000
    assert errors.alpha == pytest.approx(0.05 / len(DEFAULT_GUARDS))
    assert "lies within the tolerance +1.00 pp" in errors.rule
    assert report.reasons[0].startswith("every required metric is within its tolerance")


@pytest.mark.parametrize(
    ("canary", "metric", "rule"),
    [
        (arm(error_rate=0.03), "error_rate", "lies above the tolerance +1.00 pp"),
        (arm(median_ms=1000), "latency", "lies above the tolerance +10.0 %"),
        (arm(cost=0.0024 * 1.2), "cost", "lies above the tolerance +10.0 %"),
        (arm(quality=0.78), "quality", "lies below the tolerance -0.02"),
        (arm(invalid=0.05), "invalid_output", "lies above the tolerance +1.00 pp"),
    ],
)
def test_a_canary_worse_than_a_tolerance_fails_on_that_metric(canary, metric, rule):
    report = analyze(STABLE, canary)
    assert report.verdict is Verdict.FAIL
    failing = [m.metric for m in report.metrics if m.verdict is Verdict.FAIL]
    assert failing == [metric]
    result = report.metric(metric)
    assert rule in result.rule
    assert result.rule in report.reasons[0]


def test_better_is_never_a_failure_in_either_direction():
    report = analyze(STABLE, arm(error_rate=0.0, median_ms=500, cost=0.001, quality=0.95))
    assert report.verdict is Verdict.PASS
    assert report.metric("quality").difference == pytest.approx(0.10)
    assert report.metric("latency").high < 0


def test_a_small_canary_straddling_a_tolerance_is_inconclusive():
    canary = arm(calls=400, error_rate=0.02, seed=4)
    report = analyze(STABLE, canary)
    errors = report.metric("error_rate")
    assert errors.verdict is Verdict.INCONCLUSIVE
    assert errors.low < 0.01 < errors.high
    assert "straddles the tolerance +1.00 pp" in errors.rule
    assert report.verdict is Verdict.INCONCLUSIVE


def test_failed_calls_never_make_a_failing_canary_look_fast():
    # Half the calls fail; the failures' latency is not in the histogram at all.
    canary = arm(calls=20_000, error_rate=0.5, seed=5)
    report = analyze(STABLE, canary)
    assert report.metric("error_rate").verdict is Verdict.FAIL
    latency = report.metric("latency")
    assert latency.n_canary == 10_000
    assert latency.verdict is Verdict.PASS


def test_below_the_minimum_count_a_metric_has_no_data_and_never_passes():
    canary = replace(arm(calls=20_000), quality=moments(12, 0.99, 0.01))
    report = analyze(STABLE, canary)
    quality = report.metric("quality")
    assert quality.verdict is Verdict.NO_DATA
    assert quality.rule == "no data: canary has 12 calls with a value, fewer than the 50 required"
    assert quality.difference == pytest.approx(0.14)  # shown, not judged
    assert quality.low is None
    assert quality.high is None
    # Optional and without data: the canary still passes on the others, and says so.
    assert report.verdict is Verdict.PASS
    assert "not judged, no data: quality" in report.reasons


def test_an_arm_without_calls_is_no_data_for_that_arm():
    report = analyze(STABLE, ArmData())
    assert report.verdict is Verdict.NO_DATA
    assert report.reasons == ("no data for canary",)
    assert all(m.verdict is Verdict.NO_DATA for m in report.metrics)
    assert analyze(ArmData(), ArmData()).reasons == ("no data for stable or canary",)


def test_a_required_metric_without_data_makes_the_whole_no_data():
    config = AnalysisConfig(
        guards=tuple(replace(g, required=g.metric == "quality") for g in DEFAULT_GUARDS)
    )
    canary = replace(arm(), quality=Moments())
    report = analyze(STABLE, canary, config)
    assert report.verdict is Verdict.NO_DATA
    assert report.reasons == (
        "quality (required): no data: canary has 0 calls with a value, fewer than the 50 required",
    )


def test_nothing_with_data_never_passes_even_without_required_metrics():
    config = AnalysisConfig(guards=(Guard("quality", Tolerance.absolute_of(0.02)),))
    report = analyze(arm(), arm(seed=2), config)
    assert report.verdict is Verdict.PASS  # quality has data
    empty = analyze(replace(arm(), quality=Moments()), arm(seed=2), config)
    assert empty.verdict is Verdict.NO_DATA
    assert empty.reasons == ("no metric has enough data to judge",)


def test_a_failure_outranks_missing_required_data():
    canary = replace(arm(error_rate=0.05), latency=LatencyHistogram())
    report = analyze(STABLE, canary)
    assert report.metric("latency").verdict is Verdict.NO_DATA
    assert report.verdict is Verdict.FAIL


def test_relative_and_absolute_tolerances_are_each_honoured():
    canary = arm(cost=0.0024 * 1.05)
    assert analyze(STABLE, canary).metric("cost").verdict is Verdict.PASS
    tight = AnalysisConfig().with_tolerances(cost=Tolerance.relative_of(0.01))
    assert analyze(STABLE, canary, tight).metric("cost").verdict is Verdict.FAIL
    absolute = AnalysisConfig().with_tolerances(cost=Tolerance.absolute_of(0.0005))
    result = analyze(STABLE, canary, absolute).metric("cost")
    assert result.scale == "absolute"
    assert result.difference == pytest.approx(0.00012)
    assert result.verdict is Verdict.PASS
    relative_errors = AnalysisConfig().with_tolerances(error_rate=Tolerance.relative_of(0.5))
    result = analyze(STABLE, arm(error_rate=0.03), relative_errors).metric("error_rate")
    assert result.scale == "relative"
    assert result.difference == pytest.approx(2.0)
    assert result.verdict is Verdict.FAIL


def test_a_relative_change_from_a_zero_mean_is_inconclusive_not_a_pass():
    stable = replace(arm(), cost=moments(1000, 0.0, 0.0))
    result = analyze(stable, arm()).metric("cost")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "stable's mean is 0" in result.rule


def test_a_fixed_sample_interval_is_narrower_than_the_sequence():
    canary = arm(calls=3_000, seed=9)
    ours = analyze(STABLE, canary).metric("latency")
    fixed = analyze(STABLE, canary, AnalysisConfig(sequential=False)).metric("latency")
    assert fixed.difference == ours.difference
    assert ours.low < fixed.low < fixed.high < ours.high


def test_the_report_has_a_json_form_with_every_number():
    doc = analyze(STABLE, arm(error_rate=0.03)).to_json()
    assert doc["verdict"] == "fail"
    assert doc["calls"] == {"stable": 100_000, "canary": 20_000}
    assert doc["settings"]["method"] == "confidence sequence"
    assert doc["settings"]["metric_alpha"] == pytest.approx(0.05 / 8)
    errors = next(m for m in doc["metrics"] if m["metric"] == "error_rate")
    assert set(errors) >= {
        "verdict", "rule", "stable", "canary", "difference", "low", "high", "limit",
        "n_stable", "n_canary", "alpha", "scale", "required", "percentiles",
    }  # fmt: skip
    assert errors["verdict"] == "fail"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Guard("speed", Tolerance.relative_of(0.1)), "unknown metric"),
        (lambda: Guard("cost", Tolerance.relative_of(-0.1)), "must be a finite harm >= 0"),
        (lambda: Guard("cost", Tolerance.relative_of(math.inf)), "must be a finite harm"),
        (lambda: Guard("latency", Tolerance.absolute_of(50)), "relative tolerance"),
        (lambda: Guard("cost", Tolerance.relative_of(0.1), min_count=1), "min_count"),
        (lambda: AnalysisConfig(alpha=0), "'alpha'"),
        (lambda: AnalysisConfig(planned_calls=0), "'planned_calls'"),
        (lambda: AnalysisConfig(guards=()), "at least one guard"),
        (lambda: AnalysisConfig(guards=DEFAULT_GUARDS[:2] * 2), "given twice"),
        (lambda: AnalysisConfig().with_tolerances(speed=Tolerance(1, True)), "no guard"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(build, message):
    with pytest.raises(UsageError, match=message):
        build()


def test_strict_settings_fail_any_shown_harm():
    canary = arm(median_ms=840)  # +5 %: within the default +10 %
    assert analyze(STABLE, canary).metric("latency").verdict is Verdict.PASS
    strict = analyze(STABLE, canary, AnalysisConfig().strict()).metric("latency")
    assert strict.limit == 0
    assert strict.verdict is Verdict.FAIL
