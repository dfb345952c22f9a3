"""Release API: environments, status, history and the release actions.

The decision logic is registry.releases.ReleaseService, the same code the CLI runs
locally; this module only turns HTTP into calls. `If-Match: "<revision>"` makes an
action conditional on the release's revision (412 when stale, 409 on a conflict).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from promptctl.registry.auth import TokenInfo
from promptctl.registry.errors import UsageError
from promptctl.registry.releases.routing import parse_percent
from promptctl.registry.releases.values import ReleaseState
from promptctl.server.deps import AppContext, ContextDep
from promptctl.server.schemas import (
    AbortRequest,
    CompleteRequest,
    EnvironmentCreate,
    EnvironmentUpdate,
    PromoteRequest,
    RampRequest,
    RollbackRequest,
)

router = APIRouter(prefix="/v1", tags=["releases"])


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
    token = ctx.authorize(request, "release", env, protected=ctx.cache.is_protected(env))
    confirmed = token is not None or bool(getattr(body, "confirm", False))
    return confirmed or not needs_confirmation, _actor(token, request, body.actor)


def _actor(token: TokenInfo | None, request: Request, given: str | None) -> str:
    given = given or request.headers.get("x-promptctl-actor")
    if token is None:
        return given or "api (no token)"
    return f"token:{token.name}" + (f" for {given}" if given else "")


def _done(ctx: AppContext, state: ReleaseState) -> dict[str, Any]:
    ctx.cache.refresh_release(state.prompt, state.environment)
    return state.to_json()


@router.post("/prompts/{name:path}/promote", summary="Promote a version (stable or canary)")
def promote(name: str, body: PromoteRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    confirmed, actor = _act(ctx, request, body)
    canary_bp = parse_percent(body.canary_weight) if body.canary_weight is not None else None
    releases = ctx.registry.releases
    expected = _expected_revision(request)
    if body.from_env is not None:
        if body.ref is not None:
            raise UsageError("give either 'ref' or 'from_env', not both")
        state = releases.promote_from(
            name,
            body.from_env,
            body.env,
            actor=actor,
            canary_bp=canary_bp,
            reason=body.reason,
            confirmed=confirmed,
            expected_revision=expected,
        )
    else:
        with ctx.library() as library:
            version = library.get(name, body.ref or library.layout.branch)
        state = releases.promote(
            version,
            body.env,
            actor=actor,
            canary_bp=canary_bp,
            reason=body.reason,
            force=body.force,
            confirmed=confirmed,
            expected_revision=expected,
            skip_unchanged=body.if_changed,
        )
    return _done(ctx, state)


@router.post("/prompts/{name:path}/ramp", summary="Change the canary weight")
def ramp(name: str, body: RampRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    confirmed, actor = _act(ctx, request, body)
    state = ctx.registry.releases.ramp(
        name,
        body.env,
        parse_percent(body.weight),
        actor=actor,
        reason=body.reason,
        confirmed=confirmed,
        expected_revision=_expected_revision(request),
    )
    return _done(ctx, state)


@router.post("/prompts/{name:path}/complete", summary="Make the canary stable")
def complete(name: str, body: CompleteRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    confirmed, actor = _act(ctx, request, body)
    state = ctx.registry.releases.complete(
        name,
        body.env,
        actor=actor,
        reason=body.reason,
        confirmed=confirmed,
        expected_revision=_expected_revision(request),
    )
    return _done(ctx, state)


@router.post("/prompts/{name:path}/abort", summary="Drop the canary")
def abort(name: str, body: AbortRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    _, actor = _act(ctx, request, body, needs_confirmation=False)
    state = ctx.registry.releases.abort(
        name,
        body.env,
        actor=actor,
        reason=body.reason,
        expected_revision=_expected_revision(request),
    )
    return _done(ctx, state)


@router.post("/prompts/{name:path}/rollback", summary="Roll back at once")
def rollback(name: str, body: RollbackRequest, request: Request, ctx: ContextDep) -> dict[str, Any]:
    _, actor = _act(ctx, request, body, needs_confirmation=False)
    to = None
    if body.to is not None:
        with ctx.library() as library:
            to = library.get(name, body.to)
    state = ctx.registry.releases.rollback(
        name,
        body.env,
        actor=actor,
        to=to,
        reason=body.reason,
        expected_revision=_expected_revision(request),
    )
    return _done(ctx, state)


@router.get("/releases", summary="Release status")
def status(
    request: Request, ctx: ContextDep, prompt: str | None = None, env: str | None = None
) -> list[dict[str, Any]]:
    ctx.authorize(request, "read", env)
    return [s.to_json() for s in ctx.registry.releases.status(prompt, env)]


@router.get("/prompts/{name:path}/history", summary="Release log of a prompt")
def history(
    name: str,
    request: Request,
    ctx: ContextDep,
    env: str | None = None,
    limit: int | None = Query(default=None, ge=1, description="At most this many entries."),
) -> list[dict[str, Any]]:
    ctx.authorize(request, "read", env)
    return [e.to_json() for e in ctx.registry.releases.history(name, env, limit=limit)]


@router.get("/environments", summary="Environments")
def environments(request: Request, ctx: ContextDep) -> list[dict[str, Any]]:
    ctx.authorize(request, "read")
    return [e.to_json() for e in ctx.registry.releases.environments()]


@router.post("/environments", status_code=201, summary="Create an environment")
def create_environment(
    body: EnvironmentCreate, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    env = ctx.registry.releases.create_environment(body.name, protected=body.protected)
    ctx.cache.load_all()
    return env.to_json()


@router.patch("/environments/{name}", summary="Protect or unprotect an environment")
def update_environment(
    name: str, body: EnvironmentUpdate, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    env = ctx.registry.releases.set_protected(name, body.protected)
    ctx.cache.load_all()
    return env.to_json()
