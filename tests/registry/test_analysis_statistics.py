"""The analysis' statistics: the mixture boundary, the two-sample intervals, the inputs.

Checked against the formulas as the papers write them (computed here independently),
against the standard library's normal distribution and statistics module, and against
the metrics' own histogram and aggregate code.
"""

from __future__ import annotations

import math
import random
import statistics
from statistics import NormalDist

import pytest

from promptctl.registry.analysis import (
    ArmData,
    AsymptoticCS,
    FixedSample,
    LatencyHistogram,
    Moments,
    Proportion,
    mixture_multiplier,
    mixture_rho2,
    optimal_tuning,
)
from promptctl.registry.analysis.intervals import (
    ArmEstimate,
    difference,
    mean_estimate,
    proportion_estimate,
    ratio,
)
from promptctl.registry.errors import UsageError
from promptctl.registry.metrics import Aggregate
from promptctl.registry.metrics.histogram import quantile


def paper_half_width(t: int, rho2: float, alpha: float, sigma: float) -> float:
    """Waudby-Smith et al.'s Gaussian-mixture AsympCS half-width, as the paper writes it."""
    return sigma * math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha)
    )


@pytest.mark.parametrize("alpha", [0.05, 0.05 / 8, 0.001])
@pytest.mark.parametrize("t", [10, 1_000, 123_456])
def test_the_multiplier_times_the_standard_error_is_the_papers_half_width(alpha, t):
    rho2 = mixture_rho2(5_000, alpha)
    sigma = 2.5
    ours = mixture_multiplier(t, rho2, alpha) * sigma / math.sqrt(t)
    assert ours == pytest.approx(paper_half_width(t, rho2, alpha, sigma), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.00625, 1e-4])
def test_the_tuning_minimises_the_width_at_the_planned_size(alpha):
    planned = 10_000
    best = mixture_multiplier(planned, mixture_rho2(planned, alpha), alpha)
    for factor in (0.5, 0.8, 0.95, 1.05, 1.25, 2.0):
        other = mixture_multiplier(planned, factor * mixture_rho2(planned, alpha), alpha)
        assert other > best
    x = optimal_tuning(alpha)
    assert x == pytest.approx(2 * math.log(1 / alpha) + math.log1p(x), abs=1e-9)
    # The paper's closed form is one step of the fixed point: close, a little below.
    closed = 2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha))
    assert closed < x < closed * 1.05


def test_the_sequence_is_wider_than_a_fixed_sample_interval_but_only_slowly_grows():
    alpha = 0.05 / 8
    z = FixedSample().multiplier(1, alpha)
    assert z == pytest.approx(NormalDist().inv_cdf(1 - alpha / 2))
    cs = AsymptoticCS(planned=10_000)
    at_plan = cs.multiplier(10_000, alpha)
    assert z < at_plan < 1.5 * z
    for t in (100, 1_000, 100_000, 10_000_000):
        assert cs.multiplier(t, alpha) > at_plan
    # log growth: a thousand times the planned size costs under a quarter more width
    assert cs.multiplier(10_000_000, alpha) < 1.25 * at_plan


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, "0.05", True, math.nan])
def test_a_level_outside_zero_to_one_is_refused_by_name(bad):
    with pytest.raises(UsageError, match="'alpha'"):
        optimal_tuning(bad)


def test_planned_size_must_be_positive():
    with pytest.raises(UsageError, match="planned_calls"):
        mixture_rho2(0, 0.05)


def test_difference_interval_is_welch_standard_error_times_the_multiplier():
    rng = random.Random(3)
    a = [rng.gauss(10, 2) for _ in range(400)]
    b = [rng.gauss(11, 3) for _ in range(90)]
    got = difference(mean_estimate(Moments.of(b)), mean_estimate(Moments.of(a)), 2.0)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    delta = statistics.fmean(b) - statistics.fmean(a)
    assert got.estimate == pytest.approx(delta)
    assert got.low == pytest.approx(delta - 2.0 * se)
    assert got.high == pytest.approx(delta + 2.0 * se)


def test_fieller_bounds_are_the_ratios_where_the_contrast_meets_the_boundary():
    canary = ArmEstimate(mean=1.15, var_of_mean=0.002, n=300)
    stable = ArmEstimate(mean=1.0, var_of_mean=0.0005, n=3000)
    m = 3.5
    got = ratio(canary, stable, m)
    assert got is not None
    assert got.low is not None
    assert got.high is not None
    assert got.low < 1.15 < got.high
    for theta in (got.low, got.high):
        contrast = canary.mean - theta * stable.mean
        bound = m * math.sqrt(canary.var_of_mean + theta**2 * stable.var_of_mean)
        assert abs(contrast) == pytest.approx(bound, rel=1e-9)
    # As the variances vanish the interval closes on the plain ratio.
    exact = ratio(ArmEstimate(1.15, 1e-14, 10**9), ArmEstimate(1.0, 1e-14, 10**9), m)
    assert exact is not None
    assert exact.low == pytest.approx(1.15, abs=1e-5)
    assert exact.high == pytest.approx(1.15, abs=1e-5)


def test_fieller_is_unbounded_when_stables_mean_is_not_known_to_be_nonzero():
    got = ratio(ArmEstimate(1.0, 0.01, 50), ArmEstimate(0.1, 0.01, 50), 3.0)
    assert got is not None
    assert not got.bounded
    assert ratio(ArmEstimate(1.0, 0.01, 50), ArmEstimate(0.0, 0.01, 50), 3.0) is None


def test_agresti_caffo_gives_a_rare_flag_a_variance():
    zero = proportion_estimate(Proportion(200, 0))
    assert zero.mean == pytest.approx(1 / 202)
    assert zero.var_of_mean == pytest.approx((1 / 202) * (201 / 202) / 202)
    interval = difference(zero, zero, 3.0)
    assert interval.low < 0 < interval.high


def test_moments_give_the_sample_mean_and_variance_and_add_up():
    rng = random.Random(7)
    xs = [rng.lognormvariate(0, 1) for _ in range(1000)]
    m = Moments.of(xs)
    assert m.mean == pytest.approx(statistics.fmean(xs))
    assert m.variance == pytest.approx(statistics.variance(xs))
    merged = Moments.of(xs[:300]) + Moments.of(xs[300:])
    assert merged.n == m.n
    assert merged.mean == pytest.approx(m.mean)
    assert merged.variance == pytest.approx(m.variance)
    assert Moments.of([5.0] * 10).variance == 0.0
    assert Moments.of([1.0]).variance is None


def test_the_histogram_is_bucketed_exactly_as_the_metrics_ingest_does():
    rng = random.Random(11)
    latencies = [rng.lognormvariate(6.5, 0.6) for _ in range(5000)] + [0.0, 0.0]
    agg = Aggregate()
    for v in latencies:
        agg.add_event(v, False, None, None, None, None)
    stored = agg.values()["latency_histogram"]
    ours = LatencyHistogram.of(latencies)
    assert ours.to_json() == stored
    assert LatencyHistogram.from_json(stored) == ours
    assert ours.count == len(latencies)
    for q in (0.5, 0.95, 0.99):
        assert ours.quantile(q) == quantile(agg.buckets, agg.zero, q, 0.0, math.inf)
        assert ours.quantile(q) == pytest.approx(agg.quantile(q))


def test_quantiles_follow_the_metrics_nearest_rank_rule():
    for seed in range(100):
        rng = random.Random(seed)
        buckets = {rng.randint(-5, 60): rng.randint(1, 5) for _ in range(rng.randint(1, 30))}
        zero = rng.randint(0, 3)
        h = LatencyHistogram.from_buckets(buckets, zero)
        for q in (0.0, 0.01, 0.5, 0.95, 0.99, 1.0):
            assert h.quantile(q) == quantile(buckets, zero, q, 0.0, math.inf)
    assert LatencyHistogram().quantile(0.5) is None


def test_the_mean_log_latency_from_buckets_is_within_a_hundredth_of_exact():
    rng = random.Random(5)
    latencies = [rng.lognormvariate(6.0, 0.5) for _ in range(20_000)]
    logs = Moments.of(math.log(v) for v in latencies)
    from_buckets = LatencyHistogram.of(latencies).log_moments
    assert from_buckets.n == logs.n
    assert from_buckets.mean == pytest.approx(logs.mean, abs=0.01)
    assert from_buckets.variance == pytest.approx(logs.variance, rel=0.01)


def test_histograms_merge_by_addition():
    a = LatencyHistogram.of([1.0, 10.0, 10.0, 0.0])
    b = LatencyHistogram.of([10.0, 100.0])
    assert a + b == LatencyHistogram.of([1.0, 10.0, 10.0, 0.0, 10.0, 100.0])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Proportion(10, 11), "11 hits of 10 trials"),
        (lambda: ArmData(calls=5, errors=6), "6 errors of 5 calls"),
        (lambda: Moments(-1), "negative"),
        (lambda: Moments(3, math.inf, 1.0), "must be finite"),
        (lambda: LatencyHistogram(((3, 1), (2, 1))), "sorted"),
        (lambda: LatencyHistogram.from_json({"counts": [1]}), "zero, offset, counts"),
    ],
)
def test_inconsistent_aggregates_are_refused_with_what_is_wrong(build, message):
    with pytest.raises(UsageError, match=message):
        build()
