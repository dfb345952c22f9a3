"""Two `promptctl serve` processes on one PostgreSQL, behind a round-robin proxy.

What the README's "Several replicas" section promises, end to end: the replicas share the
database only (each has its own serving cache, here over one clone), and behind any HTTP
load balancer (here a proxy in this test that sends each request to the next replica in
turn) a client cannot tell them apart:

- a promote through one replica is served by the other (LISTEN/NOTIFY, else the
  fingerprint poll), on its resolve fast path;
- metrics ingested through both add up in one summary, whichever replica answers it;
- a token created in the database works on both, and once revoked on neither.

Runs only with PROMPTCTL_TEST_POSTGRES_URL (a schema of its own, as the suite's other
PostgreSQL tests).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send
from support import ServeProcess, promptctl_command, serving, wait_until

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
ENV = "staging"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"),
        reason="needs PROMPTCTL_TEST_POSTGRES_URL",
    ),
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


class RoundRobin:
    """An ASGI reverse proxy: each request goes to the next upstream in turn, and the
    answer comes back as the upstream gave it (status, headers, body)."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self.turn = itertools.cycle(range(len(upstreams)))
        self.sent: list[int] = []  # the upstream of each request, in order

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        index = next(self.turn)
        self.sent.append(index)
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"content-length")]
        target = self.upstreams[index] + scope["raw_path"].decode()
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode()
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(scope["method"], target, headers=headers, content=body)
        drop = {b"content-length", b"transfer-encoding", b"connection", b"date", b"server"}
        kept = [(k, v) for k, v in answer.headers.raw if k.lower() not in drop]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
        await send({"type": "http.response.body", "body": answer.content})


def promptctl(repo, database_url: str, *args: str) -> str:
    """Run the promptctl command against the shared database; return its stdout."""
    command = [*promptctl_command(), "--repo", str(repo.path), "--database-url", database_url]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, env=dict(os.environ), check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def create_token(repo, database_url: str, name: str, scope: str, *options: str) -> str:
    """`promptctl token create` on the shared database; return the secret."""
    created = promptctl(
        repo, database_url, "token", "create", "--name", name, "--scope", scope, *options, "--json"
    )
    return json.loads(created)["token"]


@contextmanager
def two_replicas(repo, database_url: str) -> Iterator[tuple[list[str], RoundRobin, str]]:
    """Two `promptctl serve --tokens` processes (ports 0) on the database and a round-robin
    proxy in front; yield their URLs, the proxy and its URL."""
    command = [
        *promptctl_command(),
        "--repo",
        str(repo.path),
        "--database-url",
        database_url,
        "serve",
        "--tokens",
        "--port",
        "0",
    ]
    # The rollout controller and the remote follower have nothing to do here.
    env = {**os.environ, "PROMPTCTL_ROLLOUT_INTERVAL": "0", "PROMPTCTL_GIT_FETCH_INTERVAL": "0"}
    with ExitStack() as stack:
        processes = [ServeProcess(command, env=env) for _ in range(2)]
        for process in processes:
            stack.callback(process.stop)
        urls = [process.wait_started() for process in processes]
        proxy = RoundRobin(urls)
        yield urls, proxy, stack.enter_context(serving(proxy))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def label_at(url: str, secret: str, key: str = "k") -> str | None:
    response = httpx.get(
        f"{url}/v1/prompts/{TRIAGE}/resolve",
        params={"env": ENV, "key": key},
        headers=bearer(secret),
    )
    return response.json()["label"] if response.status_code == 200 else None


def events(digest: str, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": uuid.uuid4().hex,
            "prompt": TRIAGE,
            "env": ENV,
            "digest": digest,
            "ts": now,
            "latency_ms": 100.0 + n,
            "error": n % 10 == 0,
        }
        for n in range(count)
    ]


def test_two_replicas_behind_a_round_robin_proxy_serve_as_one(repo, migrated_database_url):
    url = migrated_database_url
    admin = create_token(repo, url, "ops", "admin")
    with two_replicas(repo, url) as (replicas, proxy, front):
        first, second = replicas

        # A promote through the first replica is served by the second.
        promoted = httpx.post(
            f"{first}/v1/prompts/{TRIAGE}/promote",
            json={"env": ENV, "ref": "v2"},
            headers=bearer(admin),
        )
        assert promoted.status_code == 200, promoted.text
        assert label_at(first, admin) == "v2"
        wait_until(lambda: label_at(second, admin) == "v2", what="the promote on the other")
        promoted = httpx.post(
            f"{second}/v1/prompts/{TRIAGE}/promote",
            json={"env": ENV, "ref": "v3"},
            headers=bearer(admin),
        )
        assert promoted.status_code == 200, promoted.text
        wait_until(lambda: label_at(first, admin) == "v3", what="the promote on the first")
        digest = httpx.get(
            f"{front}/v1/prompts/{TRIAGE}/resolve", params={"env": ENV}, headers=bearer(admin)
        ).json()["digest"]

        # Metrics through both add up in one summary, whichever replica answers it.
        proxy.sent.clear()
        with httpx.Client(base_url=front, headers=bearer(admin)) as client:
            for _ in range(6):
                ingested = client.post("/v1/metrics", json={"events": events(digest, 50)})
                assert ingested.status_code == 200, ingested.text
                assert ingested.json()["accepted"] == 50
        assert sorted(set(proxy.sent)) == [0, 1]
        for replica in replicas:
            summary = httpx.get(
                f"{replica}/v1/prompts/{TRIAGE}/metrics", params={"env": ENV}, headers=bearer(admin)
            )
            assert summary.status_code == 200, summary.text
            (version,) = summary.json()["versions"]
            assert (version["digest"], version["count"], version["errors"]) == (digest, 300, 30)

        # A token created in the shared database works on both replicas; revoked, on neither.
        reader = create_token(repo, url, "app", "read", "--env", ENV)
        for replica in replicas:
            wait_until(lambda r=replica: label_at(r, reader) == "v3", what="the new token")
        refused = httpx.get(
            f"{front}/v1/prompts/{TRIAGE}/resolve",
            params={"env": "production"},
            headers=bearer(reader),
        )
        assert refused.status_code == 403  # limited to staging, on whichever replica
        promptctl(repo, url, "token", "revoke", "app")
        for replica in replicas:
            wait_until(
                lambda r=replica: (
                    httpx.get(
                        f"{r}/v1/prompts/{TRIAGE}/resolve",
                        params={"env": ENV},
                        headers=bearer(reader),
                    ).status_code
                    == 401
                ),
                what="the revoked token refused",
            )
