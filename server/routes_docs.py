"""API documentation, /docs (Swagger UI) and /redoc (ReDoc), rendered with no network.

FastAPI's own pages load their scripts and styles from a CDN, the favicon from its website
and ReDoc's fonts from Google, so offline or behind a strict proxy they are blank. These
are the same pages over the assets vendored in server/static/ (versions in its README).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from promptctl.server.deps import OpsGuard

STATIC = Path(__file__).parent / "static"
# The files served under /static/, and nothing else there (not the README or licences).
ASSETS = (
    "swagger-ui/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css",
    "redoc/redoc.standalone.js",
    "favicon.svg",
)
# Fixed rather than guessed: mimetypes reads the machine's own tables.
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Safe because every URL names the content's digest (asset_url): new bytes, new URL.
CACHE_FOREVER = "public, max-age=31536000, immutable"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# The pages' network policy: the browser fetches nothing from any other host. ReDoc 2 puts
# an <img> of Redocly's logo from cdn.redoc.ly under its menu, whatever its options; this is
# what stops that request. Not a defence against script injection: Swagger UI's start-up
# script is inline, ReDoc's schema validator compiles code and runs its search in a blob:
# worker, and both inject their own styles.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
    )
)


def install(app: FastAPI, openapi_url: str | None = "/openapi.json") -> None:
    """Add the OpenAPI document at `openapi_url`, /docs, its OAuth2 redirect, /redoc and the
    assets they load.

    They are operations endpoints: open, unless tokens are on and PROMPTCTL_OPEN_OPS is
    false (OpsGuard). Hence the document too is served here rather than by FastAPI (built
    with openapi_url=None), whose route could not check a token.
    """
    # API routes rather than the plain routes FastAPI uses for its pages: only an API route
    # names itself to TelemetryMiddleware, which counts anything else as "unmatched".
    app.openapi_url = openapi_url
    if not openapi_url:  # as FastAPI does: no document, nothing to show
        return

    async def openapi(request: Request) -> JSONResponse:
        # As FastAPI's own route: behind a proxy, the document names the prefix it is under.
        root = _root_path(request)
        schema = app.openapi()
        servers = schema.get("servers", [])
        if root and app.root_path_in_servers and root not in {s.get("url") for s in servers}:
            schema = {**schema, "servers": [{"url": root}, *servers]}
        return JSONResponse(schema)

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=asset_url(root, "swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=asset_url(root, "swagger-ui/swagger-ui.css"),
            swagger_favicon_url=asset_url(root, "favicon.svg"),
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
            # Off by default in the layout FastAPI uses; set so that no other layout would
            # send the document's URL to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset_url(root, "redoc/redoc.standalone.js"),
            redoc_favicon_url=asset_url(root, "favicon.svg"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    pages = {
        openapi_url: openapi,
        "/docs": swagger_ui,
        OAUTH2_REDIRECT: swagger_ui_redirect,
        "/redoc": redoc,
        "/static/{asset:path}": static_asset,
    }
    for path, endpoint in pages.items():
        app.add_api_route(
            path,
            endpoint,
            methods=["GET", "HEAD"],
            include_in_schema=False,
            dependencies=[OpsGuard],
        )


async def static_asset(asset: str) -> FileResponse:
    """Serve one of ASSETS, cached for a year."""
    if asset not in ASSETS:
        raise HTTPException(404, f"no static file '{asset}'")
    path = STATIC / asset
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[path.suffix],
        headers={"Cache-Control": CACHE_FOREVER},
    )


def asset_url(root_path: str, asset: str) -> str:
    """Return the URL of an asset, with its digest so that caches can keep it forever."""
    return f"{root_path}/static/{asset}?v={_digest(asset)}"


@functools.cache
def _digest(asset: str) -> str:
    # Once per process: the files are part of the installed package and never change under it.
    return hashlib.sha256((STATIC / asset).read_bytes()).hexdigest()[:16]


def _root_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")
