"""Every route with every kind of token, against a table kept here as data.

A token has a scope (read, metrics:write, release, admin) and may be limited to one
environment. The table says, per request, which tokens are allowed (+) and which refused
(-: 401 without a token, 403 with one). A token limited to an environment is also never
shown anything of another one: no release, log entry, environment or actor of it in any
list, history or summary it is allowed to read.

The requests come from the OpenAPI document: a route that is not in the table fails the
test, so a new route cannot be added without deciding who may call it. The app runs with
tokens on and PROMPTCTL_OPEN_OPS false, so that the operations endpoints are in the table
too (open by default: see test_tokens).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from promptctl.registry.auth import TokenService
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
ENVIRONMENTS = ("development", "staging", "production")  # production is protected

# The columns of the table: no token, then each scope unlimited (*), limited to staging (s)
# and limited to production (p).
COLUMNS = [
    None,
    *(
        (scope, env)
        for scope in ("read", "metrics:write", "release", "admin")
        for env in (None, "staging", "production")
    ),
]
HEADER = "none | read * s p | metrics:write * s p | release * s p | admin * s p"

# Who may do what, by kind of request.
EVERYONE = "+ | + + + | + + + | + + + | + + +"
READERS = "- | + + + | - - - | + + + | + + +"
READ_STAGING = "- | + + - | - - - | + + - | + + +"
READ_PRODUCTION = "- | + - + | - - - | + - + | + + +"
WRITE_METRICS_STAGING = "- | - - - | + + - | - - - | + + +"
WRITE_METRICS_PRODUCTION = "- | - - - | + - + | - - - | + + +"
RELEASERS = "- | - - - | - - - | + + + | + + +"
RELEASE_STAGING = "- | - - - | - - - | + + - | + + +"
# Protected: a release token must be limited to production itself.
RELEASE_PRODUCTION = "- | - - - | - - - | - - + | + + +"
ADMINS = "- | - - - | - - - | - - - | + + +"

# A release action is sent with a stale If-Match: allowed, it reaches the release and is
# refused there (412), so that no request changes what the next one sees.
STALE = {"If-Match": '"999"'}


@dataclass(frozen=True)
class Call:
    """One request, the OpenAPI route it exercises and its status when allowed."""

    method: str
    route: str
    url: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: int = 200
    lists: bool = False  # a list, history or summary: shows the token's own environment
    batch: bool = False  # metrics ingest: a refused event is answered inside a 200


def action(verb: str, env: str, **body: Any) -> Call:
    return Call(
        "POST",
        f"/v1/prompts/{{name}}/{verb}",
        f"/v1/prompts/{TRIAGE}/{verb}",
        {"env": env, **body},
        STALE,
        ok=412,
    )


def event(env: str) -> dict[str, Any]:
    """An event for triage v1 ("DIGEST" becomes its digest when sent)."""
    return {"event_id": f"new-{env}", "prompt": TRIAGE, "env": env, "digest": "DIGEST"}


P = f"/v1/prompts/{TRIAGE}"
TICKET = {"variables": {"ticket": "I was charged twice"}}
WEBHOOK = {"url": "http://127.0.0.1:9/hook", "events": ["release.*"]}
TABLE: list[tuple[str, Call]] = [
    (READERS, Call("GET", "/v1/prompts", "/v1/prompts", lists=True)),
    (READERS, Call("GET", "/v1/prompts/{name}/versions", f"{P}/versions")),
    (READERS, Call("GET", "/v1/prompts/{name}/versions/{ref}", f"{P}/versions/v1")),
    (READ_STAGING, Call("GET", "/v1/prompts/{name}/resolve", f"{P}/resolve?env=staging")),
    (READ_PRODUCTION, Call("GET", "/v1/prompts/{name}/resolve", f"{P}/resolve?env=production")),
    (READ_STAGING, Call("GET", "/v1/prompts/{name}/release", f"{P}/release?env=staging")),
    (READ_PRODUCTION, Call("GET", "/v1/prompts/{name}/release", f"{P}/release?env=production")),
    (
        READ_STAGING,
        Call("POST", "/v1/prompts/{name}/render", f"{P}/render", {"env": "staging", **TICKET}),
    ),
    (
        READ_PRODUCTION,
        Call("POST", "/v1/prompts/{name}/render", f"{P}/render", {"env": "production", **TICKET}),
    ),
    (
        READERS,
        Call("POST", "/v1/prompts/{name}/render", f"{P}/render", {"version": "v1", **TICKET}),
    ),
    (READERS, Call("GET", "/v1/releases", "/v1/releases", lists=True)),
    (READ_STAGING, Call("GET", "/v1/releases", "/v1/releases?env=staging", lists=True)),
    (READ_PRODUCTION, Call("GET", "/v1/releases", "/v1/releases?env=production", lists=True)),
    (READERS, Call("GET", "/v1/prompts/{name}/history", f"{P}/history", lists=True)),
    (
        READ_STAGING,
        Call("GET", "/v1/prompts/{name}/history", f"{P}/history?env=staging", lists=True),
    ),
    (
        READ_PRODUCTION,
        Call("GET", "/v1/prompts/{name}/history", f"{P}/history?env=production", lists=True),
    ),
    (READERS, Call("GET", "/v1/environments", "/v1/environments", lists=True)),
    (ADMINS, Call("POST", "/v1/environments", "/v1/environments", {"name": "qa"}, ok=201)),
    (
        ADMINS,
        Call(
            "PATCH", "/v1/environments/{name}", "/v1/environments/development", {"protected": False}
        ),
    ),
    # Webhooks: an admin's, whatever environment the token names. The test message goes to a
    # port nobody listens on, and is answered as a failed delivery (200).
    (ADMINS, Call("POST", "/v1/webhooks", "/v1/webhooks", WEBHOOK, ok=201)),
    (ADMINS, Call("GET", "/v1/webhooks", "/v1/webhooks")),
    (ADMINS, Call("GET", "/v1/webhooks/{subscription_id}", "/v1/webhooks/1")),
    (ADMINS, Call("POST", "/v1/webhooks/{subscription_id}/test", "/v1/webhooks/1/test", {})),
    (
        ADMINS,
        Call("GET", "/v1/webhooks/{subscription_id}/deliveries", "/v1/webhooks/1/deliveries"),
    ),
    (ADMINS, Call("DELETE", "/v1/webhooks/{subscription_id}", "/v1/webhooks/1", {})),
    (RELEASE_STAGING, action("promote", "staging", ref="v2")),
    (RELEASE_PRODUCTION, action("promote", "production", ref="v2")),
    (RELEASE_STAGING, action("ramp", "staging", weight=5)),
    (RELEASE_PRODUCTION, action("ramp", "production", weight=5)),
    (RELEASE_STAGING, action("complete", "staging")),
    (RELEASE_PRODUCTION, action("complete", "production")),
    (RELEASE_STAGING, action("abort", "staging")),
    (RELEASE_PRODUCTION, action("abort", "production")),
    (RELEASE_STAGING, action("rollback", "staging")),
    (RELEASE_PRODUCTION, action("rollback", "production")),
    # Rollouts: none runs and policy "nope" does not exist, so an allowed request is a 404
    # and changes nothing.
    (READ_STAGING, Call("GET", "/v1/prompts/{name}/rollout", f"{P}/rollout?env=staging", ok=404)),
    (
        READ_PRODUCTION,
        Call("GET", "/v1/prompts/{name}/rollout", f"{P}/rollout?env=production", ok=404),
    ),
    *(
        (
            allowed,
            Call(
                "POST",
                "/v1/prompts/{name}/rollout",
                f"{P}/rollout",
                {"env": env, "policy": "nope"},
                ok=404,
            ),
        )
        for allowed, env in ((RELEASE_STAGING, "staging"), (RELEASE_PRODUCTION, "production"))
    ),
    *(
        (
            allowed,
            Call(
                "POST",
                "/v1/prompts/{name}/rollout/{verb}",
                f"{P}/rollout/{verb}",
                {"env": env},
                ok=404,
            ),
        )
        for allowed, env in ((RELEASE_STAGING, "staging"), (RELEASE_PRODUCTION, "production"))
        for verb in ("pause", "resume", "abort", "promote")
    ),
    (
        READ_STAGING,
        Call("GET", "/v1/prompts/{name}/metrics", f"{P}/metrics?env=staging", lists=True),
    ),
    (
        READ_PRODUCTION,
        Call("GET", "/v1/prompts/{name}/metrics", f"{P}/metrics?env=production", lists=True),
    ),
    # No canary runs in the app of this table: an allowed analysis is refused with 409.
    (
        READ_STAGING,
        Call("GET", "/v1/prompts/{name}/analysis", f"{P}/analysis?env=staging", ok=409),
    ),
    (
        READ_PRODUCTION,
        Call("GET", "/v1/prompts/{name}/analysis", f"{P}/analysis?env=production", ok=409),
    ),
    (
        WRITE_METRICS_STAGING,
        Call("POST", "/v1/metrics", "/v1/metrics", {"events": [event("staging")]}, batch=True),
    ),
    (
        WRITE_METRICS_PRODUCTION,
        Call("POST", "/v1/metrics", "/v1/metrics", {"events": [event("production")]}, batch=True),
    ),
    (
        WRITE_METRICS_STAGING,
        Call(
            "POST",
            "/v1/metrics/scores",
            "/v1/metrics/scores",
            {"scores": [{"event_id": "stored-staging", "quality": 0.5}]},
            batch=True,
        ),
    ),
    (
        WRITE_METRICS_PRODUCTION,
        Call(
            "POST",
            "/v1/metrics/scores",
            "/v1/metrics/scores",
            {"scores": [{"event_id": "stored-production", "quality": 0.5}]},
            batch=True,
        ),
    ),
    # The change stream: the app ends each stream at once (stream_max_seconds), so that a
    # request returns; what it sent is checked like any answer.
    (READ_STAGING, Call("GET", "/v1/stream", "/v1/stream?env=staging")),
    (READ_PRODUCTION, Call("GET", "/v1/stream", "/v1/stream?env=production")),
    (READERS, Call("GET", "/v1/git", "/v1/git")),
    # Allowed, it finds that this clone follows no remote.
    (RELEASERS, Call("POST", "/v1/git/fetch", "/v1/git/fetch", {}, ok=409)),
    (EVERYONE, Call("GET", "/healthz", "/healthz")),
    (READERS, Call("GET", "/readyz", "/readyz")),
    (READERS, Call("GET", "/metrics", "/metrics")),
    # Operations endpoints outside the OpenAPI document.
    (READERS, Call("GET", "/openapi.json", "/openapi.json")),
    (READERS, Call("GET", "/docs", "/docs")),
    (READERS, Call("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect")),
    (READERS, Call("GET", "/redoc", "/redoc")),
    (READERS, Call("GET", "/static/{asset:path}", "/static/favicon.svg")),
]


def marks(row: str) -> list[bool]:
    """The row's verdicts, one per column."""
    signs = row.replace("|", " ").split()
    assert len(signs) == len(COLUMNS), row
    return [sign == "+" for sign in signs]


def column_id(column: tuple[str, str | None] | None) -> str:
    if column is None:
        return "no-token"
    scope, env = column
    return f"{scope}@{env or 'any'}"


@pytest.fixture
def released_app(make_settings) -> FastAPI:
    """Tokens on, operations closed; triage v1 stable in every environment, one log entry
    each with a reason naming it, and one stored metrics event in staging and production."""
    app = create_app(make_settings(tokens=True, open_ops=False, stream_max_seconds=0.01))
    registry = app.state.ctx.registry
    version = registry.library.get(TRIAGE, "v1")
    for env in ENVIRONMENTS:
        registry.releases.promote(
            version, env, actor=f"{env}-lead", reason=f"{env} reason", confirmed=True
        )
    registry.serving.load_all()
    stored = [
        {"event_id": f"stored-{env}", "prompt": TRIAGE, "env": env, "digest": version.digest}
        for env in ("staging", "production")
    ]
    result = registry.metrics.ingest([{**e, "latency_ms": 5} for e in stored])
    assert result.accepted == 2, result.to_json()
    return app


def test_every_route_of_the_openapi_document_is_in_the_table(client):
    documented = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    tabled = {(call.method, call.route) for _, call in TABLE}
    assert documented - tabled == set(), "routes missing from the token table"
    outside = {(m, r) for m, r in tabled - documented}
    assert {r for _, r in outside} == {
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/static/{asset:path}",
    }


@pytest.mark.parametrize("column", COLUMNS, ids=column_id)
def test_each_token_is_allowed_and_shown_what_the_table_says(released_app, open_client, column):
    client = open_client(released_app)
    headers: dict[str, str] = {}
    limited_to = None
    if column is not None:
        scope, limited_to = column
        secret, _ = TokenService(released_app.state.ctx.registry.database).create(
            column_id(column), scope, limited_to
        )
        released_app.state.ctx.cache.load_all()
        headers = {"Authorization": f"Bearer {secret}"}
        if scope == "admin":
            limited_to = None  # an admin token is never limited, whatever it was created with
    index = COLUMNS.index(column)
    digest = released_app.state.ctx.registry.library.get(TRIAGE, "v1").digest
    unexpected = []
    for row, call in TABLE:
        allowed = marks(row)[index]
        body = _with_digest(call.body, digest)
        response = client.request(
            call.method, call.url, json=body, headers={**headers, **call.headers}
        )
        verdict = _verdict(call, response)
        if verdict != ("allowed" if allowed else "refused"):
            unexpected.append(f"{call.method} {call.url}: {verdict} ({response.status_code})")
            continue
        if allowed and limited_to is not None and call.url.startswith("/v1/"):
            _shows_only(limited_to, call, response, unexpected)
    assert not unexpected, f"{column_id(column)}: " + "; ".join(unexpected)


def _with_digest(body: Any, digest: str) -> Any:
    if isinstance(body, dict) and any(isinstance(e, dict) for e in body.get("events", ())):
        events = [{**e, "digest": digest, "latency_ms": 10} for e in body["events"]]
        return {**body, "events": events}
    return body


def _verdict(call: Call, response: httpx.Response) -> str:
    if response.status_code in (401, 403):
        return "refused"
    if response.status_code != call.ok:
        return f"unexpected status: {response.text[:200]}"
    if call.batch:
        [result] = response.json()["results"]
        if result["status"] == "rejected":
            return "refused" if "limited to" in result["reason"] else f"rejected: {result}"
    return "allowed"


def _shows_only(environment: str, call: Call, response: httpx.Response, found: list[str]) -> None:
    """Nothing of another environment in the answer; a list shows the token's own."""
    others = [env for env in ENVIRONMENTS if env != environment]
    leaked = [env for env in others if env in response.text]
    if leaked:
        found.append(f"{call.method} {call.url} shows {leaked}: {response.text[:300]}")
    if call.lists and environment not in response.text:
        found.append(f"{call.method} {call.url} does not show {environment}")


def test_a_limited_token_cannot_read_another_environments_version_from_the_snapshots(
    released_app, open_client, repo
):
    """With git away, versions are found among the released ones, and only among those
    released where the token may look: v2, released in production alone, is not staging's."""
    registry = released_app.state.ctx.registry
    v2 = registry.library.get(TRIAGE, "v2")
    registry.releases.promote(v2, "production", actor="lead", confirmed=True)
    registry.serving.load_all()
    tokens = TokenService(registry.database)
    staging, _ = tokens.create("staging-reader", "read", "staging")
    anywhere, _ = tokens.create("reader", "read")
    registry.serving.load_all()
    client = open_client(released_app)
    shutil.rmtree(repo.path / ".git")
    url = f"{P}/versions/{v2.digest[:12]}"

    def get(secret: str) -> httpx.Response:
        return client.get(url, headers={"Authorization": f"Bearer {secret}"})

    assert get(anywhere).json()["digest"] == v2.digest
    refused = get(staging)
    assert refused.status_code == 503, refused.text  # git cannot say, and staging has no v2
    assert v2.digest not in refused.text
    rendered = client.post(
        f"{P}/render",
        json={"version": v2.digest[:12], "variables": {"ticket": "x"}},
        headers={"Authorization": f"Bearer {staging}"},
    )
    assert rendered.status_code == 503, rendered.text


def test_a_limited_metrics_token_learns_nothing_of_another_environments_releases(
    released_app, open_client
):
    """An event for another environment is refused for that alone, before anything of its
    release is looked at: the answer says nothing of what runs there."""
    registry = released_app.state.ctx.registry
    secret, _ = TokenService(registry.database).create("pusher", "metrics:write", "staging")
    registry.serving.load_all()
    client = open_client(released_app)
    probes: list[dict[str, Any]] = [
        {"prompt": "news/summary", "digest": "a" * 64},  # released nowhere
        {"prompt": TRIAGE, "digest": "b" * 64},  # a digest production never served
    ]
    events = [
        {"event_id": f"probe-{n}", "env": "production", "latency_ms": 1, **probe}
        for n, probe in enumerate(probes)
    ]
    answer = client.post(
        "/v1/metrics", json={"events": events}, headers={"Authorization": f"Bearer {secret}"}
    ).json()
    reasons = [r["reason"] for r in answer["results"]]
    assert reasons == ["token 'pusher' is limited to staging, not production"] * 2
