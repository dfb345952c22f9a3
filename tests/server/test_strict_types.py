"""Request bodies are typed strictly: no boolean as a number, no number as a boolean or a
string. A loose type is a 422 naming the field, and nothing changes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def repo(git_repo):
    """greet v1 and v2."""
    git_repo.commit("greet", {"prompts/greet.prompt": "Hello.\n"})
    git_repo.commit("greet 2", {"prompts/greet.prompt": "Hello again.\n"})
    return git_repo


@pytest.fixture
def strict_api(client: TestClient) -> TestClient:
    """The client, with greet v1 stable and v2 a 5% canary in staging."""
    for body in ({"ref": "HEAD~1"}, {"ref": "HEAD", "canary_weight": 5}):
        promoted = client.post("/v1/prompts/greet/promote", json={"env": "staging", **body})
        assert promoted.status_code == 200, promoted.text
    return client


@sqlite_only
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/prompts/greet/ramp", {"env": "staging", "weight": True}, "weight"),
        ("/v1/prompts/greet/ramp", {"env": "staging", "weight": "50"}, "weight"),
        ("/v1/prompts/greet/promote", {"env": "staging", "force": 1}, "force"),
        ("/v1/prompts/greet/promote", {"env": 7}, "env"),
        ("/v1/prompts/greet/render", {"env": "staging", "key": 42}, "key"),
    ],
)
def test_a_loose_type_is_a_422_naming_the_field_and_changes_nothing(
    strict_api, problem_of, path, body, field
):
    before = strict_api.get("/v1/prompts/greet/release?env=staging").json()
    problem = problem_of(strict_api.post(path, json=body), 422)
    assert field in problem["detail"]
    assert strict_api.get("/v1/prompts/greet/release?env=staging").json() == before


@sqlite_only
def test_an_environment_is_not_protected_by_a_number(strict_api, problem_of):
    problem = problem_of(strict_api.patch("/v1/environments/staging", json={"protected": 0.0}), 422)
    assert "protected" in problem["detail"]
    environments = {e["environment"]: e for e in strict_api.get("/v1/environments").json()}
    assert environments["staging"]["protected"] is False


@sqlite_only
def test_integers_still_count_as_numbers(strict_api):
    ramped = strict_api.post("/v1/prompts/greet/ramp", json={"env": "staging", "weight": 50})
    assert ramped.status_code == 200, ramped.text
    assert ramped.json()["weight_bp"] == 5000
