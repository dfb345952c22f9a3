"""`promptctl rollout`: start an automated rollout, see where it is, pause, resume, end it.

Locally the rollout is written to the release database (a server on that database runs
its controller); with --server (PROMPTCTL_SERVER) every command goes through the API. A
protected environment asks on a terminal (or takes --yes) for what raises the canary's
weight, as `promote` does: start, resume and promote; pause and abort never ask.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from promptctl.cli.analyze import METRIC_HEADERS, metric_row
from promptctl.cli.completion import complete_environment, complete_name, complete_spec
from promptctl.cli.confirm import confirm
from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options, split_ref
from promptctl.cli.output import emit_json, table
from promptctl.registry.analysis.report import metric_from_json
from promptctl.registry.errors import RegistryError
from promptctl.registry.releases.actions import Complete, Promote, Ramp, ReleaseAction
from promptctl.registry.releases.routing import format_percent

ENV = click.option(
    "--env", "environment", required=True, help="The environment.",
    shell_complete=complete_environment,
)  # fmt: skip
REASON = click.option("--reason", default=None, help="Why: kept with the rollout's decisions.")
ACTOR = click.option("--actor", default=None, help="Who acts [PROMPTCTL_ACTOR, else git's].")
YES = click.option(
    "--yes", "confirmed", is_flag=True,
    help="Confirm a change to a protected environment (on a terminal it asks instead).",
)  # fmt: skip


@cli.group("rollout")
def rollout_group() -> None:
    """Automated rollouts: a canary stepped up by a policy in promptctl.toml."""


@rollout_group.command("start")
@click.argument("spec", metavar="NAME[@REF]", shell_complete=complete_spec)
@ENV
@click.option("--policy", default=None, help="A policy of promptctl.toml [the prompt's own].")
@REASON
@ACTOR
@YES
@JSON_OPTION
@pass_options
def start_command(
    options: Options,
    spec: str,
    environment: str,
    policy: str | None,
    reason: str | None,
    actor: str | None,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Start REF (default HEAD) as canary at the first step of its rollout policy."""
    name, ref = split_ref(spec)
    digest = commit = None
    try:  # name exactly the content read here, as promote does
        version = options.library.get(name, ref or "HEAD")
        digest, commit = version.digest, version.commit.sha if version.commit else None
    except RegistryError:
        pass  # no repository here, or a reference only the server knows
    book = options.registry.rollout_policies() if not options.server else None
    first = book.choose(name, policy).steps_bp[0] if book else None
    asked = _confirmed(
        options,
        Promote(
            prompt=name,
            environment=environment,
            ref=ref,
            canary_bp=first,
            confirmed=confirmed,
        ),
        [f"{name} in {environment}: start a rollout of {ref or 'HEAD'}"],
    )
    body = {
        "env": environment,
        "ref": ref,
        "digest": digest,
        "commit": commit,
        "policy": policy,
        "reason": reason,
        "actor": actor,
        "confirm": asked,
    }
    state = _client(options).start(name, body)
    _show(state, as_json, f"started a rollout of {name} in {environment}")


@rollout_group.command("status")
@click.argument("name", shell_complete=complete_name)
@ENV
@JSON_OPTION
@pass_options
def status_command(options: Options, name: str, environment: str, as_json: bool) -> None:
    """Show a rollout: step, time in step, calls per arm, each guard, what happens next."""
    _show(_client(options).status(name, environment), as_json, None)


def _change(verb: str, doc: str, weight_change: bool) -> None:
    @rollout_group.command(verb, help=doc)
    @click.argument("name", shell_complete=complete_name)
    @ENV
    @REASON
    @ACTOR
    @YES
    @JSON_OPTION
    @pass_options
    def command(
        options: Options,
        name: str,
        environment: str,
        reason: str | None,
        actor: str | None,
        confirmed: bool,
        as_json: bool,
    ) -> None:
        if weight_change:
            kind: ReleaseAction = (
                Complete(prompt=name, environment=environment, confirmed=confirmed)
                if verb == "promote"
                else Ramp(prompt=name, environment=environment, weight_bp=0, confirmed=confirmed)
            )
            confirmed = _confirmed(options, kind, [f"{name} in {environment}: rollout {verb}"])
        body = {"env": environment, "reason": reason, "actor": actor, "confirm": confirmed}
        state = _client(options).change(name, verb, body)
        _show(state, as_json, f"rollout of {name} in {environment}: {state['status']}")


_change("pause", "Stop the controller acting on a rollout; the canary keeps its weight.", False)
_change("resume", "Run a paused rollout again from the start of its step.", True)
_change("abort", "End a rollout and drop its canary: all traffic back to stable.", False)
_change("promote", "Skip the remaining steps: the canary becomes stable now.", True)


def _confirmed(options: Options, action: ReleaseAction, lines: list[str]) -> bool:
    """Ask on a terminal in a protected environment, as a protected promote does."""
    return confirm(options, action, lambda: lines).confirmed


class _Local:
    """Rollouts in the local release database."""

    def __init__(self, options: Options) -> None:
        self.registry = options.registry

    def start(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.registry.start_rollout(
            name,
            body["env"],
            ref=body["ref"],
            digest=body["digest"],
            commit=body["commit"],
            policy=body["policy"],
            actor=body["actor"],
            reason=body["reason"],
            confirmed=body["confirm"],
        ).to_json()

    def status(self, name: str, environment: str) -> dict[str, Any]:
        return self.registry.rollout(name, environment).to_json()

    def change(self, name: str, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.registry.change_rollout(
            verb,
            name,
            body["env"],
            actor=body["actor"],
            reason=body["reason"],
            confirmed=body["confirm"],
        ).to_json()


class _Remote:
    """Rollouts through a server's API (the remote backend's requests and errors)."""

    def __init__(self, options: Options) -> None:
        self.backend = options.backend

    def start(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        sent = {k: v for k, v in body.items() if v is not None}
        return self.backend._call("POST", f"/v1/prompts/{name}/rollout", json=sent)  # type: ignore[attr-defined]

    def status(self, name: str, environment: str) -> dict[str, Any]:
        return self.backend._call(  # type: ignore[attr-defined]
            "GET", f"/v1/prompts/{name}/rollout", params={"env": environment}
        )

    def change(self, name: str, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        sent = {k: v for k, v in body.items() if v is not None}
        return self.backend._call("POST", f"/v1/prompts/{name}/rollout/{verb}", json=sent)  # type: ignore[attr-defined]


def _client(options: Options) -> _Local | _Remote:
    return _Remote(options) if options.server else _Local(options)


def _show(state: dict[str, Any], as_json: bool, done: str | None) -> None:
    if as_json:
        emit_json(state)
        return
    if done:
        click.echo(done)
    seconds = state["seconds_in_step"]
    ended = state.get("ended")
    click.echo(
        f"{state['prompt']} in {state['environment']}: "
        f"{state['status'].replace('_', ' ')}, step "
        f"{state['step']}/{state['steps']} ({format_percent(state['weight_bp'])}), "
        f"{_duration(seconds)} in step, policy {state['policy']['name']}"
    )
    if ended:
        # An ended rollout has no deadline and nothing next: say how it ended instead.
        by = f" by {ended['by']}" if ended["by"] else ""
        click.echo(f"ended: {ended['outcome'].replace('_', ' ')} on {_when(ended['at'])}{by}")
    if state["reason"]:
        click.echo(f"why: {state['reason']}")
    analysis = state.get("analysis")
    if analysis:
        calls = analysis["calls"]
        click.echo(
            f"calls: stable {calls['stable']}, canary {calls['canary']} "
            f"({state['policy']['min_calls']} per arm needed); verdict {analysis['verdict']}"
        )
        metrics = [metric_from_json(m) for m in analysis["metrics"]]
        table(METRIC_HEADERS, [metric_row(m) for m in metrics])
    if not ended:
        click.echo(f"next: {state['next']}")


def _when(moment: str) -> str:
    """An ISO 8601 timestamp of the JSON as the rest of the output writes times."""
    return f"{datetime.fromisoformat(moment).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"
