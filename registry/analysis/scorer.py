"""The scorer: one overall verdict from the metrics' verdicts, and the reasons for it.

Apart from the classifiers, as in Kayenta. In order:

1. any metric `fail` -> `fail` (a canary worse on one guard is worse);
2. else a required metric with `no data` -> `no data` (nothing to judge it on yet);
3. else any metric `inconclusive` -> `inconclusive` (wait for more calls);
4. else `pass`: every required metric passed, the others passed or have no data, and
   at least one metric passed (missing data never passes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptctl.registry.analysis.classifiers import MetricResult, Verdict, classify
from promptctl.registry.analysis.guards import AnalysisConfig
from promptctl.registry.analysis.inputs import ArmData

DEFAULT_CONFIG = AnalysisConfig()


@dataclass(frozen=True)
class Analysis:
    """A canary judged against stable over one window: the verdict, why, and each metric."""

    verdict: Verdict
    reasons: tuple[str, ...]
    metrics: tuple[MetricResult, ...]
    stable_calls: int
    canary_calls: int
    config: AnalysisConfig

    def metric(self, name: str) -> MetricResult:
        """Return the result of the guard metric `name`."""
        for result in self.metrics:
            if result.metric == name:
                return result
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "reasons": list(self.reasons),
            "calls": {"stable": self.stable_calls, "canary": self.canary_calls},
            "settings": self.config.to_json(),
            "metrics": [m.to_json() for m in self.metrics],
        }


def score(results: Sequence[MetricResult]) -> tuple[Verdict, tuple[str, ...]]:
    """Return the overall verdict of metric results and the sentences that explain it."""
    by = {v: [r for r in results if r.verdict == v] for v in Verdict}
    if by[Verdict.FAIL]:
        return Verdict.FAIL, tuple(f"{r.label}: {r.rule}" for r in by[Verdict.FAIL])
    missing = [r for r in by[Verdict.NO_DATA] if r.required]
    if missing:
        return Verdict.NO_DATA, tuple(f"{r.label} (required): {r.rule}" for r in missing)
    if by[Verdict.INCONCLUSIVE]:
        return Verdict.INCONCLUSIVE, tuple(f"{r.label}: {r.rule}" for r in by[Verdict.INCONCLUSIVE])
    if not by[Verdict.PASS]:
        return Verdict.NO_DATA, ("no metric has enough data to judge",)
    reasons = [
        "every required metric is within its tolerance: "
        + ", ".join(r.label for r in by[Verdict.PASS] if r.required)
        if any(r.required for r in by[Verdict.PASS])
        else "every metric with data is within its tolerance"
    ]
    if by[Verdict.NO_DATA]:
        reasons.append("not judged, no data: " + ", ".join(r.label for r in by[Verdict.NO_DATA]))
    return Verdict.PASS, tuple(reasons)


def analyze(stable: ArmData, canary: ArmData, config: AnalysisConfig = DEFAULT_CONFIG) -> Analysis:
    """Judge canary against stable on every guard metric and score the whole."""
    alpha = config.metric_alpha
    boundary = config.boundary
    results = tuple(classify(g, stable, canary, alpha, boundary) for g in config.guards)
    verdict, reasons = score(results)
    empty = [arm for arm, data in (("stable", stable), ("canary", canary)) if not data.calls]
    if empty and verdict is Verdict.NO_DATA:
        reasons = (f"no data for {' or '.join(empty)}",)
    return Analysis(verdict, reasons, results, stable.calls, canary.calls, config)
