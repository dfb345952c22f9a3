"""`promptctl serve` on a real socket, called with httpx and driven by the CLI's release
commands through PROMPTCTL_SERVER."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from support import ServeProcess, promptctl_command, serving, wait_until

from promptctl.cli.main import cli
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def start_server(repo, migrated_database_url) -> Iterator[Callable[..., str]]:
    """Start `promptctl serve --port 0` over repo and this test's database; return its base
    URL. Every server started is stopped after the test."""
    servers: list[ServeProcess] = []

    def start(*options: str) -> str:
        server = ServeProcess(
            [
                *promptctl_command(),
                "--repo",
                str(repo.path),
                "--database-url",
                migrated_database_url,
                "serve",
                "--port",
                "0",
                *options,
            ],
            env=dict(os.environ),
        )
        servers.append(server)
        return server.wait_started()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def serve_in_thread(make_settings) -> Iterator[Callable[..., str]]:
    """Serve create_app(settings) with uvicorn in a thread on a port of its own; return its
    base URL. Cheaper than a subprocess; `promptctl serve` itself is covered above."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            return stack.enter_context(serving(create_app(make_settings(**overrides))))

        yield start


@pytest.fixture
def remote(repo, monkeypatch) -> Callable[..., Result]:
    """Run the CLI in-process with PROMPTCTL_SERVER (set by the test) and no local database."""

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--repo", str(repo.path), *args])

    return run


@sqlite_only
def test_a_served_app_answers_health_readiness_resolve_and_metrics_over_a_socket(start_server):
    base = start_server()
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        promoted = http.post(f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2"})
        assert promoted.status_code == 200, promoted.text
        resolved = http.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "staging"})
        assert resolved.json()["label"] == "v2"
        etag = resolved.headers["etag"]
        again = http.get(
            f"/v1/prompts/{TRIAGE}/resolve",
            params={"env": "staging"},
            headers={"If-None-Match": etag},
        )
        assert again.status_code == 304
        missing = http.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        metrics = http.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    resolve = "/v1/prompts/{name:path}/resolve"
    assert f'promptctl_http_requests_total{{method="GET",route="{resolve}",status="200"}} 1' in text
    assert f'promptctl_http_requests_total{{method="GET",route="{resolve}",status="304"}} 1' in text
    assert 'promptctl_http_requests_total{method="GET",route="unmatched",status="404"} 1' in text


@sqlite_only
def test_a_500_answers_a_problem_and_leaves_the_keep_alive_connection_open(make_settings):
    app = create_app(make_settings())

    def broken(**_: object) -> list:
        raise RuntimeError("a bug")

    app.state.ctx.registry.environments = broken
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        failed = http.get("/v1/environments")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/problem+json"
        assert failed.json()["detail"] == "unexpected RuntimeError; see server log"
        assert failed.headers.get("connection") != "close"
        local = failed.extensions["network_stream"].get_extra_info("client_addr")
        for _ in range(3):
            after = http.get("/healthz")
            assert after.status_code == 200
            # the same socket: the server did not close it after the 500
            assert after.extensions["network_stream"].get_extra_info("client_addr") == local


def test_cli_release_commands_act_through_the_server(
    serve_in_thread, remote, monkeypatch, repo
):
    base = serve_in_thread()
    monkeypatch.setenv("PROMPTCTL_SERVER", base)

    first = remote("promote", f"{TRIAGE}@v1", "--env", "staging", "--reason", "first")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"{TRIAGE}: v1 (")
    assert first.stdout.rstrip().endswith("is stable in staging")
    second = remote("promote", f"{TRIAGE}@v2", "--env", "staging")
    assert second.exit_code == 0, second.output

    status = remote("status", TRIAGE, "--env", "staging", "--json")
    assert status.exit_code == 0, status.output
    [state] = json.loads(status.stdout)
    assert (state["stable"]["label"], state["revision"]) == ("v2", 2)
    assert state["updated_by"] == "Test Author <author@example.com>"

    rolled = remote("rollback", TRIAGE, "--env", "staging")
    assert rolled.exit_code == 0, rolled.output
    assert "rolled back, v1 (" in rolled.stdout

    history = remote("history", TRIAGE, "--json")
    assert [e["action"] for e in json.loads(history.stdout)] == ["rollback", "promote", "promote"]
    assert json.loads(history.stdout)[-1]["reason"] == "first"

    # The server's own cache changed at once; the CLI never opened a local database.
    resolved = httpx.get(f"{base}/v1/prompts/{TRIAGE}/resolve", params={"env": "staging"})
    assert resolved.json()["label"] == "v1"
    assert not (repo.path / ".promptctl").exists()


@sqlite_only
def test_cli_errors_from_the_server_are_one_line_with_exit_1(
    serve_in_thread, remote, monkeypatch, repo
):
    base = serve_in_thread()
    monkeypatch.setenv("PROMPTCTL_SERVER", base)
    # Once as the installed command, to see exactly what a user sees.
    refused = subprocess.run(
        [*promptctl_command(), "--repo", str(repo.path), "promote", f"{TRIAGE}@v1"]
        + ["--env", "production"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "error: server: production is protected: the change must be confirmed explicitly "
        "(pass --yes to confirm it, or run the command on a terminal to be asked)\n"
    )
    nothing = remote("rollback", TRIAGE, "--env", "staging")
    assert nothing.exit_code == 1
    assert nothing.stderr == f"error: server: '{TRIAGE}' has no release in staging\n"
    # The CLI reads the reference in its own repository, so an unknown one is its own error.
    unknown = remote("promote", f"{TRIAGE}@v9", "--env", "staging")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: prompt 'support/triage' has no version 'v9'")
    assert len(unknown.stderr.splitlines()) == 1
    confirmed = remote("promote", f"{TRIAGE}@v1", "--env", "production", "--yes")
    assert confirmed.exit_code == 0, confirmed.output


def test_cli_reports_an_unreachable_server_in_one_line(remote, monkeypatch):
    monkeypatch.setenv("PROMPTCTL_SERVER", "http://127.0.0.1:9")  # the discard port: closed
    result = remote("status")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot reach the server at http://127.0.0.1:9")


@sqlite_only
def test_a_server_with_tokens_refuses_the_cli_without_one(
    serve_in_thread, remote, monkeypatch, database_url
):
    base = serve_in_thread(tokens=True)
    monkeypatch.setenv("PROMPTCTL_SERVER", base)
    refused = remote("status")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "error: server: this server needs an API token: send 'Authorization: Bearer …'"
    ]
    created = CliRunner().invoke(
        cli,
        ["--database-url", database_url, "token", "create", "--name", "ci", "--scope", "release"],
    )
    assert created.exit_code == 0, created.output
    monkeypatch.setenv("PROMPTCTL_TOKEN", created.stdout.strip())

    # The server learns of the new token from its poller (every 0.2 s).
    wait_until(lambda: remote("status").exit_code == 0, timeout=5.0, what="the new token")
    assert remote("status").exit_code == 0
    promoted = remote("promote", f"{TRIAGE}@v3", "--env", "staging", "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["updated_by"].startswith("token:ci")
    anonymous = httpx.get(f"{base}/v1/prompts/{TRIAGE}/resolve", params={"env": "staging"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_serve_refuses_a_public_host_without_tokens(repo):
    result = subprocess.run(
        [*promptctl_command(), "--repo", str(repo.path), "serve", "--host", "0.0.0.0"]
        + ["--port", "0"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert result.returncode in (1, 2)
    assert result.stderr.startswith("error: refusing to listen on 0.0.0.0 without tokens")
    assert "--tokens" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_any_non_loopback_address_without_tokens(remote):
    # In-process is safe here: were the check gone, binding this documentation-range
    # address would fail at once instead of serving.
    result = remote("serve", "--host", "192.0.2.10", "--port", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: refusing to listen on 192.0.2.10 without tokens")
