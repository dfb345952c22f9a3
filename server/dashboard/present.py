"""How figures read in a page: numbers, rates, times, and the overview's health mark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from promptctl.registry.metrics.series import Traffic

# The health mark's thresholds over the last hour. A presentation rule, not an analysis:
# the canary analysis (registry.analysis) judges canaries with its own statistics.
FAILING_ERROR_RATE = 0.25
DEGRADED_ERROR_RATE = 0.05
CANARY_MARGIN = 0.05  # canary's error rate above stable's by this much...
CANARY_MIN_CALLS = 20  # ...over at least this many canary calls


@dataclass(frozen=True)
class Health:
    """A release's mark: `ok`, `degraded`, `canary-worse`, `failing` or `idle`, and why."""

    mark: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"mark": self.mark, "why": self.why}


def health(traffic: Traffic | None) -> Health:
    """Judge the last hour's calls of one release."""
    if traffic is None or not traffic.calls:
        return Health("idle", "no calls in the last hour")
    rate = traffic.error_rate or 0.0
    if rate >= FAILING_ERROR_RATE:
        return Health("failing", f"{percent(rate)} of calls failed in the last hour")
    canary, stable = traffic.canary_error_rate, traffic.stable_error_rate
    if (
        canary is not None
        and traffic.canary_calls >= CANARY_MIN_CALLS
        and canary >= (stable or 0.0) + CANARY_MARGIN
    ):
        return Health(
            "canary-worse",
            f"canary fails {percent(canary)} of calls, stable {percent(stable or 0.0)}",
        )
    if rate >= DEGRADED_ERROR_RATE:
        return Health("degraded", f"{percent(rate)} of calls failed in the last hour")
    return Health("ok", f"{percent(rate)} of {traffic.calls} calls failed in the last hour")


def percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f}%"


def weight(weight_bp: int) -> str:
    """Basis points as a percentage without trailing zeros: 1250 -> 12.5%."""
    return f"{weight_bp / 100:g}%"


def number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def millis(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:,.0f} ms"


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


FILTERS = {
    "number": number,
    "percent": percent,
    "millis": millis,
    "usd": usd,
    "when": when,
    "weight": weight,
}
