"""What runs where, for a review report: each environment's release of a changed prompt, with
the figures of its busiest stable version.

Read through a `ReleaseBackend`, so a review shows the same rows whether the releases come
from the local database or from a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptctl.registry.errors import RegistryError

if TYPE_CHECKING:
    from promptctl.registry.releases.actions import ReleaseBackend
    from promptctl.registry.review.report import ReleaseLookup


def release_lookup(backend: ReleaseBackend) -> ReleaseLookup:
    """Return a lookup of a prompt's releases (None when they cannot be read), asked once each."""
    cache: dict[str, list[dict[str, Any]] | None] = {}

    def lookup(name: str) -> list[dict[str, Any]] | None:
        if name not in cache:
            try:
                states = backend.status(name, None)
            except RegistryError:
                cache[name] = None
                return None
            cache[name] = [
                {
                    "environment": state.environment,
                    "stable": state.stable.describe(),
                    "canary": (
                        f"{state.canary.describe()} @ {state.weight_bp / 100:g}%"
                        if state.canary
                        else None
                    ),
                    "metrics": _figures(backend, name, state.environment),
                }
                for state in states
            ]
        return cache[name]

    return lookup


def _figures(backend: ReleaseBackend, name: str, environment: str) -> dict[str, Any] | None:
    """The last 7 days' figures of the stable version there (None when nothing was reported)."""
    try:
        summary = backend.metrics_summary(name, environment)
    except RegistryError:
        return None
    return review_figures(summary.to_json())


def review_figures(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The figures a review shows for an environment: those of its busiest stable version."""
    stable = [v for v in summary.get("versions", []) if v.get("variant") == "stable"]
    if not stable:
        return None
    best = max(stable, key=lambda v: v.get("count", 0))
    return {
        "version": best.get("label"),
        "count": best.get("count"),
        "error_rate": best.get("error_rate"),
        "latency_p95_ms": (best.get("latency_ms") or {}).get("p95"),
        "mean_cost_usd": (best.get("cost_usd") or {}).get("mean"),
        "mean_quality": (best.get("quality") or {}).get("mean"),
    }
