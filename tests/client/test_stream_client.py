"""Clients on the change stream, over real sockets to `promptctl serve`.

Every client here has a TTL of five minutes unless the test is about polling: a change it
picks up within the test's ceiling came through the stream (or the catch-up a stream
does when it reconnects), never through TTL revalidation. Waits have generous ceilings
and assert on the client's state, never on a duration.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from client_kit import CANARY_PROMPT, ENV, RecordingTransport, ServerProcess, key_for
from cutting_proxy import CuttingProxy
from support import async_wait_until, wait_until

from promptctl.client import AsyncPromptClient, PromptClient

LONG_TTL = 300.0  # never reached in a test: only the stream can bring a change
CEILING = 20.0  # a guard against a hang, far above the second a change takes


def canary_key(server: ServerProcess) -> str:
    return key_for(CANARY_PROMPT, server.wait_for_release(CANARY_PROMPT, ENV), "canary")


def rollback(server: ServerProcess) -> None:
    """`promptctl rollback` on the server's database, as an operator runs it."""
    server.promptctl("rollback", CANARY_PROMPT, "--env", ENV, "--yes")


def serves(client: PromptClient, key: str, variant: str) -> bool:
    return client.get(CANARY_PROMPT, key).variant == variant


def test_a_client_serving_a_canary_switches_to_stable_right_after_a_rollback(server):
    key = canary_key(server)
    with PromptClient(server.url, environment=ENV, ttl=LONG_TTL) as client:
        assert serves(client, key, "canary")
        wait_until(lambda: client.stream_state.connected, timeout=CEILING, what="stream up")
        rollback(server)
        wait_until(lambda: serves(client, key, "stable"), timeout=CEILING, what="stable")
        served = client.get(CANARY_PROMPT, key)
        assert (served.version, served.stale, served.source) == (1, False, "server")


def test_an_async_client_switches_to_stable_right_after_a_rollback(server):
    key = canary_key(server)

    async def scenario() -> None:
        async with AsyncPromptClient(server.url, environment=ENV, ttl=LONG_TTL) as client:
            assert (await client.get(CANARY_PROMPT, key)).variant == "canary"

            async def connected() -> bool:
                return client.stream_state.connected

            await async_wait_until(connected, timeout=CEILING)
            await asyncio.to_thread(rollback, server)

            async def stable() -> bool:
                return (await client.get(CANARY_PROMPT, key)).variant == "stable"

            await async_wait_until(stable, timeout=CEILING)

    asyncio.run(scenario())


def test_a_change_made_before_the_stream_was_up_is_caught_up_from_its_ready_event(server):
    """The client fetched, then the release changed before its stream connected: `ready`
    lists every release's revision and the client fetches the one it is behind on."""
    key = canary_key(server)
    inner = httpx.HTTPTransport()
    refused: list[str] = []

    def streams_later(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/stream" and not refused:
            refused.append("once")
            raise httpx.ConnectError("not yet", request=request)
        return inner.handle_request(request)

    transport = httpx.MockTransport(streams_later)
    with PromptClient(server.url, environment=ENV, ttl=LONG_TTL, transport=transport) as client:
        client.stream_state.backoff.base = 2.0  # the rollback lands before the retry
        assert serves(client, key, "canary")
        wait_until(lambda: refused, timeout=CEILING, what="the first stream refused")
        rollback(server)
        wait_until(lambda: serves(client, key, "stable"), timeout=CEILING)
        assert client.stream_state.connections == 1


def test_with_the_stream_blocked_the_client_converges_by_polling(server, caplog):
    """A proxy that refuses the stream: one log line (info: polling keeps prompts fresh,
    nothing is wrong with the application), and TTL revalidation brings the rollback."""
    caplog.set_level(logging.INFO, logger="promptctl.client")
    key = canary_key(server)

    def refuse_streams(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/stream":
            return httpx.Response(403, json={"detail": "streams are not allowed here"})
        return inner.handle_request(request)

    inner = httpx.HTTPTransport()
    transport = httpx.MockTransport(refuse_streams)
    with PromptClient(server.url, environment=ENV, ttl=0.5, transport=transport) as client:
        assert serves(client, key, "canary")
        rollback(server)
        wait_until(lambda: serves(client, key, "stable"), timeout=CEILING)
        assert not client.stream_state.connected
    messages = [r.getMessage() for r in caplog.records if "change stream" in r.getMessage()]
    assert len(messages) == 1, messages
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "403 streams are not allowed here" in messages[0]
    assert "revalidating every 0.5 s" in messages[0]


def test_stream_false_opens_no_stream(server):
    transport = RecordingTransport()
    with PromptClient(
        server.url, environment=ENV, ttl=0.2, transport=transport, stream=False
    ) as client:
        client.get(CANARY_PROMPT, "k")
        wait_until(lambda: len(transport.calls) >= 3, timeout=CEILING, what="a few refreshes")
    assert {c.path for c in transport.calls} == {f"/v1/prompts/{CANARY_PROMPT}/release"}
    assert transport.streams == []


def test_after_a_server_restart_the_client_reconnects_and_catches_up(server):
    """The server stops (gracefully: the open stream does not hold it up), the release
    changes while it is down, and the client finds it when the server is back."""
    key = canary_key(server)
    with PromptClient(server.url, environment=ENV, ttl=LONG_TTL) as client:
        assert serves(client, key, "canary")
        wait_until(lambda: client.stream_state.connected, timeout=CEILING)
        server.processes[-1].process.terminate()
        assert server.processes[-1].process.wait(timeout=CEILING) is not None
        rollback(server)
        assert serves(client, key, "canary")  # no server: the last state keeps serving
        server.start()
        wait_until(lambda: serves(client, key, "stable"), timeout=CEILING)
        assert client.stream_state.connections >= 2


def test_through_a_proxy_that_cuts_idle_connections_the_client_resumes(server):
    """The proxy cuts the stream between heartbeats; each reconnection resumes after the
    last event seen (Last-Event-ID) and the rollback arrives."""
    key = canary_key(server)
    proxy = CuttingProxy(server.port, idle_cut=0.5)
    try:
        with PromptClient(proxy.url, environment=ENV, ttl=LONG_TTL) as client:
            client.stream_state.backoff.cap = 0.5
            assert serves(client, key, "canary")
            wait_until(lambda: proxy.cut >= 2, timeout=CEILING, what="two idle cuts")
            assert client.stream_state.last_id is not None
            rollback(server)
            wait_until(lambda: serves(client, key, "stable"), timeout=CEILING)
    finally:
        proxy.close()
