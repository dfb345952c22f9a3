"""The canary story behind the compatibility gate, against a live server.

`review` flagged v8 of a prompt ("new required variable 'audience'"), yet it went out as a
canary: an application written for v6 then failed every canary call, and the same
application updated to send `audience` failed every stable call. Now the release refuses
such a canary with the list of what breaks (unless `--allow-breaking`, which the log
records), and rendering ignores (and reports) a variable a version does not declare, so
one application build serves a stable and a canary that differ by an optional variable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from client_kit import ServerProcess, key_for

from promptctl import PromptClient
from promptctl.cli.main import cli

# Each test starts a canary and reads what it serves through a server of the module's own.
pytestmark = pytest.mark.slow

NAME = "support/reply"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def reply(version: int, audience: str = "") -> str:
    """A chat prompt; `audience` is an extra input line (v7: optional, v8: required)."""
    return (
        "---\n"
        "input:\n"
        "  ticket: {type: string}\n"
        f"{audience}"
        "---\n"
        '{% message "system" %}\n'
        f"Reply to the ticket (style {version})."
        + (" Write for {{ audience }}." if audience else "")
        + "\n{% endmessage %}\n"
        '{% message "user" %}{{ ticket }}{% endmessage %}\n'
    )


OPTIONAL = "  audience: {type: string, default: everyone}\n"
REQUIRED = "  audience: {type: string}\n"


@pytest.fixture(scope="module")
def story_server(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory):
    """One server for this module over support/reply v1..v8 (v6 is what applications are
    written for, v7 adds an optional `audience`, v8 makes it required); each test releases
    in an environment of its own (`env`)."""
    workdir = tmp_path_factory.mktemp("story")
    path = workdir / "repo"
    path.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")},
        **GIT_IDENTITY,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    texts = [reply(n) for n in range(1, 7)] + [reply(7, OPTIONAL), reply(8, REQUIRED)]
    target = path / "prompts" / "support" / "reply.prompt"
    target.parent.mkdir(parents=True)
    for number, text in enumerate(texts, start=1):
        target.write_text(text, encoding="utf-8")
        git("add", "-A")
        git("commit", "-q", "-m", f"reply v{number}")
    shutil.copyfile(migrated_sqlite, workdir / "registry.db")
    server = ServerProcess(path, f"sqlite:///{workdir / 'registry.db'}", workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(story_server) -> str:
    """An environment of this test's own on the module's server, v6 stable there."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    assert through(story_server, "env", "create", name).exit_code == 0
    assert through(story_server, "promote", f"{NAME}@v6", "--env", name).exit_code == 0
    return name


def through(server, *args: str):
    """`promptctl --server URL ARGS`: the release commands through the server's API."""
    overrides = {k: None for k in os.environ if k.startswith("PROMPTCTL_")}
    return CliRunner().invoke(
        cli, ["--repo", str(server.repo), "--server", server.url, *args], env=overrides
    )


def served_variants(server, env: str, key: str) -> dict:
    response = server.post(
        f"/v1/prompts/{NAME}/render",
        json={"env": env, "key": key, "variables": {"ticket": "hi", "audience": "admins"}},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_breaking_canary_is_refused_then_allowed_and_logged(story_server, env):
    refused = through(story_server, "promote", f"{NAME}@v8", "--env", env, "--canary", "10")
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"error: server: {NAME}@v8 cannot start as canary in {env}: ")
    assert (
        "against v6 (stable): new required variable 'audience' without a default: callers "
        "do not send it yet" in line
    )
    assert "--allow-breaking" in line
    # Nothing started, so there is no canary to ramp (the story's `canary --weight 50`).
    ramp = through(story_server, "canary", NAME, "--env", env, "--weight", "50")
    assert ramp.exit_code == 1
    assert "has no canary" in ramp.stderr

    allowed = through(
        story_server, "promote", f"{NAME}@v8", "--env", env, "--canary", "10",
        "--allow-breaking", "--reason", "audience rolled out first",
    )
    assert allowed.exit_code == 0, allowed.output
    history = through(story_server, "history", NAME, "--env", env, "--json")
    entry = json.loads(history.stdout)[0]
    assert entry["action"] == "canary_start"
    assert entry["allowed_breaking"] == [
        "against v6 (stable): new required variable 'audience' without a default: callers "
        "do not send it yet"
    ]
    text = through(story_server, "history", NAME, "--env", env).stdout
    assert "audience rolled out first [allowed breaking: against v6 (stable)" in text


def test_one_application_build_renders_both_variants_of_an_optional_variable(story_server, env):
    canary = through(story_server, "promote", f"{NAME}@v7", "--env", env, "--canary", "50")
    assert canary.exit_code == 0, canary.output  # an optional variable breaks nobody
    release = story_server.wait_for_release(NAME, env, revision=2)
    stable_key = key_for(NAME, release, "stable")
    canary_key = key_for(NAME, release, "canary")

    # The render API: the stable version ignores `audience` and says so.
    on_stable = served_variants(story_server, env, stable_key)
    assert (on_stable["label"], on_stable["ignored"]) == ("v6", ["audience"])
    on_canary = served_variants(story_server, env, canary_key)
    assert (on_canary["label"], on_canary["ignored"]) == ("v7", [])
    assert "Write for admins." in on_canary["messages"][0]["content"]

    # An application that sends the new variable, and one written for v6 that does not.
    with PromptClient(story_server.url, environment=env) as prompts:
        stable = prompts.get(NAME, key=stable_key)
        canary_prompt = prompts.get(NAME, key=canary_key)
        assert (stable.label, canary_prompt.label) == ("v6", "v7")
        sent = {"ticket": "hi", "audience": "admins"}
        assert stable.rendered(sent).ignored == ("audience",)
        assert stable.render(**sent)[1] == {"role": "user", "content": "hi"}
        assert canary_prompt.rendered(sent).ignored == ()
        assert "Write for admins." in canary_prompt.render(**sent)[0]["content"]
        assert "Write for everyone." in canary_prompt.render(ticket="hi")[0]["content"]
        assert stable.rendered({"ticket": "hi"}).ignored == ()


def test_the_story_without_the_gate_is_what_allow_breaking_lets_through(story_server, env):
    """With v8 forced out as canary, an application written for v6 fails on the canary:
    the failure the gate exists to prevent, now a decision the log records."""
    through(story_server, "promote", f"{NAME}@v8", "--env", env, "--canary", "50",
            "--allow-breaking")
    release = story_server.wait_for_release(NAME, env, revision=2)
    response = story_server.post(
        f"/v1/prompts/{NAME}/render",
        json={"env": env, "key": key_for(NAME, release, "canary"), "variables": {"ticket": "hi"}},
    )
    assert response.status_code == 422
    assert "'audience' is required" in response.json()["detail"]
