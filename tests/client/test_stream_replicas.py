"""Two replicas on one database, a client streaming from one of them.

On PostgreSQL the replicas poll their fingerprint only every minute here: a change made
through one replica reaches the other's subscribers by LISTEN/NOTIFY alone. On SQLite
(two processes on one file) the poll is how it travels, every 0.2 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_kit import CANARY_PROMPT, ENV, key_for, run_promptctl
from cutting_proxy import CuttingProxy
from sqlalchemy.engine import make_url
from support import serving, wait_until

from promptctl.client import PromptClient
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

LONG_TTL = 300.0  # only the stream can bring a change within a test
CEILING = 20.0


@pytest.fixture
def replicas(
    prompt_repo: Path, migrated_database_url: str
) -> Iterator[Callable[[], tuple[str, Any]]]:
    """Start replicas over this test's database (uvicorn in threads); each call returns
    (its URL, the ExitStack that stops it)."""
    postgres = make_url(migrated_database_url).get_backend_name() == "postgresql"
    settings = ServerSettings(
        repo=prompt_repo,
        database_url=migrated_database_url,
        poll_interval=60.0 if postgres else 0.2,
        git_fetch_interval=0,
    )
    with ExitStack() as everything:

        def start() -> tuple[str, ExitStack]:
            own = everything.enter_context(ExitStack())
            return own.enter_context(serving(create_app(settings))), own

        yield start


def release_examples(repo: Path, database_url: str) -> None:
    run_promptctl(repo, database_url, "promote", "--all", "HEAD~1", "--env", ENV, "--yes")
    run_promptctl(
        repo, database_url, "promote", f"{CANARY_PROMPT}@v2", "--env", ENV, "--canary", "30",
        "--yes",
    )  # fmt: skip


def canary_key(base: str) -> str:
    release = httpx.get(f"{base}/v1/prompts/{CANARY_PROMPT}/release", params={"env": ENV})
    assert release.status_code == 200, release.text
    return key_for(CANARY_PROMPT, release.json(), "canary")


def rollback_through(base: str) -> None:
    answer = httpx.post(
        f"{base}/v1/prompts/{CANARY_PROMPT}/rollback",
        json={"env": ENV},
        timeout=CEILING,
    )
    assert answer.status_code == 200, answer.text


def test_a_rollback_through_one_replica_reaches_a_client_of_the_other(
    replicas, prompt_repo, migrated_database_url
):
    release_examples(prompt_repo, migrated_database_url)
    (a, _), (b, _) = replicas(), replicas()
    key = canary_key(b)
    with PromptClient(b, environment=ENV, ttl=LONG_TTL) as client:
        assert client.get(CANARY_PROMPT, key).variant == "canary"
        wait_until(lambda: client.stream_state.connected, timeout=CEILING)
        rollback_through(a)
        wait_until(
            lambda: client.get(CANARY_PROMPT, key).variant == "stable",
            timeout=CEILING,
            what="the rollback made through the other replica",
        )


def test_when_a_replica_dies_its_clients_resume_on_another(
    replicas, prompt_repo, migrated_database_url
):
    """Behind a load balancer (the proxy), the replica a client streams from goes away;
    the client reconnects to the other, resumes after its last event, and catches up on
    a rollback made while it was away."""
    release_examples(prompt_repo, migrated_database_url)
    (a, stop_a), (b, _) = replicas(), replicas()
    key = canary_key(a)
    proxy = CuttingProxy(int(a.rsplit(":", 1)[1]))
    try:
        with PromptClient(proxy.url, environment=ENV, ttl=LONG_TTL) as client:
            assert client.get(CANARY_PROMPT, key).variant == "canary"
            wait_until(lambda: client.stream_state.connected, timeout=CEILING)
            proxy.point_to(int(b.rsplit(":", 1)[1]))
            proxy.cut_all()  # replica a is gone, its connections with it
            stop_a.close()
            rollback_through(b)
            wait_until(
                lambda: client.get(CANARY_PROMPT, key).variant == "stable",
                timeout=CEILING,
                what="the rollback, from the replica that is left",
            )
            assert client.stream_state.connections >= 2
    finally:
        proxy.close()
