"""Rollouts: start, pause, resume, abort, promote, and the controller's decisions.

Every change to a rollout that changes its release is one release action (`ReleaseService`)
whose transaction also writes the rollout row and its event (`within`), so the two never
disagree. The rollout row carries its own revision: a decision made on a row someone else
changed since it was read is undone, as is one on a release whose revision moved (a
person acted in between and wins; the controller reads again next time).

A person's release action on a prompt under a live rollout (a canary weight, a rollback,
a promotion) reaches `watch_rollouts` in its transaction: a new weight pauses the rollout, anything
that ends the canary ends the rollout; the event says who and what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from promptctl.registry.analysis import Analysis, MetricResult, Verdict
from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.errors import (
    NoCanary,
    NoStableForCanary,
    ReleaseConflict,
    ReleaseNotFound,
    RevisionMismatch,
    RolloutError,
    RolloutNotFound,
)
from promptctl.registry.prompts.promptversion import PromptVersion
from promptctl.registry.releases.routing import format_percent
from promptctl.registry.releases.service import Applied, ReleaseService
from promptctl.registry.rollouts.judge import judge
from promptctl.registry.rollouts.policy import Policy
from promptctl.registry.rollouts.rule import at_deadline, next_move
from promptctl.registry.rollouts.values import (
    ABORTED,
    COMPLETED,
    CONTROLLER,
    LIVE,
    PAUSED,
    ROLLED_BACK,
    RUNNING,
    RolloutState,
    rollout_state,
)
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import Rollout, RolloutEvent, utcnow

# The analysis of a step: the stored canary report (judge.judge), or a bare Analysis from a
# stand-in (tests); the controller reads what both have.
Judge = Callable[[RolloutState, datetime], CanaryReport | Analysis]

# What a person's release action does to a live rollout of its release.
_ENDS = {
    "complete": COMPLETED,
    "abort": ABORTED,
    "canary_start": ABORTED,
    "rollback": ROLLED_BACK,
    "rollback_to": ROLLED_BACK,
    "rollback_canary": ROLLED_BACK,
}
_WEBHOOK = {
    "advanced": "rollout.advanced",
    "paused": "rollout.paused",
    "rolled_back": "rollout.rolled_back",
    "completed": "rollout.completed",
}


class _Superseded(Exception):
    """The rollout row changed after the decision read it: undo the decision."""


@dataclass(frozen=True)
class Decision:
    """What the controller did with one rollout on one look."""

    action: str  # advanced, completed, rolled_back, paused, extended, held, superseded, yielded
    reason: str


# The decision of a look that lost the controller's lease before it could act.
YIELDED = Decision("yielded", "another replica holds the controller's lease now; it decides")


class RolloutService:
    """Rollouts over one release database; `judge` is the analysis seam (tests swap it)."""

    def __init__(
        self,
        database: Database,
        releases: ReleaseService,
        judge_step: Judge | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = database
        self.releases = releases
        self.judge = judge_step or self._judge
        self.clock = clock

    # -- reads -------------------------------------------------------------------------

    def current(self, prompt: str, environment: str) -> RolloutState:
        """Return the newest rollout of a prompt in an environment, with its events."""
        with self.db.session() as session:
            row = session.scalar(
                select(Rollout)
                .where(Rollout.prompt == prompt, Rollout.environment == environment)
                .order_by(Rollout.id.desc())
                .limit(1)
            )
            if row is None:
                raise RolloutNotFound(prompt, environment)
            return rollout_state(row, _events(session, row.id))

    def by_id(self, rollout_id: int) -> RolloutState:
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise LookupError(rollout_id)
            return rollout_state(row)

    def list(self, environment: str | None = None, *, live: bool = True) -> list[RolloutState]:
        """Return rollouts (live ones by default), newest first."""
        with self.db.session() as session:
            query = select(Rollout).order_by(Rollout.id.desc())
            if live:
                query = query.where(Rollout.status.in_(LIVE))
            if environment is not None:
                query = query.where(Rollout.environment == environment)
            return [rollout_state(r) for r in session.scalars(query)]

    def running_ids(self) -> list[int]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(Rollout.id).where(Rollout.status == RUNNING).order_by(Rollout.id)
                )
            )

    # -- a person's actions --------------------------------------------------------------

    def start(
        self,
        version: PromptVersion,
        environment: str,
        policy: Policy,
        *,
        actor: str,
        reason: str | None = None,
        confirmed: bool = False,
    ) -> RolloutState:
        """Start `version` as canary at the policy's first step, with the policy kept."""
        prompt = version.name
        release = self.releases.release(prompt, environment)
        if release is None:
            raise NoStableForCanary(prompt, environment)
        if release.canary is not None:
            raise RolloutError(
                f"a canary ({release.canary.describe()} at "
                f"{format_percent(release.weight_bp)}) already runs for {prompt} in "
                f"{environment}: complete or abort it before starting a rollout"
            )
        self._refuse_live(prompt, environment)
        first = policy.steps_bp[0]

        def create(session: Session, applied: Applied) -> None:
            self._refuse_live(prompt, environment, session)
            now = self.clock()
            row = Rollout(
                prompt=prompt,
                environment=environment,
                stable_digest=applied.stable,
                canary_digest=version.digest,
                policy_name=policy.name,
                policy=policy.to_json(),
                status=RUNNING,
                step=0,
                step_started_at=now,
                extended=False,
                release_revision=applied.revision,
                revision=1,
                started_at=now,
                started_by=actor,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            _event(session, row, "started", actor, reason or f"policy {policy.name}", applied)

        steps = len(policy.steps_bp)
        self.releases.promote(
            version,
            environment,
            actor=actor,
            canary_bp=first,
            reason=reason or f"rollout ({policy.name}) step 1/{steps}: {format_percent(first)}",
            confirmed=confirmed,
            expected_revision=release.revision,
            within=create,
        )
        return self.current(prompt, environment)

    def pause(
        self, prompt: str, environment: str, *, actor: str, reason: str | None = None
    ) -> RolloutState:
        """Stop the controller from acting on a rollout; its canary keeps its weight."""
        state = self._live(prompt, environment)
        if state.status == PAUSED:
            raise RolloutError(f"the rollout of {prompt} in {environment} is already paused")
        with self.db.session() as session:
            row = self._claim(session, state)
            row.status = PAUSED
            row.reason = reason or f"paused by {actor}"
            _event(session, row, "paused", actor, row.reason)
        return self.current(prompt, environment)

    def resume(
        self,
        prompt: str,
        environment: str,
        *,
        actor: str,
        reason: str | None = None,
        confirmed: bool = False,
    ) -> RolloutState:
        """Run a paused rollout again from the start of its step (the weight put back to the
        step's if someone changed it)."""
        state = self._live(prompt, environment)
        if state.status != PAUSED:
            raise RolloutError(f"the rollout of {prompt} in {environment} is not paused")
        release = self.releases.release(prompt, environment)
        if (
            release is None
            or release.canary is None
            or release.canary.digest != (state.canary_digest)
        ):
            raise RolloutError(f"the canary of the rollout of {prompt} no longer runs")
        why = reason or f"resumed by {actor}"

        def restart(session: Session, applied: Applied | None) -> None:
            row = self._claim(session, state)
            row.status = RUNNING
            row.step_started_at = self.clock()  # a fresh window for the analysis
            row.extended = False
            row.reason = None
            row.release_revision = applied.revision if applied else release.revision
            _event(session, row, "resumed", actor, why, applied)

        if release.weight_bp != state.weight_bp:
            self.releases.ramp(
                prompt,
                environment,
                state.weight_bp,
                actor=actor,
                reason=f"rollout resumed: back to step {state.step + 1}",
                confirmed=confirmed,
                expected_revision=release.revision,
                within=restart,
            )
        else:
            with self.db.session() as session:
                restart(session, None)
        return self.current(prompt, environment)

    def abort(
        self, prompt: str, environment: str, *, actor: str, reason: str | None = None
    ) -> RolloutState:
        """End a rollout and drop its canary: all traffic back to stable at once."""
        state = self._live(prompt, environment)
        why = reason or f"aborted by {actor}"
        self.releases.abort(
            prompt,
            environment,
            actor=actor,
            reason=f"rollout aborted: {why}",
            within=self._ending(state, ABORTED, "aborted", actor, why),
        )
        return self.current(prompt, environment)

    def promote(
        self,
        prompt: str,
        environment: str,
        *,
        actor: str,
        reason: str | None = None,
        confirmed: bool = False,
    ) -> RolloutState:
        """Skip the remaining steps: the canary becomes stable now."""
        state = self._live(prompt, environment)
        why = reason or f"promoted by {actor}, skipping the remaining steps"
        self.releases.complete(
            prompt,
            environment,
            actor=actor,
            reason=f"rollout promoted: {why}",
            confirmed=confirmed,
            within=self._ending(state, COMPLETED, "completed", actor, why),
        )
        return self.current(prompt, environment)

    # -- the controller ------------------------------------------------------------------

    def decide(self, rollout_id: int, may_act: Callable[[], bool] | None = None) -> Decision | None:
        """Judge one running rollout and act on it: advance, complete, roll back, pause,
        extend its deadline, or hold. None when it is not running any more.

        `may_act` (the controller's lease renewal) is asked right before the decision's
        transaction, after the judging, which may take a while; when it says no, nothing
        is written and the decision is YIELDED.
        """
        with self.db.session() as session:
            row = session.get(Rollout, rollout_id)
            if row is None or row.status != RUNNING:
                return None
            state = rollout_state(row)
        now = self.clock()
        release = self.releases.release(state.prompt, state.environment)
        if release is None or release.revision != state.release_revision:
            seen = release.revision if release else "none"
            why = (
                f"the release changed outside the rollout (revision {seen}, the rollout "
                f"last saw {state.release_revision})"
            )
            if may_act is not None and not may_act():
                return YIELDED
            return self._without_release(state, "paused", why, None)
        steps = len(state.policy.steps_bp)
        where = f"step {state.step + 1}/{steps} ({format_percent(state.weight_bp)})"
        try:
            analysis = self.judge(state, now)
            numbers = analysis.to_json()
            calls = f"calls stable {analysis.stable_calls}, canary {analysis.canary_calls}"
            move = next_move(
                state.policy,
                analysis.verdict,
                analysis.stable_calls,
                analysis.canary_calls,
                elapsed=(now - state.step_started_at).total_seconds(),
                extended=state.extended,
            )
            if may_act is not None and not may_act():
                return YIELDED
            if move == "roll_back":
                why = f"{where}: fail: {_failing(analysis)}; {calls}"
                return self._roll_back(state, why, numbers)
            if move == "advance":
                why = f"{where}: pass: {'; '.join(analysis.reasons)}; {calls}"
                return self._advance(state, why, numbers)
            if move == "deadline":
                return self._at_deadline(state, analysis, where, calls, numbers)
        except (RevisionMismatch, ReleaseConflict, _Superseded, ReleaseNotFound, NoCanary):
            return Decision("superseded", "someone changed the release or the rollout first")
        self._hold(state, numbers, now)
        return Decision("held", f"{where}: {analysis.verdict}; {calls}")

    def _judge(self, state: RolloutState, now: datetime) -> CanaryReport:
        return judge(self.db, state, now)

    def _advance(self, state: RolloutState, why: str, numbers: dict[str, Any]) -> Decision:
        if state.last_step:
            self.releases.complete(
                state.prompt,
                state.environment,
                actor=CONTROLLER,
                reason=f"rollout completed: {why}",
                confirmed=True,
                expected_revision=state.release_revision,
                within=self._ending(state, COMPLETED, "completed", CONTROLLER, why, numbers),
            )
            return Decision("completed", why)
        weight = state.policy.steps_bp[state.step + 1]

        def step_up(session: Session, applied: Applied) -> None:
            row = self._claim(session, state)
            row.step = state.step + 1
            row.step_started_at = self.clock()
            row.extended = False
            row.release_revision = applied.revision
            row.last_analysis = numbers
            _event(session, row, "advanced", CONTROLLER, why, applied, numbers)

        self.releases.ramp(
            state.prompt,
            state.environment,
            weight,
            actor=CONTROLLER,
            reason=f"rollout advanced to step {state.step + 2} ({format_percent(weight)}): {why}",
            confirmed=True,
            expected_revision=state.release_revision,
            within=step_up,
        )
        return Decision("advanced", why)

    def _roll_back(self, state: RolloutState, why: str, numbers: dict[str, Any]) -> Decision:
        self.releases.rollback(
            state.prompt,
            state.environment,
            actor=CONTROLLER,
            reason=f"rollout rolled back: {why}",
            expected_revision=state.release_revision,
            within=self._ending(state, ROLLED_BACK, "rolled_back", CONTROLLER, why, numbers),
        )
        return Decision("rolled_back", why)

    def _at_deadline(
        self,
        state: RolloutState,
        analysis: CanaryReport | Analysis,
        where: str,
        calls: str,
        numbers: dict[str, Any],
    ) -> Decision:
        minutes = (state.deadline - state.step_started_at).total_seconds() / 60
        why = (
            f"{where}: {analysis.verdict} after {minutes:g} min ({'; '.join(analysis.reasons)}"
            f"; {calls}, {state.policy.min_calls} needed per arm)"
        )
        action = at_deadline(state.policy, state.extended)
        if action == "roll_back":
            return self._roll_back(state, f"deadline: {why}", numbers)
        if action == "extend":
            return self._without_release(state, "extended", f"deadline moved once: {why}", numbers)
        return self._without_release(state, "paused", f"deadline: {why}", numbers)

    def _without_release(
        self, state: RolloutState, action: str, why: str, numbers: dict[str, Any] | None
    ) -> Decision:
        """A decision that leaves the release as it is: pause, or extend the deadline."""
        try:
            with self.db.session() as session:
                row = self._claim(session, state)
                if action == "paused":
                    row.status = PAUSED
                    row.reason = why
                else:
                    row.extended = True
                row.last_analysis = numbers
                row.last_checked_at = self.clock()
                _event(session, row, action, CONTROLLER, why, None, numbers)
        except _Superseded:
            return Decision("superseded", "someone changed the rollout first")
        return Decision(action, why)

    def _hold(self, state: RolloutState, numbers: dict[str, Any], now: datetime) -> None:
        """Keep the step; remember the look (no event: a hold every interval is noise)."""
        with self.db.session() as session:
            session.execute(
                update(Rollout)
                .where(Rollout.id == state.id, Rollout.status == RUNNING)
                .values(last_analysis=numbers, last_checked_at=now)
            )

    # -- helpers -------------------------------------------------------------------------

    def _live(self, prompt: str, environment: str) -> RolloutState:
        state = self.current(prompt, environment)
        if not state.live:
            raise RolloutNotFound(prompt, environment, live=True)
        return state

    def _refuse_live(self, prompt: str, environment: str, session: Session | None = None) -> None:
        def check(s: Session) -> None:
            live = s.scalar(
                select(Rollout.id).where(
                    Rollout.prompt == prompt,
                    Rollout.environment == environment,
                    Rollout.status.in_(LIVE),
                )
            )
            if live is not None:
                raise RolloutError(
                    f"a rollout of {prompt} in {environment} is already live: see "
                    "`promptctl rollout status`"
                )

        if session is not None:
            check(session)
            return
        with self.db.session() as s:
            check(s)

    def _claim(self, session: Session, state: RolloutState) -> Rollout:
        """The rollout row, its revision moved on; _Superseded when it changed since read."""
        done = session.execute(
            update(Rollout)
            .where(Rollout.id == state.id, Rollout.revision == state.row_revision)
            .values(revision=Rollout.revision + 1, updated_at=self.clock())
        )
        row = session.get(Rollout, state.id)
        if done.rowcount != 1 or row is None or row.status != state.status:
            raise _Superseded()
        return row

    def _ending(
        self,
        state: RolloutState,
        status: str,
        action: str,
        actor: str,
        why: str,
        numbers: dict[str, Any] | None = None,
    ) -> Callable[[Session, Applied], None]:
        def end(session: Session, applied: Applied) -> None:
            row = self._claim(session, state)
            row.status = status
            row.ended_at = self.clock()
            row.reason = why
            row.release_revision = applied.revision
            if numbers is not None:
                row.last_analysis = numbers
            _event(session, row, action, actor, why, applied, numbers)

        return end


def watch_rollouts(session: Session, applied: Applied) -> None:
    """A person's release action on a prompt under a live rollout, in its transaction: a new
    canary weight pauses the rollout; anything that ends or replaces the canary ends it."""
    if applied.managed:
        return
    row = session.scalar(
        select(Rollout).where(
            Rollout.prompt == applied.prompt,
            Rollout.environment == applied.environment,
            Rollout.status.in_(LIVE),
        )
    )
    if row is None:
        return
    now = utcnow()
    row.release_revision = applied.revision
    row.revision += 1
    row.updated_at = now
    if applied.action == "ramp":
        row.status = PAUSED
        row.reason = (
            f"paused: {applied.actor} set the canary weight to "
            f"{format_percent(applied.weight_bp)} by hand"
        )
        _event(session, row, "paused", applied.actor, row.reason, applied)
        return
    status = _ENDS.get(applied.action)
    if applied.action == "promote":
        status = COMPLETED if applied.stable == row.canary_digest else ABORTED
    status = status or ABORTED
    row.status = status
    row.ended_at = now
    row.reason = f"ended: {applied.actor} ran {applied.action.replace('_', ' ')} by hand"
    _event(session, row, status, applied.actor, row.reason, applied)


def _events(session: Session, rollout_id: int) -> list[RolloutEvent]:
    return list(
        session.scalars(
            select(RolloutEvent)
            .where(RolloutEvent.rollout_id == rollout_id)
            .order_by(RolloutEvent.id)
        )
    )


def _event(
    session: Session,
    row: Rollout,
    action: str,
    actor: str,
    reason: str | None,
    applied: Applied | None = None,
    analysis: dict[str, Any] | None = None,
) -> None:
    """Log a decision, and send it to the webhooks that want it, in this transaction."""
    now = utcnow()
    weight = applied.weight_bp if applied is not None else None
    session.add(
        RolloutEvent(
            rollout_id=row.id,
            action=action,
            step=row.step,
            weight_bp=weight,
            actor=actor,
            reason=reason,
            release_revision=applied.revision if applied is not None else row.release_revision,
            analysis=analysis,
            created_at=now,
        )
    )
    kind = _WEBHOOK.get(action)
    if kind is not None:
        from promptctl.registry.webhooks.outbox import enqueue

        data = {
            "prompt": row.prompt,
            "environment": row.environment,
            "rollout": row.id,
            "step": row.step + 1,
            "steps": len(row.policy["steps_bp"]),
            "weight_bp": weight,
            "actor": actor,
            "reason": reason,
            "analysis": analysis,
        }
        enqueue(session, kind, data, prompt=row.prompt, environment=row.environment)


def _failing(analysis: CanaryReport | Analysis) -> str:
    """The failing metrics with their estimate and interval, e.g. `error rate +0.24
    [+0.18, +0.30] (tolerance 0.01)`."""
    parts = []
    for m in analysis.metrics:
        if m.verdict is Verdict.FAIL:
            parts.append(_metric_words(m))
    return "; ".join(parts) or "; ".join(analysis.reasons)


def _metric_words(m: MetricResult) -> str:
    number = (int, float)
    value = f" {m.difference:+.4g}" if isinstance(m.difference, number) else ""
    interval = ""
    if isinstance(m.low, number) and isinstance(m.high, number):
        interval = f" [{m.low:+.4g}, {m.high:+.4g}]"
    return f"{m.metric}{value}{interval} ({m.rule})"
