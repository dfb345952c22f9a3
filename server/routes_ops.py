"""Operations: liveness, readiness and Prometheus metrics.

/healthz is always open; readiness and metrics are too unless tokens are on and
PROMPTCTL_OPEN_OPS is false (see AppContext.authorize_ops).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from promptctl.registry.errors import RegistryError
from promptctl.server.deps import ContextDep, OpsGuard
from promptctl.server.openapi import answers
from promptctl.server.problems import problem_responses
from promptctl.server.schemas import HealthShape, ReadinessShape

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness", **answers(HealthShape, description="Alive"))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, repository readable",
    dependencies=[OpsGuard],
    **answers(
        ReadinessShape,
        401,
        403,
        description="Ready",
        extra={
            503: {
                "description": "Not ready: the checks say which part failed",
                "model": ReadinessShape,
            }
        },
    ),
)
def readyz(ctx: ContextDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        ctx.registry.releases.fingerprint()
        checks["database"] = "ok"
    except (RegistryError, Exception) as exc:  # any failure means not ready
        checks["database"] = f"error: {exc}"
    try:
        with ctx.library() as library:
            tip = library.tracked_tip()
            checks["repository"] = "ok" if tip else f"no branch '{library.layout.branch}'"
    except RegistryError as exc:
        checks["repository"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    # Which commit the clone has and how following its remote goes: information, never a
    # readiness check (a failed fetch leaves the server serving what it has).
    try:
        git: dict[str, Any] = ctx.registry.git_status().to_json()
    except RegistryError as exc:
        git = {"error": str(exc)}
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "git": git},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    dependencies=[OpsGuard],
    responses=problem_responses(401, 403),
)
def metrics(ctx: ContextDep) -> PlainTextResponse:
    return PlainTextResponse(
        ctx.telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
