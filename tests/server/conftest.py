"""Server fixtures: a prompt repository, an app over it and a fresh database, a client.

The chain is repo -> settings -> app -> client, each built per test on tmp_path; the
database is an SQLite file, or a PostgreSQL schema of its own (see `database_url`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from promptctl.registry.store.database import Database
from promptctl.server.app import create_app
from promptctl.server.settings import ModelPrice, ServerSettings

MODEL = "gpt-4o-mini"
PRICE = ModelPrice(input=0.15, output=0.60)


def greeting(number: int, model: str = MODEL) -> str:
    """A clean prompt file whose body differs per version."""
    return (
        "---\n"
        "description: Greet a user\n"
        f"model: {model}\n"
        "input:\n"
        "  name: {type: string}\n"
        "samples:\n"
        "  - {name: Ada}\n"
        "---\n"
        "Hello {{ name }}, this is greeting number " + str(number) + ".\n"
    )


@pytest.fixture
def repo(git_repo):
    """greet v1..v3 and summarize v1 (another model, with no price) on main."""
    git_repo.commit(
        "greet and summarize",
        {
            "prompts/greet.prompt": greeting(1),
            "prompts/summarize.prompt": greeting(1, model="unpriced-model"),
        },
    )
    git_repo.commit("greet 2", {"prompts/greet.prompt": greeting(2)})
    git_repo.commit("greet 3", {"prompts/greet.prompt": greeting(3)})
    return git_repo


@pytest.fixture
def settings(repo, database_url: str) -> ServerSettings:
    # PostgreSQL is never upgraded implicitly by the service: do what `promptctl db
    # upgrade` does first.
    database = Database(database_url, auto_upgrade=True)
    database.ensure_schema()
    database.dispose()
    return ServerSettings(repo=repo.path, database_url=database_url, prices={MODEL: PRICE})


@pytest.fixture
def app(settings: ServerSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def promote(app: FastAPI) -> Callable[..., str]:
    """Release a version (stable, or canary at a weight); return its full digest."""

    def run(
        name: str = "greet", env: str = "staging", ref: str = "HEAD", canary_bp: int | None = None
    ) -> str:
        ctx = app.state.ctx
        version = ctx.registry.library.get(name, ref)
        ctx.registry.releases.promote(
            version, env, actor="test", canary_bp=canary_bp, confirmed=True
        )
        ctx.cache.refresh_release(name, env)
        return version.digest

    return run


# -- The serving and release suite: a library with a chat prompt and a partial -------------
#
# Chain: library_repo -> make_settings / server_settings -> server_app -> api (a TestClient
# with the lifespan, hence the poller, running). Test modules repeat the few names they need
# (TRIAGE, ...) since conftest is not importable.

TRIAGE = "support/triage"
SUMMARY = "news/summary"
TONE_V1 = "Be kind."
TONE_V2 = "Be brief."


def triage(opening: str) -> str:
    """A chat prompt with a partial, an enum with a default and a front-matter key of its own."""
    return (
        "---\n"
        "description: Triage a support ticket\n"
        f"model: {MODEL}\n"
        "params: {temperature: 0.2, max_tokens: 400}\n"
        "input:\n"
        "  ticket: {type: string, description: raw ticket text}\n"
        "  tier: {type: string, enum: [free, pro, enterprise], default: free}\n"
        "owner: support-team\n"
        "samples:\n"
        '  - {ticket: "I was charged twice", tier: pro}\n'
        "---\n"
        '{% message "system" %}\n'
        f"{opening} Tier: {{{{ tier }}}}.\n"
        '{% include "partials/tone.j2" %}\n'
        "{% endmessage %}\n"
        '{% message "user" %}{{ ticket }}{% endmessage %}\n'
    )


def summary(length: str) -> str:
    """A text prompt: no message blocks."""
    return (
        "---\n"
        "description: Summarise an article\n"
        "model: gpt-4o\n"
        "input:\n"
        "  article: {type: string}\n"
        "samples:\n"
        "  - {article: The cat sat on the mat.}\n"
        "---\n"
        f"Summarise in {length}:\n{{{{ article }}}}\n"
    )


def _build_library(repo) -> None:
    repo.commit(
        "add triage and summary",
        {
            "prompts/support/triage.prompt": triage("You triage tickets."),
            "prompts/partials/tone.j2": TONE_V1 + "\n",
            "prompts/news/summary.prompt": summary("one line"),
        },
    )
    repo.git("tag", "release-1")
    repo.commit("brief tone", {"prompts/partials/tone.j2": TONE_V2 + "\n"})
    repo.commit(
        "sharper triage, longer summary",
        {
            "prompts/support/triage.prompt": triage("Triage now."),
            "prompts/news/summary.prompt": summary("two lines"),
        },
    )


@pytest.fixture
def library_repo(built_repo):
    """support/triage v1..v3 (chat; v2 changes only its partial) and news/summary v1..v2.

    Tag `release-1` marks the first commit.
    """
    return built_repo("server-library", _build_library)


def prepare_database(url: str) -> None:
    """Bring the schema to head, as `promptctl db upgrade` does (the service never does it
    implicitly on PostgreSQL)."""
    database = Database(url, auto_upgrade=True)
    database.ensure_schema()
    database.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head once; tests start from copies of it."""
    path = tmp_path_factory.mktemp("migrated") / "registry.db"
    prepare_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_settings(
    library_repo, database_url: str, _migrated_sqlite: Path
) -> Callable[..., ServerSettings]:
    """Settings over library_repo and this test's database; keywords override them."""
    sqlite_file = make_url(database_url).database if database_url.startswith("sqlite") else None
    if sqlite_file and not Path(sqlite_file).exists():
        shutil.copyfile(_migrated_sqlite, sqlite_file)
    else:
        prepare_database(database_url)

    def make(**overrides: Any) -> ServerSettings:
        given: dict[str, Any] = {
            "repo": library_repo.path,
            "database_url": database_url,
            "poll_interval": 0.2,
            **overrides,
        }
        return ServerSettings(**given)

    return make


@pytest.fixture
def server_settings(make_settings) -> ServerSettings:
    return make_settings()


@pytest.fixture
def server_app(server_settings: ServerSettings) -> FastAPI:
    return create_app(server_settings)


@pytest.fixture
def api(server_app: FastAPI) -> Iterator[TestClient]:
    """A client of server_app with its lifespan (and so its poller) running."""
    with TestClient(server_app) as test_client:
        yield test_client


@pytest.fixture
def open_client() -> Iterator[Callable[[FastAPI], TestClient]]:
    """Start more clients (each running its app's lifespan); all close after the test."""
    with ExitStack() as stack:

        def start(app: FastAPI) -> TestClient:
            return stack.enter_context(TestClient(app))

        yield start


@pytest.fixture
def problem_of() -> Callable[[httpx.Response, int], dict[str, Any]]:
    """Check an RFC 9457 problem response with this status; return its document."""

    def check(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        document = response.json()
        assert document["status"] == status
        assert document["title"]
        assert document["detail"]
        assert "Traceback" not in document["detail"]
        return document

    return check
