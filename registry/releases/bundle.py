"""The bundle: what is released in one environment, in one file an application ships.

`promptctl bundle` writes it; the client reads it when it has never reached the server:

    {"format": "promptctl-bundle/1", "environment": ..., "created_at": ...,
     "releases": {prompt: release document, as GET /v1/prompts/{name}/release answers}}

The client imports this module, so it stays light: no SQL, git or web library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptctl.registry.errors import ReleaseNotFound

BUNDLE_FORMAT = "promptctl-bundle/1"


def bundle_document(
    environment: str, releases: Mapping[str, Any], *, created_at: datetime | None = None
) -> dict[str, Any]:
    """Return the bundle of these release documents (by prompt) for one environment."""
    return {
        "format": BUNDLE_FORMAT,
        "environment": environment,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "releases": dict(releases),
    }


def write_bundle(path: Path, environment: str, releases: Mapping[str, Any]) -> int:
    """Write a bundle file atomically and return how many releases it holds.

    An environment with nothing released makes no bundle: it would only hide the mistake.
    """
    if not releases:
        raise ReleaseNotFound("any prompt", environment)
    text = json.dumps(bundle_document(environment, releases), indent=1, ensure_ascii=False)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return len(releases)


def bundle_problem(data: Any, environment: str) -> str | None:
    """Say why `data` (a parsed file) is not a bundle for `environment`, or None when it is.

    Only the envelope is checked here; a reader checks each release document on its own.
    """
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a promptctl bundle"
    if data.get("format") != BUNDLE_FORMAT:
        return f"not a promptctl bundle (format {data.get('format')!r}, expected {BUNDLE_FORMAT!r})"
    if data.get("environment") != environment:
        return f"a bundle for {data.get('environment')!r}, the client is for {environment!r}"
    if not isinstance(data.get("releases"), dict):
        return "wrong shape: 'releases' is not an object of prompt releases"
    return None
