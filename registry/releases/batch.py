"""Promotions a CI job runs after a merge: `--if-changed` for one prompt, `--all` for every one.

Both work through any `ReleaseBackend` (the local registry, or a server through the CLI's
remote backend), so the decisions are the same whichever carries the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from promptctl.registry.errors import RegistryError
from promptctl.registry.releases.values import ReleaseState, VersionRef

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.releases.actions import Promote, PromoteAll, ReleaseBackend


@dataclass(frozen=True)
class Promotion:
    """A promotion carried out, whether it changed the release (`--if-changed`), and what
    the person promoting should know (uncommitted changes that were not promoted)."""

    state: ReleaseState
    changed: bool
    warnings: tuple[str, ...] = ()


def promote(backend: ReleaseBackend, action: Promote) -> Promotion:
    """Perform a promotion and say whether it changed anything.

    With `if_changed`, promoting the version that is already stable returns the release as
    it was: the stable digest before and after tells which happened.
    """
    if not action.if_changed:
        return Promotion(backend.perform(action), changed=True)
    before = _stable_digest(backend, action.prompt, action.environment)
    state = backend.perform(action)
    return Promotion(state, changed=before != state.stable.digest)


@dataclass(frozen=True)
class PromptPromotion:
    """What `promote --all` did with one prompt: promoted, unchanged, or failed (and why)."""

    prompt: str
    result: Literal["promoted", "unchanged", "failed"]
    stable: VersionRef | None = None  # stable after the run (None when it failed)
    error: str | None = None

    @property
    def detail(self) -> str:
        if self.stable is None:
            return self.error or ""
        return self.stable.label if self.result == "unchanged" else self.stable.describe()

    def to_json(self) -> dict[str, Any]:
        stable = self.stable
        return {
            "prompt": self.prompt,
            "result": self.result,
            "version": stable.number if stable else None,
            "label": stable.label if stable else None,
            "digest": stable.digest if stable else None,
            "error": self.error,
        }


def promote_all(
    library: PromptLibrary, backend: ReleaseBackend, request: PromoteAll
) -> list[PromptPromotion]:
    """Promote every prompt at `request.ref` whose version is not stable in the environment.

    The versions are read from `library`, the promotions carried by `backend` with the
    digest and commit read here, so a server promotes exactly them or refuses; each line
    reports what the backend stored. A prompt that fails is reported, and the others go on.
    """
    ref = request.ref
    stable = {s.prompt: s.stable.digest for s in backend.status(None, request.environment)}
    results = []
    for name in library.list(ref):
        try:
            version = library.get(name, ref)
            if stable.get(name) == version.digest:
                same = VersionRef(version.digest, version.number)
                results.append(PromptPromotion(name, "unchanged", stable=same))
                continue
            commit = version.commit.sha if version.commit else None
            action = replace(request.action(name), digest=version.digest, commit=commit)
            state = backend.perform(action)
            if state.stable.digest != version.digest:  # a backend that ignored the digest
                stored = f"stored {state.stable.describe()}, not {version.digest[:12]}"
                results.append(PromptPromotion(name, "failed", error=stored))
                continue
            results.append(PromptPromotion(name, "promoted", stable=state.stable))
        except RegistryError as exc:
            results.append(PromptPromotion(name, "failed", error=str(exc)))
    return results


def _stable_digest(backend: ReleaseBackend, prompt: str, environment: str) -> str | None:
    states = backend.status(prompt, environment)
    return states[0].stable.digest if states else None
