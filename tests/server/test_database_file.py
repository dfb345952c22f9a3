"""The SQLite file stays where it was: moved, replaced or missing is said, never worked around
(no writes into a moved file, no silent new empty database)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from support import promptctl_command

from promptctl.cli.main import cli
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings


@pytest.fixture
def served(git_repo, tmp_path):
    git_repo.commit("greet", {"prompts/greet.prompt": "Hello.\n"})
    git_repo.commit("greet 2", {"prompts/greet.prompt": "Hello again.\n"})
    database = tmp_path / "db" / "registry.db"
    app = create_app(ServerSettings(repo=git_repo.path, database_url=f"sqlite:///{database}"))
    with TestClient(app) as client:
        first = client.post("/v1/prompts/greet/promote", json={"env": "staging", "ref": "HEAD~1"})
        assert first.status_code == 200, first.text
        yield client, database


def promote_head(client: TestClient):
    return client.post("/v1/prompts/greet/promote", json={"env": "staging", "ref": "HEAD"})


def test_a_database_moved_away_while_serving_refuses_writes_and_is_not_ready(served, problem_of):
    client, database = served
    moved = database.with_name("moved.db")
    os.rename(database, moved)
    problem = problem_of(promote_head(client), 503)
    assert problem["title"] == "Database unavailable"
    assert f"the database file {database} is gone" in problem["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "is gone" in ready.json()["checks"]["database"]
    # What is released keeps serving from memory, and nothing was written into the moved file.
    assert client.get("/v1/prompts/greet/resolve?env=staging").status_code == 200
    os.rename(moved, database)
    assert promote_head(client).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_database_replaced_by_another_file_is_refused(served, problem_of):
    client, database = served
    copy = database.with_name("copy.db")
    shutil.copy(database, copy)
    os.replace(copy, database)  # same path, another file
    problem = problem_of(promote_head(client), 503)
    assert "was replaced while in use" in problem["detail"]


def test_serve_refuses_to_create_a_missing_database(git_repo, tmp_path):
    git_repo.commit("greet", {"prompts/greet.prompt": "Hello.\n"})
    missing = tmp_path / "nowhere" / "registry.db"
    result = CliRunner().invoke(
        cli, ["--repo", str(git_repo.path), "--database-url", f"sqlite:///{missing}", "serve"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no database at {missing}: run 'promptctl db upgrade'")
    assert not missing.exists()


def test_serve_with_create_starts_on_a_new_database(git_repo, tmp_path):
    git_repo.commit("greet", {"prompts/greet.prompt": "Hello.\n"})
    database = tmp_path / "new" / "registry.db"
    command = promptctl_command()
    process = subprocess.Popen(
        [*command, "--repo", str(git_repo.path), "--database-url", f"sqlite:///{database}",
         "serve", "--create", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stderr is not None
        started = any("Uvicorn running on" in line for line in process.stderr)  # stops there
        assert started
        assert database.exists()
    finally:
        process.terminate()
        process.wait(timeout=30)
