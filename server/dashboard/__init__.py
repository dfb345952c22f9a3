"""The web dashboard served at `/`: server-rendered pages over the Registry facade.

Pages (each also as JSON with `?format=json`):

    /                               overview: prompts × environments
    /prompts/{name}                 a prompt: versions, releases, charts, diff, samples
    /rollouts/{env}/{name}          one release's rollout and decision timeline
    /-/audit                        the audit log, filtered
    /-/webhooks                     webhook subscriptions and deliveries (admin)
    /-/actions/{kind}?prompt&env    confirm, then carry out, a release action
    /-/signin, /-/signout           token sign-in (with --tokens)
    /-/static/{asset}               the stylesheet and script, from the package

Dashboard forms post urlencoded bodies to paths outside /v1, so the API's JSON-only guard
(server/guards.py) does not apply to them: they are guarded by the session's CSRF token
and a SameSite=Strict cookie instead (see session.py).
"""

from __future__ import annotations

import hashlib
import secrets
from html import escape
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from promptctl.registry.auth import hash_token
from promptctl.registry.errors import InsufficientScope, NotFound, Unauthorized
from promptctl.server.dashboard import actions, pages
from promptctl.server.dashboard.present import FILTERS
from promptctl.server.dashboard.session import Session, Sessions
from promptctl.server.dashboard.web import (
    Page,
    PageRequest,
    Redirect,
    endpoint,
    local_path,
    to_json_text,
)
from promptctl.server.deps import AppContext

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSETS = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
CACHE_FOREVER = "public, max-age=31536000, immutable"


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    versions = {
        name: hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12] for name in ASSETS
    }
    env.globals["asset"] = lambda name: f"/-/static/{name}?v={versions[name]}"
    env.globals["json_url"] = json_url
    env.globals["json_text"] = to_json_text
    env.globals["diff_block"] = diff_block
    return env


def json_url(request: Request) -> str:
    """This page's address with ?format=json."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
    return f"{request.url.path}?{urlencode([*params, ('format', 'json')])}"


def diff_block(text: str) -> Markup:
    """A unified diff as a <pre>, its lines marked added, removed or hunk (escaped here)."""
    lines = []
    for line in text.splitlines():
        css = ""
        if line.startswith("@@"):
            css = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            css = "add"
        elif line.startswith("-") and not line.startswith("---"):
            css = "del"
        body = escape(line) or " "
        lines.append(f'<span class="{css}">{body}</span>' if css else f"{body}\n")
    return Markup(f'<pre class="diff">{"".join(lines)}</pre>')


def signin(pr: PageRequest) -> Page | Redirect:
    """Sign in by pasting an API token; the session keeps its hash, never the token."""
    target = local_path(pr.arg("next", "/"))
    context = {"next": target, "problem": None, "tokens_on": pr.visitor.tokens_on}
    if pr.form is None or not pr.visitor.tokens_on:
        return Page("signin.html", context, {"tokens": pr.visitor.tokens_on})
    secret = pr.arg("token")
    token = pr.registry.authenticate(secret) if secret else None
    try:
        if token is None:
            raise Unauthorized("this token is unknown or revoked")
        token.check("read")
    except (Unauthorized, InsufficientScope) as exc:
        context["problem"] = str(exc)
        return Page("signin.html", context, {"problem": str(exc)}, status=exc.status)
    return Redirect(target, session=Session.fresh(hash_token(secret)))


def signout(pr: PageRequest) -> Redirect:
    """End the session: a new one without a token."""
    return Redirect("/-/signin" if pr.visitor.tokens_on else "/", session=Session.fresh())


def install(app: FastAPI) -> None:
    """Add the dashboard's pages, actions and assets to `app` (after the API's routes)."""
    ctx: AppContext = app.state.ctx
    secret = getattr(ctx.settings, "dashboard_secret", None)
    key = secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32)
    sessions = Sessions(ctx, key)
    templates = _templates()

    def add(path: str, view: object, methods: list[str], *, public: bool = False) -> None:
        app.add_api_route(
            path,
            endpoint(ctx, sessions, templates, view, public=public),  # type: ignore[arg-type]
            methods=methods,
            include_in_schema=False,
        )

    add("/", pages.overview, ["GET"])
    add("/-/audit", pages.audit, ["GET"])
    add("/-/webhooks", pages.webhooks, ["GET"])
    add("/-/actions/{kind}", actions.action, ["GET", "POST"])
    add("/-/signin", signin, ["GET", "POST"], public=True)
    add("/-/signout", signout, ["POST"], public=True)
    add("/rollouts/{env}/{name:path}", pages.rollout, ["GET"])
    add("/prompts/{name:path}", pages.prompt_page, ["GET"])

    async def static(asset: str) -> Response:
        if asset not in ASSETS:
            raise NotFound(f"no dashboard asset named {asset!r}")
        response = FileResponse(STATIC / asset, media_type=ASSETS[asset])
        response.headers["cache-control"] = CACHE_FOREVER
        return response

    app.add_api_route("/-/static/{asset}", static, methods=["GET"], include_in_schema=False)
