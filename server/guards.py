"""Request guards that answer before a route runs.

`JsonWrites`: every write (POST, PUT, PATCH, DELETE) to a route under /v1 must say its
body is JSON. The content types a web page may send to another origin without a CORS
preflight are form data and text/plain, so with this a page open in the user's browser
cannot change releases or push metrics on a server without tokens on their machine (CSRF).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from promptctl.server.problems import UnsupportedMediaType, transport_problem

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/v1/"


def is_json(content_type: str) -> bool:
    """Tell whether a Content-Type header names JSON: application/json or …/…+json."""
    media = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


class JsonWrites:
    """Refuse a write to an API route whose body is not declared JSON, with a 415 problem.

    Only a request that a route would take: an unknown path or method still gets the
    router's 404 or 405. Reads pass untouched, so resolve pays nothing for it.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in WRITES
            and scope["path"].startswith(PREFIX)
            and not is_json(_header(scope, b"content-type"))
            and self._routed(scope)
        ):
            refused = UnsupportedMediaType(scope["method"], _header(scope, b"content-type"))
            await transport_problem(refused, Request(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _routed(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""
