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
its router, so traced requests take the router's way; see `_is_traced`). Each request is
decided once: the cache counts a hit only for an answer given here, a miss only in the
route.

`FastPathApp` is the FastAPI app with the fast path in front of its whole middleware
stack: for a hit, that stack (Starlette's error and body-limit layers, our request
metrics) only wraps calls that do nothing for a GET answered from memory, and it cost
more than the answer itself. The fast path records the request metrics itself, under the
route's template as TelemetryMiddleware does, so /metrics counts and times these
requests under the same labels.

The change stream's handshake (`GET /v1/stream`) stays a FastAPI route: it happens once
per connection of a long-lived stream (reconnects every PROMPTCTL_STREAM_MAX_SECONDS),
subscribes, may read the database to replay, and then streams; routing is a negligible
share of that, and a second implementation of a streaming answer would be a second place
for its disconnect and shutdown handling to go wrong.
"""

from __future__ import annotations

import weakref
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI

from promptctl.registry.errors import RegistryError
from promptctl.server.routes_prompts import etag_matches

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

    from promptctl.registry.releases.serving import Resolved, ServedRelease
    from promptctl.server.deps import AppContext

PREFIX = "/v1/prompts/"
RESOLVE = "/v1/prompts/{name:path}/resolve"
RELEASE = "/v1/prompts/{name:path}/release"
_RESOLVE_END = "/resolve"
_RELEASE_END = "/release"
_NO_CACHE = (b"cache-control", b"no-cache")
_JSON = (b"content-type", b"application/json")
_EMPTY: Message = {"type": "http.response.body", "body": b""}
# How often to ask whether FastAPI's OpenTelemetry is on (seconds).
TRACING_CHECK = 1.0


class FastPathApp(FastAPI):
    """The FastAPI app with the fast path in front of it (set by create_app)."""

    fast_path: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and scope["method"] == "GET":
            started = perf_counter()
            answer = fast.answer(scope)
            if answer is not None:
                start, body, route = answer
                try:
                    await send(start)
                    await send(body)
                finally:  # as TelemetryMiddleware records the routes' requests
                    fast.observe("GET", route, start["status"], perf_counter() - started)
                return
        await super().__call__(scope, receive, send)


class FastPath:
    """Answer resolve and release-state hits from the serving cache; None for the rest."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.ctx: AppContext = app.state.ctx
        self.cache = self.ctx.registry.serving
        self.tokens = self.ctx.settings.tokens
        # Request metrics (/metrics): counted and timed as TelemetryMiddleware does.
        self.observe = self.ctx.telemetry.observe
        # FastAPI's own OpenTelemetry spans and metrics, on when a provider is configured.
        self.native_telemetry = getattr(app, "_native_telemetry", None)
        self._traced = False
        self._traced_checked_until = 0.0
        # Per answer (a resolution or a release), while it lives: its header lists.
        self._headers: dict[int, tuple[weakref.ref[Any], list[Any], list[Any], bytes]] = {}

    def answer(self, scope: Scope) -> tuple[Message, Message, str] | None:
        """The response start and body the route would send, and its template; None to
        leave the request to the app."""
        path: str = scope["path"]
        if not path.startswith(PREFIX) or len(path) < len(PREFIX) + len(_RESOLVE_END):
            return None
        if path.endswith(_RESOLVE_END):
            resolving, route = True, RESOLVE
        elif path.endswith(_RELEASE_END):
            resolving, route = False, RELEASE
        else:
            return None
        name = path[len(PREFIX) : -len(_RESOLVE_END)]
        if (
            "\n" in name  # the template's `.*` stops at a newline: the router decides
            or scope.get("root_path")
            or self.app.root_path
            or "fastapi.telemetry" in scope
            or self._is_traced()
        ):
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
        start, body = self._messages(served, resolving, query.get("key"), if_none_match)
        return start, body, route

    def _is_traced(self) -> bool:
        """Whether FastAPI's OpenTelemetry is on, asked at most every TRACING_CHECK seconds:
        asking reads three environment variables, which took a fifth of a hit's time on a
        server. Providers are configured at start-up; one configured later is noticed
        within the interval."""
        now = monotonic()
        if now >= self._traced_checked_until:
            native = self.native_telemetry
            self._traced = native is not None and bool(native.enabled())
            self._traced_checked_until = now + TRACING_CHECK
        return self._traced

    def _may_read(self, authorization: bytes | None, env: str) -> bool:
        header = authorization.decode("latin-1") if authorization is not None else ""
        try:
            self.ctx.check_token(header, "read", env)
        except RegistryError:
            return False
        return True

    def _messages(
        self,
        served: ServedRelease,
        resolving: bool,
        key: str | None,
        if_none_match: bytes | None,
    ) -> tuple[Message, Message]:
        """The response start and body, header for header as the route's Response."""
        answer: Resolved | ServedRelease
        if resolving:
            answer = served.resolve(key)
            body, etag = answer.body, answer.etag
        else:
            answer = served
            body, etag = served.release_body, served.release_etag
        kept = self._headers.get(id(answer))
        if kept is None or kept[0]() is not answer:
            kept = self._keep(answer, body, etag)
        if if_none_match is not None and (
            if_none_match == kept[3]  # the usual case, which etag_matches would also say
            or etag_matches(if_none_match.decode("latin-1"), etag)
        ):
            return {"type": "http.response.start", "status": 304, "headers": kept[2]}, _EMPTY
        start = {"type": "http.response.start", "status": 200, "headers": kept[1]}
        return start, {"type": "http.response.body", "body": body}

    def _keep(
        self, answer: Any, body: bytes, etag: str
    ) -> tuple[weakref.ref[Any], list[Any], list[Any], bytes]:
        """Build the header lists of an answer once (servers only read them), kept until
        the serving cache lets go of the answer (a release changed)."""
        key = id(answer)
        tag = (b"etag", etag.encode("latin-1"))
        length = (b"content-length", str(len(body)).encode())
        alive = weakref.ref(answer, lambda _: self._headers.pop(key, None))
        kept = (alive, [tag, _NO_CACHE, length, _JSON], [tag, _NO_CACHE], tag[1])
        self._headers[key] = kept
        return kept


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
