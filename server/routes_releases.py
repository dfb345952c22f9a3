"""Release API: environments, status, history and the release actions.

Each route turns a request into a release action (`registry.releases.actions`) and hands
it to the registry, which the CLI calls the same way locally; the registry decides, and
refreshes the serving cache. `If-Match: "<revision>"` makes an
action conditional on the release's revision (412 when stale, 409 on a conflict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request

from promptctl.registry.errors import UsageError
from promptctl.registry.releases.actions import (
    Abort,
    Complete,
    Promote,
    Ramp,
    ReleaseAction,
    Rollback,
)
from promptctl.registry.releases.routing import parse_percent
from promptctl.server.deps import AppContext, ContextDep
from promptctl.server.openapi import answers
from promptctl.server.schemas import (
    AbortRequest,
    CompleteRequest,
    EnvironmentCreate,
    EnvironmentShape,
    EnvironmentUpdate,
    LogEntryShape,
    PromoteRequest,
    RampRequest,
    ReleaseShape,
    RollbackRequest,
)

if TYPE_CHECKING:
    from promptctl.registry.auth import TokenInfo

router = APIRouter(prefix="/v1", tags=["releases"])
# What a release action answers: its new release state, or one of these problems.
ACTION_ANSWERS = answers(
    ReleaseShape, 400, 401, 403, 404, 409, 412, 413, 415, 422, 503,
    description="The release after the action",
)  # fmt: skip
# The most log entries one request may ask for: a bound, so that a huge number is a 422
# rather than an integer the database cannot hold.
MAX_HISTORY = 10_000


def _expected_revision(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise UsageError(f'If-Match must be a release revision such as "3", got {header!r}')
    return int(value)


def _act(
    ctx: AppContext, request: Request, body: Any, *, needs_confirmation: bool = True
) -> tuple[bool, str]:
    """Authorize a release action; return (confirmed, actor).

    With tokens on, a token allowed to change this environment is the confirmation that
    `--yes` gives on the command line; without tokens the body must say `confirm: true`.
    """
    env = body.env
    protected = ctx.registry.serving.is_protected(env)
    token = ctx.authorize(request, "release", env, protected=protected)
    confirmed = token is not None or bool(getattr(body, "confirm", False))
    return confirmed or not needs_confirmation, _actor(token, request, body.actor)


def _actor(token: TokenInfo | None, request: Request, given: str | None) -> str:
    given = given or request.headers.get("x-promptctl-actor")
    if token is None:
        return given or "api (no token)"
    return f"token:{token.name}" + (f" for {given}" if given else "")


def _perform(
    ctx: AppContext,
    kind: type[ReleaseAction],
    name: str,
    body: Any,
    granted: tuple[bool, str],
    expected: int | None,
    **fields: Any,
) -> dict[str, Any]:
    """Carry out the action of `kind` the request asks for; answer the new release state."""
    confirmed, actor = granted
    action = kind(
        prompt=name,
        environment=body.env,
        reason=body.reason,
        actor=actor,
        confirmed=confirmed,
        expected_revision=expected,
        **fields,
    )
    return ctx.registry.perform(action).to_json()


@router.post(
    "/prompts/{name:path}/promote",
    summary="Promote a version (stable or canary)",
    **ACTION_ANSWERS,
)
def promote(name: str, body: PromoteRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    granted = _act(ctx, request, body)
    canary_bp = parse_percent(body.canary_weight) if body.canary_weight is not None else None
    expected = _expected_revision(request)
    if body.from_env is not None and (body.ref or body.digest) is not None:
        raise UsageError("give either 'ref' (or 'digest') or 'from_env', not both")
    if body.commit is not None and body.digest is None:
        raise UsageError("'commit' says where to find a 'digest': give the digest too")
    return _perform(
        ctx,
        Promote,
        name,
        body,
        granted,
        expected,
        ref=body.ref,
        digest=body.digest,
        commit=body.commit,
        source=body.from_env,
        canary_bp=canary_bp,
        force=body.force,
        allow_breaking=body.allow_breaking,
        if_changed=body.if_changed,
    )


@router.post(
    "/prompts/{name:path}/ramp",
    summary="Change the canary weight",
    **ACTION_ANSWERS,
)
def ramp(name: str, body: RampRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    granted = _act(ctx, request, body)
    weight_bp = parse_percent(body.weight)
    return _perform(
        ctx, Ramp, name, body, granted, _expected_revision(request), weight_bp=weight_bp
    )


@router.post(
    "/prompts/{name:path}/complete",
    summary="Make the canary stable",
    **ACTION_ANSWERS,
)
def complete(name: str, body: CompleteRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    granted = _act(ctx, request, body)
    return _perform(ctx, Complete, name, body, granted, _expected_revision(request))


@router.post(
    "/prompts/{name:path}/abort",
    summary="Drop the canary",
    **ACTION_ANSWERS,
)
def abort(name: str, body: AbortRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    granted = _act(ctx, request, body, needs_confirmation=False)
    return _perform(ctx, Abort, name, body, granted, _expected_revision(request))


@router.post(
    "/prompts/{name:path}/rollback",
    summary="Roll back at once",
    **ACTION_ANSWERS,
)
def rollback(name: str, body: RollbackRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    granted = _act(ctx, request, body, needs_confirmation=False)
    expected = _expected_revision(request)
    return _perform(ctx, Rollback, name, body, granted, expected, to_ref=body.to)


@router.get(
    "/releases",
    summary="Release status",
    **answers(list[ReleaseShape], 401, 403, 404, 422, 503),
)
def status(
    request: Request, ctx: ContextDep, prompt: str | None = None, env: str | None = None
) -> list[dict[str, Any]]:
    token = ctx.authorize(request, "read", env)
    return [s.to_json() for s in ctx.registry.status(prompt, env, viewer=token)]


@router.get(
    "/prompts/{name:path}/history",
    summary="Release log of a prompt",
    **answers(list[LogEntryShape], 401, 403, 404, 422, 503, description="Newest first"),
)
def history(
    name: str,
    request: Request,
    ctx: ContextDep,
    env: str | None = None,
    limit: int | None = Query(
        default=None, ge=1, le=MAX_HISTORY, description="At most this many entries."
    ),
) -> list[dict[str, Any]]:
    token = ctx.authorize(request, "read", env)
    return [e.to_json() for e in ctx.registry.history(name, env, limit=limit, viewer=token)]


@router.get(
    "/environments",
    summary="Environments",
    **answers(list[EnvironmentShape], 401, 403, 503),
)
def environments(request: Request, ctx: ContextDep) -> list[dict[str, Any]]:
    token = ctx.authorize(request, "read")
    return [e.to_json() for e in ctx.registry.environments(viewer=token)]


@router.post(
    "/environments",
    status_code=201,
    summary="Create an environment",
    **answers(
        EnvironmentShape, 400, 401, 403, 409, 413, 415, 422, 503,
        status=201, description="Created",
    ),
)  # fmt: skip
def create_environment(
    body: EnvironmentCreate, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    return ctx.registry.create_environment(body.name, protected=body.protected).to_json()


@router.patch(
    "/environments/{name}",
    summary="Protect or unprotect an environment",
    **answers(EnvironmentShape, 400, 401, 403, 404, 413, 415, 422, 503),
)
def update_environment(
    name: str, body: EnvironmentUpdate, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    return ctx.registry.set_protected(name, body.protected).to_json()
