"""Seeded synthetic canaries, analysed the way a controller would: after every batch.

Shared by the tests (fixed seeds, so deterministic) and `bench/analysis.py`:

- `ArmProfile`: one version's traffic. Latency log-normal (failed calls are fast and
  kept out of latency), errors Bernoulli, input and output tokens log-normal, cost from
  the tokens at a price (times `cost_factor`), quality a clipped normal on a share of
  the calls, invalid outputs and truncations Bernoulli.
- `Scenario`: stable and canary profiles, the canary weight (each call goes to the
  canary with that probability), the batch of calls between two analyses and the
  calls per run. `aa_scenario` and `regression_scenarios` are the standard ones.
- `TrafficSink`: where the calls go and where the arms' aggregates come back from.
  `InMemorySink` aggregates in memory with the metrics' own histogram buckets; a sink
  over the real ingest (MetricsService, reading rollups back) has the same two methods.
- `run`: one seeded run of a scenario, the analysis of every configuration in `configs`
  after every batch on the same traffic; `simulate` runs many seeds and summarises the
  share of runs ever judged `fail` and the canary calls it took.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple, Protocol

from promptctl.registry.analysis.classifiers import Verdict
from promptctl.registry.analysis.guards import AnalysisConfig
from promptctl.registry.analysis.inputs import ArmData, LatencyHistogram, Moments, Proportion
from promptctl.registry.analysis.scorer import analyze
from promptctl.registry.metrics.histogram import bucket_of

Arm = Literal["stable", "canary"]


class SimulatedCall(NamedTuple):
    """One call as a client reports it (the event fields the analysis reads)."""

    latency_ms: float
    error: bool
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    quality: float | None
    output_valid: bool | None
    finish_reason: str | None


@dataclass(frozen=True)
class ArmProfile:
    """The traffic of one version: distributions of what its calls report."""

    latency_median_ms: float = 800.0
    latency_sigma: float = 0.5  # of log latency
    error_rate: float = 0.01
    error_latency_ms: float = 40.0
    input_tokens_median: float = 600.0
    input_tokens_sigma: float = 0.3
    output_tokens_median: float = 250.0
    output_tokens_sigma: float = 0.5
    price_input: float = 0.15  # USD per million tokens
    price_output: float = 0.60
    cost_factor: float = 1.0
    quality_mean: float = 0.85
    quality_sd: float = 0.12
    quality_share: float = 0.3
    invalid_rate: float = 0.02
    truncation_rate: float = 0.01

    def calls(self, rng: random.Random, n: int) -> list[SimulatedCall]:
        """Draw n calls."""
        gauss, rand, exp = rng.gauss, rng.random, math.exp
        mu_latency, mu_error = math.log(self.latency_median_ms), math.log(self.error_latency_ms)
        mu_in, mu_out = math.log(self.input_tokens_median), math.log(self.output_tokens_median)
        price_in = self.price_input * self.cost_factor / 1e6
        price_out = self.price_output * self.cost_factor / 1e6
        out: list[SimulatedCall] = []
        append = out.append
        for _ in range(n):
            if rand() < self.error_rate:
                append(
                    SimulatedCall(
                        exp(gauss(mu_error, 0.3)), True, None, None, None, None, None, None
                    )
                )
                continue
            tokens_in = round(exp(gauss(mu_in, self.input_tokens_sigma)))
            tokens_out = round(exp(gauss(mu_out, self.output_tokens_sigma)))
            quality = (
                min(1.0, max(0.0, gauss(self.quality_mean, self.quality_sd)))
                if rand() < self.quality_share
                else None
            )
            append(
                SimulatedCall(
                    exp(gauss(mu_latency, self.latency_sigma)),
                    False,
                    tokens_in,
                    tokens_out,
                    tokens_in * price_in + tokens_out * price_out,
                    quality,
                    rand() >= self.invalid_rate,
                    "length" if rand() < self.truncation_rate else "stop",
                )
            )
        return out


class TrafficSink(Protocol):
    """Takes the calls of each arm and gives back the aggregates the analysis reads."""

    def record(self, arm: Arm, calls: Sequence[SimulatedCall]) -> None: ...

    def arms(self) -> tuple[ArmData, ArmData]:
        """Return (stable, canary) aggregates of everything recorded so far."""
        ...


@dataclass
class _Tally:
    calls: int = 0
    errors: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    sums: dict[str, list[float]] = field(default_factory=lambda: {k: [0, 0.0, 0.0] for k in _MEANS})
    invalid: list[int] = field(default_factory=lambda: [0, 0])
    truncated: list[int] = field(default_factory=lambda: [0, 0])

    def data(self) -> ArmData:
        moments = {k: Moments(int(n), total, sumsq) for k, (n, total, sumsq) in self.sums.items()}
        return ArmData(
            calls=self.calls,
            errors=self.errors,
            latency=LatencyHistogram.from_buckets(self.buckets, self.zero),
            invalid_output=Proportion(*self.invalid),
            truncation=Proportion(*self.truncated),
            **moments,
        )


_MEANS = ("cost", "input_tokens", "output_tokens", "quality")


class InMemorySink:
    """Aggregates in memory: counts, sums, sums of squares and the metrics' histogram."""

    def __init__(self) -> None:
        self._tallies = {"stable": _Tally(), "canary": _Tally()}

    def record(self, arm: Arm, calls: Sequence[SimulatedCall]) -> None:
        t = self._tallies[arm]
        buckets, sums = t.buckets, t.sums
        cost, tokens_in, tokens_out, quality = (sums[k] for k in _MEANS)
        for c in calls:
            t.calls += 1
            if c.error:
                t.errors += 1
            elif c.latency_ms > 0:
                i = bucket_of(c.latency_ms)
                buckets[i] = buckets.get(i, 0) + 1
            else:
                t.zero += 1
            for acc, value in (
                (cost, c.cost_usd),
                (tokens_in, c.input_tokens),
                (tokens_out, c.output_tokens),
                (quality, c.quality),
            ):
                if value is not None:
                    acc[0] += 1
                    acc[1] += value
                    acc[2] += value * value
            if c.output_valid is not None:
                t.invalid[0] += 1
                t.invalid[1] += not c.output_valid
            if c.finish_reason is not None:
                t.truncated[0] += 1
                t.truncated[1] += c.finish_reason == "length"

    def arms(self) -> tuple[ArmData, ArmData]:
        return self._tallies["stable"].data(), self._tallies["canary"].data()


@dataclass(frozen=True)
class Scenario:
    """Stable and canary traffic, the canary's weight, and how often the analysis runs."""

    name: str
    stable: ArmProfile = ArmProfile()
    canary: ArmProfile = ArmProfile()
    canary_weight: float = 0.1
    batch: int = 500  # calls (both arms) between two analyses
    max_calls: int = 50_000  # calls (both arms) in one run


@dataclass(frozen=True)
class Look:
    """The analysis at one point of a run: calls so far and the metrics that decided."""

    calls: int
    canary_calls: int
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    """One seeded run under one configuration: when it first failed or passed, if ever."""

    seed: int
    looks: int
    first_fail: Look | None
    first_pass: Look | None
    final: Verdict


def run(
    scenario: Scenario,
    seed: int,
    configs: Mapping[str, AnalysisConfig],
    *,
    stop_on_fail: bool = False,
    sink: TrafficSink | None = None,
) -> dict[str, RunResult]:
    """Run one seeded canary, analysing with every configuration after every batch.

    Every configuration sees the same traffic. With `stop_on_fail` the run ends once all
    of them have failed (detection); otherwise it runs `max_calls` (A/A).
    """
    rng = random.Random(seed)
    sink = sink if sink is not None else InMemorySink()
    first_fail: dict[str, Look | None] = dict.fromkeys(configs)
    first_pass: dict[str, Look | None] = dict.fromkeys(configs)
    final: dict[str, Verdict] = dict.fromkeys(configs, Verdict.NO_DATA)
    looks = calls = 0
    while calls < scenario.max_calls:
        batch = min(scenario.batch, scenario.max_calls - calls)
        to_canary = sum(rng.random() < scenario.canary_weight for _ in range(batch))
        sink.record("canary", scenario.canary.calls(rng, to_canary))
        sink.record("stable", scenario.stable.calls(rng, batch - to_canary))
        calls += batch
        looks += 1
        stable, canary = sink.arms()
        for name, config in configs.items():
            if first_fail[name] is not None and stop_on_fail:
                continue
            report = analyze(stable, canary, config)
            final[name] = report.verdict
            if report.verdict in (Verdict.FAIL, Verdict.PASS):
                decided = tuple(m.metric for m in report.metrics if m.verdict is report.verdict)
                look = Look(calls, canary.calls, decided)
                if report.verdict is Verdict.FAIL and first_fail[name] is None:
                    first_fail[name] = look
                if report.verdict is Verdict.PASS and first_pass[name] is None:
                    first_pass[name] = look
        if stop_on_fail and all(first_fail.values()):
            break
    return {
        name: RunResult(seed, looks, first_fail[name], first_pass[name], final[name])
        for name in configs
    }


@dataclass(frozen=True)
class Summary:
    """Many seeded runs of a scenario under one configuration."""

    scenario: str
    config: str
    results: tuple[RunResult, ...]

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> int:
        """Runs judged `fail` at some look."""
        return sum(r.first_fail is not None for r in self.results)

    @property
    def fail_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0

    @property
    def passed_before_failing(self) -> int:
        """Runs judged `pass` at a look before any `fail` (or passing and never failing)."""
        return sum(
            r.first_pass is not None
            and (r.first_fail is None or r.first_pass.calls < r.first_fail.calls)
            for r in self.results
        )

    def canary_calls_to_fail(self, q: float) -> int | None:
        """The q-quantile (nearest rank) of canary calls at the first `fail`.

        Runs never judged `fail` count as beyond every run that was: None when the
        quantile falls among them.
        """
        return _quantile(
            [r.first_fail.canary_calls if r.first_fail else None for r in self.results], q
        )

    def canary_calls_to_pass(self, q: float) -> int | None:
        """The q-quantile of canary calls at the first `pass` (None beyond the runs)."""
        return _quantile(
            [r.first_pass.canary_calls if r.first_pass else None for r in self.results], q
        )


def _quantile(values: list[int | None], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def simulate(
    scenario: Scenario,
    seeds: Iterable[int],
    configs: Mapping[str, AnalysisConfig],
    *,
    stop_on_fail: bool = False,
    sink_factory: Callable[[], TrafficSink] = InMemorySink,
) -> dict[str, Summary]:
    """Run `scenario` once per seed under every configuration and summarise each."""
    collected: dict[str, list[RunResult]] = {name: [] for name in configs}
    for seed in seeds:
        for name, result in run(
            scenario, seed, configs, stop_on_fail=stop_on_fail, sink=sink_factory()
        ).items():
            collected[name].append(result)
    return {
        name: Summary(scenario.name, name, tuple(results)) for name, results in collected.items()
    }


BASELINE = ArmProfile()


def aa_scenario(canary_weight: float = 0.1, batch: int = 500, max_calls: int = 50_000) -> Scenario:
    """Return the A/A scenario: the canary is stable's exact copy."""
    return Scenario("A/A", BASELINE, BASELINE, canary_weight, batch, max_calls)


def regression_scenarios(
    canary_weight: float = 0.1, batch: int = 500, max_calls: int = 200_000
) -> dict[str, Scenario]:
    """Return the four regressions a canary analysis must catch, by name."""
    canaries = {
        "latency +20 %": replace(BASELINE, latency_median_ms=BASELINE.latency_median_ms * 1.2),
        "errors 1 % -> 3 %": replace(BASELINE, error_rate=0.03),
        "quality -0.05": replace(BASELINE, quality_mean=BASELINE.quality_mean - 0.05),
        "cost +15 %": replace(BASELINE, cost_factor=1.15),
    }
    return {
        name: Scenario(name, BASELINE, canary, canary_weight, batch, max_calls)
        for name, canary in canaries.items()
    }


def configurations(alpha: float = 0.05, planned_calls: int = 10_000) -> dict[str, AnalysisConfig]:
    """Return ours and the fixed-sample test, each with default and with zero tolerances."""
    ours = AnalysisConfig(alpha=alpha, planned_calls=planned_calls)
    fixed = replace(ours, sequential=False)
    return {
        "confidence sequence": ours,
        "fixed sample": fixed,
        "confidence sequence, zero tolerance": ours.strict(),
        "fixed sample, zero tolerance": fixed.strict(),
    }
