"""Release actions from the dashboard: a confirmation page, then the action itself.

GET /-/actions/{kind}?prompt=P&env=E shows what will change; its form POSTs back with the
release's revision as the page saw it, the reason and the CSRF token. The action goes
through `Registry.perform`, as the API's do, with `expected_revision`: a release changed
since the page loaded is refused, and the page is shown again with the new state. The
visitor's token must be allowed to act there exactly as the API requires (`release`, and
for a protected environment `admin` or a token limited to it); a read-only token gets a
403 page and never sees the buttons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from promptctl.registry.errors import (
    EnvironmentNotFound,
    RegistryError,
    RevisionMismatch,
    UsageError,
)
from promptctl.registry.releases.actions import (
    Abort,
    Complete,
    Promote,
    Ramp,
    ReleaseAction,
    Rollback,
)
from promptctl.registry.releases.routing import parse_percent
from promptctl.registry.releases.values import LogEntry, ReleaseState, replay_stable
from promptctl.server.dashboard.web import Page, PageRequest, Redirect


class IncompleteForm(UsageError):
    """An action's form posted without the release revision its page showed."""

    title = "Form incomplete"

    def __init__(self, field: str) -> None:
        super().__init__(
            f"this form is incomplete: it has no {field!r}, the release revision the page "
            "showed, without which a change made since could not be noticed. Open the "
            "action's page again and confirm there."
        )


@dataclass(frozen=True)
class Kind:
    """An action the dashboard offers: its title and whether it needs a canary."""

    title: str
    needs_canary: bool


KINDS = {
    "rollback": Kind("Roll back", False),
    "abort": Kind("Abort the canary", True),
    "ramp": Kind("Change the canary weight", True),
    "complete": Kind("Make the canary stable", True),
    "promote": Kind("Promote a version", False),
    "pause": Kind("Pause the rollout", True),
    "resume": Kind("Resume the rollout", True),
}
ROLLOUT_VERBS = ("pause", "resume")


def _state(pr: PageRequest, name: str, env: str) -> ReleaseState | None:
    states = pr.registry.status(name, env, viewer=pr.visitor.token)
    if not states:
        pr.registry.history(name, env, limit=1, viewer=pr.visitor.token)  # unknown: 404
    return states[0] if states else None


def rollback_targets(entries: Sequence[LogEntry]) -> dict[str, str]:
    """What stable returns to on a rollback without a canary, per environment of a
    prompt's log (`entries` newest first, as `Registry.history` gives them): the log
    replayed as the registry replays it, promotions pushing and rollbacks popping.
    An environment whose stable version has no earlier one is absent."""
    steps: dict[str, list[tuple[str, str | None]]] = {}
    for entry in reversed(entries):  # oldest first
        to = entry.to_version.label if entry.to_version is not None else None
        steps.setdefault(entry.environment, []).append((entry.action, to))
    stacks = {env: replay_stable(env_steps) for env, env_steps in steps.items()}
    return {env: stack[-2] for env, stack in stacks.items() if len(stack) > 1}


def _previous_stable(pr: PageRequest, name: str, env: str) -> str | None:
    """What stable returns to on a rollback without a canary in `env`."""
    return rollback_targets(pr.registry.history(name, env, viewer=pr.visitor.token)).get(env)


def _changes(
    pr: PageRequest, kind: str, name: str, env: str, state: ReleaseState | None
) -> list[str]:
    """What the action will change, in words, as of `state`."""
    if state is None:
        if kind == "promote":
            version = pr.arg("version", "HEAD")
            return [f"{version} becomes the first release of {name} in {env}"]
        return [f"{name} has no release in {env}: there is nothing to {kind}"]
    stable, canary = state.stable.label, state.canary.label if state.canary else None
    weight = f"{state.canary_weight_bp / 100:g}%"
    if kind in ("rollback", "abort") and canary:
        return [f"canary {canary} ({weight}) is dropped", f"stable {stable} takes all traffic"]
    if kind == "rollback":
        back = _previous_stable(pr, name, env)
        if back is None:
            return [f"stable {stable} has no earlier version to return to in {env}"]
        return [f"stable {stable} → {back}"]
    if kind == "ramp":
        target = pr.arg("weight") or "?"
        return [f"canary {canary}: {weight} → {target.rstrip('%')}%"]
    if kind == "complete":
        return [f"stable {stable} → {canary}", "no canary remains"]
    if kind == "pause":
        return [
            f"the rollout stops advancing: canary {canary} keeps {weight}",
            "a person resumes, aborts or promotes it",
        ]
    if kind == "resume":
        return [f"the rollout goes on from canary {canary} at {weight}"]
    version = pr.arg("version", "HEAD")
    if pr.arg("canary"):
        return [f"{version} starts as canary at {pr.arg('canary').rstrip('%')}% beside {stable}"]
    changes = [f"stable {stable} → {version}"]
    if canary:
        changes.append(f"canary {canary} ({weight}) is dropped")
    return changes


def _action(pr: PageRequest, kind: str, name: str, env: str, revision: int) -> ReleaseAction:
    common: dict[str, Any] = {
        "prompt": name,
        "environment": env,
        "reason": pr.arg("reason") or None,
        "actor": pr.visitor.actor(),
        "confirmed": True,  # this page is the confirmation --yes gives on the command line
        # Always explicit: 0 is "not released yet", so a release made since is noticed too.
        "expected_revision": revision,
    }
    if kind == "rollback":
        return Rollback(**common)
    if kind == "abort":
        return Abort(**common)
    if kind == "complete":
        return Complete(**common)
    if kind == "ramp":
        return Ramp(**common, weight_bp=parse_percent(pr.arg("weight")))
    canary = pr.arg("canary")
    return Promote(
        **common,
        ref=pr.arg("version", "HEAD"),
        canary_bp=parse_percent(canary) if canary else None,
    )


def _change_rollout(
    pr: PageRequest, verb: str, name: str, env: str, state: ReleaseState | None, seen: int
) -> ReleaseState:
    """Pause or resume the live rollout; refused, as a release action is, when the release
    changed since the page was loaded."""
    if state is None or state.revision != seen:
        raise RevisionMismatch(name, env, seen, state.revision if state else 0)
    pr.registry.change_rollout(
        verb, name, env, actor=pr.visitor.actor(), reason=pr.arg("reason") or None,
        confirmed=True,
    )  # fmt: skip
    after = pr.registry.status(name, env)
    return after[0] if after else state


def action(pr: PageRequest) -> Page | Redirect:
    """Show what a release action will change; on POST, carry it out."""
    kind = pr.request.path_params["kind"]
    if kind not in KINDS:
        raise UsageError(f"unknown action {kind!r} (actions: {', '.join(KINDS)})")
    name, env = pr.arg("prompt"), pr.arg("env")
    if not name or not env:
        raise UsageError("an action needs ?prompt=NAME&env=ENVIRONMENT")
    registry = pr.registry
    known = [e.name for e in registry.environments(viewer=pr.visitor.token)]
    if pr.visitor.token is not None:
        pr.visitor.token.narrow(env)  # OtherEnvironment (403), as the API answers
    if env not in known:
        raise EnvironmentNotFound(env, known)
    protected = registry.serving.is_protected(env)
    pr.visitor.check_act(env, protected)
    state = _state(pr, name, env)
    problem = None
    status = 200
    if pr.form is not None:
        seen = pr.form.get("revision", "").strip()
        if not seen:
            # The check of a stale form rests on it: a post without it is refused, never
            # carried out unchecked.
            raise IncompleteForm("revision")
        if not seen.isdigit():
            raise UsageError(f"revision must be a number, not {seen!r}")
        try:
            if kind in ROLLOUT_VERBS:
                after = _change_rollout(pr, kind, name, env, state, int(seen))
            else:
                after = registry.perform(_action(pr, kind, name, env, int(seen)))
        except RevisionMismatch as exc:
            problem, status = (
                f"Not done: {exc} Someone changed this release since the page was loaded; "
                "below is its state now. Check the change and confirm again.",
                409,
            )
            state = _state(pr, name, env)
        except RegistryError as exc:
            problem, status = f"Not done: {exc}", exc.status
            state = _state(pr, name, env)
        else:
            query = urlencode({"env": env, "done": f"{kind} (revision {after.revision})"})
            if kind in ROLLOUT_VERBS:
                return Redirect(f"/rollouts/{env}/{name}?{urlencode({'done': kind})}")
            return Redirect(f"/prompts/{name}?{query}")
    versions: list[str] = []
    if kind == "promote":
        try:
            with registry.git() as library:
                versions = [r.label for r in reversed(library.history(name)[0])]
        except RegistryError:
            versions = []
    context = {
        "kind": kind,
        "title": KINDS[kind].title,
        "name": name,
        "env": env,
        "protected": protected,
        "state": state,
        "changes": _changes(pr, kind, name, env, state),
        "problem": problem,
        "versions": versions,
        "fields": {
            "reason": pr.arg("reason"),
            "weight": pr.arg("weight"),
            "version": pr.arg("version"),
            "canary": pr.arg("canary"),
        },
        "possible": state is not None or kind == "promote",
    }
    data = {
        "action": kind,
        "prompt": name,
        "environment": env,
        "release": state.to_json() if state else None,
        "changes": context["changes"],
        "problem": problem,
    }
    return Page("action.html", context, data, status=status)
