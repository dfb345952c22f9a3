"""Automated rollouts benchmark: how long a rollout policy takes, in calls and in minutes at
a given call rate, to complete a good canary and to roll back each regression of the
canary analysis (latency +20 %, errors 1 % -> 3 %, quality -0.05, cost +15 %).

    .venv/bin/python bench/rollouts.py        # the built-in default policy at 1, 10, 100 calls/s
    .venv/bin/python bench/rollouts.py --rates 5 50 --runs 20
    .venv/bin/python bench/rollouts.py --config promptctl.toml --policy careful
    .venv/bin/python bench/rollouts.py --steps 10 25 50 --max-minutes 120   # try step sizes

Each run is one rollout, simulated look by look as the server's controller runs it:
every `--interval` seconds (the controller's default, PROMPTCTL_ROLLOUT_INTERVAL, is 30)
the prompt has received rate × interval more calls, each sent to the canary with the
step's weight; the analysis judges the step's calls so far with the policy's guards
(`registry.analysis.analyze`, on the simulation's in-memory aggregates, which hold what
the rollups hold), and the controller's own rule (`registry.rollouts.rule`) advances,
rolls back, holds, or acts on the deadline. A step restarts the window, as the controller
does (the controller rounds a step's start down to its minute, so its first window also
holds up to 59 s of the step before; ignored here). Traffic is the seeded synthetic
traffic of `registry.analysis.simulation`: stable's calls have log-normal latency (median
800 ms), 1 % errors, a cost from log-normal tokens, a quality score on a third of them.

Printed: for each rate and canary, how the runs ended (completed; rolled back at step k;
paused at step k at the deadline, i.e. inconclusive) and the calls (both arms) and
minutes to that end, median and 90th percentile over `--runs` seeds. Nothing is asserted.

Measured with the defaults (built-in policy: steps 1, 5, 25, 50 %, 500 calls per arm,
5 to 60 minutes a step, pause when inconclusive; 10 runs each, 5 at 1,000 calls/s; the
whole table is in the README, "How long a rollout takes at your traffic"): at 1 and 10
calls/s every run pauses at the 1 % step's deadline (60 min), good or bad; at 100 calls/s
a good canary completes in 4 of 10 runs (else pauses at 60 min), latency +20 % rolls back
in 6 min (median), quality -0.05 in 11, cost +15 % in 20, errors 1 % -> 3 % in half the
runs by 58 min; at 1,000 calls/s a good canary completes in 22 min (1.3 M calls) and the
regressions roll back in 1.5, 9, 2 and 2 min. With steps 10, 25, 50 %, 200 calls per arm
and 120 min a step, a good canary completes at 10 calls/s in 94 min and at 100 calls/s in
15 min.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from promptctl.registry.analysis import analyze
from promptctl.registry.analysis.simulation import (
    BASELINE,
    ArmProfile,
    InMemorySink,
    regression_scenarios,
)
from promptctl.registry.releases.routing import format_percent
from promptctl.registry.rollouts.policy import (
    BUILTIN,
    INCONCLUSIVE_ACTIONS,
    Policy,
    read_policies,
)
from promptctl.registry.rollouts.rule import at_deadline, next_move


@dataclass(frozen=True)
class Ending:
    """How one simulated rollout ended, after how many calls and seconds."""

    outcome: str  # "completed", "rolled back at step k", "paused at step k (deadline)"
    calls: int
    canary_calls: int
    seconds: float


def rollout(policy: Policy, canary: ArmProfile, rate: float, interval: float, seed: int) -> Ending:
    """Run one rollout of `canary` against the baseline under `policy`, look by look."""
    rng = random.Random(seed)
    config = policy.analysis_config()
    step, extended, started = 0, False, 0.0
    sink = InMemorySink()
    now = carry = 0.0
    calls = canary_calls = 0
    while True:
        carry += rate * interval
        batch = int(carry)
        carry -= batch
        weight = policy.steps_bp[step] / 10_000
        to_canary = sum(rng.random() < weight for _ in range(batch))
        sink.record("canary", canary.calls(rng, to_canary))
        sink.record("stable", BASELINE.calls(rng, batch - to_canary))
        calls += batch
        canary_calls += to_canary
        now += interval
        stable_arm, canary_arm = sink.arms()
        result = analyze(stable_arm, canary_arm, config)
        move = next_move(
            policy,
            result.verdict,
            result.stable_calls,
            result.canary_calls,
            elapsed=now - started,
            extended=extended,
        )
        where = f"step {step + 1} ({format_percent(policy.steps_bp[step])})"
        if move == "roll_back":
            return Ending(f"rolled back at {where}", calls, canary_calls, now)
        if move == "advance":
            if step == len(policy.steps_bp) - 1:
                return Ending("completed", calls, canary_calls, now)
            step, extended, started, sink = step + 1, False, now, InMemorySink()
        elif move == "deadline":
            action = at_deadline(policy, extended)
            if action == "roll_back":
                return Ending(f"rolled back at {where} (deadline)", calls, canary_calls, now)
            if action == "pause":
                return Ending(f"paused at {where} (deadline)", calls, canary_calls, now)
            extended = True


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def calls_text(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1e6:.2f} M"
    if value >= 10_000:
        return f"{value / 1e3:.0f} k"
    return f"{value:,.0f}"


def minutes_text(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.1f}"


def outcomes_text(endings: list[Ending]) -> str:
    counts = Counter(e.outcome for e in endings)
    return "; ".join(f"{outcome} {n}/{len(endings)}" for outcome, n in counts.most_common())


def canaries() -> dict[str, ArmProfile]:
    """A good canary (stable's copy) and the four regressions of the analysis."""
    found = {"good (A/A)": BASELINE}
    found.update({name: s.canary for name, s in regression_scenarios().items()})
    return found


def chosen_policy(args: argparse.Namespace) -> Policy:
    """The policy asked for, with the command line's overrides."""
    if args.config is None:
        policy = BUILTIN if args.policy is None else read_policies(None).choose("", args.policy)
    else:
        path = Path(args.config)
        book = read_policies(path.read_text(encoding="utf-8"), str(path))
        policy = book.choose(args.prompt or "", args.policy)
    changes: dict[str, object] = {}
    if args.steps:
        changes["steps_bp"] = tuple(round(w * 100) for w in args.steps)
    if args.min_calls is not None:
        changes["min_calls"] = args.min_calls
    if args.min_minutes is not None:
        changes["min_seconds"] = args.min_minutes * 60
    if args.max_minutes is not None:
        changes["max_seconds"] = args.max_minutes * 60
    if args.on_inconclusive is not None:
        changes["on_inconclusive"] = args.on_inconclusive
    return replace(policy, name=f"{policy.name} (changed)", **changes) if changes else policy


def describe(policy: Policy) -> str:
    steps = ", ".join(format_percent(bp) for bp in policy.steps_bp)
    return (
        f"policy {policy.name!r}: steps {steps}; {policy.min_calls} calls per arm; "
        f"{policy.min_seconds / 60:g} to {policy.max_seconds / 60:g} min a step; "
        f"on_inconclusive {policy.on_inconclusive}; alpha {policy.alpha}; "
        f"guards {', '.join(g.metric for g in policy.guards)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 10, 100], help="calls/s")
    parser.add_argument("--runs", type=int, default=10, help="seeded runs per rate and canary")
    parser.add_argument("--interval", type=float, default=30.0, help="controller look, seconds")
    parser.add_argument("--config", help="a promptctl.toml to read policies from")
    parser.add_argument("--policy", help="the policy's name (default: the file's default)")
    parser.add_argument("--prompt", help="a prompt name, to choose by [rollout.prompts]")
    parser.add_argument("--steps", type=float, nargs="+", help="override: weights in percent")
    parser.add_argument("--min-calls", type=int, help="override: calls per arm")
    parser.add_argument("--min-minutes", type=float, help="override")
    parser.add_argument("--max-minutes", type=float, help="override")
    parser.add_argument("--on-inconclusive", choices=INCONCLUSIVE_ACTIONS, help="override")
    args = parser.parse_args()
    policy = chosen_policy(args)
    print(describe(policy))
    print(f"controller look every {args.interval:g} s; {args.runs} seeded runs per row\n")
    print(
        "| calls/s | canary | how the runs ended | calls (median / p90) | minutes (median / p90) |"
    )
    print("|---:|---|---|---:|---:|")
    started = time.perf_counter()
    for rate in args.rates:
        for name, canary in canaries().items():
            endings = [
                rollout(policy, canary, rate, args.interval, seed) for seed in range(args.runs)
            ]
            calls = [float(e.calls) for e in endings]
            seconds = [e.seconds for e in endings]
            print(
                f"| {rate:g} | {name} | {outcomes_text(endings)} | "
                f"{calls_text(quantile(calls, 0.5))} / {calls_text(quantile(calls, 0.9))} | "
                f"{minutes_text(quantile(seconds, 0.5))} / {minutes_text(quantile(seconds, 0.9))} |"
            )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
