"""Every main route's answer, with real releases, versions, history and metrics, validates
against the schema its OpenAPI operation documents; and the document itself offers the
bearer token, documents no operation's success as an empty or bare object, and keeps the
vocabulary (prompt, environment, weight/weight_bp, created_at)."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_conformance import body_problems

TRIAGE = "support/triage"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def released(client) -> dict[str, Any]:
    """triage v1 stable in staging with v3 a 30 % canary ramped to 40 %, v2 in production;
    a few metric events on staging. Returns the versions by label."""
    for body in (
        {"env": "staging", "ref": "v1"},
        {"env": "staging", "ref": "v3", "canary_weight": 30},
        {"env": "production", "ref": "v2", "confirm": True},
    ):
        assert client.post(f"/v1/prompts/{TRIAGE}/promote", json=body).status_code == 200
    ramped = client.post(f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging", "weight": 40})
    assert ramped.status_code == 200, ramped.text
    versions = client.get(f"/v1/prompts/{TRIAGE}/versions").json()["versions"]
    return {v["label"]: v["digest"] for v in versions}


def conforms(client, method: str, template: str, url: str, **kwargs: Any) -> Any:
    """Call the app; check the answer against the document's operation `template`."""
    response = client.request(method, url, **kwargs)
    document = client.app.openapi()
    found = body_problems(
        document,
        template,
        method,
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )
    assert found == [], f"{method} {url} -> {response.status_code}: {found}\n{response.text}"
    return response


@sqlite_only
def test_main_routes_answer_bodies_that_validate_against_the_document(client, released):
    events = [
        {
            "event_id": f"shape-{i}",
            "prompt": TRIAGE,
            "env": "staging",
            "digest": released[label],
            "latency_ms": 120 + i,
            "input_tokens": 40,
            "output_tokens": 12,
            "quality": 0.8,
            "error": i == 2,
        }
        for i, label in enumerate(("v1", "v3", "v1"))
    ]
    t, u = "/v1/prompts/{name}", f"/v1/prompts/{TRIAGE}"
    staging, variables = {"env": "staging"}, {"ticket": "hi", "extra": 1}
    protect = {"protected": True}
    scores = {"scores": [{"event_id": "shape-0", "quality": 0.4}]}
    by_version, batch = {"version": "v1", "variables": variables}, [*events, {"event_id": "x"}]
    calls = [
        ("GET", f"{t}/resolve", f"{u}/resolve", {"params": {**staging, "key": "u-7"}}, 200),
        ("GET", f"{t}/release", f"{u}/release", {"params": staging}, 200),
        ("POST", f"{t}/render", f"{u}/render", {"json": {**staging, "variables": variables}}, 200),
        ("POST", f"{t}/render", f"{u}/render", {"json": by_version}, 200),
        ("GET", f"{t}/versions", f"{u}/versions", {}, 200),
        ("GET", f"{t}/versions/{{ref}}", f"{u}/versions/v2", {}, 200),
        ("GET", "/v1/prompts", "/v1/prompts", {}, 200),
        ("GET", "/v1/releases", "/v1/releases", {}, 200),
        ("GET", f"{t}/history", f"{u}/history", {}, 200),
        ("GET", "/v1/environments", "/v1/environments", {}, 200),
        ("POST", "/v1/environments", "/v1/environments", {"json": {"name": "qa"}}, 201),
        ("PATCH", "/v1/environments/{name}", "/v1/environments/qa", {"json": protect}, 200),
        ("POST", "/v1/metrics", "/v1/metrics", {"json": {"events": batch}}, 200),
        ("POST", "/v1/metrics/scores", "/v1/metrics/scores", {"json": scores}, 200),
        ("GET", f"{t}/metrics", f"{u}/metrics", {"params": staging}, 200),
        ("GET", "/v1/git", "/v1/git", {}, 200),
        ("GET", "/healthz", "/healthz", {}, 200),
        ("GET", "/readyz", "/readyz", {}, 200),
        ("POST", f"{t}/abort", f"{u}/abort", {"json": staging}, 200),
        # Problems validate against the problem schema like any answer: no remote to fetch,
        # nothing to roll back to, no such environment, no environment given.
        ("POST", "/v1/git/fetch", "/v1/git/fetch", {"json": {}}, 409),
        ("POST", f"{t}/rollback", f"{u}/rollback", {"json": {"env": "production"}}, 409),
        ("GET", f"{t}/resolve", f"{u}/resolve", {"params": {"env": "nowhere"}}, 404),
        ("GET", f"{t}/resolve", f"{u}/resolve", {}, 422),
    ]  # fmt: skip
    for method, template, url, kwargs, expected in calls:
        response = conforms(client, method, template, url, **kwargs)
        assert response.status_code == expected, (method, url, response.text)


@sqlite_only
def test_history_rows_carry_the_weight_before_and_after_even_past_the_limit(client, released):
    rows = client.get(f"/v1/prompts/{TRIAGE}/history", params={"env": "staging", "limit": 1})
    [ramp] = rows.json()
    assert (ramp["action"], ramp["from_weight"], ramp["to_weight"]) == ("ramp", 30, 40)
    assert (ramp["from_weight_bp"], ramp["to_weight_bp"]) == (3000, 4000)
    assert ramp["created_at"].endswith("+00:00")


@sqlite_only
def test_wire_documents_keep_the_keys_older_clients_read(client, released):
    release = client.get(f"/v1/prompts/{TRIAGE}/release", params={"env": "staging"}).json()
    assert release["weight_bp"] == release["canary_weight_bp"] == 4000
    assert release["stable"]["prompt"] == release["stable"]["name"] == TRIAGE
    resolved = client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "production"}).json()
    assert resolved["prompt"] == resolved["name"] == TRIAGE


def test_the_document_offers_the_bearer_token_and_documents_every_answer(client):
    document = client.app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["bearerToken"]
    assert (schemes["bearerToken"]["type"], schemes["bearerToken"]["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path.startswith("/v1/"):
                assert {"bearerToken": []} in operation["security"], where
            ok = [s for s in operation["responses"] if s.startswith("2")]
            assert ok, where
            for status in ok:
                for kind, content in operation["responses"][status]["content"].items():
                    schema = content["schema"]
                    assert schema not in ({}, {"type": "object"}), f"{where} {status} {kind}"


def test_swagger_ui_is_served_with_the_document_it_reads(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    assert "securitySchemes" in client.get("/openapi.json").text
