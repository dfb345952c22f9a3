"""Rollout API: start an automated rollout, read it, pause, resume, abort or promote it.

The same rules as the release actions: `release` scope on the environment, and a protected
environment's confirmation (a token allowed there, or `confirm: true` without tokens) for
what raises the canary's weight (start, resume, promote); pause and abort never need it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from promptctl.server.deps import ContextDep
from promptctl.server.openapi import answers
from promptctl.server.routes_releases import _act
from promptctl.server.schemas import RolloutActionRequest, RolloutShape, RolloutStartRequest

router = APIRouter(prefix="/v1", tags=["rollouts"])
ANSWERS = answers(
    RolloutShape, 400, 401, 403, 404, 409, 412, 413, 415, 422, 503,
    description="The rollout after the action",
)  # fmt: skip


@router.post("/prompts/{name:path}/rollout", summary="Start an automated rollout", **ANSWERS)
def start(
    name: str, body: RolloutStartRequest, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    confirmed, actor = _act(ctx, request, body)
    state = ctx.registry.start_rollout(
        name,
        body.env,
        ref=body.ref,
        digest=body.digest,
        commit=body.commit,
        policy=body.policy,
        actor=actor,
        reason=body.reason,
        confirmed=confirmed,
    )
    return state.to_json()


@router.get(
    "/prompts/{name:path}/rollout",
    summary="The newest rollout of a prompt in an environment",
    **answers(RolloutShape, 401, 403, 404, 422, 503),
)
def status(
    name: str, ctx: ContextDep, request: Request, env: str = Query(max_length=64)
) -> dict[str, Any]:
    token = ctx.authorize(request, "read", env)
    return ctx.registry.rollout(name, env, viewer=token).to_json()


@router.post(
    "/prompts/{name:path}/rollout/{verb}",
    summary="Pause, resume, abort or promote (skip the remaining steps of) a rollout",
    **ANSWERS,
)
def change(
    name: str,
    verb: Literal["pause", "resume", "abort", "promote"],
    body: RolloutActionRequest,
    request: Request,
    ctx: ContextDep,
) -> dict[str, Any]:
    needs = verb in ("resume", "promote")
    confirmed, actor = _act(ctx, request, body, needs_confirmation=needs)
    state = ctx.registry.change_rollout(
        verb, name, body.env, actor=actor, reason=body.reason, confirmed=confirmed
    )
    return state.to_json()
