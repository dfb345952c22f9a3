"""Canary analysis: is the canary worse than stable, honestly, however often one looks.

A canary is compared with stable over the same window (a concurrent control, never
history), guard metric by guard metric, from mergeable aggregates only (`inputs`): what
the rollups hold, so an analysis costs microseconds whatever the traffic.

Method: anytime-valid confidence sequences. Each metric's difference (or ratio) gets
the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences" (Annals of
Statistics, 2024; arXiv:2103.06476), with the Gaussian-mixture boundary

    estimate ± SE · √( (1 + 1/(tρ²)) · (log(1 + tρ²) + 2 log(1/α)) )

where SE² = s_c²/n_c + s_s²/n_s and t = n_c + n_s (`boundaries`, `intervals`). Unlike a
fixed-sample test, it holds at every t at once, so the analysis may run every minute.
α is split across the guards by Bonferroni (`guards`). Each metric's classifier says
pass, fail, inconclusive or no data (`classifiers`); the scorer gives the overall
verdict and why (`scorer`). `simulation` feeds seeded traffic and runs the analysis the
way a controller would, to show the false-alarm rate and the calls needed to detect.

The window: the guarantee is for a sequence that grows from a fixed start, so analyse
from the moment the canary (or its current weight step) started up to now, never a
sliding "last hour", which restarts the sequence at every look. Within the window the
canary weight should be constant (see `intervals`).

    from promptctl.registry.analysis import ArmData, analyze
    report = analyze(stable=ArmData(...), canary=ArmData(...))
    report.verdict, report.reasons, report.metric("latency").low
"""

from __future__ import annotations

from promptctl.registry.analysis.boundaries import (
    AsymptoticCS,
    Boundary,
    FixedSample,
    mixture_multiplier,
    mixture_rho2,
    optimal_tuning,
)
from promptctl.registry.analysis.classifiers import (
    CLASSIFIERS,
    MetricResult,
    Percentile,
    Verdict,
    classify,
    classify_latency,
    classify_mean,
    classify_proportion,
)
from promptctl.registry.analysis.guards import (
    DEFAULT_GUARDS,
    METRICS,
    AnalysisConfig,
    Guard,
    Metric,
    Tolerance,
)
from promptctl.registry.analysis.inputs import ArmData, LatencyHistogram, Moments, Proportion
from promptctl.registry.analysis.intervals import Interval
from promptctl.registry.analysis.scorer import DEFAULT_CONFIG, Analysis, analyze, score

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_CONFIG",
    "DEFAULT_GUARDS",
    "METRICS",
    "Analysis",
    "AnalysisConfig",
    "ArmData",
    "AsymptoticCS",
    "Boundary",
    "FixedSample",
    "Guard",
    "Interval",
    "LatencyHistogram",
    "Metric",
    "MetricResult",
    "Moments",
    "Percentile",
    "Proportion",
    "Tolerance",
    "Verdict",
    "analyze",
    "classify",
    "classify_latency",
    "classify_mean",
    "classify_proportion",
    "mixture_multiplier",
    "mixture_rho2",
    "optimal_tuning",
    "score",
]
