"""Issue 13's story, end to end over a socket: a laptop whose `main` is ahead of the
server's clone promotes through the server, and the server promotes what the laptop means
(fetching it from the remote both push to), or refuses in one line saying what it has.

The remote is a bare repository on disk; the laptop pushes to it with `git`, and the server
(`promptctl serve --port 0`, its own clone of the bare repository) fetches from it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from remotes import NAME, Remotes
from support import ServeProcess, refused_port, serving

from promptctl.cli.main import cli
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def promptctl_command() -> list[str]:
    beside = Path(sys.executable).parent / "promptctl"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "promptctl"]


@pytest.fixture
def remotes(tmp_path) -> Remotes:
    """translate v1..v4 pushed; the server's clone made now (so it has v4)."""
    remotes = Remotes(tmp_path).with_versions(4)
    remotes.server = remotes.clone("server")
    return remotes


@pytest.fixture
def laptop(remotes) -> Callable[..., Result]:
    """The CLI on the laptop's repository (PROMPTCTL_SERVER set by the test)."""

    def run(*args: str, server: str) -> Result:
        return CliRunner().invoke(
            cli, ["--repo", str(remotes.laptop.path), *args], env={"PROMPTCTL_SERVER": server}
        )

    return run


@pytest.fixture
def serve(remotes, migrated_database_url) -> Iterator[Callable[..., str]]:
    """`promptctl serve --port 0` over the server's clone, fetching only on demand."""
    servers: list[ServeProcess] = []

    def start() -> str:
        server = ServeProcess(
            [
                *promptctl_command(),
                "--repo",
                str(remotes.server.path),
                "--database-url",
                migrated_database_url,
                "serve",
                "--port",
                "0",
            ],
            env={**os.environ, "PROMPTCTL_GIT_FETCH_INTERVAL": "0"},
        )
        servers.append(server)
        return server.wait_started()

    yield start
    for server in servers:
        server.stop()


@pytest.mark.slow
@sqlite_only
def test_promote_through_a_server_with_a_stale_clone_promotes_what_the_laptop_has(
    remotes, laptop, serve
):
    base = serve()
    served_commit = remotes.server.git("rev-parse", "HEAD")
    assert httpx.get(f"{base}/v1/git").json()["commit"] == served_commit

    # Without a ref: the laptop's HEAD (v5), which the server fetches.
    head = remotes.laptop.version(5)
    promoted = laptop("promote", NAME, "--env", "development", server=base)
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.startswith(f"{NAME}: v5 (")
    assert promoted.stdout.rstrip().endswith("is stable in development")
    assert httpx.get(f"{base}/v1/git").json()["commit"] == head

    # With a ref the server's clone does not have yet.
    remotes.laptop.version(6)
    promoted = laptop("promote", f"{NAME}@v6", "--env", "staging", server=base)
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.startswith(f"{NAME}: v6 (")

    # promote --all reports what the server stored.
    remotes.laptop.version(7)
    everything = laptop("promote", "--all", "--env", "staging", server=base)
    assert everything.exit_code == 0, everything.output
    assert everything.stdout.startswith(f"{NAME}: promoted (v7 (")
    status = laptop("status", NAME, "--env", "staging", "--json", server=base)
    assert json.loads(status.stdout)[0]["stable"]["label"] == "v7"

    # A commit that was never pushed: one line saying what the server has; nothing stored.
    unpushed = remotes.laptop.version(8, push=False)
    refused = laptop("promote", NAME, "--env", "development", server=base)
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"error: server: {NAME} ")
    assert f"(HEAD from commit {unpushed[:10]}) is not in the server's repository" in line
    assert f"which has {NAME} at v7 (" in line
    assert line.endswith("just now: still not there (was it pushed?)")
    status = laptop("status", NAME, "--env", "development", "--json", server=base)
    assert json.loads(status.stdout)[0]["stable"]["label"] == "v5"


@sqlite_only
def test_the_cli_says_in_one_line_when_the_server_cannot_fetch(
    remotes, laptop, migrated_database_url
):
    with refused_port() as port:
        settings = ServerSettings(
            repo=remotes.server.path,
            database_url=migrated_database_url,
            git_remote=f"http://127.0.0.1:{port}/prompts.git",
            git_fetch_interval=0,
        )
        with serving(create_app(settings)) as base:
            remotes.laptop.version(5)
            refused = laptop("promote", NAME, "--env", "development", server=base)
            assert refused.exit_code == 1
            [line] = refused.stderr.splitlines()
            assert f"which has {NAME} at v4 (" in line
            remote = f"http://127.0.0.1:{port}/prompts.git"
            assert f"; cannot fetch from {remote}: it is unreachable (" in line
            # What the clone has still promotes.
            kept = laptop("promote", f"{NAME}@v4", "--env", "development", server=base)
            assert kept.exit_code == 0, kept.output


@sqlite_only
def test_without_a_repository_here_the_cli_lets_the_server_read_the_ref(
    remotes, migrated_database_url, tmp_path
):
    settings = ServerSettings(
        repo=remotes.server.path, database_url=migrated_database_url, git_fetch_interval=0
    )
    nowhere = tmp_path / "not-a-repository"
    nowhere.mkdir()
    with serving(create_app(settings)) as base:
        promoted = CliRunner().invoke(
            cli,
            ["--repo", str(nowhere), "promote", f"{NAME}@v3", "--env", "staging"],
            env={"PROMPTCTL_SERVER": base},
        )
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.startswith(f"{NAME}: v3 (")
