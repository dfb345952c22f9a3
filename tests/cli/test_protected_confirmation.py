"""Protected environments: asked on a terminal, refused with a hint elsewhere, --yes on every
release command; and a ramp to the weight a canary has is a no-op that says so."""

from __future__ import annotations

import json
import os

import pytest
from support import on_terminal, promptctl_command

TRIAGE = "support/triage"


@pytest.fixture
def terminal(repo, migrated_database_url):
    """Run the installed promptctl on a pseudo-terminal, typing `answer`."""

    def run(*args: str, answer: str = "") -> tuple[int, str]:
        command = [*promptctl_command(), "--repo", str(repo.path)]
        command += ["--database-url", migrated_database_url, *args]
        return on_terminal(command, answer=answer, env=dict(os.environ))

    return run


def history(run, json_of, name: str = TRIAGE) -> list:
    return json_of(run("history", name, "--json"))


def test_without_a_terminal_a_protected_change_is_refused_with_the_cli_hint(run, fails):
    fails(
        run("promote", f"{TRIAGE}@v1", "--env", "production"),
        "production is protected: the change must be confirmed explicitly (pass --yes to "
        "confirm it, or run the command on a terminal to be asked)",
    )


def test_on_a_terminal_promote_shows_the_change_and_asks(terminal, run, json_of):
    json_of(run("promote", f"{TRIAGE}@v1", "--env", "production", "--yes", "--json"))
    v1 = json_of(run("show", f"{TRIAGE}@v1", "--json"))["digest"][:12]
    v3 = json_of(run("show", f"{TRIAGE}@v3", "--json"))["digest"][:12]

    code, shown = terminal("promote", f"{TRIAGE}@v3", "--env", "production", answer="y\n")

    assert code == 0, shown
    assert "production is a protected environment. This will change:" in shown
    assert f"{TRIAGE} in production: stable v1 ({v1}) -> v3 ({v3})" in shown
    assert "Apply it? [y/N]" in shown
    assert f"{TRIAGE}: v3 ({v3}) is stable in production" in shown
    assert len(history(run, json_of)) == 2


def test_answering_no_changes_nothing_and_exits_1(terminal, run, json_of):
    code, shown = terminal("promote", f"{TRIAGE}@v1", "--env", "production", answer="n\n")

    assert code == 1
    assert "error: not confirmed: nothing was changed in production" in shown
    assert history(run, json_of) == []


def test_on_a_terminal_a_ramp_shows_the_weights(terminal, run, json_of):
    json_of(run("promote", f"{TRIAGE}@v1", "--env", "production", "--yes", "--json"))
    json_of(
        run("promote", f"{TRIAGE}@v2", "--env", "production", "--canary", "10", "--yes", "--json")
    )

    code, shown = terminal("canary", TRIAGE, "--env", "production", "--weight", "50", answer="y\n")

    assert code == 0, shown
    assert "weight 10% -> 50%" in shown
    assert json_of(run("status", TRIAGE, "--env", "production", "--json"))[0]["weight_bp"] == 5000


def test_on_a_terminal_yes_and_unprotected_environments_do_not_ask(terminal):
    code, shown = terminal("promote", f"{TRIAGE}@v1", "--env", "production", "--yes")
    assert code == 0, shown
    code, shown = terminal("promote", f"{TRIAGE}@v1", "--env", "staging")
    assert code == 0, shown
    assert "Apply it?" not in shown


@pytest.mark.parametrize(
    "args",
    [
        ["rollback", TRIAGE, "--env", "production", "--yes"],
        ["canary", TRIAGE, "--env", "production", "--abort", "--yes"],
        ["canary", TRIAGE, "--env", "production", "--complete", "--yes"],
        ["canary", TRIAGE, "--env", "production", "--weight", "20", "--yes"],
    ],
    ids=lambda args: " ".join(args[:1] + args[4:5]),
)
def test_every_release_command_accepts_yes(run, json_of, args):
    json_of(run("promote", f"{TRIAGE}@v1", "--env", "production", "--yes", "--json"))
    json_of(
        run("promote", f"{TRIAGE}@v2", "--env", "production", "--canary", "10", "--yes", "--json")
    )

    result = run(*args)

    assert result.exit_code == 0, result.output


# -- a ramp to the weight the canary has ----------------------------------------------------


@pytest.fixture
def canary_at_50(run, json_of):
    for env in ("staging", "production"):
        json_of(run("promote", f"{TRIAGE}@v1", "--env", env, "--yes", "--json"))
        json_of(run("promote", f"{TRIAGE}@v2", "--env", env, "--canary", "50", "--yes", "--json"))
    return run


def test_a_ramp_to_the_current_weight_says_unchanged_and_logs_nothing(canary_at_50, json_of):
    run = canary_at_50
    before = history(run, json_of)

    result = run("canary", TRIAGE, "--env", "staging", "--weight", "50")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{TRIAGE}: the canary is already at v2 (")
    assert result.stdout.endswith("@ 50% in staging; unchanged\n")
    assert history(run, json_of) == before


def test_a_ramp_to_the_current_weight_needs_no_confirmation(canary_at_50, json_of):
    result = canary_at_50("canary", TRIAGE, "--env", "production", "--weight", "50", "--json")

    assert json_of(result)["weight_bp"] == 5000


def test_the_api_answers_a_same_weight_ramp_with_the_release_as_it_is(
    canary_at_50, repo, migrated_database_url
):
    from fastapi.testclient import TestClient

    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    app = create_app(ServerSettings(repo=repo.path, database_url=migrated_database_url))
    with TestClient(app) as client:
        before = client.get("/v1/releases", params={"prompt": TRIAGE, "env": "staging"}).json()
        ramp = client.post(f"/v1/prompts/{TRIAGE}/ramp", json={"env": "staging", "weight": 50})
        refused = client.post(
            f"/v1/prompts/{TRIAGE}/ramp", json={"env": "production", "weight": 60}
        )

    assert ramp.status_code == 200, ramp.text
    assert ramp.json()["revision"] == before[0]["revision"]
    assert refused.status_code == 403
    detail = json.loads(refused.text)["detail"]
    assert detail == "production is protected: the change must be confirmed explicitly"
    assert "--yes" not in detail
