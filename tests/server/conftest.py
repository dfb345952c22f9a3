"""Server fixtures: one chain, each link built per test on tmp_path.

    repo -> settings -> registry -> app -> client

`repo` is the library below (support/triage, news/summary and a partial); a module that
needs other prompts overrides `repo` (test_metrics_api and test_resolve_route take
`greet_repo`, test_render_bounds commits hostile prompts). `settings` are ServerSettings
over `repo` and this test's database at the newest migration (`migrated_database_url`:
SQLite, or a PostgreSQL schema of its own); `make_settings(**overrides)` gives variants of
them (tokens on, another poll interval) over the same repository and database. `app` is
create_app over the registry's settings, and `client` a TestClient running its lifespan
(and so its poller); `open_client` starts more, of other apps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from promptctl.registry.core import Registry
from promptctl.server.app import create_app
from promptctl.server.settings import ModelPrice, ServerSettings

MODEL = "gpt-4o-mini"
PRICE = ModelPrice(input=0.15, output=0.60)

# -- repositories -------------------------------------------------------------------------
#
# Test modules repeat the few names they need (TRIAGE, ...) since conftest is not
# importable.

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


def _build_greetings(repo) -> None:
    repo.commit(
        "greet and summarize",
        {
            "prompts/greet.prompt": greeting(1),
            "prompts/summarize.prompt": greeting(1, model="unpriced-model"),
        },
    )
    repo.commit("greet 2", {"prompts/greet.prompt": greeting(2)})
    repo.commit("greet 3", {"prompts/greet.prompt": greeting(3)})


@pytest.fixture
def repo(built_repo):
    """support/triage v1..v3 (chat; v2 changes only its partial) and news/summary v1..v2.

    Tag `release-1` marks the first commit.
    """
    return built_repo("server-library", _build_library)


@pytest.fixture
def greet_repo(built_repo):
    """greet v1..v3 and summarize v1 (another model, with no price) on main."""
    return built_repo("server-greetings", _build_greetings)


# -- the chain ----------------------------------------------------------------------------


@pytest.fixture
def make_settings(repo, migrated_database_url: str) -> Callable[..., ServerSettings]:
    """Settings over `repo` and this test's database; keywords override them."""

    def make(**overrides: Any) -> ServerSettings:
        given: dict[str, Any] = {
            "repo": repo.path,
            "database_url": migrated_database_url,
            "poll_interval": 0.2,
            "prices": {MODEL: PRICE},
            **overrides,
        }
        return ServerSettings(**given)

    return make


@pytest.fixture
def settings(make_settings) -> ServerSettings:
    return make_settings()


@pytest.fixture
def app(registry: Registry) -> FastAPI:
    """The service over the registry's repository and database (create_app builds its own
    Registry from these settings)."""
    return create_app(registry.settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of `app` with its lifespan (and so its poller) running."""
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
