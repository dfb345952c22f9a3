"""Client fixtures: real servers over sockets (see client_kit for the machinery)."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_kit import (
    CANARY_PROMPT,
    ENV,
    AsyncRecordingTransport,
    RecordingTransport,
    ServerProcess,
    build_example_repo,
)
from support import refused_port


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository with the examples; tests that write get copies of it."""
    return build_example_repo(tmp_path_factory.mktemp("examples") / "repo")


@pytest.fixture
def prompt_repo(example_repo: Path, tmp_path: Path) -> Path:
    """This test's own copy of the example repository."""
    target = tmp_path / "repo"
    shutil.copytree(example_repo, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def shared_server(
    example_repo: Path, migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server for the tests that only read, on SQLite, with every example released in
    production (v1) and triage v2 as a 30 % canary. Never stopped before the session ends."""
    workdir = tmp_path_factory.mktemp("shared-server")
    repo = workdir / "repo"
    shutil.copytree(example_repo, repo, symlinks=True)
    shutil.copyfile(migrated_sqlite, workdir / "registry.db")
    server = ServerProcess(repo, f"sqlite:///{workdir / 'registry.db'}", workdir)
    server.start()
    try:
        server.release_examples(ENV)
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_env(shared_server: ServerProcess) -> str:
    """An environment of this test's own on the shared server, so what a test writes
    (metrics, promotions) never meets another test's: support/triage v1 stable, v2 canary."""
    env = f"t-{uuid.uuid4().hex[:10]}"
    shared_server.promptctl("env", "create", env)
    shared_server.promptctl("promote", f"{CANARY_PROMPT}@v1", "--env", env)
    shared_server.start_canary(env)
    shared_server.wait_for_release(CANARY_PROMPT, env, revision=2)
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers of this test's own; every one is stopped after the test."""
    started: list[ServerProcess] = []

    def start(repo: Path, database_url: str, **options: Any) -> ServerProcess:
        server = ServerProcess(repo, database_url, tmp_path, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(
    prompt_repo: Path, migrated_database_url: str, start_server: Callable[..., ServerProcess]
) -> ServerProcess:
    """A server of this test's own on this test's database, migrated (the service never
    upgrades PostgreSQL by itself), with the examples released."""
    started = start_server(prompt_repo, migrated_database_url)
    started.release_examples(ENV)
    return started


@pytest.fixture
def down_port() -> Iterator[int]:
    """A port that refuses every connection, held for the test: a server that is down."""
    with refused_port() as port:
        yield port


@pytest.fixture
def down_url(down_port: int) -> str:
    """The URL of a server that is down (see `down_port`)."""
    return f"http://127.0.0.1:{down_port}"


@pytest.fixture
def transport() -> RecordingTransport:
    """A real transport that records requests; pass it as PromptClient(transport=...)."""
    return RecordingTransport()


@pytest.fixture
def async_transport() -> AsyncRecordingTransport:
    return AsyncRecordingTransport()


@pytest.fixture
def bundle(shared_server: ServerProcess, tmp_path: Path) -> Path:
    """What is released in production, written by `promptctl bundle`."""
    path = tmp_path / "prompts.bundle.json"
    shared_server.promptctl("bundle", "--env", ENV, "-o", str(path))
    return path



def _client_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "promptctl.client" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def warnings_of(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO, logger="promptctl.client")
    return lambda: _client_warnings(caplog)
