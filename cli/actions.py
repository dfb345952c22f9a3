"""How a release command carries out its action: read the release, confirm on a terminal
when the environment is protected, perform, and on Ctrl-C say whether it was applied."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from promptctl.cli.confirm import confirm, plan
from promptctl.cli.output import emit_error
from promptctl.cli.waiting import INTERRUPTED_EXIT, perform_or_explain, release_now
from promptctl.registry.errors import RegistryError
from promptctl.registry.releases.actions import Promote, ReleaseAction

if TYPE_CHECKING:
    from promptctl.cli.context import Options
    from promptctl.registry.releases.values import ReleaseState

A = TypeVar("A", bound=ReleaseAction)
T = TypeVar("T")


def carry_out(
    options: Options,
    action: A,
    perform: Callable[[A], T],
    *,
    as_json: bool = False,
) -> tuple[T, ReleaseState | None]:
    """Perform `action` (asking first on a terminal for a protected environment); return
    what `perform` returned and the release as it was before."""
    try:
        before = release_now(options.backend, action.prompt, action.environment)
        asked = confirm(options, action, lambda: plan(action, before, _target(options, action)))
    except KeyboardInterrupt:  # still reading the release: the action was never sent
        detail = "interrupted before the change was sent: nothing changed"
        emit_error("Interrupted", "Interrupted", detail, as_json=as_json)
        sys.exit(INTERRUPTED_EXIT)
    result = perform_or_explain(options, asked, before, lambda: perform(asked), as_json=as_json)
    return result, before


def _target(options: Options, action: ReleaseAction) -> str | None:
    """The version a promotion names, as this repository reads it (`v3 (1a2b3c4d5e6f)`)."""
    if not isinstance(action, Promote):
        return None
    if action.source is not None:
        source = release_now(options.backend, action.prompt, action.source)
        stable = source.stable.describe() if source else "(nothing)"
        return f"{stable}, stable in {action.source}"
    try:
        version = options.library.get(action.prompt, action.ref or "HEAD")
    except RegistryError:
        return None  # the action's own error will say what is wrong with the reference
    return f"{version.label} ({version.short_digest})"
