"""Which variant of a release a request gets: the routing function applied to a release.

The serving cache answers resolves with it, and `promptctl resolve` shows it (with the
key's bucket) from a release's state alone, locally or through a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from promptctl.registry.releases.routing import Variant, assign, bucket

if TYPE_CHECKING:
    from promptctl.registry.releases.values import ReleaseState, VersionRef


def variant_for(state: ReleaseState, key: str | None) -> Variant:
    """The variant a request with `key` gets (random per request without a key)."""
    canary = state.canary
    return assign(state.prompt, canary.digest if canary else None, state.weight_bp, key)


@dataclass(frozen=True)
class Assignment:
    """A request's variant, the version it names, and the key's bucket while a canary runs."""

    variant: Variant
    version: VersionRef
    bucket: int | None


def assignment(state: ReleaseState, key: str | None) -> Assignment:
    """Assign a request with `key` to a variant of the release, as the server would."""
    variant = variant_for(state, key)
    canary = state.canary
    chosen = canary if variant == "canary" and canary else state.stable
    key_bucket = bucket(state.prompt, canary.digest, key) if key and canary else None
    return Assignment(variant, chosen, key_bucket)
