"""What runs where, for a review report: each environment's release of a changed prompt,
the content of the versions serving there, and the figures of its busiest stable version.

Read through a `ReleaseBackend`, so a review shows the same rows whether the releases come
from the local database or from a server. The content of a serving version is read from the
repository under review when its history has that digest (no request), else from the
backend's release documents (what clients receive), so the review can judge compatibility
against exactly what serves, as the release gate does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptctl.registry.errors import PromptNotFound, RegistryError
from promptctl.registry.prompts.promptversion import version_from_document

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.prompts.promptversion import PromptVersion
    from promptctl.registry.releases.actions import ReleaseBackend
    from promptctl.registry.releases.values import ReleaseState, VersionRef


@dataclass
class Serving:
    """A prompt's release in one environment today, with the content of what serves there.

    `versions` pairs each serving version, described as the release gate names it
    (`v6 (stable)`), with its content; `unread` names those whose content could not be read,
    so compatibility with them is unknown rather than assumed.
    """

    state: ReleaseState
    versions: list[tuple[str, PromptVersion]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None

    @property
    def environment(self) -> str:
        return self.state.environment

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {
            "environment": state.environment,
            "stable": state.stable.to_json(),
            "canary": state.canary.to_json() if state.canary else None,
            "weight": state.weight_bp / 100 if state.canary else None,
            "weight_bp": state.weight_bp if state.canary else 0,
            "metrics": self.metrics,
        }


# name -> what serves it in each environment, or None when releases cannot be read
ReleaseLookup = Callable[[str], list[Serving] | None]


def release_lookup(backend: ReleaseBackend, library: PromptLibrary | None = None) -> ReleaseLookup:
    """Return a lookup of a prompt's releases (None when they cannot be read), asked once each."""
    cache: dict[str, list[Serving] | None] = {}
    documents: dict[str, dict[str, dict[str, Any]] | None] = {}

    def released_document(environment: str, name: str) -> dict[str, Any] | None:
        if environment not in documents:
            try:
                documents[environment] = backend.release_documents(environment)
            except RegistryError:
                documents[environment] = None
        return (documents[environment] or {}).get(name)

    def content(state: ReleaseState, variant: str, ref: VersionRef) -> PromptVersion | None:
        found = _from_history(library, state.prompt, ref.digest)
        if found is not None:
            return found
        document = (released_document(state.environment, state.prompt) or {}).get(variant)
        if not document or document.get("digest") != ref.digest:
            return None
        try:
            source = ref.source or f"{variant} in {state.environment}"
            return version_from_document(document, source)
        except (RegistryError, KeyError):
            return None

    def lookup(name: str) -> list[Serving] | None:
        if name not in cache:
            try:
                states = backend.status(name, None)
            except PromptNotFound:
                states = []  # known nowhere, so released nowhere
            except RegistryError:
                cache[name] = None
                return None
            rows = []
            for state in states:
                row = Serving(state, metrics=_figures(backend, name, state.environment))
                for variant, ref in (("stable", state.stable), ("canary", state.canary)):
                    if ref is None:
                        continue
                    described = f"{ref.label} ({variant})"
                    version = content(state, variant, ref)
                    if version is None:
                        row.unread.append(described)
                    else:
                        row.versions.append((described, version))
                rows.append(row)
            cache[name] = rows
        return cache[name]

    return lookup


def _from_history(library: PromptLibrary | None, name: str, digest: str) -> PromptVersion | None:
    """The version with this digest where the tracked branch first had it, if it did."""
    if library is None:
        return None
    try:
        index = library.index_or_none(name)
        record = index.record_for(name, digest) if index else None
        if record is None:
            return None
        return library.load(library.snapshot(record.commit.sha), name)
    except RegistryError:
        return None


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
        "version": best.get("version"),
        "label": best.get("label"),
        "count": best.get("count"),
        "error_rate": best.get("error_rate"),
        "latency_p95_ms": (best.get("latency_ms") or {}).get("p95"),
        "mean_cost_usd": (best.get("cost_usd") or {}).get("mean"),
        "mean_quality": (best.get("quality") or {}).get("mean"),
    }
