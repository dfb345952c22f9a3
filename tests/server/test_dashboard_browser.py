"""The dashboard in a real browser: Playwright driving the system's chromium against a live
server on an ephemeral port.

Sign in with a token, open the overview, open a prompt and see a chart with the points of
ingested calls, roll back a canary through the confirmation page and find the release and
the audit log changed; a read-only token sees no action buttons; with JavaScript off the
tables are all there; a `<script>` in a reason, a description and a prompt body never runs.

Screenshots of every page are saved under this test's pytest tmp dir (`tmp_path`, e.g.
/tmp/pytest-of-$USER/pytest-current/<test name>current/dashboard-*.png).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import serving

from promptctl.registry.auth import TokenService
from promptctl.registry.releases.actions import Promote
from promptctl.server.app import create_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCRIPT = "<script>window.__pwned = 1</script>"


def greeting(number: int) -> str:
    return (
        "---\n"
        "description: Greet a user\n"
        "model: gpt-4o-mini\n"
        "input:\n"
        "  name: {type: string}\n"
        "samples:\n"
        "  - {name: Ada}\n"
        "---\n"
        f"Hello {{{{ name }}}}, this is greeting number {number}.\n"
    )


HOSTILE = (
    "---\n"
    f'description: "{SCRIPT}"\n'
    "input:\n"
    "  name: {type: string}\n"
    "samples:\n"
    f'  - {{name: "{SCRIPT}"}}\n'
    "---\n"
    f"{SCRIPT} Hello {{{{ name }}}}\n"
)


def _build(repo: Any) -> None:
    repo.commit("greet 1", {"prompts/greet.prompt": greeting(1), "prompts/hostile.prompt": HOSTILE})
    repo.commit("greet 2", {"prompts/greet.prompt": greeting(2)})
    repo.commit("greet 3", {"prompts/greet.prompt": greeting(3)})


@pytest.fixture
def repo(built_repo):
    """greet v1..v3 and `hostile`, whose description, body and sample hold a script."""
    return built_repo("dashboard-browser", _build)


def chromium_path() -> str:
    """The system's chromium; fail, never skip, when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (never playwright's)")
    return found


def perform(app: Any, name: str, env: str, ref: str, canary_bp: int | None = None) -> None:
    app.state.ctx.registry.perform(
        Promote(
            prompt=name,
            environment=env,
            ref=ref,
            canary_bp=canary_bp,
            confirmed=True,
            actor="setup",
            reason=None,
            expected_revision=None,
        )
    )


@pytest.fixture
def app(make_settings):
    """A server with tokens on: greet v2 stable and v3 a 20% canary in staging, v2 in
    production, hostile v1 in staging; calls of the last few minutes."""
    app = create_app(make_settings(tokens=True))
    perform(app, "greet", "staging", "v2")
    perform(app, "greet", "staging", "v3", canary_bp=2000)
    perform(app, "greet", "production", "v2")
    perform(app, "hostile", "staging", "v1")
    registry = app.state.ctx.registry
    state = registry.status("greet", "staging")[0]
    now = datetime.now(UTC)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "prompt": "greet",
            "env": "staging",
            "digest": state.canary.digest if i % 4 == 0 else state.stable.digest,
            "ts": (now - timedelta(minutes=i % 5, seconds=i)).isoformat(),
            "latency_ms": 200.0 + 10 * (i % 7),
            "error": i % 9 == 0,
            "input_tokens": 100,
            "output_tokens": 25,
        }
        for i in range(60)
    ]
    assert registry.metrics.ingest(events).to_json()["accepted"] == 60
    return app


def token(app: Any, scope: str) -> str:
    secret, _ = TokenService(app.state.ctx.registry.database).create(f"{scope}-person", scope)
    app.state.ctx.cache.load_all()
    return secret


@pytest.fixture
def live(app) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Any, live: str, *, javascript: bool = True) -> Any:
    """A page that may reach only the live server; its script errors fail the test."""
    context = browser.new_context(
        viewport={"width": 1360, "height": 1000}, java_script_enabled=javascript
    )
    origin = live.split("://", 1)[1]
    context.route(
        "**/*",
        lambda route: route.continue_() if f"//{origin}" in route.request.url else route.abort(),
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    return page


def sign_in(page: Any, live: str, secret: str, shot: Path | None = None) -> None:
    page.goto(f"{live}/")
    assert "/-/signin" in page.url  # pages need a token: the sign-in form first
    if shot is not None:
        page.screenshot(path=shot)
    page.fill('input[name="token"]', secret)
    page.click('button:has-text("Sign in")')
    page.wait_for_url(f"{live}/")


def test_sign_in_open_a_prompt_see_its_chart_and_roll_back_the_canary(app, live, browser, tmp_path):
    page = new_page(browser, live)
    sign_in(page, live, token(app, "admin"), tmp_path / "dashboard-signin.png")
    matrix = page.locator("table.matrix")
    assert matrix.locator('tr[data-prompt="greet"] td[data-env="staging"]').inner_text()
    assert "60 calls" in matrix.locator('tr[data-prompt="greet"]').inner_text()
    page.screenshot(path=tmp_path / "dashboard-overview.png", full_page=True)

    page.click('a[href="/prompts/greet"]')
    page.wait_for_url(f"{live}/prompts/greet")
    chart = page.locator('figure[data-chart="calls"] svg.chart')
    assert chart.locator("circle.point").count() >= 2  # stable's and canary's points
    assert chart.locator('g[data-series="v3 canary"] circle.point').count() >= 1
    assert page.locator('figure[data-chart="latency_p95"] circle.point').count() >= 2
    page.screenshot(path=tmp_path / "dashboard-prompt.png", full_page=True)

    page.click('tr[data-env="staging"] a:has-text("Roll back")')
    assert "canary v3 (20%) is dropped" in page.locator("ul.changes").inner_text()
    page.fill('input[name="reason"]', f"error spike {SCRIPT}")
    page.screenshot(path=tmp_path / "dashboard-action.png", full_page=True)
    page.click('form.confirm button[type="submit"]')
    page.wait_for_url(f"{live}/prompts/greet?env=staging&done=*")
    assert "Done: rollback" in page.locator("p.notice").inner_text()

    registry = app.state.ctx.registry
    state = registry.status("greet", "staging")[0]
    assert state.canary is None
    assert state.stable.label == "v2"
    [entry] = registry.history("greet", "staging", limit=1)
    assert entry.action.startswith("rollback")
    assert entry.actor == "token:admin-person"
    assert entry.reason == f"error spike {SCRIPT}"

    page.goto(f"{live}/-/audit?prompt=greet")
    newest = page.locator("table.log tbody tr").first
    assert SCRIPT in newest.locator("td.reason").inner_text()  # shown as text, not run
    page.screenshot(path=tmp_path / "dashboard-audit.png", full_page=True)
    page.goto(f"{live}/rollouts/staging/greet")
    page.screenshot(path=tmp_path / "dashboard-rollout.png", full_page=True)
    page.goto(f"{live}/-/webhooks")
    page.screenshot(path=tmp_path / "dashboard-webhooks.png", full_page=True)

    assert page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_a_script_in_a_prompt_never_runs(app, live, browser, tmp_path):
    page = new_page(browser, live)
    sign_in(page, live, token(app, "read"))
    page.goto(f"{live}/prompts/hostile")
    assert SCRIPT in page.locator("p.lead").inner_text()  # the description, as text
    assert SCRIPT in page.locator("#samples").inner_text()  # sample inputs and rendering
    page.goto(f"{live}/?q=script")
    page.goto(f"{live}/prompts/hostile?env=staging")
    page.screenshot(path=tmp_path / "dashboard-hostile.png", full_page=True)
    assert page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_a_read_only_token_sees_no_action_buttons(app, live, browser, tmp_path):
    page = new_page(browser, live)
    sign_in(page, live, token(app, "read"))
    assert page.locator('a[href*="/-/actions/"]').count() == 0
    page.goto(f"{live}/prompts/greet?env=staging")
    assert page.locator('figure[data-chart="calls"] circle.point').count() >= 2
    assert page.locator('a[href*="/-/actions/"]').count() == 0
    assert page.locator("form.confirm").count() == 0
    page.screenshot(path=tmp_path / "dashboard-read-only.png", full_page=True)


def test_with_javascript_disabled_every_table_is_there(app, live, browser, tmp_path):
    page = new_page(browser, live, javascript=False)
    sign_in(page, live, token(app, "release"))
    rows = page.locator("table.matrix tbody tr")
    assert rows.count() == 2
    page.goto(f"{live}/prompts/greet?env=staging&range=1h")
    assert page.locator("#releases table tbody tr").count() == 2
    assert page.locator("#versions table tbody tr").count() == 3
    assert page.locator("table.summary tbody tr").count() == 2
    assert page.locator('figure[data-chart="calls"] circle.point').count() >= 2
    # The filters work as plain forms.
    page.select_option('#metrics select[name="range"]', "30d")
    page.click('#metrics button:has-text("Show")')
    assert "range=30d" in page.url
    page.goto(f"{live}/-/audit")
    assert page.locator("table.log tbody tr").count() == 4
    page.screenshot(path=tmp_path / "dashboard-no-javascript.png", full_page=True)
