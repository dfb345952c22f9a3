"""`promptctl webhook add|list|test|deliveries|remove` on the local database and through a
server, with a real receiver on loopback; --json output of each against its shape."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from support import serving
from webhook_receiver import Receiver

from promptctl.cli.main import cli
from promptctl.cli.shapes import COMMAND_SHAPES
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

TRIAGE = "support/triage"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiving:
        yield receiving


def shaped(command: str, output: str):
    data = json.loads(output)
    COMMAND_SHAPES[command].validate_python(data)
    return data


def test_add_list_test_deliveries_and_remove_on_the_local_database(run, receiver, fails):
    added = run(
        "webhook", "add", receiver.url, "--events", "release.*,rollout.*", "--env", "staging"
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert "shown only now" in added.stderr

    listed = run("webhook", "list")
    assert "release.*,rollout.*" in listed.stdout
    assert "staging" in listed.stdout
    assert secret not in listed.stdout
    assert secret not in run("webhook", "list", "--json").stdout

    tested = run("webhook", "test", "1")
    assert tested.exit_code == 0, tested.output
    assert tested.stdout.startswith("delivered: HTTP 200")
    assert receiver.received[0].verified(secret)["type"] == "webhook.test"

    run("promote", f"{TRIAGE}@v1", "--env", "staging")
    log = run("webhook", "deliveries", "1")
    assert "release.promoted" in log.stdout  # waiting for a server to send it
    assert "pending" in log.stdout
    assert "webhook.test" in log.stdout
    shaped("webhook deliveries", run("webhook", "deliveries", "1", "--json").stdout)

    receiver.status = 503
    failed = run("webhook", "test", "1", "--json")
    assert failed.exit_code == 1
    assert shaped("webhook test", failed.stdout)["attempts"][0]["status_code"] == 503

    removed = run("webhook", "remove", "1")
    assert removed.stdout.startswith("removed webhook 1")
    assert "No webhooks" in run("webhook", "list").stdout
    fails(run("webhook", "remove", "1"), "no webhook subscription with id 1")


def test_bad_input_is_one_line_naming_what_is_wrong(run, fails):
    fails(run("webhook", "add", "ftp://example.com/x", "--events", "*"), "http(s)")
    fails(
        run("webhook", "add", "https://example.com/x", "--events", "release.promted"),
        "did you mean 'release.promoted'",
    )
    fails(
        run("webhook", "add", "https://example.com/x", "--events", "*", "--env", "prod"),
        "prod",
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_commands_act_on_a_server(repo, migrated_database_url, receiver):
    settings = ServerSettings(repo=repo.path, database_url=migrated_database_url)
    with serving(create_app(settings)) as base:
        runner = CliRunner()

        def remote(*args: str):
            return runner.invoke(cli, ["--server", base, "webhook", *args])

        added = remote("add", receiver.url, "--events", "*", "--format", "slack", "--json")
        assert added.exit_code == 0, added.output
        hook = shaped("webhook add", added.stdout)
        assert [h["format"] for h in shaped("webhook list", remote("list", "--json").stdout)] == [
            "slack"
        ]
        tested = remote("test", str(hook["id"]))
        assert tested.exit_code == 0, tested.output
        assert "Test message from promptctl" in json.loads(receiver.received[0].body)["text"]
        removed = remote("remove", str(hook["id"]), "--json")
        assert shaped("webhook remove", removed.stdout)["id"] == hook["id"]
        missing = remote("test", str(hook["id"]))
        assert missing.exit_code == 1
        assert "no webhook subscription" in missing.stderr
