"""The plumbing every dashboard page shares: who asks, the form, errors, HTML or JSON.

A view is a plain function of a `PageRequest` returning a `Page` (a template, its context
and the JSON form of the same data); `endpoint(view)` wraps it into a route that finds the
visitor, checks a POST's CSRF token, runs the view in a worker thread (views read the
database and git), and answers HTML, or JSON with `?format=json` (datasette's habit).
Errors become an HTML page with their status (a JSON problem under ?format=json).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from promptctl.registry.errors import RegistryError, Unauthorized
from promptctl.server.dashboard.session import CsrfRefused, Session, Sessions, Visitor
from promptctl.server.deps import AppContext
from promptctl.server.problems import problem

# No inline script or style may run, whatever a page shows: a `<script>` that escaping
# somehow let through still would not. Forms post here only; no site may frame a page.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
MAX_FORM_BYTES = 64 * 1024


@dataclass
class PageRequest:
    """What a view gets: the request, the visitor, query and form fields, the context."""

    request: Request
    visitor: Visitor
    ctx: AppContext
    query: dict[str, str]
    form: dict[str, str] | None = None

    @property
    def registry(self) -> Any:
        return self.ctx.registry

    def arg(self, name: str, default: str = "") -> str:
        """A query (or, on a POST, form) field, stripped; `default` when absent or empty."""
        source = self.form if self.form is not None and name in self.form else self.query
        return (source.get(name) or "").strip() or default


@dataclass
class Page:
    """A view's answer: a template and its context, the JSON of the same data (or what
    builds it, called for ?format=json only), a status."""

    template: str
    context: dict[str, Any]
    data: Any = None
    status: int = 200
    session: Session | None = None  # a new session to set (sign-in, sign-out)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Redirect:
    """A view's answer after a successful POST: see the result at `location`."""

    location: str
    session: Session | None = None


View = Callable[[PageRequest], Page | Redirect]


def local_path(target: str, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def endpoint(
    ctx: AppContext,
    sessions: Sessions,
    templates: Environment,
    view: View,
    *,
    public: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `view` into a route; `public` pages (sign-in) need no token to be seen."""

    async def run(request: Request) -> Response:
        visitor, new_session = sessions.visitor(request)
        wants_json = request.query_params.get("format") == "json"
        query = dict(request.query_params)
        try:
            form = await _form(request) if request.method == "POST" else None
            if form is not None:
                sessions.check_form(request, visitor, form)
            if not public and not visitor.may_read:
                if wants_json and request.headers.get("authorization"):
                    token = ctx.authorize(request, "read")  # a script's bearer token
                    visitor = Visitor(visitor.session, token, True, visitor.csrf)
                elif wants_json or form is not None:
                    raise Unauthorized("sign in with an API token first (/-/signin)")
                else:
                    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    response: Response = RedirectResponse(
                        f"/-/signin?next={quote(back, safe='')}", status_code=303
                    )
                    return _finish(sessions, request, response, new_session)
            if visitor.tokens_on and visitor.token is not None and not public:
                visitor.token.check("read")
            page = PageRequest(request, visitor, ctx, query, form)
            answer = await run_in_threadpool(view, page)
        except (RegistryError, CsrfRefused) as exc:
            response = _error(templates, request, visitor, exc, wants_json)
            return _finish(sessions, request, response, new_session)
        if isinstance(answer, Redirect):
            response = RedirectResponse(local_path(answer.location), status_code=303)
            return _finish(sessions, request, response, answer.session or new_session)
        if wants_json:
            data = answer.data() if callable(answer.data) else answer.data
            response = JSONResponse(data, status_code=answer.status)
        else:
            if answer.session is not None:  # a new session: forms must carry its token
                visitor = Visitor(
                    answer.session, visitor.token, visitor.tokens_on, sessions.csrf(answer.session)
                )
            html = templates.get_template(answer.template).render(
                request=request, visitor=visitor, **answer.context
            )
            response = HTMLResponse(html, status_code=answer.status)
        response.headers.update(answer.headers)
        return _finish(sessions, request, response, answer.session or new_session)

    run.__name__ = view.__name__
    return run


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded fields of a form post (the last value of a repeated field)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise CsrfRefused("a dashboard form is sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CsrfRefused(f"the form is over {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise CsrfRefused("the form is not UTF-8") from None


def _error(
    templates: Environment,
    request: Request,
    visitor: Visitor,
    exc: RegistryError | CsrfRefused,
    wants_json: bool,
) -> Response:
    status = getattr(exc, "status", 400)
    title = getattr(exc, "title", "Error")
    if wants_json:
        return problem(status, title, str(exc), request)
    html = templates.get_template("error.html").render(
        request=request, visitor=visitor, status=status, title=title, detail=str(exc)
    )
    return HTMLResponse(html, status_code=status)


def _finish(
    sessions: Sessions, request: Request, response: Response, session: Session | None
) -> Response:
    if session is not None:
        sessions.set_cookie(response, request, session)
    response.headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("x-frame-options", "DENY")
    response.headers.setdefault("x-content-type-options", "nosniff")
    response.headers.setdefault("referrer-policy", "same-origin")
    response.headers.setdefault("cache-control", "no-store")
    return response


def to_json_text(data: Any) -> str:
    """Pretty JSON for showing front matter and samples in a page."""
    return json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False)
