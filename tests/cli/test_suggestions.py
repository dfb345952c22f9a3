"""A mistyped prompt or environment: exit 1 everywhere, with the name it probably meant,
said by the registry so that the API's problem detail says it too."""

from __future__ import annotations

import pytest

TRIAGE = "support/triage"


@pytest.fixture
def released(run, json_of):
    json_of(run("promote", "summarize", "--env", "staging", "--json"))
    return run


@pytest.mark.parametrize(
    "args",
    [
        ["status", "sumarize"],
        ["history", "sumarize"],
        ["status", "sumarize", "--env", "staging"],
        ["show", "sumarize"],
        ["log", "sumarize"],
        ["render", "sumarize"],
        ["promote", "sumarize", "--env", "staging"],
    ],
    ids=lambda args: " ".join(args),
)
def test_an_unknown_prompt_exits_1_and_suggests_the_close_name(released, fails, args):
    fails(released(*args), "unknown prompt 'sumarize'")
    fails(released(*args), "did you mean 'summarize'?")


@pytest.mark.parametrize(
    "args",
    [
        ["canary", "sumarize", "--env", "staging", "--weight", "5"],
        ["rollback", "sumarize", "--env", "staging"],
    ],
    ids=lambda args: args[0],
)
def test_a_release_action_on_a_mistyped_prompt_suggests_the_close_name(released, fails, args):
    fails(released(*args), "unknown prompt 'sumarize'; did you mean 'summarize'?")


def test_a_prompt_in_git_without_a_release_is_still_nothing_released(released):
    for command in ("status", "history"):
        result = released(command, TRIAGE)
        assert result.exit_code == 0, result.output
    assert released("status", TRIAGE).stdout == f"Nothing released for '{TRIAGE}'.\n"
    assert released("history", TRIAGE).stdout == f"No release actions for '{TRIAGE}'.\n"


def test_a_prompt_removed_from_git_but_released_is_known(released, repo):
    repo.remove("prompts/summarize.prompt")
    repo.commit("drop summarize")

    assert released("status", "summarize").exit_code == 0
    assert released("history", "summarize").exit_code == 0


def test_a_far_off_name_gets_no_suggestion(released, fails):
    line = fails(released("status", "zzz"), "unknown prompt 'zzz'")

    assert "did you mean" not in line


def test_a_mistyped_environment_suggests_the_close_one(released, fails):
    fails(
        released("status", "summarize", "--env", "prodution"),
        "unknown environment 'prodution'; did you mean 'production'?",
    )
    fails(
        released("promote", "summarize", "--env", "stagign"),
        "unknown environment 'stagign'; did you mean 'staging'?",
    )


def test_the_api_says_the_same_in_its_404(released, repo, migrated_database_url):
    from fastapi.testclient import TestClient

    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    app = create_app(ServerSettings(repo=repo.path, database_url=migrated_database_url))
    with TestClient(app) as client:
        history = client.get("/v1/prompts/sumarize/history")
        releases = client.get("/v1/releases", params={"prompt": "sumarize"})
        known = client.get(f"/v1/prompts/{TRIAGE}/history")
        ramp = client.post("/v1/prompts/sumarize/ramp", json={"env": "staging", "weight": 5})

    for answer in (history, releases):
        assert answer.status_code == 404
        assert answer.json()["detail"] == "unknown prompt 'sumarize'; did you mean 'summarize'?"
    assert known.status_code == 200
    assert known.json() == []
    assert ramp.status_code == 404
    assert ramp.json()["detail"] == (
        "'sumarize' has no release in staging; did you mean 'summarize'?"
    )
