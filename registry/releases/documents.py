"""The JSON documents clients receive: a version's content, and a release with its versions.

The serving cache prebuilds them, `promptctl bundle` writes them to a file, and the
client rebuilds versions from them (`version_from_document`) to render locally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptctl.registry.prompts.promptversion import PromptVersion
    from promptctl.registry.releases.values import ReleaseState


def version_document(version: PromptVersion) -> dict[str, Any]:
    """The content of a version as clients need it to render locally."""
    return {
        "prompt": version.name,
        # Clients before the shared JSON vocabulary read the prompt's name here only
        # (version_from_document); drop it once no such client is deployed.
        "name": version.name,
        "version": version.number,
        "label": version.label,
        "digest": version.digest,
        "kind": "chat" if version.is_chat else "text",
        "model": version.prompt.model,
        "params": version.prompt.params,
        "front_matter": version.prompt.front_matter,
        "template": version.prompt.body,
        "source": version.prompt.text,
        "body_line": version.prompt.body_line,
        "path": version.relpath,
        "root": version.root,
        "partials": {p: t for p, t in version.partials.items() if t is not None},
        # The engine (the file's `template:` or the repository's default) renders it.
        "template_engine": version.engine,
    }


def release_document(
    state: ReleaseState, stable: PromptVersion, canary: PromptVersion | None
) -> dict[str, Any]:
    """A release with the content of its versions: what clients resolve locally from."""
    return {
        **state.to_json(),
        "stable": version_document(stable),
        "canary": version_document(canary) if canary else None,
        # Clients before the shared JSON vocabulary route with this key only (ReleaseEntry);
        # drop it once no such client is deployed. New clients read `weight_bp`.
        "canary_weight_bp": state.canary_weight_bp,
    }
