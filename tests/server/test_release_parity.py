"""Every release command gives the same result locally and through a live server over the
same repository: the same output, the same stored release states and the same log rows
(who and when aside). HEAD is on a feature branch, so `promote NAME` without a reference
means the user's HEAD both ways (a server once promoted its tracked branch's tip)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import serving

from promptctl.cli.main import cli
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

NAME = "translate"
OTHER = "greet"
IGNORED = {"updated_at", "updated_by", "created_at", "actor"}  # who and when differ by nature

COMMANDS: list[tuple[str, ...]] = [
    ("env", "create", "qa"),
    ("promote", f"{NAME}@v1", "--env", "staging", "--reason", "first"),
    ("promote", f"{OTHER}@v1", "--env", "staging"),
    ("promote", f"{NAME}@v2", "--env", "staging", "--canary", "10"),
    ("canary", NAME, "--env", "staging", "--weight", "25"),
    ("canary", NAME, "--env", "staging", "--complete"),
    ("promote", f"{NAME}@v3", "--env", "staging", "--canary", "5"),
    ("canary", NAME, "--env", "staging", "--abort"),
    ("promote", NAME, "--env", "development"),  # no ref: HEAD, the feature branch's preview
    ("promote", f"{NAME}@v4", "--env", "staging", "--if-changed"),
    ("promote", f"{NAME}@v4", "--env", "staging", "--if-changed"),  # unchanged
    ("promote", f"{NAME}@main~1", "--env", "development"),  # a git revision, read here
    ("rollback", NAME, "--env", "staging"),
    ("rollback", NAME, "--env", "staging", "--to", "v4"),
    ("rollback", NAME, "--env", "staging", "--to", "v3"),  # never stable there: refused
    ("canary", NAME, "--env", "staging", "--abort"),  # no canary: refused
    ("promote", "--all", "main", "--env", "qa"),
    ("promote", "--all", "main", "--env", "qa"),  # all unchanged
    ("status", "--json"),
    ("history", NAME, "--json"),
    ("history", OTHER, "--json"),
]


def text(name: str, number: int) -> str:
    return f"---\ninput:\n  text: {{type: string}}\n---\n{name} number {number}: {{{{ text }}}}\n"


@pytest.fixture
def repo(git_repo):
    """translate v1..v4 and greet v1..v2 on main; HEAD on `feature`, one commit ahead."""
    for number in (1, 2, 3, 4):
        files = {f"prompts/{NAME}.prompt": text(NAME, number)}
        if number <= 2:
            files[f"prompts/{OTHER}.prompt"] = text(OTHER, number)
        git_repo.commit(f"v{number}", files)
    git_repo.git("checkout", "-q", "-b", "feature")
    git_repo.commit("feature", {f"prompts/{NAME}.prompt": text(NAME, 5)})
    return git_repo


def strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def outcome(result: Result, command: tuple[str, ...]) -> tuple[int, Any, str]:
    """Exit code, output (JSON without who and when), and the error line (a server's error
    reads 'error: server: …', a local one 'error: …')."""
    output: Any = result.stdout
    if "--json" in command and result.exit_code == 0:
        output = strip(json.loads(result.stdout))
    return result.exit_code, output, result.stderr.replace("error: server: ", "error: ")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_release_command_does_the_same_locally_and_through_a_server(
    repo, migrated_database_url, migrated_sqlite, tmp_path
):
    local_db = tmp_path / "local.db"
    shutil.copyfile(migrated_sqlite, local_db)
    here = ["--repo", str(repo.path), "--database-url", f"sqlite:///{local_db}"]
    settings = ServerSettings(repo=repo.path, database_url=migrated_database_url)
    runner = CliRunner()
    results: list[tuple[tuple[str, ...], tuple[int, Any, str]]] = []
    with serving(create_app(settings)) as base:
        for command in COMMANDS:
            local = runner.invoke(cli, [*here, *command])
            remote = runner.invoke(
                cli, ["--repo", str(repo.path), *command], env={"PROMPTCTL_SERVER": base}
            )
            assert outcome(remote, command) == outcome(local, command), command
            results.append((command, outcome(local, command)))

    # Both ways did what the commands say: the two refusals refused, the rest acted.
    failed = [command for command, (code, _, _) in results if code != 0]
    assert failed == [
        ("rollback", NAME, "--env", "staging", "--to", "v3"),
        ("canary", NAME, "--env", "staging", "--abort"),
    ]
    found = dict(results)
    _, states, _ = found[("status", "--json")]
    by_release = {(s["prompt"], s["environment"]): s for s in states}
    assert by_release[(NAME, "staging")]["stable"]["label"] == "v4"
    assert by_release[(NAME, "development")]["stable"]["label"] == "v3"  # main~1, read here
    assert {p for p, env in by_release if env == "qa"} == {NAME, OTHER}
    _, log, _ = found[("history", NAME, "--json")]
    preview = next(e for e in log if e["environment"] == "development" and e["revision"] == 1)
    assert preview["to"]["version"] is None  # HEAD was the feature branch, not main's tip
    assert preview["to"]["source"].startswith("HEAD@")
