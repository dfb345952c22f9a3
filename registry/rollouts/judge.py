"""The one seam between rollouts and canary analysis: judge a step from the rollups.

`judge` reads each arm's minute rollups since the step started (the rollup the step
started in included: rollups are per minute, so a step's window begins on its minute) and
hands them to `registry.analysis.analyze` with the policy's guards. A window that grows
from a fixed start is what the analysis' anytime-valid guarantee needs; each step restarts
it, because the canary weight must be constant within it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from promptctl.registry.analysis import (
    Analysis,
    AnalysisConfig,
    ArmData,
    LatencyHistogram,
    Moments,
    Proportion,
    analyze,
)
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import MetricRollup


def judge(
    database: Database,
    prompt: str,
    environment: str,
    stable_digest: str,
    canary_digest: str,
    since: datetime,
    config: AnalysisConfig,
) -> Analysis:
    """Judge the canary against stable on the calls since `since` (its minute included)."""
    start = since.replace(second=0, microsecond=0)
    with database.session() as session:
        rows = session.scalars(
            select(MetricRollup).where(
                MetricRollup.prompt == prompt,
                MetricRollup.environment == environment,
                MetricRollup.period_seconds == 60,
                MetricRollup.period_start >= start,
                MetricRollup.digest.in_((stable_digest, canary_digest)),
            )
        ).all()
        stable = sum(
            (_arm(r) for r in rows if r.digest == stable_digest and r.variant == "stable"),
            ArmData(),
        )
        canary = sum(
            (_arm(r) for r in rows if r.digest == canary_digest and r.variant == "canary"),
            ArmData(),
        )
    return analyze(stable, canary, config)


def _arm(row: MetricRollup) -> ArmData:
    """One rollup row as analysis input. Rows written before the analysis columns existed
    (sums of squares, successful calls' latency) leave those metrics without data rather
    than guessing them."""
    success = getattr(row, "success_latency_histogram", None)
    latency = LatencyHistogram.from_json(success if success is not None else row.latency_histogram)
    return ArmData(
        calls=row.count,
        errors=row.errors,
        latency=latency,
        cost=_moments(row.cost_count, row.cost_sum, getattr(row, "cost_sumsq", None)),
        input_tokens=_moments(
            row.input_tokens_count, row.input_tokens_sum, getattr(row, "input_tokens_sumsq", None)
        ),
        output_tokens=_moments(
            row.output_tokens_count,
            row.output_tokens_sum,
            getattr(row, "output_tokens_sumsq", None),
        ),
        quality=_moments(row.quality_count, row.quality_sum, row.quality_sumsq),
        invalid_output=Proportion(row.outputs_checked or 0, row.outputs_invalid or 0),
        truncation=Proportion(row.finishes or 0, row.truncated or 0),
    )


def _moments(n: Any, total: Any, sumsq: Any) -> Moments:
    if sumsq is None or not n:
        return Moments()
    return Moments(int(n), float(total), float(sumsq))
