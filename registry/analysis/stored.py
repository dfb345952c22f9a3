"""The analysis of a running canary from what the database holds: its release, the start of
its current weight step (the release log) and the rollups of both arms since then.

The window. By default it starts where the canary's current weight step started: the
last `canary_start` or `ramp` row of the release log for that canary. The analysis'
guarantee holds for a window that grows from a fixed start at one weight (see the
package's docstring), so a ramp starts a new window, and a window never slides. It ends
now. `since` moves the start (a note says when that spans more than one step).

Rollups are per minute and per hour, so the window is read in whole minutes: the start
is rounded down to its minute (the calls of that minute before the step began are
included, at most 59 seconds of them, and a note says so), the end is the end of the
minute under way. Whole hours are read from hour rows, the partial hours at either edge
from minute rows (`registry.metrics.storage.window_parts`), so an analysis reads at most
118 minute rows and one row per hour of the window, per arm, whatever the traffic.
Minute rows are kept for less time than hour rows (registry.metrics.retention): a start
before the minute watermark is rounded down to its whole hour, read from hour rows, as
summaries do, and a note says so. A live canary's own window is never pruned (its
retention is stretched), so this happens only for a `since` further back.

Concurrent control only: stable is (stable digest, variant stable) and canary is
(canary digest, variant canary) over the same window. Rows stored before the rollups
kept successful calls' latency and the squares apart (migration 0006) are left out of
the figures they lack (their calls still count in calls and errors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptctl.registry.analysis.guards import AnalysisConfig
from promptctl.registry.analysis.inputs import ArmData, LatencyHistogram, Moments, Proportion
from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.analysis.scorer import DEFAULT_CONFIG, analyze
from promptctl.registry.errors import NoCanary, ReleaseNotFound, UsageError
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.storage import (
    MINUTE,
    epoch,
    minutes_kept_from,
    moment,
    rollups_query,
    widen,
)
from promptctl.registry.releases.queries import release_states
from promptctl.registry.releases.values import ReleaseState
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ReleaseLog, as_utc

STEP_ACTIONS = ("canary_start", "ramp")  # the log rows that start a weight step
# Rollup columns the analysis does not read: every call's latency (it judges successful
# calls'), error types and flagged traces. Half the JSON a row would cost to read.
UNREAD = ("latency_histogram", "error_types", "failing_traces")


def analyze_canary(
    database: Database,
    prompt: str,
    environment: str,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    config: AnalysisConfig = DEFAULT_CONFIG,
) -> CanaryReport:
    """Judge the canary of a prompt in an environment against its stable version.

    No release there is ReleaseNotFound; a release without a canary is NoCanary. A
    canary without calls yet is a report whose verdict is `no data`, never a pass.
    """
    now = as_utc(now) if now is not None else datetime.now(UTC)
    with database.session() as session:
        state = _release(session, prompt, environment)
        assert state.canary is not None
        step = step_start(session, state)
        start_at = as_utc(since) if since is not None else step
        if start_at > now:
            raise UsageError(f"--since {start_at.isoformat()} is in the future: nothing to read")
        start = math.floor(epoch(start_at) / MINUTE) * MINUTE
        end = math.floor(now.timestamp() / MINUTE) * MINUTE + MINUTE
        asked = start
        start, end = widen(start, end, minutes_kept_from(session))
        rows = session.execute(
            rollups_query(prompt, environment, start, end, leave_out=UNREAD)
        ).all()
    stable, canary = arms(rows, state.stable.digest, state.canary.digest)
    result = analyze(stable, canary, config)
    return CanaryReport(
        prompt=prompt,
        environment=environment,
        stable=state.stable,
        canary=state.canary,
        weight_bp=state.weight_bp,
        step_started_at=step,
        since=moment(start),
        until=moment(end),
        verdict=result.verdict,
        reasons=result.reasons,
        metrics=result.metrics,
        stable_calls=result.stable_calls,
        canary_calls=result.canary_calls,
        settings=config.to_json(),
        notes=_notes(start_at, asked, step, since is not None) + _pruned_note(asked, start),
        arms=(stable, canary),
    )


def _release(session: Session, prompt: str, environment: str) -> ReleaseState:
    states = release_states(session, prompt, environment)  # EnvironmentNotFound first
    if not states:
        raise ReleaseNotFound(prompt, environment)
    if states[0].canary is None:
        raise NoCanary(prompt, environment, "analyze")
    return states[0]


def step_start(session: Session, state: ReleaseState) -> datetime:
    """When the canary's current weight step began: its last canary_start or ramp row."""
    assert state.canary is not None
    found = session.scalar(
        select(ReleaseLog.created_at)
        .where(
            ReleaseLog.prompt == state.prompt,
            ReleaseLog.environment == state.environment,
            ReleaseLog.action.in_(STEP_ACTIONS),
            ReleaseLog.to_digest == state.canary.digest,
        )
        .order_by(ReleaseLog.id.desc())
        .limit(1)
    )
    # A release always has its log row; the release's own time is the fallback for a
    # database edited by hand.
    return as_utc(found if found is not None else state.updated_at)


def _notes(asked: datetime, start: int, step: datetime, moved: bool) -> tuple[str, ...]:
    notes = []
    if epoch(asked) != start or asked.microsecond:
        what = "the start asked for" if moved else "the step's start"
        notes.append(
            f"rollups are per minute: {what} {asked:%H:%M:%S} is rounded down to "
            f"{moment(start):%H:%M}, so the calls of that minute before it are included"
        )
    if moved and asked < step - timedelta(seconds=MINUTE):
        notes.append(
            f"the window starts before the canary's current weight step "
            f"({step:%Y-%m-%d %H:%M:%S} UTC): the anytime guarantee holds for a window "
            "growing from one step's start at one weight"
        )
    return tuple(notes)


def _pruned_note(asked: int, start: int) -> tuple[str, ...]:
    if start == asked:
        return ()
    return (
        f"minute rollups before {moment(asked):%Y-%m-%d %H:%M} UTC are past their retention: "
        f"the window starts at the whole hour {moment(start):%H:%M}, read from hour rollups",
    )


def arms(rows: Iterable[Any], stable_digest: str, canary_digest: str) -> tuple[ArmData, ArmData]:
    """Return (stable, canary) aggregates of rollup rows (any digests; others are skipped)."""
    wanted = {(stable_digest, "stable"): _Arm(), (canary_digest, "canary"): _Arm()}
    for row in rows:
        arm = wanted.get((row.digest, row.variant))
        if arm is not None:
            arm.add(row)
    return wanted[(stable_digest, "stable")].data(), wanted[(canary_digest, "canary")].data()


class _Arm:
    """One arm's rows summed: an Aggregate for counts and histograms, and the moments of
    the rows that recorded their squares."""

    def __init__(self) -> None:
        self.agg = Aggregate()
        self.moments = {name: [0, 0.0, 0.0] for name in ("cost", "input_tokens", "output_tokens")}

    def add(self, row: Any) -> None:
        self.agg.merge_row(row)
        for name, n, total, sumsq in (
            ("cost", row.cost_count, row.cost_sum, row.cost_sumsq),
            ("input_tokens", row.input_tokens_count, row.input_tokens_sum, row.input_tokens_sumsq),
            (
                "output_tokens",
                row.output_tokens_count,
                row.output_tokens_sum,
                row.output_tokens_sumsq,
            ),
        ):
            if sumsq is not None:  # else stored before squares were kept: left out
                acc = self.moments[name]
                acc[0] += n
                acc[1] += total
                acc[2] += sumsq

    def data(self) -> ArmData:
        a = self.agg
        a.settle()
        return ArmData(
            calls=a.count,
            errors=a.errors,
            latency=LatencyHistogram.from_buckets(a.ok_buckets, a.ok_zero),
            cost=Moments(*self.moments["cost"]),  # type: ignore[arg-type]
            input_tokens=Moments(*self.moments["input_tokens"]),  # type: ignore[arg-type]
            output_tokens=Moments(*self.moments["output_tokens"]),  # type: ignore[arg-type]
            quality=Moments(a.quality_count, a.quality_sum, a.quality_sumsq),
            invalid_output=Proportion(a.outputs_checked, a.outputs_invalid),
            truncation=Proportion(a.finishes, a.truncated),
        )
