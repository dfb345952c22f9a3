"""Bad input gets a 4xx RFC 9457 problem document with a clear detail, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
# Request validation does not depend on the database: SQLite only, unless a test says so.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
pytestmark = sqlite_only


@pytest.fixture
def staged(client: TestClient) -> TestClient:
    """triage v1 stable in staging."""
    response = client.post(f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v1"})
    assert response.status_code == 200, response.text
    return client


def test_malformed_json_is_a_400_problem(client, problem_of):
    for action in ("promote", "ramp", "render", "rollback"):
        response = client.post(
            f"/v1/prompts/{TRIAGE}/{action}",
            content=b'{"env": "staging", ',
            headers={"content-type": "application/json"},
        )
        document = problem_of(response, 400)
        assert document["title"] == "Malformed JSON"
        assert "not valid JSON" in document["detail"]
        assert document["instance"] == f"/v1/prompts/{TRIAGE}/{action}"


def test_a_json_body_that_is_not_an_object_is_a_422_problem(client, problem_of):
    response = client.post(f"/v1/prompts/{TRIAGE}/promote", json=["staging"])
    problem_of(response, 422)


def test_a_missing_body_field_is_named_in_the_problem(client, problem_of):
    document = problem_of(client.post(f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging"}), 422)
    assert "weight: Field required" in document["detail"]
    assert document["errors"] == [{"loc": ["body", "weight"], "msg": "Field required"}]


def test_resolve_without_an_environment_is_a_422_problem(client, problem_of):
    document = problem_of(client.get(f"/v1/prompts/{TRIAGE}/resolve"), 422)
    assert "env" in document["detail"]


UNKNOWN_PROMPT_OR_VERSION = [
    ("GET", "/v1/prompts/nope/resolve?env=staging", None, "'nope' has no release in staging"),
    ("GET", "/v1/prompts/nope/release?env=staging", None, "'nope' has no release in staging"),
    ("GET", "/v1/prompts/nope/versions", None, "unknown prompt 'nope'"),
    ("GET", "/v1/prompts/nope/versions/v1", None, "'nope'"),
    ("GET", f"/v1/prompts/{TRIAGE}/versions/v9", None, "has no version 'v9'"),
    ("GET", f"/v1/prompts/{TRIAGE}/versions/no-such-branch", None, "no version"),
    ("POST", "/v1/prompts/nope/render", {"env": "staging"}, "'nope' has no release"),
    ("POST", "/v1/prompts/nope/render", {"version": "v1"}, "has no version 'v1'"),
    ("POST", "/v1/prompts/nope/promote", {"env": "staging"}, "unknown prompt 'nope'"),
    ("POST", f"/v1/prompts/{TRIAGE}/promote", {"env": "staging", "ref": "v9"}, "'v9'"),
    ("POST", "/v1/prompts/nope/rollback", {"env": "staging"}, "'nope' has no release"),
]


def test_an_unknown_prompt_or_version_is_a_404_problem(staged, problem_of):
    for method, path, body, expected in UNKNOWN_PROMPT_OR_VERSION:
        document = problem_of(staged.request(method, path, json=body), 404)
        assert expected in document["detail"], path


UNKNOWN_ENVIRONMENT = [
    ("GET", f"/v1/prompts/{TRIAGE}/resolve?env=qa", None),
    ("GET", f"/v1/prompts/{TRIAGE}/release?env=qa", None),
    ("POST", f"/v1/prompts/{TRIAGE}/render", {"env": "qa", "variables": {"ticket": "x"}}),
    ("POST", f"/v1/prompts/{TRIAGE}/promote", {"env": "qa", "ref": "v1"}),
    ("POST", f"/v1/prompts/{TRIAGE}/ramp", {"env": "qa", "weight": 5}),
    ("POST", f"/v1/prompts/{TRIAGE}/rollback", {"env": "qa"}),
    ("GET", "/v1/releases?env=qa", None),
    ("GET", f"/v1/prompts/{TRIAGE}/history?env=qa", None),
    ("PATCH", "/v1/environments/qa", {"protected": True}),
]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"---\ndescription: x\n---\nhello \x00\x01\x02\n", "binary file"),
        ("---\ndescription: caf\u00e9\n---\nhello\n".encode("latin-1"), "not valid UTF-8"),
    ],
)
def test_a_prompt_file_that_is_not_utf8_text_is_a_422_problem_naming_it(
    client, repo, problem_of, content, problem
):
    (repo.path / "prompts" / "broken.prompt").write_bytes(content)
    repo.commit("a prompt that is not text")
    for response in (
        client.get("/v1/prompts/broken/versions/HEAD"),
        client.post("/v1/prompts/broken/render", json={"version": "HEAD", "variables": {}}),
    ):
        document = problem_of(response, 422)
        assert document["title"] == "Invalid prompt file"
        assert "broken.prompt" in document["detail"]
        assert problem in document["detail"]


def test_an_unknown_environment_is_a_404_problem_naming_the_known_ones(staged, problem_of):
    for method, path, body in UNKNOWN_ENVIRONMENT:
        document = problem_of(staged.request(method, path, json=body), 404)
        assert document["detail"] == (
            "unknown environment 'qa' (environments: development, staging, production)"
        ), path


def test_an_invalid_prompt_name_is_a_4xx_problem(client, problem_of):
    response = client.get("/v1/prompts/Bad Name/versions")
    assert 400 <= response.status_code < 500
    assert "invalid prompt name 'Bad Name'" in problem_of(response, response.status_code)["detail"]


def test_variables_that_do_not_validate_are_a_422_problem(staged, problem_of):
    for variables, expected in (
        ({}, "'ticket' is required"),
        ({"ticket": 5}, "'ticket': expected string, got integer"),
        ({"ticket": "x", "tier": "gold"}, "'tier': \"gold\" is not one of"),
    ):
        for body in ({"env": "staging", "key": "k"}, {"version": "v2"}):
            response = staged.post(
                f"/v1/prompts/{TRIAGE}/render", json={**body, "variables": variables}
            )
            document = problem_of(response, 422)
            assert document["title"] == "Invalid variables"
            assert expected in document["detail"]


def test_render_needs_exactly_one_of_env_and_version(staged, problem_of):
    for body in ({}, {"env": "staging", "version": "v1"}):
        response = staged.post(f"/v1/prompts/{TRIAGE}/render", json={**body, "variables": {}})
        assert "exactly one of 'env'" in problem_of(response, 400)["detail"]


def test_a_ramp_weight_out_of_range_is_a_422_problem_and_changes_nothing(staged, problem_of):
    started = staged.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2", "canary_weight": 5}
    )
    assert started.status_code == 200
    for weight in (-1, 100.5, 1e9, "lots", None):
        response = staged.post(
            f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging", "weight": weight}
        )
        assert "weight" in problem_of(response, 422)["detail"], weight
    released = staged.get("/v1/releases", params={"prompt": TRIAGE, "env": "staging"}).json()
    assert (released[0]["revision"], released[0]["weight_bp"]) == (2, 500)


def test_a_canary_weight_out_of_range_is_a_422_problem(staged, problem_of):
    response = staged.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2", "canary_weight": 150}
    )
    assert "canary_weight" in problem_of(response, 422)["detail"]


def test_a_weight_finer_than_a_basis_point_is_a_400_problem(staged, problem_of):
    staged.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2", "canary_weight": 5}
    )
    response = staged.post(f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging", "weight": 1.234})
    assert "more than two decimals" in problem_of(response, 400)["detail"]


@pytest.fixture
def small_limit_api(make_settings, open_client) -> TestClient:
    return open_client(create_app(make_settings(max_body_bytes=1000)))


def test_a_body_over_the_size_limit_is_a_413_problem(small_limit_api, problem_of):
    response = small_limit_api.post(
        f"/v1/prompts/{TRIAGE}/render",
        json={"version": "v1", "variables": {"ticket": "x" * 5000}},
    )
    assert "over the limit of 1000 bytes" in problem_of(response, 413)["detail"]


def test_a_streamed_body_over_the_size_limit_is_a_413_problem(small_limit_api, problem_of):
    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"version": "v1", "variables": {"ticket": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}}'

    response = small_limit_api.post(
        f"/v1/prompts/{TRIAGE}/render",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "over the limit of 1000 bytes" in problem_of(response, 413)["detail"]


def test_a_body_under_the_size_limit_is_served(small_limit_api):
    response = small_limit_api.post(
        f"/v1/prompts/{TRIAGE}/render", json={"version": "v1", "variables": {"ticket": "hi"}}
    )
    assert response.status_code == 200, response.text


WRITES = ("post", "put", "patch", "delete")


def write_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every write in the OpenAPI document, as (method, a path that names a real thing)."""
    paths = client.get("/openapi.json").json()["paths"]
    filled = {"/v1/environments/{name}": "/v1/environments/staging"}
    return [
        (method.upper(), filled.get(path, path.replace("{name}", TRIAGE)))
        for path, operations in paths.items()
        for method in operations
        if method in WRITES
    ]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_every_write_without_a_json_content_type_is_a_415_problem(
    staged, problem_of, content_type
):
    """What a web page can send to a local server without a CORS preflight is refused, so a
    browser cannot be made to change releases or push metrics (CSRF)."""
    writes = write_operations(staged)
    assert len(writes) >= 10
    body = b'{"env": "staging", "ref": "v2", "confirm": true, "events": []}'  # JSON all the same
    headers = {"content-type": content_type} if content_type else {}
    for method, path in writes:
        response = staged.request(method, path, content=body, headers=headers)
        document = problem_of(response, 415)
        assert document["title"] == "Unsupported media type"
        assert "Content-Type: application/json" in document["detail"], path
    [state] = staged.get("/v1/releases", params={"env": "staging"}).json()
    assert (state["stable"]["label"], state["revision"]) == ("v1", 1)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"],
)
def test_a_json_content_type_with_parameters_or_a_json_suffix_is_accepted(
    staged, content_type
):
    response = staged.post(
        f"/v1/prompts/{TRIAGE}/promote",
        content=b'{"env": "staging", "ref": "v2"}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 200, response.text


def test_an_unknown_route_is_a_404_problem(client, problem_of):
    document = problem_of(client.get("/v2/nothing/here"), 404)
    assert document["detail"] == "no endpoint at /v2/nothing/here"


def test_a_wrong_method_is_a_405_problem(client, problem_of):
    problem_of(client.delete("/v1/releases"), 405)
