"""The read hot paths as raw ASGI, in front of the FastAPI routes that define them.

`GET /v1/prompts/{name}/resolve` and `GET /v1/prompts/{name}/release` are answered from
memory with bytes the serving cache built in advance: FastAPI's routing, dependency
injection and middleware cost three quarters of such a request (see bench/resolve.py).
`FastPath` answers them itself, but only where it answers exactly as those routes in
server/routes_prompts.py do, which stay the definition (OpenAPI, problems, tokens):

- a GET whose path the route's template matches, with `env` in the query (the last one
  wins, as for Starlette), and `key` for resolve;
- with tokens on, an `Authorization: Bearer` token allowed to read that environment,
  checked by the very function the routes use (`AppContext.check_token`);
- a release the serving cache holds: a 200 with the prebuilt body, or a 304 when
  If-None-Match names its ETag (`etag_matches`, shared with the routes); the same
  headers in the same order as the route's Response.

Everything else goes to the FastAPI app untouched, which answers as it always did: HEAD
and other methods, a trailing slash, a missing `env` (422), no token, a bad or revoked
token or one for another environment (401/403 problems with WWW-Authenticate), an unknown
prompt or environment (404 problems), an app mounted below a root path, and every request
while OpenTelemetry is configured (FastAPI's own spans and metrics name the route from
its router, so traced requests take the router's way). Each request is decided once: the
cache counts a hit only for an answer given here, a miss only in the route.

It sits inside TelemetryMiddleware and names its route in `scope["route"]` as the router
does, so /metrics counts and times these requests under the same route labels.

The change stream's handshake (`GET /v1/stream`) stays a FastAPI route: it happens once
per connection of a long-lived stream (reconnects every PROMPTCTL_STREAM_MAX_SECONDS),
subscribes, may read the database to replay, and then streams; routing is a negligible
share of that, and a second implementation of a streaming answer would be a second place
for its disconnect and shutdown handling to go wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from promptctl.registry.errors import RegistryError
from promptctl.server.routes_prompts import etag_matches

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from promptctl.registry.releases.serving import ServedRelease
    from promptctl.server.deps import AppContext

PREFIX = "/v1/prompts/"
RESOLVE = "/v1/prompts/{name:path}/resolve"
RELEASE = "/v1/prompts/{name:path}/release"
_RESOLVE_END = "/resolve"
_RELEASE_END = "/release"
_NO_CACHE = (b"cache-control", b"no-cache")
_JSON = (b"content-type", b"application/json")
_EMPTY: Message = {"type": "http.response.body", "body": b""}


class FastPath:
    """Answer resolve and release-state hits from the serving cache; pass on the rest."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.ctx: AppContext = fastapi.state.ctx
        self.cache = self.ctx.registry.serving
        self.tokens = self.ctx.settings.tokens
        self.resolve_route = _route(fastapi, RESOLVE)
        self.release_route = _route(fastapi, RELEASE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._answer(scope)
            if answer is not None:
                await send(answer[0])
                await send(answer[1])
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[Message, Message] | None:
        """The two messages of the answer the route would give, or None to pass it on."""
        path: str = scope["path"]
        if (
            not path.startswith(PREFIX)
            or scope.get("root_path")
            or scope.get("fastapi.telemetry") is not None
            or len(path) < len(PREFIX) + len(_RESOLVE_END)
        ):
            return None
        if path.endswith(_RESOLVE_END):
            resolving, route = True, self.resolve_route
        elif path.endswith(_RELEASE_END):
            resolving, route = False, self.release_route
        else:
            return None
        name = path[len(PREFIX) : -len(_RESOLVE_END)]
        if "\n" in name:  # the template's `.*` stops at a newline: the router decides
            return None
        query = _query(scope["query_string"])
        env = query.get("env")
        if env is None:
            return None
        authorization = if_none_match = None
        for header, value in scope["headers"]:
            # The first of each, as Starlette's Headers.get reads them.
            if header == b"authorization" and authorization is None:
                authorization = value
            elif header == b"if-none-match" and if_none_match is None:
                if_none_match = value
        if self.tokens and not self._may_read(authorization, env):
            return None
        served = self.cache.hit(name, env)
        if served is None:
            return None
        scope["route"] = route
        return _messages(served, resolving, query.get("key"), if_none_match)

    def _may_read(self, authorization: bytes | None, env: str) -> bool:
        header = authorization.decode("latin-1") if authorization is not None else ""
        try:
            self.ctx.check_token(header, "read", env)
        except RegistryError:
            return False
        return True


def _messages(
    served: ServedRelease, resolving: bool, key: str | None, if_none_match: bytes | None
) -> tuple[Message, Message]:
    """The response start and body, header for header as the route's Response."""
    if resolving:
        resolved = served.resolve(key)
        body, etag = resolved.body, resolved.etag
    else:
        body, etag = served.release_body, served.release_etag
    tag = (b"etag", etag.encode("latin-1"))
    if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), etag):
        return {"type": "http.response.start", "status": 304, "headers": [tag, _NO_CACHE]}, _EMPTY
    length = (b"content-length", str(len(body)).encode())
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [tag, _NO_CACHE, length, _JSON],
    }
    return start, {"type": "http.response.body", "body": body}


def _query(raw: bytes) -> dict[str, str]:
    """The query's parameters as Starlette reads them (the last of a repeated one wins)."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    # What parse_qsl does for a query with nothing to unquote, at a third of its cost.
    params: dict[str, str] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            params[name] = value
    return params


def _route(app: FastAPI, path: str) -> BaseRoute:
    """The app's route for `path` (what the router puts in scope["route"])."""
    routes: list[Any] = list(app.routes)
    while routes:
        route = routes.pop(0)
        if getattr(route, "path", None) == path:
            return route
        inner = getattr(route, "original_router", None)
        routes.extend(getattr(inner, "routes", ()))
    raise LookupError(f"no route {path} to serve fast")
