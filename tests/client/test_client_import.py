"""Importing the client loads none of the server, database, git or command-line libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from client_kit import ENV, ServerProcess

# Top-level modules only the server, the database, git access or the command need.
HEAVY = (
    "pygit2",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "click",
    "pydantic",
    "pydantic_settings",
)


def modules_after(code: str) -> set[str]:
    """Run `code` in a fresh interpreter and return the top-level modules it loaded."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return {name.partition(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.parametrize(
    "statement", ["import promptctl.client", "from promptctl import PromptClient"]
)
def test_importing_the_client_loads_no_heavy_library(statement: str) -> None:
    loaded = modules_after(statement)

    assert "promptctl" in loaded
    assert sorted(loaded.intersection(HEAVY)) == []


def test_importing_the_client_defers_httpx_until_a_client_with_a_server_is_built() -> None:
    assert "httpx" not in modules_after("import promptctl.client")
    assert "httpx" in modules_after(
        "from promptctl import PromptClient\n"
        "PromptClient('http://127.0.0.1:9', environment='production').close(timeout=0)"
    )


def test_a_client_built_after_the_light_import_talks_to_the_server(
    shared_server: ServerProcess,
) -> None:
    from promptctl import AsyncPromptClient, PromptClient

    with PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts:
        prompt = prompts.get("translate")
    offline = AsyncPromptClient(environment=ENV)

    assert (prompt.name, prompt.source, prompt.stale) == ("translate", "server", False)
    assert offline.http is None
