"""Rollouts as values: what `rollout status`, the API and the controller read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from promptctl.registry.releases.routing import format_percent
from promptctl.registry.releases.values import timestamp
from promptctl.registry.rollouts.policy import Policy
from promptctl.registry.rollouts.rule import step_deadline
from promptctl.registry.store.models import Rollout, RolloutEvent, as_utc

CONTROLLER = "promptctl-controller"
RUNNING, PAUSED = "running", "paused"
COMPLETED, ROLLED_BACK, ABORTED = "completed", "rolled_back", "aborted"
LIVE = (RUNNING, PAUSED)


@dataclass(frozen=True)
class RolloutEventInfo:
    """One decision of a rollout."""

    action: str
    step: int
    weight_bp: int | None
    actor: str
    reason: str | None
    release_revision: int | None
    analysis: dict[str, Any] | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "step": self.step + 1,
            "weight": self.weight_bp / 100 if self.weight_bp is not None else None,
            "weight_bp": self.weight_bp,
            "actor": self.actor,
            "reason": self.reason,
            "revision": self.release_revision,
            "analysis": self.analysis,
            "created_at": timestamp(self.created_at),
        }


@dataclass(frozen=True)
class RolloutEnding:
    """How a rollout ended: completed, rolled back or aborted; when, by whom, and why."""

    outcome: str  # COMPLETED, ROLLED_BACK or ABORTED
    at: datetime
    by: str | None  # None when the ending decision is not among the events read
    reason: str | None
    step: int  # 0-based: the step it ended at
    steps: int
    weight_bp: int  # that step's weight

    def describe(self) -> str:
        """The ending in one line, e.g. `rolled back at step 2/4 (10%) on ... by ...`."""
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        return (
            f"{self.outcome.replace('_', ' ')} at step {self.step + 1}/{self.steps} "
            f"({format_percent(self.weight_bp)}) on {_hm(self.at)}{who}{why}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "at": timestamp(self.at),
            "by": self.by,
            "reason": self.reason,
            "step": self.step + 1,
            "weight": self.weight_bp / 100,
            "weight_bp": self.weight_bp,
        }


@dataclass(frozen=True)
class RolloutState:
    """A rollout: its policy, where it is, and what happens next."""

    id: int
    prompt: str
    environment: str
    status: str
    policy: Policy
    step: int  # 0-based
    step_started_at: datetime
    extended: bool
    stable_digest: str
    canary_digest: str
    release_revision: int
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    reason: str | None
    last_checked_at: datetime | None
    last_analysis: dict[str, Any] | None
    events: tuple[RolloutEventInfo, ...] = ()
    row_revision: int = 0  # the row's own revision when read (guards a decision on it)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def weight_bp(self) -> int:
        return self.policy.steps_bp[self.step]

    @property
    def last_step(self) -> bool:
        return self.step == len(self.policy.steps_bp) - 1

    @property
    def earliest_advance(self) -> datetime:
        return self.step_started_at + timedelta(seconds=self.policy.min_seconds)

    @property
    def ending(self) -> RolloutEnding | None:
        """How the rollout ended; None while it is live."""
        if self.live:
            return None
        # The ending decision is the last event whose action names the outcome (the
        # service and a person's release action both record it so).
        by = next((e.actor for e in reversed(self.events) if e.action == self.status), None)
        return RolloutEnding(
            outcome=self.status,
            at=self.ended_at or self.step_started_at,
            by=by,
            reason=self.reason,
            step=self.step,
            steps=len(self.policy.steps_bp),
            weight_bp=self.weight_bp,
        )

    @property
    def deadline(self) -> datetime:
        """When a step without a verdict is acted on (`on_inconclusive`)."""
        return self.step_started_at + timedelta(seconds=step_deadline(self.policy, self.extended))

    def next_action(self, now: datetime) -> str:
        """What happens next and when, in words."""
        if self.status == PAUSED:
            return "waits for a person: `promptctl rollout resume` or `abort` or `promote`"
        ending = self.ending
        if ending is not None:
            return f"nothing: the rollout {ending.describe()}"
        target = (
            "the canary becomes stable"
            if self.last_step
            else f"advances to {format_percent(self.policy.steps_bp[self.step + 1])}"
        )
        when = max(self.earliest_advance, now)
        deadline = self.deadline
        on = self.policy.on_inconclusive
        if on == "extend" and not self.extended:
            later = deadline + timedelta(seconds=self.policy.max_seconds)
            then = f"the deadline moves once to {_hm(later)}"
        elif on == "extend":
            then = "pause"
        else:
            then = on.replace("rollback", "roll back")
        return (
            f"{target} once every guard passes with {self.policy.min_calls} calls per arm, "
            f"not before {_hm(when)}; a failing guard rolls back at once; "
            f"at {_hm(deadline)} without a verdict: {then}"
        )

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The rollout as the API and `--json` answer it; an ended one has no deadline
        and no next step, and says in `ended` how it ended."""
        now = now or datetime.now(self.step_started_at.tzinfo)
        # An ended rollout's clock stopped when it ended.
        in_step = min(now, self.ended_at) if self.ended_at is not None else now
        ending = self.ending
        return {
            "id": self.id,
            "prompt": self.prompt,
            "environment": self.environment,
            "status": self.status,
            "policy": self.policy.to_json(),
            "step": self.step + 1,
            "steps": len(self.policy.steps_bp),
            "weight": self.weight_bp / 100,
            "weight_bp": self.weight_bp,
            "step_started_at": timestamp(self.step_started_at),
            "seconds_in_step": max(0.0, (in_step - self.step_started_at).total_seconds()),
            "extended": self.extended,
            "deadline": timestamp(self.deadline) if ending is None else None,
            "stable_digest": self.stable_digest,
            "canary_digest": self.canary_digest,
            "revision": self.release_revision,
            "started_at": timestamp(self.started_at),
            "started_by": self.started_by,
            "ended_at": timestamp(self.ended_at) if self.ended_at else None,
            "reason": self.reason,
            "last_checked_at": timestamp(self.last_checked_at) if self.last_checked_at else None,
            "analysis": self.last_analysis,
            "next": self.next_action(now) if ending is None else None,
            "ended": ending.to_json() if ending is not None else None,
            "events": [e.to_json() for e in self.events],
        }


def _hm(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def event_info(row: RolloutEvent) -> RolloutEventInfo:
    return RolloutEventInfo(
        row.action,
        row.step,
        row.weight_bp,
        row.actor,
        row.reason,
        row.release_revision,
        row.analysis,
        as_utc(row.created_at),
    )


def rollout_state(row: Rollout, events: list[RolloutEvent] | None = None) -> RolloutState:
    return RolloutState(
        id=row.id,
        prompt=row.prompt,
        environment=row.environment,
        status=row.status,
        policy=Policy.from_json(row.policy),
        step=row.step,
        step_started_at=as_utc(row.step_started_at),
        extended=row.extended,
        stable_digest=row.stable_digest,
        canary_digest=row.canary_digest,
        release_revision=row.release_revision,
        started_at=as_utc(row.started_at),
        started_by=row.started_by,
        ended_at=as_utc(row.ended_at) if row.ended_at else None,
        reason=row.reason,
        last_checked_at=as_utc(row.last_checked_at) if row.last_checked_at else None,
        last_analysis=row.last_analysis,
        events=tuple(event_info(e) for e in events or ()),
        row_revision=row.revision,
    )
