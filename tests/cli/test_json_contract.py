"""Every command's --json output has a documented shape, and keeps to it.

The commands are found on the `promptctl` group itself, so a new command with `--json`
and no shape in cli/shapes.py fails here, as does a shape left for a command that is gone.
Each one is then run against a real repository and release database with releases, a
canary, a history and metrics, and what it prints is validated against its shape (which
refuses keys it does not document).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import Result
from fake_github import TOKEN, fake_github
from pydantic import ValidationError

from promptctl.cli.main import cli
from promptctl.cli.shapes import COMMAND_SHAPES, ErrorShape
from promptctl.registry.core import Registry, Settings

TRIAGE = "support/triage"


def json_commands() -> set[str]:
    """The path of every command below `promptctl` that takes --json ("env list", ...)."""
    found: set[str] = set()
    context = click.Context(cli)

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                assert sub is not None, name
                walk(sub, [*path, name])
        elif any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            found.add(" ".join(path))

    walk(cli, [])
    return found


def test_every_command_with_json_has_a_documented_shape():
    commands = json_commands()
    assert sorted(commands - set(COMMAND_SHAPES)) == [], "commands without a shape"
    assert sorted(set(COMMAND_SHAPES) - commands) == [], "shapes of commands without --json"


def conforms(command: str, data: Any) -> None:
    """Validate `data` against the shape of `command`, naming every mismatch."""
    try:
        COMMAND_SHAPES[command].validate_python(data)
    except ValidationError as exc:
        pytest.fail(f"promptctl {command} --json does not match its shape:\n{exc}")


@pytest.fixture
def metrics_recorded(repo, migrated_database_url: str) -> Callable[[str, str], None]:
    """Record a few calls of what runs in an environment, through the registry's ingest."""

    def record(environment: str, digest: str) -> None:
        registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
        try:
            events = [
                {
                    "event_id": f"contract-{environment}-{i}",
                    "prompt": TRIAGE,
                    "env": environment,
                    "digest": digest,
                    "latency_ms": 100 + 10 * i,
                    "input_tokens": 50,
                    "output_tokens": 20,
                    "cost_usd": 0.0001,
                    "quality": 0.5 + i / 10,
                    "error": i == 0,
                }
                for i in range(4)
            ]
            result = registry.metrics.ingest(events)
            assert result.accepted == 4, result.results
        finally:
            registry.close()

    return record


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_command_prints_json_of_its_documented_shape(
    run, repo, tmp_path, metrics_recorded, monkeypatch
):
    ran: set[str] = set()

    def json_of(command: str, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
        result: Result = run(*command.split(), *args, "--json")
        assert result.exit_code in codes, (command, result.output, result.stderr)
        data = json.loads(result.stdout)
        conforms(command, data)
        ran.add(command)
        return data

    json_of("init", str(tmp_path / "new-project"))
    listed = json_of("list")
    assert {row["prompt"] for row in listed} >= {TRIAGE}
    shown = json_of("show", f"{TRIAGE}@v1")
    assert (shown["prompt"], shown["version"], shown["label"]) == (TRIAGE, 1, "v1")
    json_of("log", TRIAGE)
    json_of("render", TRIAGE, "--sample", "1")
    json_of("diff", TRIAGE, "v1", "v3")
    json_of("lint", codes=(0, 1))

    json_of("env list")
    json_of("env create", "qa")
    json_of("env protect", "qa")
    json_of("env unprotect", "qa")

    json_of("promote", f"{TRIAGE}@v1", "--env", "staging")
    canary = json_of("promote", f"{TRIAGE}@v3", "--env", "staging", "--canary", "10")
    assert (canary["weight"], canary["weight_bp"]) == (10, 1000)
    ramped = json_of("canary", TRIAGE, "--env", "staging", "--weight", "50")
    assert (ramped["weight"], ramped["weight_bp"]) == (50, 5000)
    json_of("promote", "--env", "development", "--all")
    json_of("status")
    history = json_of("history", TRIAGE, "--env", "staging")
    assert [(e["action"], e["from_weight"], e["to_weight"]) for e in history] == [
        ("ramp", 10, 50),
        ("canary_start", 0, 10),
        ("promote", 0, 0),
    ]
    resolved = json_of("resolve", TRIAGE, "--env", "staging", "--key", "user-1")
    assert resolved["weight_bp"] == 5000
    metrics_recorded("staging", canary["stable"]["digest"])
    summary = json_of("metrics", TRIAGE, "--env", "staging")
    assert summary["versions"], summary
    analysis = json_of("analyze", TRIAGE, "--env", "staging")
    assert analysis["verdict"] == "no data", analysis  # a few calls: never a pass
    json_of("bundle", "--env", "staging", "-o", str(tmp_path / "staging.bundle.json"))
    json_of("rollback", TRIAGE, "--env", "staging")
    started = json_of("rollout start", f"{TRIAGE}@v3", "--env", "staging")
    assert (started["status"], started["step"], started["weight_bp"]) == ("running", 1, 100)
    json_of("rollout status", TRIAGE, "--env", "staging")
    json_of("rollout pause", TRIAGE, "--env", "staging")
    json_of("rollout resume", TRIAGE, "--env", "staging")
    assert json_of("rollout promote", TRIAGE, "--env", "staging")["status"] == "completed"
    json_of("rollout start", f"{TRIAGE}@v1", "--env", "staging")
    assert json_of("rollout abort", TRIAGE, "--env", "staging")["status"] == "aborted"
    json_of("review", "--base", "release-1", "--head", "HEAD", codes=(0, 1))

    json_of("db current")
    assert json_of("db prune", "--dry-run")["dry_run"] is True
    pruned = json_of("db prune")
    assert [k["kind"] for k in pruned["kinds"]] == ["events", "minute", "hour"]
    json_of("db downgrade", "base")
    json_of("db upgrade")

    created = json_of("token create", "--name", "ci", "--scope", "release")
    json_of("token list")
    json_of("token revoke", created["prefix"])

    hook = json_of("webhook add", "http://127.0.0.1:9/hook", "--events", "release.*")
    json_of("webhook list")
    json_of("webhook test", str(hook["id"]), codes=(1,))  # nobody listens there
    json_of("webhook deliveries", str(hook["id"]))
    json_of("webhook remove", str(hook["id"]))

    json_of("ci github-actions")
    comment = tmp_path / "comment.md"
    comment.write_text("the review\n", encoding="utf-8")
    with fake_github() as github:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", github.repository)
        json_of("ci comment", "--file", str(comment), "--pr", "1")

    assert sorted(json_commands() - ran) == [], "commands with --json this test did not run"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failing_command_prints_the_error_shape_on_stderr(run):
    result = run("history", "no/such-prompt", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    ErrorShape.model_validate_json(result.stderr)
