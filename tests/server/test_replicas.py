"""Two replicas on one database: a change through one shows in the other within a poll.

PostgreSQL is the production case; the same holds for two processes on one SQLite file
(a server and the CLI on one machine), so both run.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support import wait_until

from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)


@pytest.fixture
def replicas(make_settings, open_client) -> tuple[TestClient, TestClient]:
    """Two apps (two create_app calls) over one database, each polling every 0.2 s."""
    settings = make_settings(poll_interval=0.2)
    return open_client(create_app(settings)), open_client(create_app(settings))


def resolved_label(client: TestClient, env: str, key: str = "k") -> str | None:
    response = client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": env, "key": key})
    return response.json()["label"] if response.status_code == 200 else None


def test_a_promote_through_one_replica_shows_in_the_other(replicas):
    a, b = replicas
    assert resolved_label(b, "staging") is None
    response = a.post(f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2"})
    assert response.status_code == 200, response.text
    assert resolved_label(a, "staging") == "v2"
    wait_until(lambda: resolved_label(b, "staging") == "v2", timeout=5.0)


def test_a_canary_and_a_rollback_through_one_replica_show_in_the_other(replicas):
    a, b = replicas
    for body in ({"env": "staging", "ref": "v1"}, {"env": "staging", "ref": "v3"}):
        assert a.post(f"/v1/prompts/{TRIAGE}/promote", json=body).status_code == 200
    wait_until(lambda: resolved_label(b, "staging") == "v3", timeout=5.0)

    ramped = a.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "staging", "ref": "v2", "canary_weight": 100}
    )
    assert ramped.status_code == 200, ramped.text
    wait_until(lambda: resolved_label(b, "staging", "anyone") == "v2", timeout=5.0)

    assert a.post(f"/v1/prompts/{TRIAGE}/rollback", json={"env": "staging"}).status_code == 200
    wait_until(lambda: resolved_label(b, "staging", "anyone") == "v3", timeout=5.0)
    assert b.get(f"/v1/prompts/{TRIAGE}/release?env=staging").json()["revision"] == 4


def test_a_release_in_an_environment_created_through_one_replica_shows_in_the_other(replicas):
    a, b = replicas
    created = a.post("/v1/environments", json={"name": "eu-prod", "protected": True})
    assert created.status_code == 201
    promoted = a.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "eu-prod", "ref": "v1", "confirm": True}
    )
    assert promoted.status_code == 200, promoted.text
    wait_until(lambda: resolved_label(b, "eu-prod") == "v1", timeout=5.0)
    listed = {p["prompt"]: p for p in b.get("/v1/prompts").json()}
    assert listed[TRIAGE]["releases"]["eu-prod"]["stable"]["label"] == "v1"
