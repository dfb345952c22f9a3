"""The OpenAPI document's parts that are not in a route's own declaration: what each route
answers (its model and problems, `answers`), and the bearer token (`securitySchemes`, and
`security` on every operation that takes one, so Swagger UI shows its Authorize button).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from promptctl.server.problems import problem_responses
from promptctl.server.settings import ServerSettings

BEARER = "bearerToken"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API token: its scope (read, metrics:write, release, admin) and "
    "environment decide what it may do. Needed when the server runs with tokens on "
    "(PROMPTCTL_TOKENS); POST /v1/git/fetch also takes a signed GitHub push webhook.",
}
# Operations outside /v1 that take a token, when the operations endpoints are closed.
OPERATIONS = ("/readyz", "/metrics")


def answers(
    model: Any,
    *problems: int,
    status: int = 200,
    description: str = "Successful response",
    extra: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The keyword arguments that document a route's answer: `model` for `status`, and the
    problem statuses.

    The model documents and is not enforced (response_model=None): routes answer their own
    dicts or prebuilt bytes, so documenting costs a request nothing.
    """
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": model, "description": description},
        **(extra or {}),
        **problem_responses(*problems),
    }
    return {"response_model": None, "responses": responses}


def install(app: FastAPI, settings: ServerSettings) -> None:
    """Make `app.openapi()` add the bearer token scheme and say which operations take it."""
    app.openapi = _with_security(app, settings)  # type: ignore[method-assign]


def _with_security(app: FastAPI, settings: ServerSettings) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = FastAPI.openapi(app)  # FastAPI's own, which caches it on the app
        document.setdefault("components", {})["securitySchemes"] = {BEARER: SECURITY_SCHEME}
        # With tokens off the same operations take none: `{}` says so, and Swagger UI
        # still offers Authorize, as for a server that has them.
        optional = [] if settings.tokens else [{}]
        closed_ops = settings.tokens and not settings.open_ops
        for path, operations in document.get("paths", {}).items():
            if path.startswith("/v1/") or (closed_ops and path in OPERATIONS):
                for operation in operations.values():
                    operation["security"] = [{BEARER: []}, *optional]
        return document

    return openapi
