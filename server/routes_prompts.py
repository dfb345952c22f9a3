"""Read API: prompts, versions, resolve, render and release state for local resolution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from promptctl.registry.errors import UsageError
from promptctl.registry.releases.documents import version_document
from promptctl.server.deps import AppContext, ContextDep
from promptctl.server.openapi import answers
from promptctl.server.schemas import (
    CatalogEntryShape,
    ReleaseDocumentShape,
    RenderRequest,
    RenderShape,
    ResolutionShape,
    VersionDetailShape,
    VersionListShape,
)

if TYPE_CHECKING:
    from promptctl.registry.auth import TokenInfo

router = APIRouter(prefix="/v1", tags=["prompts"])
JSON = "application/json"


def _not_modified(request: Request, etag: str) -> bool:
    return etag_matches(request.headers.get("if-none-match"), etag)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Tell whether an If-None-Match header names `etag` (or is `*`): then a 304.

    Shared with the raw ASGI fast path (server/fastpath.py), so both answer alike.
    """
    if not if_none_match:
        return False
    return if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]


def install(app: FastAPI) -> None:
    """Add the read API: resolve straight on the app, the other routes as a router."""
    # FastAPI matches an included router's routes through its include layer, twice per
    # request: a tenth of the app's time for a resolve. Resolve, the hot path, sits on the
    # app itself instead, ahead of the router, so paths still match in the same order.
    app.add_api_route(
        "/v1/prompts/{name:path}/resolve",
        resolve,
        methods=["GET"],
        tags=["prompts"],
        summary="Resolve a prompt in an environment",
        openapi_extra={"parameters": _RESOLVE_PARAMETERS},
        # Documented, never validated: resolve answers the bytes the serving cache built.
        **answers(
            ResolutionShape,
            401, 403, 404, 422, 503,
            description="The version this request gets, with its content",
            extra=NOT_MODIFIED,
        ),
    )  # fmt: skip
    app.include_router(router)


# Resolve reads its parameters itself: FastAPI's validation and injection of them took
# half of the app's time for a resolve (see bench/resolve.py). OpenAPI documents them
# exactly as before, and a missing `env` gets the same 422 problem as anywhere else.
_RESOLVE_PARAMETERS: list[dict[str, Any]] = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "title": "Name"}},
    {
        "name": "env",
        "in": "query",
        "required": True,
        "description": "Environment, e.g. production",
        "schema": {"type": "string", "title": "Env", "description": "Environment, e.g. production"},
    },
    {
        "name": "key",
        "in": "query",
        "required": False,
        "description": "Stickiness key (user, session, tenant)",
        "schema": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "title": "Key",
            "description": "Stickiness key (user, session, tenant)",
        },
    },
]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ETag sent in If-None-Match is current"}
}
_MISSING_ENV = {"type": "missing", "loc": ("query", "env"), "msg": "Field required", "input": None}


async def resolve(request: Request) -> Response:
    """Return the version a request with `key` gets: content, digest and variant.

    Answers from memory. The ETag names the version and variant; send it back in
    If-None-Match to get 304 while nothing changed.
    """
    query = request.query_params
    env = query.get("env")
    if env is None:
        raise RequestValidationError([_MISSING_ENV])
    ctx: AppContext = request.app.state.ctx
    ctx.authorize(request, "read", env)
    resolved = ctx.registry.serving.resolve(request.path_params["name"], env, query.get("key"))
    headers = {"ETag": resolved.etag, "Cache-Control": "no-cache"}
    if _not_modified(request, resolved.etag):
        return Response(status_code=304, headers=headers)
    return Response(resolved.body, media_type=JSON, headers=headers)


@router.get(
    "/prompts/{name:path}/release",
    summary="Release state for local resolution",
    **answers(
        ReleaseDocumentShape,
        401, 403, 404, 422, 503,
        description="The release with the content of its versions",
        extra=NOT_MODIFIED,
    ),
)  # fmt: skip
async def release_state(
    name: str, request: Request, ctx: ContextDep, env: str = Query(description="Environment")
) -> Response:
    """Return stable and canary content, weight and revision, for clients that resolve
    locally with the same routing function."""
    ctx.authorize(request, "read", env)
    served = ctx.registry.serving.served(name, env)
    headers = {"ETag": served.release_etag, "Cache-Control": "no-cache"}
    if _not_modified(request, served.release_etag):
        return Response(status_code=304, headers=headers)
    return Response(served.release_body, media_type=JSON, headers=headers)


@router.post(
    "/prompts/{name:path}/render",
    summary="Render a prompt",
    **answers(RenderShape, 400, 401, 403, 404, 413, 415, 422, 503),
)
async def render(
    name: str, body: RenderRequest, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    """Render with variables: resolved in `env` (with `key`), or a given `version`.

    Renders run in a bounded pool of their own within the render limits: a render that
    passes a limit is a 422 naming it; when every render worker stays busy, a 503.
    """
    if (body.env is None) == (body.version is None):
        raise UsageError("give exactly one of 'env' (resolve) or 'version'")
    token = ctx.authorize(request, "read", body.env)
    return await ctx.run_render(lambda: _render(ctx, name, body, token))


def _render(
    ctx: AppContext, name: str, body: RenderRequest, token: TokenInfo | None
) -> dict[str, Any]:
    version, variant, rendered = ctx.registry.render(
        name, body.variables, environment=body.env, key=body.key, ref=body.version, viewer=token
    )
    return {
        "prompt": name,
        "environment": body.env,
        "variant": variant,
        "version": version.number,
        "label": version.label,
        "digest": version.digest,
        "model": version.prompt.model,
        "params": version.prompt.params,
        **rendered.to_json(),
    }


@router.get(
    "/prompts/{name:path}/versions/{ref:path}",
    summary="One version's content",
    **answers(VersionDetailShape, 401, 403, 404, 422, 503),
)
def version(name: str, ref: str, request: Request, ctx: ContextDep) -> dict[str, Any]:
    token = ctx.authorize(request, "read")
    found = ctx.registry.find_version(name, ref, viewer=token)
    doc = version_document(found)
    doc["source"] = found.source
    doc["commit"] = found.commit.to_json() if found.commit else None
    doc["first_commit"] = found.first_commit.to_json() if found.first_commit else None
    return doc


@router.get(
    "/prompts/{name:path}/versions",
    summary="A prompt's versions",
    **answers(VersionListShape, 401, 403, 404, 422, 503),
)
def versions(name: str, request: Request, ctx: ContextDep) -> dict[str, Any]:
    """Numbered versions on the tracked branch, newest first."""
    ctx.authorize(request, "read")
    with ctx.registry.git() as library:
        records, index = library.history(name)
        current = index.current_digest(name)
    return {
        "prompt": name,
        "branch": index.branch,
        "versions": [
            {
                "version": r.number,
                "label": r.label,
                "digest": r.digest,
                "current": r.digest == current,
                "commit": r.commit.to_json(),
            }
            for r in reversed(records)
        ],
    }


@router.get(
    "/prompts",
    summary="List prompts and what is released where",
    **answers(list[CatalogEntryShape], 401, 403, 503),
)
def list_prompts(request: Request, ctx: ContextDep) -> list[dict[str, Any]]:
    token = ctx.authorize(request, "read")
    return ctx.registry.catalog(viewer=token)
