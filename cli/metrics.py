"""`promptctl metrics`: what each released version costs, how fast and how good it is."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options
from promptctl.cli.output import emit_json, table
from promptctl.registry.errors import RegistryError
from promptctl.registry.metrics.summary import parse_time

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
    """Show a prompt's metrics per version and variant: calls, failed calls and their
    rate, latency p50/p95/p99 of successful calls (a failed call's latency is never mixed
    in), mean cost and tokens, mean quality with its 95 % confidence interval,
    invalid-output and truncation rates, the most frequent error types, and each
    version's declared budget where its means exceed it.

    The window is read in whole minutes: --since is rounded down and --until up, and a
    note says so when that moved them.

    Costs not sent with the events are priced from the model's price (PROMPTCTL_PRICES,
    else the maintained genai-prices data); the source and its date are shown.

    Reads the local release database, or the server given with --server."""
    summary = options.backend.metrics_summary(name, environment, since, until)
    if as_json:
        emit_json(summary.to_json())
        return
    window = f"{summary.since:%Y-%m-%d %H:%M} to {summary.until:%Y-%m-%d %H:%M} UTC"
    rounding = _rounding(since, until)
    if not summary.versions:
        click.echo(f"No metrics for {summary.prompt} in {summary.environment} from {window}.")
        if rounding:
            click.echo(rounding)
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
            "INVALID",
            "TRUNCATED",
        ],
        [_row(v) for v in summary.versions],
    )
    click.echo("Latency: successful calls only; failed calls are counted under ERRORS.")
    if rounding:
        click.echo(rounding)
    for line in _notes(summary.versions):
        click.echo(line)
    if summary.prices and summary.prices.get("source") not in (None, "none"):
        as_of = summary.prices.get("as_of")
        dated = f" (prices as of {as_of})" if as_of else ""
        click.echo(f"Costs not sent with events: {summary.prices['source']}{dated}.")


def _rounding(since: str | None, until: str | None) -> str | None:
    """Say how the window's bounds were rounded to whole minutes, when they were."""
    now = datetime.now(UTC)
    moved = []
    for option, text, direction in (("--since", since, "down"), ("--until", until, "up")):
        try:
            asked = parse_time(text, now)
        except RegistryError:
            continue
        if asked is not None and (asked.second or asked.microsecond):
            moved.append(f"{option} {asked:%H:%M:%S} {direction}")
    if not moved:
        return None
    return "Window in whole minutes (rollups are per minute): " + ", ".join(moved) + "."


def _notes(versions: list[VersionMetrics]) -> list[str]:
    """Lines under the table: cost changes between versions, error types, budgets."""
    lines = []
    newest_first = []
    for v in versions:  # one figure per version: its stable variant, else its canary
        if v.cost_mean is not None and v.digest not in {n.digest for n in newest_first}:
            newest_first.append(v)
    for newer, older in zip(newest_first, newest_first[1:], strict=False):
        new_cost, old_cost = newer.cost_mean or 0.0, older.cost_mean or 0.0
        change = new_cost - old_cost
        relative = f", {change / old_cost:+.1%}" if old_cost else ""
        lines.append(
            f"Cost per call {newer.label} vs {older.label}: {_usd(new_cost)} vs "
            f"{_usd(old_cost)} ({_signed_usd(change)}{relative})"
        )
    for v in versions:
        name = f"{v.label} {v.variant}"
        if v.error_types:
            top = ", ".join(f"{t} {n:,}" for t, n in v.top_error_types(3))
            lines.append(f"Errors of {name}: {top}")
        if v.budget is not None and v.budget.exceeded:
            over = ", ".join(_over_budget(v, key) for key in v.budget.exceeded)
            lines.append(click.style(f"Over budget: {name}: {over}", fg="red"))
    return lines


def _over_budget(v: VersionMetrics, key: str) -> str:
    assert v.budget is not None
    if key == "cost_usd":
        return f"mean cost {_usd(v.cost_mean)} > {_usd(v.budget.cost_usd)}"
    mean = v.input_tokens_mean if key == "input_tokens" else v.output_tokens_mean
    limit = getattr(v.budget, key)
    return f"mean {key.replace('_', ' ')} {_number(mean)} > {limit:,}"


def _signed_usd(value: float) -> str:
    return ("+" if value >= 0 else "-") + _usd(abs(value))


def _row(v: VersionMetrics) -> list[str]:
    return [
        v.label,
        v.variant,
        f"{v.count:,}",
        f"{v.errors:,} ({v.error_rate:.1%})" if v.error_rate is not None else "-",
        _ms(v.latency_p50),
        _ms(v.latency_p95),
        _ms(v.latency_p99),
        _usd(v.cost_mean),
        _number(v.input_tokens_mean),
        _number(v.output_tokens_mean),
        _quality(v),
        _rate(v.invalid_output_rate),
        _rate(v.truncation_rate),
    ]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if 0 < value < 0.01:  # fractions of a cent: three significant digits, never 4.2e-05
        digits = 2 - math.floor(math.log10(value))
        return f"${value:.{digits}f}".rstrip("0")
    return f"${value:,.4f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _quality(v: VersionMetrics) -> str:
    if v.quality_mean is None:
        return "-"
    if v.quality_low is None or v.quality_high is None:
        return f"{v.quality_mean:.2f} (n={v.quality_count})"
    return f"{v.quality_mean:.2f} [{v.quality_low:.2f}, {v.quality_high:.2f}] n={v.quality_count}"
