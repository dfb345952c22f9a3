"""The resolve path answers from memory: no database query and no git read on a cache hit."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from promptctl.registry.auth import TokenService
from promptctl.registry.prompts.gitstore import GitStore
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)


class GitReadDuringHotPath(AssertionError):
    """A git read happened where none may."""


@contextmanager
def counting_queries(app: FastAPI) -> Iterator[list[str]]:
    """Record every SQL statement the app's engine sends while the block runs, but those
    of the PostgreSQL listener's thread: after it connects it reads the release
    fingerprint once (catching up on what it missed), whenever that thread gets to it."""
    engine = app.state.ctx.registry.database.engine
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ARG001
        if threading.current_thread().name != "promptctl-listen":
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def git_forbidden(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every GitStore method raise while the block runs."""

    def refuse(name: str):
        def method(*args, **kwargs):
            raise GitReadDuringHotPath(f"GitStore.{name} called")

        return method

    with monkeypatch.context() as patch:
        for name, member in inspect.getmembers(GitStore):
            if name.startswith("__"):
                continue
            if inspect.isfunction(member):
                patch.setattr(GitStore, name, refuse(name))
            elif isinstance(member, property):
                patch.setattr(GitStore, name, property(refuse(name)))
        yield


@pytest.fixture
def warm_app(make_settings) -> FastAPI:
    """Tokens on, a poll interval of an hour (no poll during the measurement), no webhook
    dispatcher (it reads its outbox from a thread of its own), triage v1 stable and v3 a 40%
    canary in staging, summary stable in production."""
    app = create_app(make_settings(tokens=True, poll_interval=3600, webhook_dispatch=False))
    ctx = app.state.ctx
    library, releases = ctx.registry.library, ctx.registry.releases
    releases.promote(library.get(TRIAGE, "v1"), "staging", actor="setup")
    releases.promote(library.get(TRIAGE, "v3"), "staging", actor="setup", canary_bp=4000)
    releases.promote(library.get("news/summary", "v2"), "production", actor="s", confirmed=True)
    return app


def test_resolve_render_and_release_state_make_no_query_and_no_git_read_on_a_hit(
    warm_app, open_client, monkeypatch
):
    secret, _ = TokenService(warm_app.state.ctx.registry.database).create("app", "read")
    warm_app.state.ctx.cache.load_all()
    client = open_client(warm_app)
    headers = {"Authorization": f"Bearer {secret}"}
    resolve = f"/v1/prompts/{TRIAGE}/resolve"
    first = client.get(resolve, params={"env": "staging", "key": "warm"}, headers=headers)
    assert first.status_code == 200, first.text

    with counting_queries(warm_app) as statements, git_forbidden(monkeypatch):
        variants = set()
        for n in range(100):
            response = client.get(
                resolve, params={"env": "staging", "key": f"u{n}"}, headers=headers
            )
            assert response.status_code == 200, response.text
            variants.add(response.json()["variant"])
        keyless = client.get(resolve, params={"env": "staging"}, headers=headers)
        assert keyless.status_code == 200
        etag = first.headers["etag"]
        conditional = client.get(
            resolve,
            params={"env": "staging", "key": "warm"},
            headers={**headers, "If-None-Match": etag},
        )
        assert conditional.status_code == 304
        other = client.get(
            "/v1/prompts/news/summary/resolve", params={"env": "production"}, headers=headers
        )
        assert other.json()["label"] == "v2"
        release = client.get(f"/v1/prompts/{TRIAGE}/release?env=staging", headers=headers)
        assert release.json()["weight_bp"] == 4000
        rendered = client.post(
            f"/v1/prompts/{TRIAGE}/render",
            json={"env": "staging", "key": "u1", "variables": {"ticket": "hello"}},
            headers=headers,
        )
        assert rendered.status_code == 200, rendered.text
        assert rendered.json()["messages"][1] == {"role": "user", "content": "hello"}

    assert variants == {"stable", "canary"}
    assert statements == []


def test_the_instruments_do_see_queries_and_git_reads(warm_app, open_client, monkeypatch):
    """The measurement above would catch a query or a git read: these endpoints do both."""
    client = open_client(
        create_app(warm_app.state.ctx.settings.model_copy(update={"tokens": False}))
    )
    with counting_queries(client.app) as statements:
        assert client.get("/v1/releases").status_code == 200
    assert statements
    with git_forbidden(monkeypatch):
        response = client.get(f"/v1/prompts/{TRIAGE}/versions")
    assert response.status_code == 500  # the app answers any unexpected error itself
    assert response.json()["detail"] == "unexpected GitReadDuringHotPath; see server log"


def test_a_miss_for_an_unreleased_prompt_makes_no_query_either(warm_app, open_client):
    client = open_client(
        create_app(warm_app.state.ctx.settings.model_copy(update={"tokens": False}))
    )
    with counting_queries(client.app) as statements:
        missing = client.get("/v1/prompts/news/summary/resolve", params={"env": "staging"})
        unknown_env = client.get(f"/v1/prompts/{TRIAGE}/resolve", params={"env": "qa"})
    assert (missing.status_code, unknown_env.status_code) == (404, 404)
    assert statements == []
