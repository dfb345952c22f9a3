"""`promptctl rollout status`: a live rollout says what happens next; an ended one says how
it ended, when and why instead, locally and through a server's API."""

from __future__ import annotations

from datetime import datetime

import pytest

TRIAGE = "support/triage"


@pytest.fixture
def started(run, json_of) -> dict:
    run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging")
    return json_of(run("rollout", "start", TRIAGE, "--env", "staging", "--json"))


def test_a_live_rollout_shows_its_deadline_and_what_happens_next(started, run, json_of):
    assert started["status"] == "running"
    assert started["ended"] is None
    assert datetime.fromisoformat(started["deadline"]) > datetime.fromisoformat(
        started["step_started_at"]
    )
    assert "once every guard passes" in started["next"]
    shown = run("rollout", "status", TRIAGE, "--env", "staging")
    assert shown.exit_code == 0, shown.output
    assert "next: " in shown.stdout
    assert "ended:" not in shown.stdout


def test_an_aborted_rollout_shows_how_when_and_why_it_ended_not_a_deadline(started, run, json_of):
    aborted = json_of(
        run(
            "rollout", "abort", TRIAGE, "--env", "staging",
            "--actor", "alice", "--reason", "the tone is off", "--json",
        )
    )  # fmt: skip
    state = json_of(run("rollout", "status", TRIAGE, "--env", "staging", "--json"))
    assert state == aborted | {"seconds_in_step": state["seconds_in_step"]}
    assert (state["status"], state["deadline"], state["next"]) == ("aborted", None, None)
    ended = state["ended"]
    assert {k: ended[k] for k in ("outcome", "by", "reason", "step")} == {
        "outcome": "aborted",
        "by": "alice",
        "reason": "the tone is off",
        "step": 1,
    }
    assert ended["at"] == state["ended_at"]
    assert ended["weight_bp"] == started["weight_bp"]

    shown = run("rollout", "status", TRIAGE, "--env", "staging")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    at = datetime.fromisoformat(ended["at"])
    assert lines[0].startswith(f"{TRIAGE} in staging: aborted, step 1/")
    assert lines[1] == f"ended: aborted on {at:%Y-%m-%d %H:%M:%S} UTC by alice"
    assert lines[2] == "why: the tone is off"
    assert not any(line.startswith("next:") for line in lines)
    assert "deadline" not in shown.stdout


def test_a_rollout_ended_by_a_manual_rollback_names_who_ran_it(started, run):
    rolled = run("rollback", TRIAGE, "--env", "staging", "--actor", "bob", "--reason", "oops")
    assert rolled.exit_code == 0, rolled.output
    shown = run("rollout", "status", TRIAGE, "--env", "staging")
    assert shown.exit_code == 0, shown.output
    assert ": rolled back, step 1/" in shown.stdout
    assert "ended: rolled back on " in shown.stdout
    assert " by bob\n" in shown.stdout
    assert "why: ended: bob ran rollback canary by hand" in shown.stdout
    assert "next:" not in shown.stdout


def test_the_api_answers_how_a_rollout_ended(
    started, run, json_of, promptctl, repo, migrated_database_url, monkeypatch
):
    from fastapi.testclient import TestClient

    from promptctl.cli import remote
    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    run("rollout", "promote", TRIAGE, "--env", "staging", "--actor", "carol")
    local = json_of(run("rollout", "status", TRIAGE, "--env", "staging", "--json"))
    app = create_app(ServerSettings(repo=repo.path, database_url=migrated_database_url))
    with TestClient(app, base_url="http://promptctl.test") as client:
        monkeypatch.setattr(remote.httpx, "Client", lambda **options: client)
        server = ("--server", "http://promptctl.test")
        answered = json_of(
            promptctl(*server, "rollout", "status", TRIAGE, "--env", "staging", "--json")
        )
        shown = promptctl(*server, "rollout", "status", TRIAGE, "--env", "staging")
    assert answered["ended"] == local["ended"]
    assert answered["ended"]["outcome"] == "completed"
    assert answered["ended"]["by"] == "carol"
    assert (answered["deadline"], answered["next"]) == (None, None)
    assert shown.exit_code == 0, shown.output
    assert "ended: completed on " in shown.stdout
    assert " by carol\n" in shown.stdout
    assert "next:" not in shown.stdout
