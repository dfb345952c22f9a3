"""The compatibility gate and tolerant rendering over HTTP: a canary that breaks callers of
stable is a 409 naming each incompatibility unless the body says `allow_breaking`, and
render answers name the variables a version ignored (a strict prompt refuses them)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

REPLY = "support/reply"
STRICT = "support/strict"
ENV = "staging"


def reply(extra: str = "", *, strict: bool = False) -> str:
    return (
        "---\n"
        + ("strict: true\n" if strict else "")
        + "input:\n  ticket: {type: string}\n"
        + extra
        + "---\n"
        '{% message "user" %}{{ ticket }}{% endmessage %}\n'
    )


def _build(repo) -> None:
    repo.commit("reply v1, strict v1", {
        "prompts/support/reply.prompt": reply(),
        "prompts/support/strict.prompt": reply(strict=True),
    })
    repo.commit("reply v2: audience required", {
        "prompts/support/reply.prompt": reply("  audience: {type: string}\n"),
    })
    repo.commit("reply v3: audience optional", {
        "prompts/support/reply.prompt": reply("  audience: {type: string, default: all}\n"),
    })


@pytest.fixture
def repo(built_repo):
    """support/reply v1..v3 (v2 requires `audience`, v3 takes it optionally) and
    support/strict v1 (`strict: true`)."""
    return built_repo("server-compatibility", _build)


@pytest.fixture
def released(client: TestClient) -> TestClient:
    """reply v1 and strict v1 stable in staging."""
    for name in (REPLY, STRICT):
        response = client.post(f"/v1/prompts/{name}/promote", json={"env": ENV, "ref": "v1"})
        assert response.status_code == 200, response.text
    return client


def promote(client: TestClient, **body: Any):
    return client.post(f"/v1/prompts/{REPLY}/promote", json={"env": ENV, **body})


def test_a_breaking_canary_is_a_409_problem_naming_each_incompatibility(released, problem_of):
    document = problem_of(promote(released, ref="v2", canary_weight=10), 409)
    assert document["title"] == "Incompatible version"
    assert document["detail"] == (
        "support/reply@v2 cannot start as canary in staging: against v1 (stable): new "
        "required variable 'audience' without a default: callers do not send it yet "
        "(--allow-breaking to release it anyway)"
    )
    states = released.get("/v1/releases", params={"prompt": REPLY, "env": ENV}).json()
    assert (states[0]["revision"], states[0]["canary"]) == (1, None)


def test_allow_breaking_starts_the_canary_and_the_history_says_what_it_let_through(released):
    response = promote(released, ref="v2", canary_weight=10, allow_breaking=True, reason="ok")
    assert response.status_code == 200, response.text
    assert response.json()["canary"]["label"] == "v2"
    [entry, first] = released.get(f"/v1/prompts/{REPLY}/history", params={"env": ENV}).json()
    assert entry["allowed_breaking"] == [
        "against v1 (stable): new required variable 'audience' without a default: callers "
        "do not send it yet"
    ]
    assert first["allowed_breaking"] == []


def test_a_canary_with_a_new_optional_variable_needs_no_allowance(released):
    response = promote(released, ref="v3", canary_weight=50)
    assert response.status_code == 200, response.text


def test_allow_breaking_must_be_a_boolean(released, problem_of):
    document = problem_of(promote(released, ref="v2", canary_weight=10, allow_breaking="yes"), 422)
    assert "allow_breaking" in document["detail"]


def test_render_answers_name_the_variables_a_version_ignored(released):
    for body in ({"version": "v1"}, {"env": ENV, "key": "k"}):
        response = released.post(
            f"/v1/prompts/{REPLY}/render",
            json={**body, "variables": {"ticket": "hi", "audience": "ops", "tone": "calm"}},
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["messages"] == [{"role": "user", "content": "hi"}]
        assert answer["ignored"] == ["audience", "tone"]


def test_a_render_with_only_declared_variables_ignores_nothing(released):
    response = released.post(
        f"/v1/prompts/{REPLY}/render", json={"version": "v1", "variables": {"ticket": "hi"}}
    )
    assert response.json()["ignored"] == []


def test_a_strict_prompt_refuses_a_variable_it_does_not_declare(released, problem_of):
    response = released.post(
        f"/v1/prompts/{STRICT}/render",
        json={"env": ENV, "variables": {"ticket": "hi", "audience": "ops"}},
    )
    document = problem_of(response, 422)
    assert document["title"] == "Invalid variables"
    assert "'audience' is not declared (declared: ticket)" in document["detail"]
