"""The one seam between rollouts and canary analysis: a step judged by the reader of rollups
behind `Registry.analyze` (`registry.analysis.stored.analyze_canary`), with the policy's
guards and the step's start.

So `promptctl analyze`, the API's analysis and the controller read the same rows the same
way (hour rows for whole hours, minute rows at the edges, rows older than the analysis
columns left out of what they lack) and differ only in their settings: the controller's
window starts where its step started (rounded down to its minute, as rollups are per
minute) and its guards are the policy's. A window that grows from a fixed start is what
the analysis' anytime-valid guarantee needs; each step restarts it, because the canary
weight must be constant within it.
"""

from __future__ import annotations

from datetime import datetime

from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.analysis.stored import analyze_canary
from promptctl.registry.errors import ReleaseConflict
from promptctl.registry.rollouts.values import RolloutState
from promptctl.registry.store.database import Database


def judge(database: Database, state: RolloutState, now: datetime) -> CanaryReport:
    """Judge a rollout's step: its canary against stable on the calls since the step began.

    ReleaseConflict when the release no longer runs the rollout's two versions (a person
    acted after the controller read the rollout; the next look sees what they did).
    """
    report = analyze_canary(
        database,
        state.prompt,
        state.environment,
        since=state.step_started_at,
        # Another replica's clock may run a little behind the one that started the step.
        now=max(now, state.step_started_at),
        config=state.policy.analysis_config(),
    )
    judged = (report.stable.digest, report.canary.digest)
    if judged != (state.stable_digest, state.canary_digest):
        raise ReleaseConflict(state.prompt, state.environment)
    return report
