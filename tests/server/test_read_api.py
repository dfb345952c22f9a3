"""The read API over HTTP: prompts, versions, resolve with ETags, sticky routing, render."""

from __future__ import annotations

from typing import Any

import pytest

from promptctl.registry.releases.routing import assign

# The library of conftest.repo.
TRIAGE = "support/triage"
SUMMARY = "news/summary"
TONE_V1 = "Be kind."
TONE_V2 = "Be brief."

# What reads the database runs on SQLite and PostgreSQL; the rest on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def released(client) -> dict[str, Any]:
    """triage: v1 stable in staging with v3 as a 30% canary, v2 stable in production;
    summary: v2 stable in development. Returns the digests by version label."""
    for body in (
        {"env": "staging", "ref": "v1"},
        {"env": "staging", "ref": "v3", "canary_weight": 30},
        {"env": "production", "ref": "v2", "confirm": True},
    ):
        response = client.post(f"/v1/prompts/{TRIAGE}/promote", json=body)
        assert response.status_code == 200, response.text
    response = client.post(f"/v1/prompts/{SUMMARY}/promote", json={"env": "development"})
    assert response.status_code == 200, response.text
    versions = client.get(f"/v1/prompts/{TRIAGE}/versions").json()["versions"]
    return {v["label"]: v["digest"] for v in versions}


def test_list_shows_every_prompt_with_its_tip_version_and_its_releases_per_env(client, released):
    response = client.get("/v1/prompts")
    assert response.status_code == 200
    listed = {entry["prompt"]: entry for entry in response.json()}
    assert sorted(listed) == [SUMMARY, TRIAGE]
    triage = listed[TRIAGE]
    assert (triage["label"], triage["digest"]) == ("v3", released["v3"])
    assert triage["model"] == "gpt-4o-mini"
    assert triage["description"] == "Triage a support ticket"
    assert sorted(triage["releases"]) == ["production", "staging"]
    staging = triage["releases"]["staging"]
    assert staging["stable"]["label"] == "v1"
    assert staging["canary"]["label"] == "v3"
    assert staging["weight_bp"] == 3000
    assert staging["revision"] == 2
    production = triage["releases"]["production"]
    assert (production["stable"]["label"], production["canary"]) == ("v2", None)
    assert listed[SUMMARY]["releases"]["development"]["stable"]["label"] == "v2"


@sqlite_only
def test_list_without_releases_shows_prompts_with_empty_releases(client):
    listed = client.get("/v1/prompts").json()
    assert [(e["prompt"], e["label"], e["releases"]) for e in listed] == [
        (SUMMARY, "v2", {}),
        (TRIAGE, "v3", {}),
    ]


@sqlite_only
def test_versions_lists_numbered_versions_newest_first_and_marks_the_current(client):
    response = client.get(f"/v1/prompts/{TRIAGE}/versions")
    assert response.status_code == 200
    data = response.json()
    assert data["prompt"] == TRIAGE
    assert data["branch"] == "main"
    assert [v["label"] for v in data["versions"]] == ["v3", "v2", "v1"]
    assert [v["current"] for v in data["versions"]] == [True, False, False]
    assert [v["commit"]["summary"] for v in data["versions"]] == [
        "sharper triage, longer summary",
        "brief tone",
        "add triage and summary",
    ]
    assert len({v["digest"] for v in data["versions"]}) == 3


@sqlite_only
def test_one_version_is_found_by_number_digest_prefix_and_git_revision(client):
    by_number = client.get(f"/v1/prompts/{TRIAGE}/versions/v1").json()
    digest = by_number["digest"]
    for ref in (digest[:7], digest[:12], "release-1", "HEAD~2", by_number["commit"]["sha"]):
        found = client.get(f"/v1/prompts/{TRIAGE}/versions/{ref}")
        assert found.status_code == 200, (ref, found.text)
        assert (found.json()["label"], found.json()["digest"]) == ("v1", digest), ref
    assert by_number["partials"] == {"partials/tone.j2": TONE_V1 + "\n"}
    assert by_number["first_commit"]["summary"] == "add triage and summary"


@sqlite_only
def test_a_version_that_changed_only_its_partial_is_a_version_of_its_own(client):
    v2 = client.get(f"/v1/prompts/{TRIAGE}/versions/v2").json()
    v1 = client.get(f"/v1/prompts/{TRIAGE}/versions/v1").json()
    assert v2["template"] == v1["template"]
    assert v2["partials"] == {"partials/tone.j2": TONE_V2 + "\n"}
    assert v2["digest"] != v1["digest"]


def test_resolve_returns_the_stable_version_with_its_content(client, released):
    response = client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "production"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["prompt"] == TRIAGE
    assert data["environment"] == "production"
    assert (data["version"], data["label"], data["digest"]) == (2, "v2", released["v2"])
    assert data["variant"] == "stable"
    assert data["kind"] == "chat"
    assert data["model"] == "gpt-4o-mini"
    assert data["params"] == {"temperature": 0.2, "max_tokens": 400}
    assert '{% include "partials/tone.j2" %}' in data["template"]
    assert data["partials"] == {"partials/tone.j2": TONE_V2 + "\n"}
    assert data["front_matter"]["owner"] == "support-team"  # unknown keys are kept
    assert data["front_matter"]["description"] == "Triage a support ticket"


@sqlite_only
def test_resolve_of_a_text_prompt_says_it_is_text(client, released):
    data = client.get(f"/v1/prompts/{SUMMARY}/resolve", params={"env": "development"}).json()
    assert (data["kind"], data["label"], data["model"]) == ("text", "v2", "gpt-4o")
    assert "Summarise in two lines" in data["template"]


@sqlite_only
def test_resolve_answers_304_to_its_own_etag_and_200_to_another(client, released):
    url = f"/v1/prompts/{TRIAGE}/resolve"
    first = client.get(url, params={"env": "production"})
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(url, params={"env": "production"}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.content == b""
    listed = client.get(
        url, params={"env": "production"}, headers={"If-None-Match": f'"x", {etag}'}
    )
    assert listed.status_code == 304
    other = client.get(url, params={"env": "production"}, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert other.json()["digest"] == released["v2"]


@sqlite_only
def test_resolve_etag_changes_when_the_release_changes(client, released):
    url = f"/v1/prompts/{TRIAGE}/resolve"
    before = client.get(url, params={"env": "production"}).headers["etag"]
    promoted = client.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "production", "ref": "v3", "confirm": True}
    )
    assert promoted.status_code == 200
    after = client.get(url, params={"env": "production"}, headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.json()["digest"] == released["v3"]
    assert after.headers["etag"] != before


def test_sticky_routing_over_http_agrees_with_the_routing_function_for_many_keys(client, released):
    url = f"/v1/prompts/{TRIAGE}/resolve"
    seen = {"stable": 0, "canary": 0}
    for n in range(150):
        key = f"user-{n}"
        data = client.get(url, params={"env": "staging", "key": key}).json()
        expected = assign(TRIAGE, released["v3"], 3000, key)
        assert data["variant"] == expected, key
        assert data["digest"] == released["v3" if expected == "canary" else "v1"], key
        seen[expected] += 1
    assert seen["canary"] > 20
    assert seen["stable"] > 100


@sqlite_only
def test_the_same_key_always_gets_the_same_variant(client, released):
    url = f"/v1/prompts/{TRIAGE}/resolve"
    answers = {
        client.get(url, params={"env": "staging", "key": "tenant-42"}).json()["digest"]
        for _ in range(20)
    }
    assert len(answers) == 1


@sqlite_only
def test_stable_and_canary_answers_carry_different_etags(client, released):
    url = f"/v1/prompts/{TRIAGE}/resolve"
    etags: dict[str, str] = {}
    for n in range(60):
        response = client.get(url, params={"env": "staging", "key": f"k{n}"})
        etags.setdefault(response.json()["variant"], response.headers["etag"])
    assert set(etags) == {"stable", "canary"}
    assert etags["stable"] != etags["canary"]


@sqlite_only
def test_render_in_an_environment_follows_the_key_to_its_variant(client, released):
    keys = {assign(TRIAGE, released["v3"], 3000, f"user-{n}"): f"user-{n}" for n in range(100)}
    for variant, tone, opening in (
        ("stable", TONE_V1, "You triage tickets."),
        ("canary", TONE_V2, "Triage now."),
    ):
        response = client.post(
            f"/v1/prompts/{TRIAGE}/render",
            json={
                "env": "staging",
                "key": keys[variant],
                "variables": {"ticket": "I was charged twice", "tier": "pro"},
            },
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["variant"] == variant
        assert data["environment"] == "staging"
        assert data["label"] == ("v1" if variant == "stable" else "v3")
        assert data["model"] == "gpt-4o-mini"
        assert data["messages"] == [
            {"role": "system", "content": f"{opening} Tier: pro.\n{tone}"},
            {"role": "user", "content": "I was charged twice"},
        ]


@sqlite_only
def test_render_of_a_given_version_needs_no_release(client):
    response = client.post(
        f"/v1/prompts/{TRIAGE}/render", json={"version": "v2", "variables": {"ticket": "Hi"}}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["label"], data["variant"], data["environment"]) == ("v2", None, None)
    assert data["messages"][0]["content"] == f"You triage tickets. Tier: free.\n{TONE_V2}"


@sqlite_only
def test_render_of_a_text_prompt_returns_text(client):
    response = client.post(
        f"/v1/prompts/{SUMMARY}/render",
        json={"version": "release-1", "variables": {"article": "Rain today."}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Summarise in one line:\nRain today."


def test_release_state_has_both_versions_weight_and_revision(client, released):
    response = client.get(f"/v1/prompts/{TRIAGE}/release", params={"env": "staging"})
    assert response.status_code == 200
    data = response.json()
    assert (data["prompt"], data["environment"]) == (TRIAGE, "staging")
    assert data["stable"]["digest"] == released["v1"]
    assert data["canary"]["digest"] == released["v3"]
    assert data["canary"]["partials"] == {"partials/tone.j2": TONE_V2 + "\n"}
    assert data["weight_bp"] == data["canary_weight_bp"] == 3000
    assert data["revision"] == 2


@sqlite_only
def test_release_state_etag_gives_304_until_the_release_changes(client, released):
    url = f"/v1/prompts/{TRIAGE}/release"
    etag = client.get(url, params={"env": "staging"}).headers["etag"]
    unchanged = client.get(url, params={"env": "staging"}, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    ramped = client.post(f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging", "weight": 50})
    assert ramped.status_code == 200
    changed = client.get(url, params={"env": "staging"}, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["weight_bp"] == 5000
    assert changed.headers["etag"] != etag


@sqlite_only
def test_environments_lists_the_defaults_with_production_protected(client):
    response = client.get("/v1/environments")
    assert response.status_code == 200
    assert [(e["environment"], e["protected"]) for e in response.json()] == [
        ("development", False),
        ("staging", False),
        ("production", True),
    ]


@sqlite_only
def test_one_version_is_found_by_a_branch_name_with_a_slash(client, repo):
    repo.git("checkout", "-q", "-b", "feature/curt")
    repo.commit("curt tone", {"prompts/partials/tone.j2": "Be curt.\n"})
    repo.git("checkout", "-q", "main")
    rendered = client.post(
        f"/v1/prompts/{TRIAGE}/render",
        json={"version": "feature/curt", "variables": {"ticket": "t"}},
    )
    assert rendered.status_code == 200
    for ref in ("feature/curt", "feature%2Fcurt"):
        response = client.get(f"/v1/prompts/{TRIAGE}/versions/{ref}")
        assert response.status_code == 200, response.text
        assert response.json()["digest"] == rendered.json()["digest"]
