"""Canary analysis benchmark: false alarms under continuous monitoring, calls to detect,
and the time of one analysis.

    .venv/bin/python bench/analysis.py                     # the defaults below, a few minutes
    .venv/bin/python bench/analysis.py --aa-runs 100 --detect-runs 20 --events 100000
    .venv/bin/python bench/analysis.py --weight 0.05 --batch 1000

Traffic is synthetic and seeded (`promptctl.registry.analysis.simulation`): each call goes
to the canary with probability `--weight`; stable's calls have log-normal latency
(median 800 ms), 1 % errors, log-normal tokens, a cost from the tokens, a quality on a
third of them, 2 % invalid outputs and 1 % truncations. The analysis runs after every
`--batch` calls (both arms), as a controller would every minute.

1. A/A (the canary is stable's copy), `--aa-runs` runs of `--aa-calls` calls: the share
   of runs ever judged `fail`, for
   - ours: the anytime-valid confidence sequence, α split over the 8 guards;
   - fixed sample: the same intervals at the width of a z-test (valid at one look);
   - plain z-test: α at every look for every metric, no split (what peeking on a
     dashboard amounts to);
   each with the default tolerances and with every tolerance 0 (where a true
   difference of 0 sits on the edge: the case the α guarantee is about).
2. Detection, `--detect-runs` runs each of latency +20 %, errors 1 % -> 3 %, quality
   -0.05, cost +15 %: the share judged `fail`, the canary calls it took (median, 90th
   percentile), and runs judged `pass` before failing (a false pass).
3. Analysis time: `analyze()` of arms holding `--events` calls each (median of 200), and
   building the histogram from its stored form, as the rollups will hand it over.

Goals: A/A false-fail rate at most α for ours at any number of looks; one analysis well
under 50 ms (it reads aggregates only, so its time does not grow with the events).
Printed only; nothing is asserted.

Measured with the defaults (seeded, so the rates repeat; the times are a loaded 2-core
machine's): A/A ever judged `fail` in 100 looks, zero tolerances: ours 1.0 % (5/500),
fixed sample 12.6 %, plain z-test 65 %; default tolerances: 0 %, 0 %, 0.2 %. Canary
calls to `fail` (median / p90, 50 runs, all detected, none passed first): latency +20 %
543 / 861, errors 1 % -> 3 % 3,666 / 5,866, quality -0.05 1,040 / 1,624 (a third of
calls scored), cost +15 % 1,135 / 2,034. analyze() at 1,000,000 calls per arm: 0.12 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace

from promptctl.registry.analysis import DEFAULT_GUARDS, AnalysisConfig, LatencyHistogram, analyze
from promptctl.registry.analysis.simulation import (
    BASELINE,
    InMemorySink,
    Summary,
    aa_scenario,
    regression_scenarios,
    simulate,
)


def configs(alpha: float, planned: int) -> dict[str, AnalysisConfig]:
    ours = AnalysisConfig(alpha=alpha, planned_calls=planned)
    fixed = replace(ours, sequential=False)
    # α for every metric: the overall level times the number of guards, split back by k.
    plain = replace(fixed, alpha=min(0.99, alpha * len(DEFAULT_GUARDS)))
    found: dict[str, AnalysisConfig] = {}
    for name, config in (("ours", ours), ("fixed sample", fixed), ("plain z-test", plain)):
        found[f"{name}, default tolerances"] = config
        found[f"{name}, zero tolerances"] = config.strict()
    return found


def show_calls(value: int | None) -> str:
    return f"{value:,}" if value is not None else "not reached"


def aa(args: argparse.Namespace) -> None:
    scenario = aa_scenario(args.weight, args.batch, args.aa_calls)
    looks = -(-args.aa_calls // args.batch)
    print(
        f"\nA/A: {args.aa_runs} runs of {args.aa_calls:,} calls, canary weight "
        f"{args.weight:.0%}, analysed every {args.batch} calls ({looks} looks), α = {args.alpha}"
    )
    started = time.perf_counter()
    summaries = simulate(scenario, range(args.aa_runs), configs(args.alpha, args.planned))
    print(f"  ({time.perf_counter() - started:.0f} s)")
    print(f"  {'method':<34} {'ever fail':>10} {'rate':>7}   {'canary calls to pass (median)':>30}")
    for name, s in summaries.items():
        print(
            f"  {name:<34} {s.failed:>5}/{s.runs:<4} {s.fail_rate:>7.1%}   "
            f"{show_calls(s.canary_calls_to_pass(0.5)):>30}"
        )


def detection(args: argparse.Namespace) -> None:
    print(
        f"\nDetection: {args.detect_runs} runs each, canary weight {args.weight:.0%}, "
        f"analysed every {args.batch} calls, at most {args.detect_calls:,} calls"
    )
    chosen = {k: v for k, v in configs(args.alpha, args.planned).items() if "default" in k}
    print(
        f"  {'regression':<20} {'method':<32} {'failed':>8} {'median':>9} {'p90':>9} "
        f"{'passed first':>12}"
    )
    for name, scenario in regression_scenarios(args.weight, args.batch, args.detect_calls).items():
        summaries: dict[str, Summary] = simulate(
            scenario, range(10_000, 10_000 + args.detect_runs), chosen, stop_on_fail=True
        )
        for method, s in summaries.items():
            print(
                f"  {name:<20} {method:<32} {s.failed:>4}/{s.runs:<3} "
                f"{show_calls(s.canary_calls_to_fail(0.5)):>9} "
                f"{show_calls(s.canary_calls_to_fail(0.9)):>9} {s.passed_before_failing:>12}"
            )
    print("  (median and p90: canary calls at the first `fail`; the fixed-sample rows are for")
    print("   comparison only: their speed is bought with the false alarms above)")


def timing(args: argparse.Namespace) -> None:
    print(f"\nAnalysis time: arms of {args.events:,} calls each")
    rng = random.Random(1)
    sink = InMemorySink()
    for arm in ("stable", "canary"):
        left = args.events
        while left:
            n = min(left, 100_000)
            sink.record(arm, BASELINE.calls(rng, n))  # type: ignore[arg-type]
            left -= n
    stable, canary = sink.arms()
    stored = canary.latency.to_json()
    samples = []
    for _ in range(200):
        t = time.perf_counter()
        analyze(stable, canary)
        samples.append(time.perf_counter() - t)
    build = []
    for _ in range(200):
        t = time.perf_counter()
        LatencyHistogram.from_json(stored)
        build.append(time.perf_counter() - t)
    buckets = len(canary.latency.buckets)
    print(f"  analyze(): {statistics.median(samples) * 1e3:.3f} ms (median of 200)")
    print(
        f"  histogram from its stored form ({buckets} buckets): "
        f"{statistics.median(build) * 1e3:.3f} ms per arm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--weight", type=float, default=0.1, help="canary weight (0-1)")
    parser.add_argument("--batch", type=int, default=500, help="calls between analyses")
    parser.add_argument("--planned", type=int, default=10_000, help="planned_calls of ours")
    parser.add_argument("--aa-runs", type=int, default=500)
    parser.add_argument("--aa-calls", type=int, default=50_000)
    parser.add_argument("--detect-runs", type=int, default=50)
    parser.add_argument("--detect-calls", type=int, default=300_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="calls per arm, timing")
    parser.add_argument("--only", choices=["aa", "detect", "time"])
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    if args.only in (None, "time"):
        timing(args)
    if args.only in (None, "aa"):
        aa(args)
    if args.only in (None, "detect"):
        detection(args)


if __name__ == "__main__":
    main()
