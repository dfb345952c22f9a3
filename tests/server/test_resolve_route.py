"""The resolve route reads its own parameters (it is the hot path); it must still look and
behave like any other FastAPI route from the outside."""

from __future__ import annotations

import pytest

RESOLVE = "/v1/prompts/{name}/resolve"


@pytest.fixture
def repo(greet_repo):
    """greet v1..v3 and summarize v1 (see conftest.greet_repo)."""
    return greet_repo


def test_the_openapi_document_describes_the_resolve_parameters(client):
    operation = client.get("/openapi.json").json()["paths"][RESOLVE]["get"]
    parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert sorted(parameters) == [("path", "name"), ("query", "env"), ("query", "key")]
    assert parameters[("path", "name")]["required"] is True
    assert parameters[("query", "env")]["required"] is True
    assert parameters[("query", "env")]["description"] == "Environment, e.g. production"
    assert parameters[("query", "key")]["required"] is False
    assert operation["summary"] == "Resolve a prompt in an environment"
    assert operation["tags"] == ["prompts"]
    assert "422" in operation["responses"]


def test_resolve_without_env_names_the_missing_query_parameter(client, promote):
    promote()
    response = client.get("/v1/prompts/greet/resolve", params={"key": "user-1"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"] == "query.env: Field required"
    assert problem["errors"] == [{"loc": ["query", "env"], "msg": "Field required"}]


def test_resolve_takes_the_last_of_repeated_parameters_like_other_routes(client, promote):
    promote(env="staging")
    response = client.get("/v1/prompts/greet/resolve?env=production&env=staging")
    assert response.status_code == 200
    assert response.json()["environment"] == "staging"


@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_resolve_answers_only_get(client, promote, method):
    promote()
    response = client.request(method, "/v1/prompts/greet/resolve", params={"env": "staging"})
    assert response.status_code == 405
