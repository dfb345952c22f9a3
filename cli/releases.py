"""Release commands: environments, promote, canary, rollback, status, history, resolve, db."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from promptctl.cli.actions import carry_out
from promptctl.cli.completion import (
    complete_environment,
    complete_name,
    complete_ref,
    complete_spec,
)
from promptctl.cli.confirm import confirm_all
from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options, split_ref
from promptctl.cli.output import emit_json, table
from promptctl.registry.errors import RegistryError, ReleaseNotFound, UsageError
from promptctl.registry.releases.actions import (
    Abort,
    Complete,
    Promote,
    PromoteAll,
    Ramp,
    ReleaseAction,
    Rollback,
)
from promptctl.registry.releases.assignment import assignment
from promptctl.registry.releases.bundle import write_bundle
from promptctl.registry.releases.routing import format_percent, parse_percent
from promptctl.registry.releases.values import percent

if TYPE_CHECKING:
    from promptctl.registry.releases.batch import PromptPromotion
    from promptctl.registry.releases.values import LogEntry, ReleaseState

REASON = click.option("--reason", default=None, help="Why: kept in the release log.")
ACTOR = click.option(
    "--actor", default=None, help="Who acts [PROMPTCTL_ACTOR, else git's user.name <user.email>]."
)
YES = click.option(
    "--yes",
    "confirmed",
    is_flag=True,
    help="Confirm a change to a protected environment (on a terminal it asks instead).",
)
ENV = click.option(
    "--env",
    "environment",
    required=True,
    help="The environment.",
    shell_complete=complete_environment,
)
NAME = click.argument("name", shell_complete=complete_name)
ONLY_ENV = click.option(
    "--env",
    "environment",
    default=None,
    help="Only this environment.",
    shell_complete=complete_environment,
)


@cli.group("env")
def env_group() -> None:
    """List, create and protect environments."""


@env_group.command("list")
@JSON_OPTION
@pass_options
def env_list(options: Options, as_json: bool) -> None:
    """List environments."""
    envs = options.backend.environments()
    if as_json:
        emit_json([e.to_json() for e in envs])
        return
    table(
        ["ENVIRONMENT", "PROTECTED", "CREATED"],
        [[e.name, "yes" if e.protected else "no", f"{e.created_at:%Y-%m-%d %H:%M}"] for e in envs],
    )


@env_group.command("create")
@click.argument("name")
@click.option("--protected", is_flag=True, help="Changes need explicit confirmation.")
@JSON_OPTION
@pass_options
def env_create(options: Options, name: str, protected: bool, as_json: bool) -> None:
    """Create an environment."""
    env = options.backend.create_environment(name, protected=protected)
    _done(
        as_json,
        env.to_json(),
        f"created environment {env.name}" + (" (protected)" if env.protected else ""),
    )


@env_group.command("protect")
@click.argument("name")
@JSON_OPTION
@pass_options
def env_protect(options: Options, name: str, as_json: bool) -> None:
    """Require --yes for promotions into an environment."""
    env = options.backend.set_protected(name, True)
    _done(as_json, env.to_json(), f"{env.name} is protected")


@env_group.command("unprotect")
@click.argument("name")
@JSON_OPTION
@pass_options
def env_unprotect(options: Options, name: str, as_json: bool) -> None:
    """Stop requiring --yes for an environment."""
    env = options.backend.set_protected(name, False)
    _done(as_json, env.to_json(), f"{env.name} is not protected")


@cli.command("promote")
@click.argument("spec", metavar="NAME[@REF]", required=False, shell_complete=complete_spec)
@ENV
@click.option(
    "--all",
    "all_at",
    default=None,
    metavar="REF",
    is_flag=False,
    flag_value="HEAD",
    help="Promote every prompt at REF (default HEAD) whose version is not yet stable there; "
    "implies --if-changed. For a CI job after merge.",
)
@click.option(
    "--from",
    "source",
    default=None,
    help="Promote what is stable in this environment.",
    shell_complete=complete_environment,
)
@click.option(
    "--canary",
    "canary",
    default=None,
    metavar="PCT",
    help="Start the version as a canary at PCT percent (0.01 resolution).",
)
@click.option("--force", is_flag=True, help="Promote even though the version fails lint.")
@click.option(
    "--allow-breaking",
    is_flag=True,
    help="Promote even though the version breaks callers of one serving beside it (a new "
    "required variable, a changed type, enum, kind or output); the log records it.",
)
@click.option(
    "--if-changed",
    is_flag=True,
    help="Do nothing (exit 0) when the version is already stable: for CI after merge.",
)
@REASON
@ACTOR
@YES
@JSON_OPTION
@pass_options
def promote_command(
    options: Options,
    spec: str | None,
    environment: str,
    all_at: str | None,
    source: str | None,
    canary: str | None,
    force: bool,
    allow_breaking: bool,
    if_changed: bool,
    reason: str | None,
    actor: str | None,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Make a version stable in an environment, or start it as a canary.

    REF defaults to HEAD (what is committed). It is read in this repository, also with
    --server: the server is sent the digest (and commit) and promotes exactly that content,
    fetching its remote first if it lacks it, or refuses. With --from, the version stable
    in that environment is promoted and no git access is needed.
    """
    if all_at is not None:
        if spec or source or canary:
            raise UsageError(
                "--all promotes every changed prompt: give no NAME, --from or --canary"
            )
        request = PromoteAll(
            environment=environment,
            ref=all_at,
            reason=reason,
            actor=actor,
            force=force,
            allow_breaking=allow_breaking,
            confirmed=confirmed,
        )
        request = confirm_all(options, request)
        _promoted_all(options.registry.promote_all(request, options.backend), environment, as_json)
        return
    if spec is None:
        raise click.UsageError("give NAME[@REF] (or --all)")
    name, ref = split_ref(spec)
    if source is not None and ref is not None:
        raise UsageError("give either NAME@REF or --from, not both")
    canary_bp = parse_percent(canary) if canary is not None else None
    if if_changed and canary_bp is not None:
        raise UsageError("--if-changed promotes stable versions; it does not go with --canary")
    action = Promote(
        prompt=name,
        environment=environment,
        ref=ref,
        source=source,
        canary_bp=canary_bp,
        force=force,
        allow_breaking=allow_breaking,
        if_changed=if_changed,
        reason=reason,
        actor=actor,
        confirmed=confirmed,
    )
    promotion, _ = carry_out(
        options, action, lambda a: options.registry.promote(a, options.backend), as_json=as_json
    )
    for warning in promotion.warnings:
        click.echo(f"warning: {warning}", err=True)
    state = promotion.state
    data = {**state.to_json(), "warnings": list(promotion.warnings)}
    if not promotion.changed:
        _done(
            as_json,
            data,
            f"{name}: {state.stable.describe()} is already stable in {environment}; unchanged",
        )
        return
    if canary_bp is None:
        message = f"{name}: {state.stable.describe()} is stable in {environment}"
    else:
        message = (
            f"{name}: canary {_canary(state)} in {environment}, stable {state.stable.describe()}"
        )
    _done(as_json, data, message)


@cli.command("canary")
@NAME
@ENV
@click.option("--weight", default=None, metavar="PCT", help="Set the canary's traffic share.")
@click.option("--complete", is_flag=True, help="Make the canary stable.")
@click.option("--abort", is_flag=True, help="Drop the canary; all traffic to stable.")
@REASON
@ACTOR
@YES
@JSON_OPTION
@pass_options
def canary_command(
    options: Options,
    name: str,
    environment: str,
    weight: str | None,
    complete: bool,
    abort: bool,
    reason: str | None,
    actor: str | None,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Ramp, complete or abort the canary of a prompt in an environment."""
    chosen = [
        flag
        for flag, on in (
            ("--weight", weight is not None),
            ("--complete", complete),
            ("--abort", abort),
        )
        if on
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --weight, --complete, --abort")
    said = {"prompt": name, "environment": environment, "reason": reason, "actor": actor}
    if weight is not None:
        action: ReleaseAction = Ramp(weight_bp=parse_percent(weight), confirmed=confirmed, **said)
    elif complete:
        action = Complete(confirmed=confirmed, **said)
    else:
        action = Abort(**said)
    state, before = carry_out(options, action, options.backend.perform, as_json=as_json)
    if isinstance(action, Ramp) and before is not None and state.revision == before.revision:
        message = f"{name}: the canary is already at {_canary(state)} in {environment}; unchanged"
    elif weight is not None:
        message = f"{name}: canary {_canary(state)} in {environment}"
    elif complete:
        message = f"{name}: canary completed, {state.stable.describe()} is stable in {environment}"
    else:
        message = f"{name}: canary aborted, {state.stable.describe()} serves all of {environment}"
    _done(as_json, state.to_json(), message)


@cli.command("rollback")
@click.argument("spec", metavar="NAME[@REF]", shell_complete=complete_spec)
@ENV
@click.option(
    "--to",
    "to_ref",
    default=None,
    metavar="REF",
    help="Roll back to this version (or give NAME@REF).",
    shell_complete=complete_ref,
)
@REASON
@ACTOR
@YES
@JSON_OPTION
@pass_options
def rollback_command(
    options: Options,
    spec: str,
    environment: str,
    to_ref: str | None,
    reason: str | None,
    actor: str | None,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Undo the last release change at once: abort a canary, else restore the previous stable.

    Rollback never waits for a confirmation, also in a protected environment; --yes is
    accepted so that scripts may pass it to every release command.
    """
    name, ref = split_ref(spec)
    if ref is not None and to_ref is not None and ref != to_ref:
        raise UsageError(f"give the version once: {spec} or --to {to_ref}")
    action = Rollback(
        prompt=name,
        environment=environment,
        to_ref=to_ref or ref,
        reason=reason,
        actor=actor,
        confirmed=confirmed,
    )
    # --to names the version as this repository reads it (a server gets its digest).
    pinned = options.registry.pin(action)
    state, _ = carry_out(options, pinned, options.backend.perform, as_json=as_json)
    _done(
        as_json,
        state.to_json(),
        f"{name}: rolled back, {state.stable.describe()} is stable in {environment}",
    )


@cli.command("status")
@click.argument("name", required=False, shell_complete=complete_name)
@ONLY_ENV
@JSON_OPTION
@pass_options
def status_command(
    options: Options, name: str | None, environment: str | None, as_json: bool
) -> None:
    """Show what is released: stable, canary and weight with the canary analysis' verdict
    (pass, fail, inconclusive, no data: `promptctl analyze` says why), last change by whom
    and when."""
    from promptctl.cli.analyze import canary_verdicts

    states = options.backend.status(name, environment)
    verdicts = canary_verdicts(options.backend, states)
    if as_json:
        emit_json(
            [{**s.to_json(), "analysis": verdicts.get((s.prompt, s.environment))} for s in states]
        )
        return
    if not states:
        what = f"'{name}'" if name else "any prompt"
        click.echo(f"Nothing released for {what}" + (f" in {environment}." if environment else "."))
        return
    rows = [
        [
            s.prompt,
            s.environment,
            s.stable.describe(),
            _canary(s) + _verdict(verdicts.get((s.prompt, s.environment))) if s.canary else "-",
            s.revision,
            s.updated_by,
            f"{s.updated_at:%Y-%m-%d %H:%M:%S}",
        ]
        for s in states
    ]
    table(["PROMPT", "ENVIRONMENT", "STABLE", "CANARY", "REV", "CHANGED BY", "WHEN (UTC)"], rows)


def _verdict(verdict: str | None) -> str:
    return f" [{verdict}]" if verdict else ""


@cli.command("history")
@NAME
@ONLY_ENV
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many entries."
)
@JSON_OPTION
@pass_options
def history_command(
    options: Options, name: str, environment: str | None, limit: int | None, as_json: bool
) -> None:
    """Show the release log of a prompt, newest first."""
    entries = options.backend.history(name, environment, limit)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        click.echo(f"No release actions for '{name}'.")
        return
    table(
        ["WHEN (UTC)", "ENVIRONMENT", "ACTION", "CHANGE", "REV", "BY", "REASON"],
        [_history_row(e) for e in entries],
    )


def _history_row(e: LogEntry) -> list[Any]:
    reason = (e.reason or "") + (" [forced past lint errors]" if e.forced else "")
    if e.allowed_breaking:
        reason += f" [allowed breaking: {'; '.join(e.allowed_breaking)}]"
    return [
        f"{e.time:%Y-%m-%d %H:%M:%S}",
        e.environment,
        e.action,
        _history_change(e),
        e.revision,
        e.actor,
        reason,
    ]


def _history_change(e: LogEntry) -> str:
    """What an action changed, in words: `v8 canary 10% -> 50%`, `v3 -> v4`."""
    old = e.from_version.label if e.from_version else "(none)"
    new = e.to_version.label if e.to_version else "(none)"
    before, after = format_percent(e.from_weight_bp), format_percent(e.to_weight_bp)
    if e.action == "ramp":
        return f"{new} canary {before} -> {after}"
    if e.action == "canary_start":
        return f"{new} canary {before} -> {after}, beside stable {old}"
    if e.action in ("abort", "rollback_canary"):
        return f"{old} canary {before} -> dropped, {new} serves all"
    change = f"{old} -> {new}"
    if e.from_weight_bp:  # a stable promotion (or rollback --to) replaced a running canary
        change += f" (canary {before} -> dropped)"
    return change


@cli.command("resolve")
@NAME
@ENV
@click.option("--key", default=None, help="Stickiness key (user, session or tenant id).")
@JSON_OPTION
@pass_options
def resolve_command(
    options: Options, name: str, environment: str, key: str | None, as_json: bool
) -> None:
    """Print the version a request with this key gets (random per call without a key)."""
    states = options.backend.status(name, environment)
    if not states:
        raise ReleaseNotFound(name, environment)
    state = states[0]
    chosen = assignment(state, key)
    if as_json:
        emit_json(
            {
                "prompt": name,
                "environment": environment,
                "key": key,
                "variant": chosen.variant,
                **chosen.version.to_json(),
                "bucket": chosen.bucket,
                "weight": percent(state.canary_weight_bp),
                "weight_bp": state.canary_weight_bp,
            }
        )
        return
    click.echo(
        f"{name} in {environment}: {chosen.version.describe()} ({chosen.variant})"
        + (
            f", key bucket {chosen.bucket} vs weight {state.weight_bp}"
            if chosen.bucket is not None
            else ""
        )
    )


@cli.command("bundle")
@ENV
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="The bundle file to write (e.g. prompts.bundle.json).",
)
@JSON_OPTION
@pass_options
def bundle_command(options: Options, environment: str, output: str, as_json: bool) -> None:
    """Write what is released in an environment to a file an application ships as fallback.

    PromptClient(..., bundle=FILE) serves from it when it has never reached the server.
    """
    path = Path(output)
    count = write_bundle(path, environment, options.backend.release_documents(environment))
    data = {"environment": environment, "path": str(path), "count": count}
    _done(as_json, data, f"wrote {count} prompt(s) released in {environment} to {path}")


@cli.group("db")
def db_group() -> None:
    """Manage the release database schema."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@JSON_OPTION
@pass_options
def db_upgrade(options: Options, revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: head)."""
    current = options.registry.upgrade_schema(revision)
    url = options.registry.database.safe_url
    _done(as_json, {"revision": current, "database": url}, f"database at {current} ({url})")


@db_group.command("downgrade")
@click.argument("revision")
@JSON_OPTION
@pass_options
def db_downgrade(options: Options, revision: str, as_json: bool) -> None:
    """Revert migrations down to REVISION ('base' drops everything)."""
    current = options.registry.downgrade_schema(revision)
    url = options.registry.database.safe_url
    _done(as_json, {"revision": current, "database": url}, f"database at {current or 'base'}")


@db_group.command("current")
@JSON_OPTION
@pass_options
def db_current(options: Options, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one available."""
    current, head = options.registry.schema_revisions()
    data = {"current": current, "head": head}
    _done(as_json, data, f"current: {current or 'none'}  head: {head}")


@db_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@JSON_OPTION
@pass_options
def db_prune(options: Options, dry_run: bool, as_json: bool) -> None:
    """Delete metric events and rollups past their retention.

    Raw events, minute rollups and hour rollups are kept for PROMPTCTL_RETENTION_EVENTS,
    PROMPTCTL_RETENTION_MINUTE_ROLLUPS and PROMPTCTL_RETENTION_HOUR_ROLLUPS (7d, 30d and
    400d by default). Rows go in small transactions; a prune stopped midway leaves
    nothing half deleted, and the next one goes on. A running server prunes by itself.
    """
    report = options.registry.prune_metrics(dry_run=dry_run)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    names = {"events": "events", "minute": "minute rollups", "hour": "hour rollups"}
    for kind in report.kinds:
        what = f"{kind.rows} row(s)"
        if kind.partitions:
            what += f" in {len(kind.partitions)} daily partition(s)"
        click.echo(
            f"{names[kind.kind]}: {verb} {what} before {kind.cutoff:%Y-%m-%d %H:%M} UTC "
            f"(kept {kind.retention.days} days{', stretched' if kind.stretched else ''})"
        )


def _promoted_all(results: list[PromptPromotion], environment: str, as_json: bool) -> None:
    """Print what `promote --all` did with each prompt; exit 1 when any failed."""
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            click.echo(f"{r.prompt}: {r.result} ({r.detail})")
    failed = [r for r in results if r.result == "failed"]
    if failed:
        raise PromoteAllFailed(
            f"{len(failed)} of {len(results)} prompt(s) could not be promoted to {environment}"
        )


# Not in registry.errors: no domain rule fails here. Each prompt's own failure was a
# domain error, reported above; this only makes the `promote --all` loop exit 1.
class PromoteAllFailed(RegistryError):
    """Some prompts of `promote --all` failed; the others were promoted."""

    title = "Promotions failed"


def _canary(state: ReleaseState) -> str:
    assert state.canary is not None
    return f"{state.canary.describe()} @ {format_percent(state.weight_bp)}"


def _done(as_json: bool, data: Any, message: str) -> None:
    if as_json:
        emit_json(data)
    else:
        click.echo(message)
