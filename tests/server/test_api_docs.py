"""/docs (Swagger UI) and /redoc (ReDoc) render from the server alone, with no network.

Over HTTP: the pages name no other host and every asset they load answers. In a real
browser (Playwright driving the system's chromium): every request off the server is
aborted and recorded, and both pages still render the API; the one request ReDoc itself
makes elsewhere (its vendor's logo) never leaves the browser, stopped by the pages'
Content Security Policy.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import serving

from promptctl.server.app import create_app

# Nothing here depends on the database: PostgreSQL would only repeat the same pages.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PAGES = ("/docs", "/redoc")
ABSOLUTE_URL = re.compile(r"(?:https?:)?//[^\s\"'<>]+")
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
RESOLVE = "/v1/prompts/{name}/resolve"
RESOLVE_SUMMARY = "Resolve a prompt in an environment"
SWAGGER_GET_BLUE = "rgb(97, 175, 254)"  # swagger-ui.css's colour for GET: the CSS applied


def referenced(html: str) -> list[str]:
    """Every URL a page loads: scripts, styles, favicon and the OpenAPI document."""
    return [a or b for a, b in REFERENCE.findall(html)]


def test_docs_pages_name_no_other_host_and_every_asset_they_load_answers(client):
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"].startswith("default-src 'self';")
        assert ABSOLUTE_URL.findall(response.text) == [], page
        urls = referenced(response.text)
        assert len(urls) >= 3, urls  # script, favicon, document (and Swagger's CSS)
        for url in urls:
            assert url.startswith("/"), url
            asset = client.get(url)
            assert asset.status_code == 200, url
            suffix = Path(urlsplit(url).path).suffix
            assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url


def test_assets_are_cached_for_good_under_a_url_naming_their_content(client):
    urls = [u for page in PAGES for u in referenced(client.get(page).text) if "/static/" in u]
    assert {Path(urlsplit(u).path).name for u in urls} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "redoc.standalone.js",
        "favicon.svg",
    }
    for url in urls:
        asset = client.get(url)
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        [version] = parse_qs(urlsplit(url).query)["v"]
        assert hashlib.sha256(asset.content).hexdigest().startswith(version)


def test_only_the_listed_assets_are_served(client, problem_of):
    for path in (
        "/static/README.md",
        "/static/swagger-ui/LICENSE",
        "/static/swagger-ui/nothing.js",
        "/static/..%2Froutes_docs.py",
    ):
        problem_of(client.get(path), 404)


def test_docs_need_no_token_and_are_counted_under_their_own_routes(make_settings, open_client):
    # By default (PROMPTCTL_OPEN_OPS) the docs and the document are public, the API is not;
    # test_tokens covers them behind a token.
    client = open_client(create_app(make_settings(tokens=True)))
    swagger = client.get("/docs")
    for url in [*referenced(swagger.text), *referenced(client.get("/redoc").text)]:
        assert client.get(url).status_code == 200, url
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/v1/prompts/support/triage/resolve?env=staging").status_code == 401

    metrics = client.get("/metrics").text
    counted = 'promptctl_http_requests_total{method="GET",route="%s",status="200"}'
    assert counted % "/docs" + " 1" in metrics
    assert counted % "/redoc" + " 1" in metrics
    # Swagger UI's script, styles and favicon; ReDoc's script and favicon.
    assert counted % "/static/{asset:path}" + " 5" in metrics


def test_the_docs_routes_stay_out_of_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc", "/static"))]
    assert RESOLVE in paths


# -- In a browser ---------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# ReDoc 2 always shows Redocly's logo from its CDN under the menu; the pages' Content
# Security Policy stops that request inside the browser (Playwright reports it failed with
# "csp"; it never reaches the network, nor the route below).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def chromium_path() -> str:
    """The system's chromium; fail, never skip, when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail(
            "chromium is not installed: the offline-docs browser test drives the system's "
            "chromium. Install it with `apt-get install chromium` (`make test` does this when "
            "run as root). Never `playwright install`: it downloads a browser."
        )
    return found


@pytest.fixture
def live_server(make_settings) -> Iterator[str]:
    """create_app served by uvicorn in a thread on a port of its own; its base URL."""
    with serving(create_app(make_settings())) as url:
        yield url


@dataclass
class OfflineBrowser:
    """A chromium page that can reach only the server; what it asked of anywhere else."""

    page: Any
    origin: str
    requests: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def sent_off_host(self) -> list[str]:
        """Requests to another host that the browser tried to send (all were aborted)."""
        return [r.url for r in self._off_host() if r.failure != "csp"]

    def stopped_by_policy(self) -> set[str]:
        """Requests to another host that the Content Security Policy stopped unsent."""
        return {r.url for r in self._off_host() if r.failure == "csp"}

    def _off_host(self) -> list[Any]:
        # data: and blob: URLs never leave the browser.
        return [
            r
            for r in self.requests
            if not r.url.startswith(("data:", "blob:")) and urlsplit(r.url).netloc != self.origin
        ]


@pytest.fixture
def offline_browser(live_server: str) -> Iterator[OfflineBrowser]:
    """Chromium on a new page; every request not to live_server is aborted, and every
    request (routed or not: a worker's, say) is recorded, as are the page's script errors."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    origin = urlsplit(live_server).netloc

    def only_the_server(route: Any) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_the_server)
            page = context.new_page()
            page.set_default_timeout(20_000)
            watched = OfflineBrowser(page, origin)
            page.on("request", lambda request: watched.requests.append(request))
            page.on("pageerror", lambda error: watched.errors.append(str(error)))
            yield watched
        finally:
            browser.close()


@pytest.mark.slow
def test_swagger_ui_renders_the_api_with_every_off_host_request_blocked(
    offline_browser: OfflineBrowser, live_server: str, tmp_path: Path
):
    page = offline_browser.page
    page.goto(f"{live_server}/docs")
    page.locator(f'.opblock-summary-path[data-path="{RESOLVE}"]').wait_for()
    paths = page.locator(".opblock .opblock-summary-path").evaluate_all(
        "spans => spans.map(span => span.dataset.path)"
    )
    assert "/v1/prompts/{name}/promote" in paths
    assert page.locator(".info .title").inner_text().startswith("promptctl")
    badge = page.locator(".opblock-get .opblock-summary-method").first
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == SWAGGER_GET_BLUE
    page.screenshot(path=tmp_path / "docs.png")

    assert offline_browser.sent_off_host() == []
    assert offline_browser.stopped_by_policy() == set()
    assert offline_browser.errors == []


@pytest.mark.slow
def test_redoc_renders_the_api_with_every_off_host_request_blocked(
    offline_browser: OfflineBrowser, live_server: str, tmp_path: Path
):
    page = offline_browser.page
    page.goto(f"{live_server}/redoc")
    page.get_by_role("heading", name=RESOLVE_SUMMARY).wait_for()
    assert page.locator(".api-info h1").inner_text().startswith("promptctl")
    item = f'.menu-content [role="menuitem"][aria-label="{RESOLVE_SUMMARY}"]'
    assert page.locator(item).count() >= 1
    # Search runs in a blob: worker, which the pages' policy must let through.
    page.get_by_placeholder("Search...").fill("resolve")
    found = page.locator('[data-role="search:results"] [role="menuitem"]').first
    assert found.get_attribute("aria-label") == RESOLVE_SUMMARY
    page.screenshot(path=tmp_path / "redoc.png")

    assert offline_browser.sent_off_host() == []
    assert offline_browser.stopped_by_policy() <= {REDOC_LOGO}
    assert offline_browser.errors == []
