"""`promptctl analyze`: is the running canary worse than stable?"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options
from promptctl.cli.output import emit_json, table
from promptctl.registry.errors import RegistryError

if TYPE_CHECKING:
    from promptctl.registry.analysis.classifiers import MetricResult
    from promptctl.registry.analysis.report import CanaryReport
    from promptctl.registry.releases.values import ReleaseState

_COLOURS = {"pass": "green", "fail": "red", "inconclusive": "yellow", "no data": "yellow"}


@cli.command("analyze")
@click.argument("name")
@click.option("--env", "environment", required=True, help="The environment of the canary.")
@click.option(
    "--since",
    default=None,
    help="Start: an ISO 8601 time or a duration ago such as 30m [the start of the canary's "
    "current weight step].",
)
@JSON_OPTION
@pass_options
def analyze_command(
    options: Options, name: str, environment: str, since: str | None, as_json: bool
) -> None:
    """Judge the running canary against stable on the same window, per guard metric:
    error rate, latency of successful calls, cost and tokens per call, quality, and the
    invalid-output and truncation rates. Each gets pass, fail, inconclusive or no data
    from an anytime-valid confidence interval (safe to run every minute), and the canary
    an overall verdict with its reasons. Missing data is never a pass.

    The window starts where the canary's current weight step started (or --since) and
    ends now. Reads the local release database, or the server given with --server."""
    report = options.backend.analyze(name, environment, since=since)
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(
        f"{report.prompt} in {report.environment}: canary {report.canary.label} at "
        f"{report.weight_bp / 100:g}% against stable {report.stable.label}, "
        f"{report.since:%Y-%m-%d %H:%M} to {report.until:%H:%M} UTC"
    )
    table(METRIC_HEADERS, [metric_row(m) for m in report.metrics])
    latency = report.metric("latency") if _has(report, "latency") else None
    if latency is not None and latency.percentiles:
        shown = ", ".join(
            f"p{round(p.q * 100)} {_ms(p.stable)} / {_ms(p.canary)}" for p in latency.percentiles
        )
        click.echo(f"Latency of successful calls (stable / canary): {shown}")
    verdict = str(report.verdict)
    click.echo(
        f"Verdict: {click.style(verdict.upper(), fg=_COLOURS[verdict], bold=True)} "
        f"({report.stable_calls:,} stable calls, {report.canary_calls:,} canary calls)"
    )
    for reason in report.reasons:
        click.echo(f"  - {reason}")
    for note in report.notes:
        click.echo(f"Note: {note}")


def _has(report: CanaryReport, name: str) -> bool:
    return any(m.metric == name for m in report.metrics)


METRIC_HEADERS = [
    "METRIC", "STABLE", "CANARY", "DIFFERENCE [INTERVAL]", "LIMIT", "VERDICT", "CALLS S/C",
]  # fmt: skip


def metric_row(m: MetricResult) -> list[str]:
    """One guard metric as a row under METRIC_HEADERS: values in its unit, verdict coloured."""
    verdict = str(m.verdict)
    return [
        m.label + ("" if m.required else " (optional)"),
        _value(m, m.stable),
        _value(m, m.canary),
        _difference(m),
        _signed(m, m.limit),
        click.style(verdict, fg=_COLOURS[verdict]),
        f"{m.n_stable:,} / {m.n_canary:,}",
    ]


def _value(m: MetricResult, value: float | None) -> str:
    if value is None:
        return "-"
    if m.unit == "ms":
        return _ms(value)
    if m.unit == "USD":
        return f"${value:.6f}".rstrip("0")
    if m.unit == "tokens":
        return f"{value:,.1f}"
    if m.metric in ("error_rate", "invalid_output", "truncation"):
        return f"{value:.2%}"
    return f"{value:.3f}"


def _signed(m: MetricResult, value: float | None) -> str:
    if value is None:
        return "-"
    if m.scale == "relative":
        return f"{value:+.1%}"
    if m.metric in ("error_rate", "invalid_output", "truncation"):
        return f"{value * 100:+.2f} pp"
    return f"{value:+.4g}"


def _difference(m: MetricResult) -> str:
    if m.difference is None:
        return "-"
    interval = f" [{_signed(m, m.low)}, {_signed(m, m.high)}]" if m.low is not None else ""
    return _signed(m, m.difference) + interval


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def canary_verdicts(backend: Any, states: Iterable[ReleaseState]) -> dict[tuple[str, str], str]:
    """The one-word verdict of every running canary among `states`, by (prompt, environment).

    A canary whose analysis cannot be had (a server without the analysis route, a token
    that may not read it) is left out: status still shows the release."""
    verdicts = {}
    for s in states:
        if s.canary is None:
            continue
        try:
            report = backend.analyze(s.prompt, s.environment)
        except RegistryError:
            continue
        verdicts[(s.prompt, s.environment)] = str(report.verdict)
    return verdicts
