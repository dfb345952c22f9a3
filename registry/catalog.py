"""The catalog: every prompt with its current version and what is released where.

It lists the prompts of the tracked branch (of the working tree while the branch does not
exist yet) and adds every released prompt, so a server whose clone cannot be read still
lists what it serves. A prompt that cannot be read says why instead of spoiling the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from promptctl.registry.errors import RegistryError
from promptctl.registry.releases.values import percent

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.releases.serving import ServedRelease


def catalog(
    served: Iterable[ServedRelease], git: Callable[[], AbstractContextManager[PromptLibrary]]
) -> list[dict[str, Any]]:
    """Return the prompts by name, each with its releases by environment."""
    releases: dict[str, dict[str, Any]] = {}
    for entry in served:
        state = entry.state
        releases.setdefault(state.prompt, {})[state.environment] = {
            "stable": state.stable.to_json(),
            "canary": state.canary.to_json() if state.canary else None,
            "weight": percent(state.canary_weight_bp),
            "weight_bp": state.canary_weight_bp,
            "revision": state.revision,
        }
    described: dict[str, dict[str, Any]] = {}
    try:
        with git() as library:
            rev = library.layout.branch if library.tracked_tip() else None
            for name in library.list(rev):
                try:
                    found = library.get(name, rev)
                except RegistryError as exc:
                    described[name] = {"prompt": name, "error": str(exc)}
                    continue
                described[name] = {
                    "prompt": name,
                    "version": found.number,
                    "label": found.label,
                    "digest": found.digest,
                    "description": found.prompt.description,
                    "model": found.prompt.model,
                }
    except RegistryError:
        pass  # no readable repository: list what is released
    for name in releases:
        described.setdefault(name, {"prompt": name})
    return [{**described[n], "releases": releases.get(n, {})} for n in sorted(described)]
