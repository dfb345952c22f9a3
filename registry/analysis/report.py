"""The analysis of a running canary as the surfaces show it: which release, which window,
the verdict and every guard metric's numbers, with its JSON form (the CLI rebuilds it
from a server's answer).

A value module: nothing here reads the database (`stored` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from promptctl.registry.analysis.classifiers import MetricResult, Percentile, Verdict
from promptctl.registry.analysis.inputs import ArmData
from promptctl.registry.releases.values import VersionRef, percent, timestamp


@dataclass(frozen=True)
class CanaryReport:
    """A canary judged against stable over one window, and what the window was.

    `since` and `until` are the window actually read: whole minutes, `since` rounded
    down from the start asked for (by default the start of the canary's current weight
    step, `step_started_at`), `until` the end of the minute under way. `notes` say how
    the window was rounded and anything that weakens the guarantee.
    """

    prompt: str
    environment: str
    stable: VersionRef
    canary: VersionRef
    weight_bp: int
    step_started_at: datetime
    since: datetime
    until: datetime
    verdict: Verdict
    reasons: tuple[str, ...]
    metrics: tuple[MetricResult, ...]
    stable_calls: int
    canary_calls: int
    settings: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    # The (stable, canary) aggregates judged, for a caller that analyses them again (the
    # simulation); not part of the JSON form.
    arms: tuple[ArmData, ArmData] | None = field(default=None, compare=False, repr=False)

    def metric(self, name: str) -> MetricResult:
        """Return the result of the guard metric `name`."""
        for result in self.metrics:
            if result.metric == name:
                return result
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "environment": self.environment,
            "stable": self.stable.to_json(),
            "canary": self.canary.to_json(),
            "weight": percent(self.weight_bp),
            "weight_bp": self.weight_bp,
            "step_started_at": timestamp(self.step_started_at),
            "since": timestamp(self.since),
            "until": timestamp(self.until),
            "verdict": str(self.verdict),
            "reasons": list(self.reasons),
            "calls": {"stable": self.stable_calls, "canary": self.canary_calls},
            "metrics": [m.to_json() for m in self.metrics],
            "settings": dict(self.settings),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryReport:
        stable, canary = VersionRef.from_json(data["stable"]), VersionRef.from_json(data["canary"])
        assert stable is not None
        assert canary is not None
        return cls(
            prompt=data["prompt"],
            environment=data["environment"],
            stable=stable,
            canary=canary,
            weight_bp=data["weight_bp"],
            step_started_at=datetime.fromisoformat(data["step_started_at"]),
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            verdict=Verdict(data["verdict"]),
            reasons=tuple(data["reasons"]),
            metrics=tuple(metric_from_json(m) for m in data["metrics"]),
            stable_calls=data["calls"]["stable"],
            canary_calls=data["calls"]["canary"],
            settings=data.get("settings") or {},
            notes=tuple(data.get("notes") or ()),
        )


def metric_from_json(data: Mapping[str, Any]) -> MetricResult:
    """Rebuild a guard metric's result from its JSON form."""
    return MetricResult(
        metric=data["metric"],
        label=data["label"],
        verdict=Verdict(data["verdict"]),
        rule=data["rule"],
        required=data["required"],
        stable=data["stable"],
        canary=data["canary"],
        n_stable=data["n_stable"],
        n_canary=data["n_canary"],
        scale=data["scale"],
        difference=data["difference"],
        low=data["low"],
        high=data["high"],
        limit=data["limit"],
        alpha=data["alpha"],
        unit=data.get("unit", ""),
        percentiles=tuple(
            Percentile(p["q"], p["stable"], p["canary"]) for p in data.get("percentiles") or ()
        ),
    )
