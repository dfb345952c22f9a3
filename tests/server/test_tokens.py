"""API tokens: every /v1 request needs one, scopes and environments limit it, revocation
takes effect within the poll interval, and the CLI stores only the hash."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from support import wait_until

from promptctl.cli.main import cli
from promptctl.registry.auth import TokenService
from promptctl.registry.errors import ConfigError
from promptctl.registry.store.models import ApiToken
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def guarded_app(make_settings) -> FastAPI:
    """An app with tokens on, triage v1 stable in staging and production."""
    app = create_app(make_settings(tokens=True))
    ctx = app.state.ctx
    version = ctx.registry.library.get(TRIAGE, "v1")
    for env in ("staging", "production"):
        ctx.registry.releases.promote(version, env, actor="setup", confirmed=True)
    ctx.cache.load_all()
    return app


@pytest.fixture
def guarded(guarded_app, open_client) -> TestClient:
    return open_client(guarded_app)


def issue(app: FastAPI, scope: str, env: str | None = None, name: str | None = None) -> str:
    """Create a token in the app's database and let the app know it; return the secret."""
    ctx = app.state.ctx
    secret, _ = TokenService(ctx.registry.database).create(
        name or f"{scope}-{env or 'any'}", scope, env
    )
    ctx.cache.load_all()
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


V1_REQUESTS = [
    ("GET", "/v1/prompts", None),
    ("GET", f"/v1/prompts/{TRIAGE}/versions", None),
    ("GET", f"/v1/prompts/{TRIAGE}/versions/v1", None),
    ("GET", f"/v1/prompts/{TRIAGE}/resolve?env=staging", None),
    ("GET", f"/v1/prompts/{TRIAGE}/release?env=staging", None),
    ("POST", f"/v1/prompts/{TRIAGE}/render", {"env": "staging", "variables": {"ticket": "x"}}),
    ("POST", f"/v1/prompts/{TRIAGE}/promote", {"env": "staging", "ref": "v2"}),
    ("POST", f"/v1/prompts/{TRIAGE}/rollback", {"env": "staging"}),
    ("GET", "/v1/releases", None),
    ("GET", f"/v1/prompts/{TRIAGE}/history", None),
    ("GET", "/v1/environments", None),
    ("POST", "/v1/environments", {"name": "qa"}),
]


def test_every_v1_request_without_a_token_is_401_with_www_authenticate(guarded, problem_of):
    for method, path, body in V1_REQUESTS:
        response = guarded.request(method, path, json=body)
        document = problem_of(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        assert "needs an API token" in document["detail"]
    assert guarded.get("/v1/releases").status_code == 401
    states = guarded.app.state.ctx.registry.releases.status(TRIAGE, "staging")
    assert states[0].revision == 1  # the refused promote and rollback stored nothing


@sqlite_only
def test_an_unknown_or_malformed_token_is_401(guarded, problem_of):
    for header in ("Bearer pct_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "pct_bare"):
        response = guarded.get("/v1/prompts", headers={"Authorization": header})
        problem_of(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), header


@sqlite_only
@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.0.2.10", "::ffff:192.0.2.10", "example.com", ""]
)
def test_an_app_without_tokens_refuses_any_host_but_loopback(make_settings, host):
    """The rule is the app's own, so an application that builds it for uvicorn or gunicorn
    itself cannot open it to the network by mistake (`promptctl serve` says the same)."""
    refused = f"refusing to listen on {re.escape(host)} without tokens"
    with pytest.raises(ConfigError, match=refused) as caught:
        create_app(make_settings(host=host))
    assert "--tokens" in str(caught.value)
    assert caught.value.status == 422


@sqlite_only
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"]
)
def test_an_app_without_tokens_listens_on_loopback(make_settings, host):
    create_app(make_settings(host=host)).state.ctx.registry.close()


@sqlite_only
def test_an_app_with_tokens_may_listen_on_any_host(make_settings):
    create_app(make_settings(host="0.0.0.0", tokens=True)).state.ctx.registry.close()


# The operations endpoints besides /healthz: scrapers, load balancers and API docs.
OPS = [
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/static/favicon.svg",
]


def test_operations_endpoints_need_no_token_by_default(guarded):
    for path in ["/healthz", *OPS]:
        assert guarded.get(path).status_code == 200, path


@sqlite_only
def test_with_open_ops_off_operations_endpoints_need_a_token_with_read(
    make_settings, open_client, problem_of
):
    app = create_app(make_settings(tokens=True, open_ops=False))
    client = open_client(app)
    assert client.get("/healthz").status_code == 200  # liveness stays open
    for path in OPS:
        response = client.get(path)
        assert "needs an API token" in problem_of(response, 401)["detail"], path
        assert response.headers["www-authenticate"].startswith("Bearer"), path
    allowed = [("read", None), ("read", "staging"), ("release", "production"), ("admin", None)]
    for scope, env in allowed:
        headers = bearer(issue(app, scope, env, name=f"{scope}-{env}"))
        for path in OPS:
            assert client.get(path, headers=headers).status_code == 200, (scope, env, path)
    metrics_only = bearer(issue(app, "metrics:write"))
    for path in OPS:
        problem_of(client.get(path, headers=metrics_only), 403)


@sqlite_only
def test_open_ops_off_changes_nothing_without_tokens(make_settings, open_client):
    client = open_client(create_app(make_settings(open_ops=False)))
    for path in OPS:
        assert client.get(path).status_code == 200, path


def test_a_read_token_reads_but_may_not_release(guarded_app, guarded, problem_of):
    headers = bearer(issue(guarded_app, "read"))
    for method, path, body in V1_REQUESTS[:6] + V1_REQUESTS[8:11]:
        response = guarded.request(method, path, json=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
    for method, path, body in (V1_REQUESTS[6], V1_REQUESTS[7], V1_REQUESTS[11]):
        document = problem_of(guarded.request(method, path, json=body, headers=headers), 403)
        assert "has scope 'read'" in document["detail"]


def test_a_metrics_token_may_not_read_prompts(guarded_app, guarded, problem_of):
    headers = bearer(issue(guarded_app, "metrics:write"))
    response = guarded.get(f"/v1/prompts/{TRIAGE}/resolve?env=staging", headers=headers)
    assert "this needs 'read'" in problem_of(response, 403)["detail"]


def test_a_token_limited_to_an_environment_is_refused_in_another(guarded_app, guarded, problem_of):
    headers = bearer(issue(guarded_app, "read", "staging"))
    url = f"/v1/prompts/{TRIAGE}/resolve"
    assert guarded.get(url, params={"env": "staging"}, headers=headers).status_code == 200
    refused = guarded.get(url, params={"env": "production"}, headers=headers)
    assert "limited to staging, not production" in problem_of(refused, 403)["detail"]
    release = guarded.get(f"/v1/prompts/{TRIAGE}/release?env=production", headers=headers)
    problem_of(release, 403)


def test_a_release_token_changes_unprotected_environments_as_its_name(guarded_app, guarded):
    headers = bearer(issue(guarded_app, "release", name="ci"))
    response = guarded.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["updated_by"] == "token:ci"
    served = guarded.get(f"/v1/prompts/{TRIAGE}/resolve?env=staging", headers=headers).json()
    assert served["label"] == "v2"


def test_a_general_release_token_may_not_touch_a_protected_environment(
    guarded_app, guarded, problem_of
):
    headers = bearer(issue(guarded_app, "release"))
    for action, body in (
        ("promote", {"env": "production", "ref": "v2", "confirm": True}),
        ("rollback", {"env": "production"}),
    ):
        response = guarded.post(f"/v1/prompts/{TRIAGE}/{action}", json=body, headers=headers)
        assert "production is protected" in problem_of(response, 403)["detail"]
    assert guarded_app.state.ctx.registry.releases.status(TRIAGE, "production")[0].revision == 1


@pytest.mark.parametrize(("scope", "env"), [("release", "production"), ("admin", None)])
def test_a_protected_environment_accepts_admin_or_a_release_token_limited_to_it(
    guarded_app, guarded, scope, env
):
    headers = bearer(issue(guarded_app, scope, env))
    # The token itself is the confirmation: no `confirm` in the body.
    response = guarded.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "production", "ref": "v2"}, headers=headers
    )
    assert response.status_code == 200, response.text
    served = guarded.get(f"/v1/prompts/{TRIAGE}/resolve?env=production", headers=headers)
    assert served.json()["label"] == "v2"


@sqlite_only
def test_a_release_token_limited_to_production_may_not_touch_staging(
    guarded_app, guarded, problem_of
):
    headers = bearer(issue(guarded_app, "release", "production"))
    response = guarded.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2"}, headers=headers
    )
    assert "limited to production" in problem_of(response, 403)["detail"]


@sqlite_only
def test_only_an_admin_token_manages_environments(guarded_app, guarded, problem_of):
    release = bearer(issue(guarded_app, "release"))
    refused = guarded.post("/v1/environments", json={"name": "qa"}, headers=release)
    assert "this needs 'admin'" in problem_of(refused, 403)["detail"]
    admin = bearer(issue(guarded_app, "admin"))
    assert guarded.post("/v1/environments", json={"name": "qa"}, headers=admin).status_code == 201


def test_a_revoked_token_stops_working_within_the_poll_interval(guarded_app, guarded):
    headers = bearer(issue(guarded_app, "read", name="dashboard"))
    url = f"/v1/prompts/{TRIAGE}/resolve?env=staging"
    assert guarded.get(url, headers=headers).status_code == 200
    # Revoked in the database, as `promptctl token revoke` on another machine does: this
    # app only learns of it from its poller (poll_interval 0.2 s), without a restart.
    TokenService(guarded_app.state.ctx.registry.database).revoke("dashboard")
    wait_until(lambda: guarded.get(url, headers=headers).status_code == 401, timeout=5.0)
    assert guarded.get(url, headers=headers).headers["www-authenticate"].startswith("Bearer")


def run_cli(database_url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--database-url", database_url, *args])
    return result


def test_a_token_created_with_the_cli_is_printed_once_and_stored_hashed(migrated_database_url):
    created = run_cli(
        migrated_database_url, "token", "create", "--name", "ci", "--scope", "release"
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("pct_")
    assert len(created.stdout.splitlines()) == 1
    assert "shown only now" in created.stderr
    assert secret not in created.stderr

    engine = create_engine(migrated_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(ApiToken)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert (row["name"], row["scope"], row["environment"]) == ("ci", "release", None)
    assert all(secret not in str(value) for value in row.values())
    assert secret.startswith(row["prefix"])
    assert len(row["prefix"]) < len(secret) // 3

    listed = run_cli(migrated_database_url, "token", "list")
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout
    assert secret not in listed.stdout


def test_a_cli_token_works_on_the_server_until_the_cli_revokes_it(
    make_settings, migrated_database_url, open_client
):
    created = run_cli(
        migrated_database_url,
        "token",
        "create",
        "--name",
        "deploy",
        "--scope",
        "release",
        "--env",
        "staging",
    )
    assert created.exit_code == 0, created.output
    headers = bearer(created.stdout.strip())
    guarded = open_client(create_app(make_settings(tokens=True)))
    promoted = guarded.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v1"}, headers=headers
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["updated_by"] == "token:deploy"

    revoked = run_cli(migrated_database_url, "token", "revoke", "deploy")
    assert revoked.exit_code == 0, revoked.output
    assert "revoked token" in revoked.stdout
    url = f"/v1/prompts/{TRIAGE}/resolve?env=staging"
    wait_until(lambda: guarded.get(url, headers=headers).status_code == 401, timeout=5.0)


@sqlite_only
def test_the_cli_refuses_a_token_for_an_unknown_environment_in_one_line(migrated_database_url):
    result = run_cli(
        migrated_database_url, "token", "create", "--name", "x", "--scope", "read", "--env", "qa"
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: unknown environment 'qa' (environments: development, staging, production)"
    ]
