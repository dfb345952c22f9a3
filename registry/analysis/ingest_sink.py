"""The simulation through the real path: calls as events into `MetricsService.ingest`, the
arms read back by `Registry.analyze`, from the rollups, as a controller would.

`IngestSink` is a `simulation.TrafficSink`: `record` sends an arm's calls as the client
sends events (ingest validates them, prices nothing since each carries its cost, and
rolls them up in minute and hour rows); `arms` runs the facade's analysis of the
canary and hands back the aggregates it judged, keeping each report in `reports`. So
`simulation.run(..., sink=IngestSink(...))` checks, after every batch, exactly what an
operator or a controller would see.

`start_canary` makes the release a run needs: a fresh environment, a stable version and
a canary at a weight, through the facade's release actions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

from promptctl.registry.analysis.inputs import ArmData
from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.analysis.simulation import Arm, SimulatedCall
from promptctl.registry.errors import RegistryError
from promptctl.registry.metrics.events import DEFAULT_MAX_BATCH
from promptctl.registry.releases.actions import Promote


class Facade(Protocol):
    """What the sink needs of `Registry`: its metrics service, its analysis, its actions."""

    @property
    def metrics(self) -> Any: ...

    def analyze(
        self, name: str, environment: str, *, since: str | None = None, viewer: Any = None
    ) -> CanaryReport: ...

    def perform(self, action: Any) -> Any: ...

    def create_environment(self, name: str, *, protected: bool = False) -> Any: ...


class IngestSink:
    """Calls go in through ingest; the arms come back through `Registry.analyze`."""

    def __init__(
        self,
        registry: Facade,
        prompt: str,
        environment: str,
        digests: dict[Arm, str],
        *,
        batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.registry = registry
        self.prompt = prompt
        self.environment = environment
        self.digests = digests
        self.batch = batch
        self.reports: list[CanaryReport] = []
        self.events = 0
        # Ids in order, so that every run of a seed sums its rollups in the same order.
        self._ids = (f"{environment}-{n:09d}" for n in itertools.count())

    def record(self, arm: Arm, calls: Sequence[SimulatedCall]) -> None:
        events = [self._event(arm, c) for c in calls]
        for start in range(0, len(events), self.batch):
            chunk = events[start : start + self.batch]
            result = self.registry.metrics.ingest(chunk)
            if result.accepted != len(chunk):
                refused = [r for r in result.results if r["status"] != "accepted"][:3]
                raise RegistryError(f"the simulation's events were not all accepted: {refused}")
            self.events += len(chunk)

    def arms(self) -> tuple[ArmData, ArmData]:
        report = self.registry.analyze(self.prompt, self.environment)
        self.reports.append(report)
        assert report.arms is not None
        return report.arms

    def _event(self, arm: Arm, call: SimulatedCall) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": next(self._ids),
            "prompt": self.prompt,
            "env": self.environment,
            "digest": self.digests[arm],
            "variant": arm,
            "latency_ms": call.latency_ms,
            "error": call.error,
        }
        for key, value in (
            ("input_tokens", call.input_tokens),
            ("output_tokens", call.output_tokens),
            ("cost_usd", call.cost_usd),
            ("quality", call.quality),
            ("output_valid", call.output_valid),
            ("finish_reason", call.finish_reason),
        ):
            if value is not None:
                event[key] = value
        return event


def start_canary(
    registry: Facade,
    prompt: str,
    environment: str,
    *,
    stable_ref: str,
    canary_ref: str,
    weight_bp: int,
) -> dict[Arm, str]:
    """Create `environment`, make `stable_ref` stable there and start `canary_ref` as its
    canary at `weight_bp`; return the two digests by arm."""
    registry.create_environment(environment)
    common: dict[str, Any] = {
        "prompt": prompt,
        "environment": environment,
        "actor": "simulation",
        "confirmed": True,
    }
    stable = registry.perform(Promote(ref=stable_ref, **common))
    canary = registry.perform(Promote(ref=canary_ref, canary_bp=weight_bp, **common))
    return {"stable": stable.stable.digest, "canary": canary.canary.digest}
