"""Waiting on a server, and being interrupted while a release action is under way.

A request that takes more than a second shows a spinner on stderr when stderr is a
terminal (never in a pipe or a log). Ctrl-C during a release action looks the release up
again and says whether the action was applied: the local database's transaction either
committed or rolled back, so a second read tells for sure; a server may have applied it
or not, and one short request asks it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from promptctl.registry.releases.actions import Complete, Promote, Ramp, ReleaseAction

if TYPE_CHECKING:
    from promptctl.cli.context import Options
    from promptctl.registry.releases.actions import ReleaseBackend
    from promptctl.registry.releases.values import ReleaseState

T = TypeVar("T")

SPINNER_DELAY = 1.0  # seconds of silence before the spinner shows
FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
LOOKUP_TIMEOUT = 5.0  # the second look at a release after Ctrl-C, at most this long
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report it
APPLIED, NOT_APPLIED, UNKNOWN = "applied", "not applied", "unknown"


@contextmanager
def spinner(label: str, *, delay: float = SPINNER_DELAY) -> Iterator[None]:
    """Show `label` with a spinner on stderr after `delay` seconds, while the block runs."""
    if not _stderr_is_terminal():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        if done.wait(delay):
            return
        waited, frame = delay, 0
        while not done.is_set():
            sys.stderr.write(f"\r{FRAMES[frame % len(FRAMES)]} {label} ({waited:.0f} s)")
            sys.stderr.flush()
            frame += 1
            if done.wait(0.1):
                break
            waited += 0.1
        sys.stderr.write("\r\x1b[2K")  # clear the spinner's line
        sys.stderr.flush()

    thread = threading.Thread(target=spin, name="promptctl-spinner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def outcome(action: ReleaseAction, before: ReleaseState | None, after: ReleaseState | None) -> str:
    """Whether `action` was applied, judged from the release before and after it."""
    before_revision = before.revision if before else 0
    after_revision = after.revision if after else 0
    if after is None or after_revision == before_revision:
        return NOT_APPLIED
    if after_revision < before_revision:
        return UNKNOWN
    return APPLIED if _shows(action, before, after) else UNKNOWN


def _shows(action: ReleaseAction, before: ReleaseState | None, after: ReleaseState) -> bool:
    """Whether the release now is what the action would have made it (another person's
    change may have moved the revision instead)."""
    if isinstance(action, Promote) and action.digest is not None:
        if action.canary_bp is None:
            return after.stable.digest == action.digest and after.canary is None
        return bool(after.canary and after.canary.digest == action.digest)
    if isinstance(action, Ramp):
        return after.canary is not None and after.weight_bp == action.weight_bp
    if isinstance(action, Complete):
        return bool(before and before.canary and after.stable.digest == before.canary.digest)
    return True  # abort, rollback, promote --from: the revision moved by our action or not


def release_now(backend: ReleaseBackend, prompt: str, environment: str) -> ReleaseState | None:
    """The release of a prompt in an environment, or None when there is none."""
    states = backend.status(prompt, environment)
    return states[0] if states else None


def lookup_backend(options: Options) -> ReleaseBackend:
    """A backend for a quick second look: the server with a short timeout, or the database."""
    if not options.server:
        return options.registry
    from promptctl.cli.remote import RemoteBackend

    timeout = min(LOOKUP_TIMEOUT, options.timeout)
    return RemoteBackend(options.server, options.token, timeout=timeout, quiet=True)


def perform_or_explain(
    options: Options,
    action: ReleaseAction,
    before: ReleaseState | None,
    perform: Callable[[], T],
    *,
    as_json: bool = False,
) -> T:
    """Run `perform`; on Ctrl-C, say whether the action was applied and exit 130."""
    try:
        return perform()
    except KeyboardInterrupt:
        message = interrupted_message(options, action, before)
    from promptctl.cli.output import emit_error

    emit_error("Interrupted", "Interrupted", message, as_json=as_json)
    sys.exit(INTERRUPTED_EXIT)


def interrupted_message(
    options: Options, action: ReleaseAction, before: ReleaseState | None
) -> str:
    """What to tell someone who pressed Ctrl-C during `action`."""
    prompt, environment = action.prompt, action.environment
    check = f"check 'promptctl status {prompt} --env {environment}'"
    try:
        after = release_now(lookup_backend(options), prompt, environment)
    except Exception:  # interrupted again, the server gone: we cannot tell
        return f"interrupted: unknown whether the change was applied: {check}"
    found = outcome(action, before, after)
    if found == APPLIED:
        assert after is not None
        return (
            f"interrupted, but the change was applied: {prompt} in {environment} is at "
            f"revision {after.revision}"
        )
    if found == NOT_APPLIED:
        revision = after.revision if after else 0
        message = (
            f"interrupted: the change was not applied ({prompt} in {environment} is still at "
            f"revision {revision})"
        )
        if options.server:  # the server may still be working on the request it received
            message += f"; if the server was still at work on it, {check} in a moment"
        return message
    return f"interrupted: unknown whether the change was applied (the release changed): {check}"
