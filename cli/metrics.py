"""`promptctl metrics`: what each released version costs, how fast and how good it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options
from promptctl.cli.output import emit_json, table

if TYPE_CHECKING:
    from promptctl.registry.metrics.summary import VersionMetrics


@cli.command("metrics")
@click.argument("name")
@click.option("--env", "environment", required=True, help="The environment.")
@click.option(
    "--since",
    default=None,
    help="Start: an ISO 8601 time (UTC unless it says otherwise) or a duration ago "
    "such as 30m, 24h, 7d [7d].",
)
@click.option("--until", default=None, help="End, in the same forms as --since [now].")
@JSON_OPTION
@pass_options
def metrics_command(
    options: Options,
    name: str,
    environment: str,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Show a prompt's metrics per version and variant: calls, error rate, latency
    p50/p95/p99, mean cost and tokens, and mean quality with its 95 % confidence interval.

    Reads the local release database, or the server given with --server."""
    summary = options.backend.metrics_summary(name, environment, since, until)
    if as_json:
        emit_json(summary.to_json())
        return
    window = f"{summary.since:%Y-%m-%d %H:%M} to {summary.until:%Y-%m-%d %H:%M} UTC"
    if not summary.versions:
        click.echo(f"No metrics for {summary.prompt} in {summary.environment} from {window}.")
        return
    click.echo(f"{summary.prompt} in {summary.environment}, {window}")
    table(
        [
            "VERSION",
            "VARIANT",
            "CALLS",
            "ERRORS",
            "P50 MS",
            "P95 MS",
            "P99 MS",
            "COST/CALL",
            "IN TOKENS",
            "OUT TOKENS",
            "QUALITY (95% CI)",
        ],
        [_row(v) for v in summary.versions],
    )


def _row(v: VersionMetrics) -> list[str]:
    return [
        v.label,
        v.variant,
        f"{v.count:,}",
        f"{v.error_rate:.1%}" if v.error_rate is not None else "-",
        _ms(v.latency_p50),
        _ms(v.latency_p95),
        _ms(v.latency_p99),
        _usd(v.cost_mean),
        _number(v.input_tokens_mean),
        _number(v.output_tokens_mean),
        _quality(v),
    ]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.3g}" if value < 0.01 and value != 0 else f"${value:,.4f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _quality(v: VersionMetrics) -> str:
    if v.quality_mean is None:
        return "-"
    if v.quality_low is None or v.quality_high is None:
        return f"{v.quality_mean:.2f} (n={v.quality_count})"
    return f"{v.quality_mean:.2f} [{v.quality_low:.2f}, {v.quality_high:.2f}] n={v.quality_count}"
