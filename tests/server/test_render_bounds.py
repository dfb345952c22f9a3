"""Hostile templates over HTTP: a 422 naming the limit, a bounded render pool, and resolve
answering throughout."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from support import promptctl_command

from promptctl.server.app import create_app

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOOPS = (
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done\n"
)
GREET = "---\ninput: {name: string}\n---\nHello {{ name }}.\n"


@pytest.fixture
def repo(git_repo):
    """A greeting and two hostile prompts."""
    git_repo.commit(
        "a greeting and two hostile prompts",
        {
            "prompts/greet.prompt": GREET,
            "prompts/loops.prompt": LOOPS,
            "prompts/power.prompt": "{{ (9**200000000) > 1 }}\n",
        },
    )
    return git_repo


@pytest.fixture
def bounded_app(make_settings, open_client) -> TestClient:
    """A client of an app with tight render limits, greet stable in staging."""
    app = create_app(
        make_settings(render_timeout_seconds=0.3, render_workers=2, render_queue_seconds=0.5)
    )
    client = open_client(app)
    ctx = app.state.ctx
    version = ctx.registry.library.get("greet", "HEAD")
    ctx.registry.releases.promote(version, "staging", actor="test", confirmed=True)
    ctx.cache.refresh_release("greet", "staging")
    return client


@sqlite_only
def test_a_folding_bomb_is_a_422_naming_the_limit(bounded_app, problem_of):
    answer = bounded_app.post("/v1/prompts/power/render", json={"version": "HEAD"})
    problem = problem_of(answer, 422)
    assert problem["title"] == "Render limit exceeded"
    assert "prompts/power.prompt:1" in problem["detail"]
    assert "render limit 'max_value_chars'" in problem["detail"]


@sqlite_only
def test_concurrent_loop_renders_never_stall_resolve(bounded_app):
    with ThreadPoolExecutor(max_workers=45) as pool:
        renders = [
            pool.submit(
                bounded_app.post, "/v1/prompts/loops/render", json={"version": "HEAD"}
            )
            for _ in range(45)
        ]
        resolves = []
        while not all(r.done() for r in renders):
            resolves.append(bounded_app.get("/v1/prompts/greet/resolve?env=staging"))
        answers = [r.result() for r in renders]
    assert resolves, "resolve was called while the renders ran"
    assert {r.status_code for r in resolves} == {200}
    statuses = {r.status_code for r in answers}
    assert statuses <= {422, 503}
    stopped = [r.json() for r in answers if r.status_code == 422]
    busy = [r for r in answers if r.status_code == 503]
    assert stopped, "some renders ran and were stopped at the time limit"
    assert all("render limit 'timeout_seconds'" in p["detail"] for p in stopped)
    assert all(r.headers["retry-after"] == "1" for r in busy)
    # Once the storm passes, an ordinary render gets a worker again.
    fine = bounded_app.post(
        "/v1/prompts/greet/render", json={"env": "staging", "variables": {"name": "Ada"}}
    )
    assert fine.status_code == 200
    assert fine.json()["text"] == "Hello Ada."


def test_lint_of_a_folding_bomb_ends_with_the_limit_named(git_repo):
    bomb = "---\ninput: {n: integer}\nsamples: [{n: 1}]\n---\n{{ (9**200000000) > n }}\n"
    git_repo.commit("bomb", {"prompts/power.prompt": bomb})
    command = promptctl_command()
    # The timeout only guards the suite against a hang; no duration is asserted.
    result = subprocess.run(
        [*command, "--repo", str(git_repo.path), "lint"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "prompts/power.prompt" in result.stdout + result.stderr
    assert "render limit 'max_value_chars'" in result.stdout + result.stderr
