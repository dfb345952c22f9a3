"""The dashboard over the ASGI app: every page (HTML and JSON), the actions with their
confirmation, revision check and CSRF guard, token sign-in, and escaping."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from promptctl.registry.auth import TokenService
from promptctl.registry.releases.actions import Promote
from promptctl.server.app import create_app

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REVISION = re.compile(r'name="revision" value="(\d+)"')


@pytest.fixture
def repo(greet_repo):
    """greet v1..v3 and summarize v1 (see conftest.greet_repo)."""
    return greet_repo


def release(app, name: str, env: str, ref: str, canary_bp: int | None = None) -> None:
    app.state.ctx.registry.perform(
        Promote(
            prompt=name,
            environment=env,
            ref=ref,
            canary_bp=canary_bp,
            confirmed=True,
            actor="setup",
            reason="setting up",
            expected_revision=None,
        )
    )


def calls(app, env: str = "staging", stable: int = 30, canary: int = 10, **fields) -> None:
    """Report calls of greet's stable and canary versions in `env` (every 5th one failing)."""
    state = app.state.ctx.registry.status("greet", env)[0]
    digests = [state.stable.digest] * stable
    if state.canary:
        digests += [state.canary.digest] * canary
    now = datetime.now(UTC)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "prompt": "greet",
            "env": env,
            "digest": digest,
            # Within milliseconds of now: the canary analysis counts calls from the minute
            # its step started, so calls spread over earlier seconds could fall before it.
            "ts": (now - timedelta(milliseconds=i)).isoformat(),
            "latency_ms": 100.0 + i,
            "error": i % 5 == 0,
            "input_tokens": 120,
            "output_tokens": 30,
            "cost_usd": 0.001,
            "quality": 0.8,
            **fields,
        }
        for i, digest in enumerate(digests)
    ]
    ctx = app.state.ctx
    assert ctx.registry.metrics.ingest(events).to_json()["accepted"] == len(events)


@pytest.fixture
def released(app):
    """greet: v2 stable with v3 as a 20% canary in staging, v2 in production; calls."""
    release(app, "greet", "staging", "v2")
    release(app, "greet", "staging", "v3", canary_bp=2000)
    release(app, "greet", "production", "v2")
    calls(app)
    return app


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def confirm(client: TestClient, path: str, **fields: str):
    """Open an action's confirmation page and submit its form with `fields`."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    form = {"csrf": csrf_of(page.text), "revision": REVISION.search(page.text).group(1)}
    return client.post(path, data={**form, **fields}, follow_redirects=False)


# -- pages -----------------------------------------------------------------------------------


def test_overview_shows_every_prompt_in_every_environment_with_the_last_hour(client, released):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'data-prompt="greet"' in html
    assert 'data-prompt="summarize"' in html
    assert "v2" in html
    assert "+ <span" in html
    assert "20%" in html
    assert "40 calls" in html
    assert "20.0% errors" in html

    data = client.get("/?format=json").json()
    assert data["environments"] == ["development", "staging", "production"]
    greet = next(p for p in data["prompts"] if p["prompt"] == "greet")
    staging = greet["releases"]["staging"]
    assert staging["stable"]["label"] == "v2"
    assert staging["canary"]["label"] == "v3"
    assert (staging["weight"], staging["calls_1h"], staging["error_rate_1h"]) == (20, 40, 0.2)
    assert staging["health"]["mark"] == "degraded"
    assert greet["releases"]["production"]["health"]["mark"] == "idle"
    summarize = next(p for p in data["prompts"] if p["prompt"] == "summarize")
    assert summarize["releases"] == {}


def test_overview_filters_by_search_environment_and_canary(client, released):
    found = client.get("/?q=summ&format=json").json()["prompts"]
    assert [p["prompt"] for p in found] == ["summarize"]
    by_description = client.get("/?q=greet+a+user&format=json").json()["prompts"]
    assert [p["prompt"] for p in by_description] == ["greet"]
    production = client.get("/?env=production&format=json").json()
    assert production["environments"] == ["production"]
    canaries = client.get("/?show=canary&format=json").json()["prompts"]
    assert [p["prompt"] for p in canaries] == ["greet"]
    released_only = client.get("/?show=released&format=json").json()["prompts"]
    assert [p["prompt"] for p in released_only] == ["greet"]
    attention = client.get("/?show=attention&format=json").json()["prompts"]
    assert [p["prompt"] for p in attention] == ["greet"]  # 20% errors: degraded


def test_prompt_page_shows_versions_releases_charts_and_summary(client, released):
    html = client.get("/prompts/greet?env=staging&range=1h").text
    # Versions with commit, author, date and message, and where each runs.
    assert "greet 3" in html
    assert "greet 2" in html
    assert "staging canary 20%" in html
    assert "production stable" in html
    # A chart per metric, with points from the ingested calls.
    for key in ("calls", "error_rate", "latency_p95", "cost", "tokens", "quality", "invalid"):
        assert f'data-chart="{key}"' in html
    points = [int(n) for n in re.findall(r'data-points="(\d+)"', html)]
    assert points[0] >= 2  # calls: at least one point for stable and one for canary
    assert 'data-series="v3 canary"' in html
    assert 'data-series="v2 stable"' in html

    data = client.get("/prompts/greet?env=staging&range=1h&format=json").json()
    assert data["series"]["rollups"] == "minute"
    assert data["series"]["step_seconds"] == 60
    by_variant = {(s["label"], s["variant"]): s for s in data["series"]["series"]}
    canary = by_variant[("v3", "canary")]["points"]
    assert sum(p["count"] for p in canary) == 10
    assert sum(p["errors"] for p in by_variant[("v2", "stable")]["points"]) == 6
    summary = {(v["label"], v["variant"]): v for v in data["summary"]}
    assert summary[("v2", "stable")]["count"] == 30
    assert [v["label"] for v in data["versions"]] == ["v3", "v2", "v1"]
    assert data["versions"][0]["runs"] == ["staging canary 20%"]
    assert data["versions"][0]["commit"]["summary"] == "greet 3"


def test_the_time_range_picker_reads_hour_rollups_for_long_ranges(client, released):
    data = client.get("/prompts/greet?env=staging&range=30d&format=json").json()
    assert data["series"]["rollups"] == "hour"
    assert data["series"]["step_seconds"] == 21600
    assert sum(p["count"] for s in data["series"]["series"] for p in s["points"]) == 40
    bad = client.get("/prompts/greet?range=2y")
    assert bad.status_code == 400
    assert "range must be one of" in bad.text


def test_prompt_page_compares_versions_and_renders_samples(client, released):
    html = client.get("/prompts/greet?from=v1&to=v3").text
    assert "greeting number 1" in html
    assert "greeting number 3" in html
    assert 'class="del"' in html
    assert 'class="add"' in html
    data = client.get("/prompts/greet?sample=v2").text
    assert "Hello Ada, this is greeting number 2." in data


@pytest.mark.parametrize(
    "path",
    [
        "/prompts/nothing-here",
        "/prompts/greet?env=moon",
        "/rollouts/moon/greet",
        "/rollouts/staging/nothing-here",
        "/-/audit?env=moon",
        "/-/actions/rollback?prompt=nothing-here&env=staging",
    ],
)
def test_unknown_prompt_or_environment_is_an_html_404_page(client, released, path):
    page = client.get(path)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text
    assert "not found" in page.text.lower()
    problem = client.get(path + ("&" if "?" in path else "?") + "format=json")
    assert problem.status_code == 404
    assert problem.headers["content-type"].startswith("application/problem+json")


def test_audit_log_filters_by_prompt_environment_actor_and_time(client, released):
    html = client.get("/-/audit").text
    assert html.count("data-log-id=") == 3
    entries = client.get("/-/audit?format=json").json()["entries"]
    assert [e["action"] for e in entries] == ["promote", "canary_start", "promote"]
    assert (
        client.get("/-/audit?env=production&format=json").json()["entries"][0]["environment"]
        == "production"
    )
    assert len(client.get("/-/audit?actor=SET&format=json").json()["entries"]) == 3
    assert client.get("/-/audit?actor=someone&format=json").json()["entries"] == []
    assert client.get("/-/audit?prompt=summarize&format=json").json()["entries"] == []
    assert len(client.get("/-/audit?since=1h&format=json").json()["entries"]) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/-/audit", params={"since": future, "format": "json"}).json() == {
        "entries": []
    }
    first = client.get("/-/audit?limit=2").text
    assert "Older entries" in first
    older = client.get("/-/audit?limit=2&format=json").json()["entries"][-1]["id"]
    rest = client.get(f"/-/audit?limit=2&before={older}&format=json").json()["entries"]
    assert [e["id"] for e in rest] == [older - 1]


def test_rollout_page_shows_steps_decisions_and_pauses(client, released):
    registry = released.state.ctx.registry
    html = client.get("/rollouts/production/greet").text
    assert 'data-rollout="none"' in html
    registry.start_rollout("greet", "production", ref="v3", actor="ops", confirmed=True)
    html = client.get("/rollouts/production/greet").text
    assert 'data-rollout="running"' in html
    assert 'aria-current="step"' in html
    assert "started" in html
    assert html.count("data-log-id=") == 2
    data = client.get("/rollouts/production/greet?format=json").json()
    assert data["rollout"]["status"] == "running"
    assert data["rollout"]["step"] == 1
    done = confirm(client, "/-/actions/pause?prompt=greet&env=production", reason="look")
    assert done.status_code == 303
    assert registry.rollout("greet", "production").status == "paused"
    assert 'data-rollout="paused"' in client.get("/rollouts/production/greet").text


def test_prompt_page_shows_the_canary_analysis_table(client, released):
    html = client.get("/prompts/greet?env=staging").text
    assert 'class="analysis"' in html
    data = client.get("/prompts/greet?env=staging&format=json").json()["analysis"]
    assert data["verdict"] in ("pass", "fail", "inconclusive", "no data")
    assert data["calls"] == {"stable": 30, "canary": 10}
    assert {m["metric"] for m in data["metrics"]} >= {"error_rate"}
    assert client.get("/prompts/greet?env=production&format=json").json()["analysis"] is None


def test_webhooks_page_lists_subscriptions_for_admins(client, released):
    registry = released.state.ctx.registry
    assert "No subscriptions." in client.get("/-/webhooks").text
    registry.webhooks.add("https://hooks.example.com/promptctl", ["release.*"], actor="ops")
    html = client.get("/-/webhooks").text
    assert "https://hooks.example.com/promptctl" in html
    assert "release.*" in html
    data = client.get("/-/webhooks?format=json").json()
    assert [s["url"] for s in data["subscriptions"]] == ["https://hooks.example.com/promptctl"]


def test_assets_come_from_the_package_and_pages_forbid_inline_script(client, released):
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    for url in re.findall(r'(?:href|src)="(/-/static/[^"]+)"', page.text):
        asset = client.get(url)
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/-/static/README.md").status_code == 404


# -- actions without tokens --------------------------------------------------------------


def test_rollback_through_the_confirmation_page_changes_the_release_and_logs_it(client, released):
    path = "/-/actions/rollback?prompt=greet&env=staging"
    page = client.get(path).text
    assert "canary v3 (20%) is dropped" in page
    assert "stable v2 takes all traffic" in page
    done = confirm(client, path, reason="canary errors")
    assert done.status_code == 303
    assert done.headers["location"].startswith("/prompts/greet?env=staging&done=rollback")
    state = released.state.ctx.registry.status("greet", "staging")[0]
    assert state.canary is None
    assert state.stable.label == "v2"
    [entry] = released.state.ctx.registry.history("greet", "staging", limit=1)
    assert (entry.action, entry.reason, entry.actor) == (
        "rollback_canary",
        "canary errors",
        "dashboard (no token)",
    )
    assert "Done: rollback" in client.get(done.headers["location"]).text


def test_ramp_promote_complete_and_abort_from_the_dashboard(client, released):
    registry = released.state.ctx.registry
    assert confirm(client, "/-/actions/ramp?prompt=greet&env=staging", weight="50").is_redirect
    assert registry.status("greet", "staging")[0].canary_weight_bp == 5000
    assert confirm(client, "/-/actions/complete?prompt=greet&env=staging").is_redirect
    state = registry.status("greet", "staging")[0]
    assert (state.stable.label, state.canary) == ("v3", None)
    path = "/-/actions/promote?prompt=greet&env=production"
    assert confirm(client, path, version="v3", canary="10").is_redirect
    prod = registry.status("greet", "production")[0]
    assert (prod.canary.label, prod.canary_weight_bp) == ("v3", 1000)
    assert confirm(client, "/-/actions/abort?prompt=greet&env=production").is_redirect
    assert registry.status("greet", "production")[0].canary is None
    first = "/-/actions/promote?prompt=summarize&env=development"
    assert confirm(client, first, version="v1").is_redirect
    assert registry.status("summarize", "development")[0].stable.label == "v1"


def test_a_stale_form_is_refused_showing_the_new_state(client, released):
    path = "/-/actions/ramp?prompt=greet&env=staging"
    page = client.get(path).text
    form = {"csrf": csrf_of(page), "revision": REVISION.search(page).group(1), "weight": "50"}
    # Someone else ramps meanwhile.
    assert confirm(client, path, weight="30").is_redirect
    stale = client.post(path, data=form, follow_redirects=False)
    assert stale.status_code == 409
    assert "changed this release since the page was loaded" in stale.text
    assert "at 30%" in stale.text  # the state now
    assert released.state.ctx.registry.status("greet", "staging")[0].canary_weight_bp == 3000
    # The page shown again carries the new revision: confirming it works.
    again = {"csrf": csrf_of(stale.text), "revision": REVISION.search(stale.text).group(1)}
    assert client.post(path, data={**again, "weight": "50"}, follow_redirects=False).is_redirect


@pytest.mark.parametrize("revision", [None, "", "  "], ids=["absent", "empty", "blank"])
def test_an_action_posted_without_the_revision_is_refused_as_incomplete(client, released, revision):
    path = "/-/actions/ramp?prompt=greet&env=staging"
    form = {"csrf": csrf_of(client.get(path).text), "weight": "50"}
    if revision is not None:
        form["revision"] = revision
    refused = client.post(f"{path}&revision=2", data=form, follow_redirects=False)
    assert refused.status_code == 400
    assert "Form incomplete" in refused.text
    assert "has no &#39;revision&#39;" in refused.text
    [state] = released.state.ctx.registry.status("greet", "staging")
    assert state.canary_weight_bp == 2000  # nothing was done


def test_a_form_that_saw_no_release_is_stale_once_one_exists(client, released):
    path = "/-/actions/promote?prompt=greet&env=production"
    form = {"csrf": csrf_of(client.get(path).text), "revision": "0", "version": "v3"}
    stale = client.post(path, data=form, follow_redirects=False)
    assert stale.status_code == 409
    [state] = released.state.ctx.registry.status("greet", "production")
    assert state.stable.label == "v2"


def test_rollback_is_offered_only_where_there_is_an_earlier_version(client, released):
    html = client.get("/prompts/greet?env=staging").text
    assert "/-/actions/rollback?prompt=greet&amp;env=staging" in html  # a canary to drop
    # production runs the first version it was given: nothing to roll back to.
    assert "/-/actions/rollback?prompt=greet&amp;env=production" not in html
    assert re.search(r"<button [^>]*disabled[^>]*>Roll back</button>", html)
    assert "v2 has no earlier version to return to" in html

    release(released, "greet", "production", "v3")
    html = client.get("/prompts/greet?env=production").text
    assert "/-/actions/rollback?prompt=greet&amp;env=production" in html
    assert "stable v3 → v2" in html
    assert confirm(client, "/-/actions/rollback?prompt=greet&env=production").is_redirect
    html = client.get("/prompts/greet?env=production").text
    assert "/-/actions/rollback?prompt=greet&amp;env=production" not in html


def test_an_action_the_registry_refuses_shows_why(client, released):
    done = confirm(client, "/-/actions/rollback?prompt=greet&env=production")
    assert done.status_code == 409
    assert "Not done:" in done.text


def test_forms_without_this_sessions_csrf_token_are_refused(client, released, open_client):
    path = "/-/actions/rollback?prompt=greet&env=staging"
    page = client.get(path).text
    revision = REVISION.search(page).group(1)
    missing = client.post(path, data={"revision": revision}, follow_redirects=False)
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    # A token from another session (another browser) is worth nothing here.
    other = open_client(released)
    token = csrf_of(other.get(path).text)
    stolen = client.post(path, data={"revision": revision, "csrf": token})
    assert stolen.status_code == 403
    cross = client.post(
        path,
        data={"revision": revision, "csrf": csrf_of(page)},
        headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    assert released.state.ctx.registry.status("greet", "staging")[0].canary is not None


def test_dashboard_forms_pass_the_api_json_guard_which_still_holds_for_v1(client, released):
    path = "/-/actions/rollback?prompt=greet&env=staging"
    assert confirm(client, path).status_code == 303  # urlencoded, not refused as 415
    form_to_api = client.post(
        "/v1/prompts/greet/rollback", data={"env": "production", "confirm": "true"}
    )
    assert form_to_api.status_code == 415


# -- escaping --------------------------------------------------------------------------------


def test_user_text_is_escaped_in_every_page(client, released):
    path = "/-/actions/ramp?prompt=greet&env=staging"
    script = "<script>alert(1)</script>"
    assert confirm(client, path, weight="40", reason=script).is_redirect
    for page in ("/-/audit", "/prompts/greet?env=staging", "/rollouts/staging/greet"):
        html = client.get(page).text
        assert script not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # A query echoed back into a form is escaped as well.
    html = client.get("/", params={"q": '"><script>alert(2)</script>'}).text
    assert "<script>alert(2)" not in html


# -- tokens ----------------------------------------------------------------------------------


@pytest.fixture
def tokens_app(make_settings):
    app = create_app(make_settings(tokens=True))
    release(app, "greet", "staging", "v2")
    release(app, "greet", "staging", "v3", canary_bp=2000)
    release(app, "greet", "production", "v2")
    release(app, "greet", "production", "v3", canary_bp=1000)
    app.state.ctx.registry.set_protected("production", True)
    return app


def make_token(app, scope: str, environment: str | None = None) -> str:
    secret, _ = TokenService(app.state.ctx.registry.database).create(
        f"{scope}-{environment or 'all'}", scope, environment
    )
    app.state.ctx.cache.load_all()
    return secret


def sign_in(client: TestClient, secret: str) -> None:
    page = client.get("/-/signin")
    answer = client.post(
        "/-/signin",
        data={"csrf": csrf_of(page.text), "token": secret, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"


def test_with_tokens_pages_ask_for_sign_in(open_client, tokens_app):
    client = open_client(tokens_app)
    page = client.get("/prompts/greet?env=staging", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/-/signin?next=%2Fprompts%2Fgreet%3Fenv%3Dstaging"
    assert client.get("/?format=json").status_code == 401
    wrong = client.post(
        "/-/signin", data={"csrf": csrf_of(client.get("/-/signin").text), "token": "pct_nope"}
    )
    assert wrong.status_code == 401
    assert "unknown or revoked" in wrong.text
    writer = make_token(tokens_app, "metrics:write")
    refused = client.post(
        "/-/signin", data={"csrf": csrf_of(client.get("/-/signin").text), "token": writer}
    )
    assert refused.status_code == 403


def test_the_session_cookie_is_httponly_strict_and_never_holds_the_token(open_client, tokens_app):
    client = open_client(tokens_app)
    secret = make_token(tokens_app, "read")
    page = client.get("/-/signin")
    answer = client.post(
        "/-/signin",
        data={"csrf": csrf_of(page.text), "token": secret, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"  # never an open redirect
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert secret not in cookie
    assert secret[4:] not in cookie
    assert client.get("/").status_code == 200
    # Revoking the token ends the session at once.
    TokenService(tokens_app.state.ctx.registry.database).revoke("read-all")
    tokens_app.state.ctx.cache.load_all()
    assert client.get("/", follow_redirects=False).status_code == 303


def session_cookie(answer) -> str:
    cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    found = [c for c in cookies if c.startswith("promptctl_session=")]
    assert found, f"no session cookie among {cookies}"
    return found[0]


@pytest.mark.parametrize(
    ("setting", "trusted", "forwarded", "secure"),
    [
        pytest.param("auto", "*", None, False, id="auto over http"),
        pytest.param("auto", "*", "https", True, id="auto behind a trusted TLS proxy"),
        pytest.param("auto", "10.9.9.9", "https", False, id="auto, the proxy not trusted"),
        pytest.param("true", "*", None, True, id="forced on over http"),
        pytest.param("false", "*", "https", False, id="forced off over https"),
    ],
)
def test_the_session_cookie_is_secure_over_https_behind_a_proxy_or_when_forced(
    make_settings, setting, trusted, forwarded, secure
):
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = create_app(make_settings(dashboard_secure_cookie=setting))
    # As `promptctl serve` runs the app: behind uvicorn's proxy headers middleware, which
    # takes X-Forwarded-Proto from the proxies it trusts (FORWARDED_ALLOW_IPS).
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts=trusted)) as client:
        headers = {"x-forwarded-proto": forwarded, "x-forwarded-for": "203.0.113.7"}
        answer = client.get("/", headers=headers if forwarded else {})
    assert answer.status_code == 200
    attributes = [a.strip().lower() for a in session_cookie(answer).split(";")]
    assert ("secure" in attributes) is secure
    assert "httponly" in attributes


def test_the_secure_cookie_setting_is_auto_true_or_false(make_settings):
    assert make_settings().dashboard_secure_cookie == "auto"
    assert make_settings(dashboard_secure_cookie=" TRUE ").dashboard_secure_cookie == "true"
    assert make_settings(dashboard_secure_cookie=False).dashboard_secure_cookie == "false"
    with pytest.raises(ValueError, match="dashboard_secure_cookie"):
        make_settings(dashboard_secure_cookie="sometimes")


def test_a_read_only_token_sees_no_action_buttons_and_cannot_act(open_client, tokens_app):
    client = open_client(tokens_app)
    sign_in(client, make_token(tokens_app, "read"))
    html = client.get("/prompts/greet?env=staging").text
    assert "/-/actions/" not in html
    assert "/-/actions/" not in client.get("/").text
    path = "/-/actions/rollback?prompt=greet&env=staging"
    assert client.get(path).status_code == 403
    csrf = csrf_of(client.get("/").text)
    refused = client.post(path, data={"csrf": csrf, "revision": "2"})
    assert refused.status_code == 403
    assert tokens_app.state.ctx.registry.status("greet", "staging")[0].canary is not None


def test_protected_environments_need_the_same_authority_as_the_api(open_client, tokens_app):
    client = open_client(tokens_app)
    sign_in(client, make_token(tokens_app, "release"))
    html = client.get("/prompts/greet?env=staging").text
    assert "/-/actions/rollback?prompt=greet&amp;env=staging" in html
    assert "/-/actions/rollback?prompt=greet&amp;env=production" not in html
    refused = client.get("/-/actions/rollback?prompt=greet&env=production")
    assert refused.status_code == 403
    assert "production" in refused.text

    admin = open_client(tokens_app)
    sign_in(admin, make_token(tokens_app, "admin"))
    done = confirm(admin, "/-/actions/rollback?prompt=greet&env=production", reason="bad")
    assert done.status_code == 303
    [entry] = tokens_app.state.ctx.registry.history("greet", "production", limit=1)
    assert (entry.action, entry.actor, entry.reason) == (
        "rollback_canary",
        "token:admin-all",
        "bad",
    )


def test_a_token_limited_to_one_environment_sees_only_it(open_client, tokens_app):
    client = open_client(tokens_app)
    sign_in(client, make_token(tokens_app, "release", "staging"))
    data = client.get("/?format=json").json()
    assert data["environments"] == ["staging"]
    assert client.get("/prompts/greet?env=production").status_code == 403
    assert {e["environment"] for e in client.get("/-/audit?format=json").json()["entries"]} == {
        "staging"
    }


def test_scripts_may_read_the_json_with_a_bearer_token(open_client, tokens_app):
    client = open_client(tokens_app)
    secret = make_token(tokens_app, "read")
    answer = client.get("/?format=json", headers={"authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    assert any(p["prompt"] == "greet" for p in answer.json()["prompts"])


def test_sign_out_ends_the_session(open_client, tokens_app):
    client = open_client(tokens_app)
    sign_in(client, make_token(tokens_app, "admin"))
    csrf = csrf_of(client.get("/").text)
    out = client.post("/-/signout", data={"csrf": csrf}, follow_redirects=False)
    assert out.headers["location"] == "/-/signin"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_overview_pages_through_many_prompts(client, released, monkeypatch):
    from promptctl.server.dashboard import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    first = client.get("/?format=json").json()
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 2)
    assert [p["prompt"] for p in first["prompts"]] == ["greet"]
    html = client.get("/").text
    assert 'href="/?page=2" rel="next"' in html
    second = client.get("/?page=2&format=json").json()
    assert [p["prompt"] for p in second["prompts"]] == ["summarize"]
    assert client.get("/?page=0").status_code == 400
