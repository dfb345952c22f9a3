"""The release API over HTTP, on SQLite and PostgreSQL: actions, If-Match, protection, audit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
# For what does not depend on the database (request validation, header parsing).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def act(client: TestClient, action: str, body: dict[str, Any], **headers: str) -> Any:
    """POST a release action on the triage prompt; return the response."""
    return client.post(f"/v1/prompts/{TRIAGE}/{action}", json=body, headers=headers)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def state(client: TestClient, env: str) -> dict[str, Any]:
    states = ok(client.get("/v1/releases", params={"prompt": TRIAGE, "env": env}))
    assert len(states) == 1
    return states[0]


def history(client: TestClient, env: str | None = None) -> list[dict[str, Any]]:
    params = {"env": env} if env else {}
    return ok(client.get(f"/v1/prompts/{TRIAGE}/history", params=params))


def served(client: TestClient, env: str, key: str | None = None) -> dict[str, Any]:
    params = {"env": env, **({"key": key} if key else {})}
    return ok(client.get(f"/v1/prompts/{TRIAGE}/resolve", params=params))


def test_promote_makes_a_version_stable_and_status_and_history_show_it(client):
    promoted = ok(act(client, "promote", {"env": "staging", "ref": "v2", "reason": "first"}))
    assert promoted["stable"]["label"] == "v2"
    assert promoted["revision"] == 1
    assert promoted["updated_by"] == "api (no token)"
    assert state(client, "staging") == promoted
    [entry] = history(client)
    assert (entry["action"], entry["to"]["label"], entry["from"]) == ("promote", "v2", None)
    assert (entry["reason"], entry["revision"], entry["environment"]) == ("first", 1, "staging")


@sqlite_only
def test_promote_without_a_ref_releases_the_tracked_branch_tip(client):
    assert ok(act(client, "promote", {"env": "development"}))["stable"]["label"] == "v3"


def test_a_canary_is_started_ramped_and_completed(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    started = ok(act(client, "promote", {"env": "staging", "ref": "v3", "canary_weight": 10}))
    assert (started["canary"]["label"], started["weight_bp"]) == ("v3", 1000)
    ramped = ok(act(client, "ramp", {"env": "staging", "weight": 62.5}))
    assert (ramped["weight_bp"], ramped["weight"]) == (6250, 62.5)
    completed = ok(act(client, "complete", {"env": "staging"}))
    assert (completed["stable"]["label"], completed["canary"]) == ("v3", None)
    assert completed["revision"] == 4
    rows = [
        (e["action"], e["from_weight_bp"], e["to_weight_bp"], e["from_weight"], e["to_weight"])
        for e in history(client, "staging")
    ]
    assert rows == [
        ("complete", 6250, 0, 62.5, 0),
        ("ramp", 1000, 6250, 10, 62.5),
        ("canary_start", 0, 1000, 0, 10),
        ("promote", 0, 0, 0, 0),
    ]


def test_abort_drops_the_canary_and_every_key_gets_stable(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v3", "canary_weight": 100}))
    assert served(client, "staging", "anyone")["label"] == "v3"
    aborted = ok(act(client, "abort", {"env": "staging", "reason": "latency"}))
    assert (aborted["stable"]["label"], aborted["canary"]) == ("v1", None)
    assert {served(client, "staging", f"k{n}")["label"] for n in range(20)} == {"v1"}
    assert history(client)[0]["action"] == "abort"


def test_rollback_restores_the_previous_stable_then_the_one_before(client):
    for ref in ("v1", "v2", "v3"):
        ok(act(client, "promote", {"env": "staging", "ref": ref}))
    assert ok(act(client, "rollback", {"env": "staging"}))["stable"]["label"] == "v2"
    assert ok(act(client, "rollback", {"env": "staging"}))["stable"]["label"] == "v1"
    assert served(client, "staging")["label"] == "v1"


def test_rollback_with_a_canary_aborts_it(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v2", "canary_weight": 50}))
    rolled = ok(act(client, "rollback", {"env": "staging"}))
    assert (rolled["stable"]["label"], rolled["canary"]) == ("v1", None)
    assert history(client)[0]["action"] == "rollback_canary"


def test_rollback_to_a_given_version_makes_it_stable(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v3"}))
    rolled = ok(act(client, "rollback", {"env": "staging", "to": "release-1"}))
    assert rolled["stable"]["label"] == "v1"
    assert history(client)[0]["action"] == "rollback_to"


def test_promote_from_another_environment_promotes_what_is_stable_there(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v2"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v3", "canary_weight": 5}))
    promoted = ok(
        act(client, "promote", {"env": "production", "from_env": "staging", "confirm": True})
    )
    assert (promoted["stable"]["label"], promoted["canary"]) == ("v2", None)
    assert history(client, "production")[0]["reason"] == "from staging"


def test_status_lists_every_release_and_filters_by_environment(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "development", "ref": "v2"}))
    everything = ok(client.get("/v1/releases"))
    assert [(s["environment"], s["stable"]["label"]) for s in everything] == [
        ("development", "v2"),
        ("staging", "v1"),
    ]
    only = ok(client.get("/v1/releases", params={"env": "staging"}))
    assert [s["environment"] for s in only] == ["staging"]


@sqlite_only
def test_history_is_newest_first_and_honours_the_limit(client):
    for ref in ("v1", "v2", "v3"):
        ok(act(client, "promote", {"env": "staging", "ref": ref}))
    limited = ok(client.get(f"/v1/prompts/{TRIAGE}/history", params={"limit": 2}))
    assert [e["to"]["label"] for e in limited] == ["v3", "v2"]


@sqlite_only
def test_the_actor_comes_from_the_body_or_the_actor_header(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1", "actor": "alice"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v2"}, **{"X-Promptctl-Actor": "bob"}))
    assert [e["actor"] for e in history(client)] == ["bob", "alice"]


def test_if_match_with_the_current_revision_acts(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}, **{"If-Match": '"0"'}))
    promoted = ok(act(client, "promote", {"env": "staging", "ref": "v2"}, **{"If-Match": '"1"'}))
    assert promoted["revision"] == 2


STALE_ACTIONS = [
    ("promote", {"env": "staging", "ref": "v3"}),
    ("promote", {"env": "staging", "ref": "v3", "canary_weight": 20}),
    ("ramp", {"env": "staging", "weight": 30}),
    ("complete", {"env": "staging"}),
    ("abort", {"env": "staging"}),
    ("rollback", {"env": "staging"}),
]


def test_if_match_with_a_stale_revision_is_412_and_stores_nothing(client, problem_of):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v2", "canary_weight": 10}))
    before, log = state(client, "staging"), history(client)
    assert before["revision"] == 2
    for action, body in STALE_ACTIONS:
        refused = act(client, action, body, **{"If-Match": '"1"'})
        document = problem_of(refused, 412)
        assert "revision 2, not 1" in document["detail"], action
        assert state(client, "staging") == before, action
    assert history(client) == log
    cached = ok(client.get(f"/v1/prompts/{TRIAGE}/release", params={"env": "staging"}))
    assert (cached["revision"], cached["weight_bp"]) == (2, 1000)


@sqlite_only
def test_a_weak_or_unquoted_if_match_revision_is_understood(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v2"}, **{"If-Match": "1"}))
    ok(act(client, "promote", {"env": "staging", "ref": "v3"}, **{"If-Match": 'W/"2"'}))
    assert state(client, "staging")["revision"] == 3


@sqlite_only
def test_if_match_that_is_not_a_revision_is_a_bad_request(client, problem_of):
    refused = act(client, "promote", {"env": "staging", "ref": "v1"}, **{"If-Match": '"abc"'})
    assert "If-Match" in problem_of(refused, 400)["detail"]
    assert ok(client.get("/v1/releases")) == []


@sqlite_only
def test_unknown_fields_are_refused_with_a_422_problem(client, problem_of):
    for action, body, field in (
        ("promote", {"env": "staging", "ref": "v1", "weight": 5}, "weight"),
        ("promote", {"env": "staging", "version": "v1"}, "version"),
        ("ramp", {"env": "staging", "weight": 5, "canary": True}, "canary"),
        ("rollback", {"env": "staging", "confirm": True}, "confirm"),
    ):
        document = problem_of(act(client, action, body), 422)
        assert f"{field}: unknown field" in document["detail"], (action, body)
    assert ok(client.get("/v1/releases")) == []


def test_a_protected_environment_refuses_an_unconfirmed_promote(client, problem_of):
    document = problem_of(act(client, "promote", {"env": "production", "ref": "v1"}), 403)
    assert "production is protected" in document["detail"]
    assert ok(client.get("/v1/releases")) == []
    assert history(client) == []
    assert ok(act(client, "promote", {"env": "production", "ref": "v1", "confirm": True}))


def test_canary_changes_in_a_protected_environment_need_confirmation(client, problem_of):
    ok(act(client, "promote", {"env": "production", "ref": "v1", "confirm": True}))
    canary = {"env": "production", "ref": "v2", "canary_weight": 5, "confirm": True}
    ok(act(client, "promote", canary))
    for action, body in (
        ("ramp", {"env": "production", "weight": 50}),
        ("complete", {"env": "production"}),
    ):
        problem_of(act(client, action, body), 403)
        assert state(client, "production")["revision"] == 2
    ok(act(client, "ramp", {"env": "production", "weight": 50, "confirm": True}))
    ok(act(client, "complete", {"env": "production", "confirm": True}))
    assert state(client, "production")["stable"]["label"] == "v2"


def test_abort_and_rollback_in_a_protected_environment_need_no_confirmation(client):
    ok(act(client, "promote", {"env": "production", "ref": "v1", "confirm": True}))
    ok(act(client, "promote", {"env": "production", "ref": "v2", "confirm": True}))
    canary = {"env": "production", "ref": "v3", "canary_weight": 5, "confirm": True}
    ok(act(client, "promote", canary))
    assert ok(act(client, "abort", {"env": "production"}))["canary"] is None
    assert ok(act(client, "rollback", {"env": "production"}))["stable"]["label"] == "v1"


@sqlite_only
def test_an_action_that_makes_no_sense_is_a_409_problem(client, problem_of):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    assert (
        "already stable"
        in problem_of(act(client, "promote", {"env": "staging", "ref": "v1"}), 409)["detail"]
    )
    assert (
        "no canary"
        in problem_of(act(client, "ramp", {"env": "staging", "weight": 5}), 409)["detail"]
    )
    assert (
        "nothing to roll back"
        in problem_of(act(client, "rollback", {"env": "staging"}), 409)["detail"]
    )


def test_promote_if_changed_leaves_an_already_stable_version_alone(client):
    ok(act(client, "promote", {"env": "staging", "ref": "v3"}))
    again = ok(act(client, "promote", {"env": "staging", "ref": "v3", "if_changed": True}))
    assert again["revision"] == 1
    assert len(history(client)) == 1


def test_a_release_change_is_visible_at_once_in_resolve(make_settings, open_client):
    # A poll interval of an hour: only the action's own refresh can make the change visible.
    client = open_client(create_app(make_settings(poll_interval=3600)))
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    assert served(client, "staging")["label"] == "v1"
    ok(act(client, "promote", {"env": "staging", "ref": "v2"}))
    assert served(client, "staging")["label"] == "v2"
    ok(act(client, "promote", {"env": "staging", "ref": "v3", "canary_weight": 100}))
    assert served(client, "staging", "someone")["label"] == "v3"
    ok(act(client, "rollback", {"env": "staging"}))
    assert served(client, "staging", "someone")["label"] == "v2"


def test_an_environment_created_over_http_takes_releases(client):
    created = client.post("/v1/environments", json={"name": "eu-prod", "protected": True})
    assert created.status_code == 201, created.text
    assert (created.json()["environment"], created.json()["protected"]) == ("eu-prod", True)
    assert act(client, "promote", {"env": "eu-prod", "ref": "v1"}).status_code == 403
    ok(act(client, "promote", {"env": "eu-prod", "ref": "v1", "confirm": True}))
    assert served(client, "eu-prod")["label"] == "v1"


@sqlite_only
def test_unprotecting_an_environment_drops_the_confirmation(client):
    response = client.patch("/v1/environments/production", json={"protected": False})
    assert response.status_code == 200, response.text
    assert response.json()["protected"] is False
    ok(act(client, "promote", {"env": "production", "ref": "v1"}))


@pytest.mark.parametrize("limit", [-1, 0, "many", 10_001, 10**20])
def test_a_history_limit_that_is_not_a_number_from_1_to_10000_is_a_422_problem(
    client, problem_of, limit
):
    ok(act(client, "promote", {"env": "staging", "ref": "v1"}))
    response = client.get(f"/v1/prompts/{TRIAGE}/history", params={"limit": limit})
    assert "limit" in problem_of(response, 422)["detail"]


def test_rollback_to_an_unmerged_branch_is_refused_even_in_production(client, repo):
    ok(act(client, "promote", {"env": "production", "ref": "v1", "confirm": True}))
    ok(act(client, "promote", {"env": "production", "ref": "v2", "confirm": True}))
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("unreviewed", {"prompts/support/triage.prompt": "{{ broken\n"})
    repo.git("checkout", "-q", "main")
    answer = act(client, "rollback", {"env": "production", "to": "feature"})
    assert answer.status_code == 409
    assert "was never stable in production" in answer.json()["detail"]
    assert state(client, "production")["stable"]["label"] == "v2"
