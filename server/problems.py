"""Every error as an RFC 9457 problem document: one handler per kind of exception.

This module is the one place that writes problem responses. Routes raise domain errors
(registry.errors) or one of the transport errors below; the body-size middleware, which
answers before the app runs, writes its 413 through `transport_problem` too. An exception
nothing expected is a 500 problem written by `UnexpectedErrors`, which keeps the
connection open.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptctl.registry.errors import RegistryError

log = logging.getLogger("promptctl.server")
PROBLEM_TYPE = "application/problem+json"


class TransportError(StarletteHTTPException):
    """A request refused by the HTTP layer before any registry call.

    A Starlette HTTPException because FastAPI re-raises only those while it reads a request
    body (any other error there becomes a 400 "error parsing the body").
    """

    status: int = 400
    title: str = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(self.status, detail)


class MalformedJSON(TransportError):
    """A request body that is not valid JSON."""

    status = 400
    title = "Malformed JSON"

    def __init__(self, error: str) -> None:
        super().__init__(f"the request body is not valid JSON: {error}")


class PayloadTooLarge(TransportError):
    """A request body over the server's size limit."""

    status = 413
    title = "Payload too large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is over the limit of {limit} bytes")


class UnsupportedMediaType(TransportError):
    """A write whose body is not declared JSON (see server/guards.py)."""

    status = 415
    title = "Unsupported media type"

    def __init__(self, method: str, content_type: str) -> None:
        self.content_type = content_type
        got = f"'{content_type}'" if content_type else "none"
        super().__init__(
            f"{method} takes a JSON body: send 'Content-Type: application/json' (got {got})"
        )


# The problem document as the OpenAPI document describes it (`problem_responses`).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "With 422 for an invalid request: each field and what is wrong.",
            "items": {"type": "object"},
        },
    },
}
_MEANINGS = {
    400: "A malformed argument or body",
    401: "No API token, or one that is unknown or revoked (with tokens on)",
    403: "The token's scope or environment does not allow this",
    404: "No such prompt, version, release or environment",
    409: "The release's state (or the repository) does not allow this",
    412: "If-Match names a release revision that is not the current one",
    413: "The body is over the size limit",
    415: "The body is not declared JSON (Content-Type: application/json)",
    422: "An invalid request, prompt file or set of variables",
    502: "The remote the repository follows cannot be fetched",
    503: "The database or the repository cannot be reached, or every render worker is "
    "busy (with Retry-After when waiting helps)",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's problem statuses (application/problem+json)."""
    content = {PROBLEM_TYPE: {"schema": PROBLEM_SCHEMA}}
    return {status: {"description": _MEANINGS[status], "content": content} for status in statuses}


def problem(
    status: int, title: str, detail: str, request: Request | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE)


def transport_problem(exc: TransportError, request: Request | None = None) -> JSONResponse:
    """The problem document of a transport error (without `instance` when no request)."""
    return problem(exc.status, exc.title, exc.detail, request)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem details."""

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        response = problem(exc.status, exc.title, str(exc), request)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="promptctl"'
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            first = next(e for e in errors if e.get("type") == "json_invalid")
            ctx = first.get("ctx") or {}
            return transport_problem(MalformedJSON(ctx.get("error", "parse error")), request)
        details = [_describe(e) for e in errors]
        return problem(
            422,
            "Invalid request",
            "; ".join(details[:10]),
            request,
            errors=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors[:50]],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, TransportError):
            return transport_problem(exc, request)
        titles = {404: "Not found", 405: "Method not allowed"}  # Starlette's own
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint at {request.url.path}"
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), detail, request)

    app.add_middleware(UnexpectedErrors)


class UnexpectedErrors:
    """Answer an exception that no handler took with a 500 problem, and log it.

    Not an exception handler for Exception: Starlette calls that one from its outermost
    middleware and raises the exception again once it has answered, so that the server logs
    it, and uvicorn then drops the connection, keep-alive or not. Here the error stops.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except TransportError:  # the body-size middleware's, from where no handler ran
            raise
        except Exception as exc:
            if started:  # half an answer went out: only the server can end it
                raise
            request = Request(scope)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            detail = f"unexpected {type(exc).__name__}; see server log"
            await problem(500, "Internal error", detail, request)(scope, receive, send)


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = error.get("msg", "invalid")
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return f"{loc or 'body'}: {message}"
