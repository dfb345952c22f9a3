"""The controller's rule: what one look at a step does, from its verdict, calls and age.

A value module (no database), so that the controller (`service.RolloutService.decide`)
and the rollout benchmark (`bench/rollouts.py`) decide alike:

1. the analysis says `fail` -> roll back, whatever the step's age;
2. it says `pass` with `min_calls` per arm and the step is `min_minutes` old -> advance
   (complete after the last step);
3. the step's deadline has passed (`max_minutes`, twice that once extended) -> what
   `on_inconclusive` says: roll back, extend once, or pause;
4. else hold and look again.
"""

from __future__ import annotations

from typing import Literal

from promptctl.registry.analysis import Verdict
from promptctl.registry.rollouts.policy import Policy

Move = Literal["roll_back", "advance", "deadline", "hold"]
DeadlineMove = Literal["roll_back", "extend", "pause"]


def next_move(
    policy: Policy,
    verdict: Verdict,
    stable_calls: int,
    canary_calls: int,
    *,
    elapsed: float,
    extended: bool,
) -> Move:
    """Return what a look does to a step `elapsed` seconds old with this analysis."""
    if verdict is Verdict.FAIL:
        return "roll_back"
    enough = min(stable_calls, canary_calls) >= policy.min_calls
    if verdict is Verdict.PASS and enough and elapsed >= policy.min_seconds:
        return "advance"
    if elapsed >= step_deadline(policy, extended):
        return "deadline"
    return "hold"


def step_deadline(policy: Policy, extended: bool) -> float:
    """Seconds after a step's start when it is decided without a verdict."""
    return policy.max_seconds * (2 if extended else 1)


def at_deadline(policy: Policy, extended: bool) -> DeadlineMove:
    """What a step's deadline does: `on_inconclusive`, with `extend` allowed once."""
    if policy.on_inconclusive == "rollback":
        return "roll_back"
    if policy.on_inconclusive == "extend" and not extended:
        return "extend"
    return "pause"
