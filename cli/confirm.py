"""Confirming a change to a protected environment.

On a terminal (stdin and stdout both), a release command that changes a protected
environment without --yes shows what will change and asks. Anywhere else it goes ahead
unconfirmed, and the registry refuses it (ProtectedEnvironment); the CLI's error then
says how to confirm. Rollback and abort never need confirmation (they are the way back,
and always immediate), so they never ask.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import click

from promptctl.registry.errors import ProtectedEnvironment, RegistryError
from promptctl.registry.releases.actions import (
    Complete,
    Promote,
    PromoteAll,
    Ramp,
    ReleaseAction,
)
from promptctl.registry.releases.routing import format_percent

if TYPE_CHECKING:
    from promptctl.cli.context import Options
    from promptctl.registry.releases.values import ReleaseState, VersionRef

A = TypeVar("A", bound=ReleaseAction)

YES_HINT = "pass --yes to confirm it, or run the command on a terminal to be asked"


# Not in registry.errors: the registry was never asked. A RegistryError so that the CLI's
# one handler prints it and exits 1 like any refusal.
class NotConfirmed(RegistryError):
    """The person at the terminal answered no: nothing was changed."""

    title = "Not confirmed"

    def __init__(self, environment: str) -> None:
        super().__init__(f"not confirmed: nothing was changed in {environment}")


def cli_hint(exc: BaseException) -> str | None:
    """What the CLI adds to an error the registry (or a server) worded for every caller."""
    if getattr(exc, "title", None) == ProtectedEnvironment.title:
        return YES_HINT
    return None


def interactive() -> bool:
    """Whether someone can answer a question: stdin and stdout are both a terminal."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(options: Options, action: A, changes: Callable[[], list[str]]) -> A:
    """Ask on a terminal before changing a protected environment, showing `changes()`;
    return the action as confirmed when the answer is yes. Without a terminal, with --yes,
    for rollback and abort, or in an environment that is not protected, return it as is."""
    if not isinstance(action, Promote | Ramp | Complete) or action.confirmed:
        return action
    if not interactive() or not _protected(options, action.environment):
        return action
    click.echo(f"{action.environment} is a protected environment. This will change:", err=True)
    for line in changes():
        click.echo(f"  {line}", err=True)
    if not click.confirm("Apply it?", default=False, err=True):
        raise NotConfirmed(action.environment)
    return replace(action, confirmed=True)


def _protected(options: Options, environment: str) -> bool:
    known = {e.name: e.protected for e in options.backend.environments()}
    return known.get(environment, False)  # an unknown one: the action's own error says so


def plan(
    action: ReleaseAction, before: ReleaseState | None, target: str | None = None
) -> list[str]:
    """What `action` changes in the release `before`, one line per change (`target`
    describes the version a promotion names)."""
    where = f"{action.prompt} in {action.environment}"
    stable = _label(before.stable) if before else "(nothing)"
    canary = before.canary if before else None
    running = None
    if before and canary:
        running = f"{_label(canary)} @ {format_percent(before.weight_bp)}"
    if isinstance(action, Promote):
        new = target or "the version asked for"
        if action.canary_bp is not None:
            lines = [f"{where}: start canary {new} @ {format_percent(action.canary_bp)}"]
            lines.append(f"stable stays {stable}")
            return lines
        lines = [f"{where}: stable {stable} -> {new}"]
        if running:
            lines.append(f"canary {running} dropped")
        return lines
    if isinstance(action, Ramp):
        old = format_percent(before.weight_bp) if before and canary else "(no canary)"
        label = _label(canary) if canary else "(no canary)"
        return [f"{where}: canary {label} weight {old} -> {format_percent(action.weight_bp)}"]
    if isinstance(action, Complete):
        label = _label(canary) if canary else "(no canary)"
        return [f"{where}: canary {label} becomes stable, replacing {stable} (all traffic)"]
    return [f"{where}: {action.verb}"]


def _label(ref: VersionRef) -> str:
    return ref.describe()


def confirm_all(options: Options, request: PromoteAll) -> PromoteAll:
    """`promote --all` into a protected environment: on a terminal, list the prompts whose
    version at the reference is not stable there yet, and ask once."""
    if request.confirmed or not interactive() or not _protected(options, request.environment):
        return request
    stable = {s.prompt: s.stable for s in options.backend.status(None, request.environment)}
    lines = []
    library = options.library
    for name in library.list(request.ref):
        try:
            version = library.get(name, request.ref)
        except RegistryError:
            continue  # reported as failed by the promotion itself
        current = stable.get(name)
        if current is None or current.digest != version.digest:
            old = _label(current) if current else "(nothing)"
            lines.append(f"{name}: stable {old} -> {version.label} ({version.short_digest})")
    if not lines:
        return request  # nothing changes: nothing to confirm
    click.echo(f"{request.environment} is a protected environment. This will change:", err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)
    if not click.confirm("Apply it?", default=False, err=True):
        raise NotConfirmed(request.environment)
    return replace(request, confirmed=True)
