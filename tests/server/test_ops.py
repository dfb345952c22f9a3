"""Operations endpoints: liveness, readiness (database and repository), Prometheus metrics."""

from __future__ import annotations

import re
import shutil

import pytest

from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def counter(metrics: str, method: str, route: str, status: int) -> int:
    """The value of promptctl_http_requests_total for one route and status (0 if absent)."""
    pattern = (
        rf'^promptctl_http_requests_total\{{method="{method}",route="{re.escape(route)}",'
        rf'status="{status}"\}} (\d+)$'
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return int(found.group(1)) if found else 0


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_when_database_and_repository_answer(client, repo):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["checks"]) == ("ready", {"database": "ok", "repository": "ok"})
    # Which commit the clone has: information, not a check (this clone follows no remote).
    git = body["git"]
    assert (git["branch"], git["commit"]) == ("main", repo.git("rev-parse", "main"))
    assert (git["remote"], git["last_fetch_at"], git["last_error"]) == (None, None, None)


@sqlite_only
def test_readyz_is_503_when_the_repository_went_away(client, repo):
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(repo.path / ".git")
    response = client.get("/readyz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "not ready"
    assert data["checks"]["database"] == "ok"
    assert data["checks"]["repository"] != "ok"
    assert client.get("/healthz").status_code == 200  # alive, just not ready


@sqlite_only
def test_readyz_is_503_when_the_repository_was_never_readable(make_settings, open_client, tmp_path):
    not_a_repo = tmp_path / "empty"
    not_a_repo.mkdir()
    client = open_client(create_app(make_settings(repo=not_a_repo)))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "not inside a git repository" in response.json()["checks"]["repository"]


@sqlite_only
def test_released_prompts_are_served_while_the_repository_is_unreadable(client, repo):
    promoted = client.post(f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2"})
    assert promoted.status_code == 200
    shutil.rmtree(repo.path / ".git")
    response = client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "staging"})
    assert (response.status_code, response.json()["label"]) == (200, "v2")
    rendered = client.post(
        f"/v1/prompts/{TRIAGE}/render", json={"env": "staging", "variables": {"ticket": "x"}}
    )
    assert rendered.status_code == 200


@sqlite_only
@pytest.mark.parametrize("removed", ["", ".git", ".git/objects"])
def test_reading_git_while_the_repository_is_gone_is_a_503_with_retry_after(
    client, repo, problem_of, removed
):
    """The clone deleted, its .git or its object database: what needs git is a 503 (try
    again once the clone is back), never a 500 nor a 404 for a version git cannot look at."""
    assert client.get(f"/v1/prompts/{TRIAGE}/versions").status_code == 200
    shutil.rmtree(repo.path / removed)
    # Without its object database the branch is still there, and the numbered versions
    # already read answer from memory; every read of content fails.
    numbering = [] if removed == ".git/objects" else [f"/v1/prompts/{TRIAGE}/versions"]
    for method, path, body in (
        *(("GET", path, None) for path in numbering),
        ("GET", f"/v1/prompts/{TRIAGE}/versions/v2", None),
        ("POST", f"/v1/prompts/{TRIAGE}/promote", {"env": "staging", "ref": "v2"}),
        ("POST", f"/v1/prompts/{TRIAGE}/render", {"version": "v2", "variables": {"ticket": "x"}}),
    ):
        response = client.request(method, path, json=body)
        document = problem_of(response, 503)
        assert document["title"] == "Repository unavailable", path
        assert "cannot read the git repository" in document["detail"]
        assert int(response.headers["retry-after"]) > 0
    assert client.get("/v1/prompts").status_code == 200  # lists what is released


def test_metrics_count_requests_by_route_template_and_status(client):
    client.post(f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v1"})
    for _ in range(3):
        client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "staging"})
    client.get("/v1/prompts/nope/resolve", params={"env": "staging"})
    client.get("/no/such/route")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE promptctl_http_requests_total counter" in text
    resolve = "/v1/prompts/{name:path}/resolve"
    assert counter(text, "GET", resolve, 200) == 3
    assert counter(text, "GET", resolve, 404) == 1
    assert counter(text, "POST", "/v1/prompts/{name:path}/promote", 200) == 1
    assert counter(text, "GET", "unmatched", 404) == 1
    assert f'promptctl_http_request_seconds_count{{route="{resolve}"}} 4' in text
    assert re.search(r"^promptctl_cache_hits \d+", text, re.MULTILINE)
