"""GET /v1/stream over a real socket (uvicorn in a thread): what a stream sends, resuming,
its limits and its bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, suppress
from typing import Any

import httpx
import pytest
from support import ServeProcess, promptctl_command, serving, wait_until

from promptctl.client._stream import EventParser, ServerEvent
from promptctl.registry.core import Registry
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
SUMMARY = "news/summary"
CEILING = 20.0  # a guard against a hang, never a measurement


class Stream:
    """One open stream, read in a thread: its events (and comments) as they come."""

    def __init__(self, base: str, params: dict[str, Any], headers: dict[str, str]) -> None:
        self.events: list[ServerEvent] = []
        self.comments = 0
        self.ended = threading.Event()
        self.status: int | None = None
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(CEILING))
        self._response = self._client.send(
            self._client.build_request("GET", "/v1/stream", params=params, headers=headers),
            stream=True,
        )
        self.status = self._response.status_code
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        parser = EventParser()
        try:
            for line in self._response.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                event = parser.feed(line)
                if event is not None:
                    self.events.append(event)
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def wait_for(self, kind: str, count: int = 1) -> list[ServerEvent]:
        wait_until(lambda: self.kinds().count(kind) >= count, timeout=CEILING, what=kind)
        return [e for e in self.events if e.kind == kind]

    def close(self) -> None:
        # Shut the socket down first: closing alone does not wake the reading thread, and
        # the server would see the client leave only at its next heartbeat.
        network = self._response.extensions.get("network_stream")
        if network is not None:
            with suppress(OSError):
                network.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        self._response.close()
        self._client.close()


@pytest.fixture
def start(make_settings) -> Iterator[Callable[..., str]]:
    """Serve create_app(settings with these overrides) on a socket; return its URL."""
    with ExitStack() as stack:

        def run(**overrides: Any) -> str:
            app = create_app(make_settings(**overrides))
            return stack.enter_context(serving(app))

        yield run


@pytest.fixture
def open_stream() -> Iterator[Callable[..., Stream]]:
    streams: list[Stream] = []

    def opened(base: str, env: str = "staging", last_id: str | None = None, **params: Any):
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        stream = Stream(base, {"env": env, **params}, headers)
        streams.append(stream)
        return stream

    yield opened
    for stream in streams:
        stream.close()


def act(base: str, verb: str, **body: Any) -> dict[str, Any]:
    prompt = body.pop("prompt", TRIAGE)
    response = httpx.post(f"{base}/v1/prompts/{prompt}/{verb}", json=body, timeout=CEILING)
    assert response.status_code == 200, response.text
    return response.json()


def data(event: ServerEvent) -> dict[str, Any]:
    return json.loads(event.data)


def test_a_stream_starts_with_ready_and_the_revision_of_every_release_there(start, open_stream):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    act(base, "promote", env="production", ref="v2", confirm=True)
    stream = open_stream(base)
    assert stream.status == 200
    [ready] = stream.wait_for("ready")
    body = data(ready)
    assert body["environment"] == "staging"
    assert body["heartbeat"] == 15.0
    assert list(body["releases"]) == [TRIAGE]  # production's release is not staging's
    assert body["releases"][TRIAGE]["revision"] == 1
    assert ready.id == str(body["cursor"])


def test_a_change_on_the_server_is_streamed_with_the_release_document(start, open_stream):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    stream = open_stream(base)
    stream.wait_for("ready")
    act(base, "promote", env="staging", ref="v3", canary_weight=25)
    act(base, "promote", env="production", ref="v3", confirm=True)  # not this stream's
    act(base, "rollback", env="staging")
    first, second = stream.wait_for("release", 2)
    answered = httpx.get(f"{base}/v1/prompts/{TRIAGE}/release", params={"env": "staging"})
    assert data(second)["release"] == answered.json()
    assert data(second)["etag"] == answered.headers["etag"]
    assert (data(first)["revision"], data(second)["revision"]) == (2, 3)
    assert data(first)["release"]["weight"] == 25
    assert int(first.id or 0) < int(second.id or 0)
    assert stream.kinds().count("release") == 2


def test_resuming_after_a_cursor_replays_what_changed_since_then_ready(start, open_stream):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    first = open_stream(base)
    cursor = first.wait_for("ready")[0].id
    first.close()
    act(base, "promote", env="staging", ref="v2")
    act(base, "promote", env="staging", ref="v3")
    act(base, "promote", env="staging", ref="HEAD", prompt=SUMMARY)
    act(base, "promote", env="development", ref="v1")
    resumed = open_stream(base, last_id=cursor)
    resumed.wait_for("ready")
    assert resumed.kinds() == ["release", "release", "ready"]
    replayed = {data(e)["prompt"]: data(e)["revision"] for e in resumed.events[:2]}
    assert replayed == {TRIAGE: 3, SUMMARY: 1}  # the current state, once per prompt
    assert int(resumed.events[-1].id or 0) >= int(resumed.events[1].id or 0)


def test_resuming_resends_releases_changed_just_before_the_cursor(start, open_stream):
    """Cursors are given at insert, not at commit: a change with a lower cursor may commit
    after a client saw a higher one. A resume resends the current state of what changed in
    a margin of cursors before its own, so such a change is not missed."""
    base = start()
    act(base, "promote", env="staging", ref="v1")
    act(base, "promote", env="staging", ref="HEAD", prompt=SUMMARY)
    seen = open_stream(base)
    cursor = seen.wait_for("ready")[0].id
    seen.close()
    resumed = open_stream(base, last_id=cursor)
    resumed.wait_for("ready")
    assert resumed.kinds() == ["release", "release", "ready"]
    replayed = [(data(e)["prompt"], data(e)["revision"]) for e in resumed.events[:2]]
    assert replayed == [(TRIAGE, 1), (SUMMARY, 1)]  # oldest change first
    assert resumed.events[-1].id == cursor  # the ready event never goes back


@pytest.mark.parametrize(
    "last_id",
    [
        "999999",  # past the newest cursor: another database's, or a backup's
        "9223372036854775807",  # the largest cursor a database could hold
        "9" * 19,  # too large to be a cursor at all
        "1" + "0" * 39,
        "9" * 5000,  # past what int() parses
    ],
)
def test_a_cursor_past_the_newest_gets_every_release_in_one_resync(
    start, open_stream, caplog, last_id
):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    act(base, "promote", env="staging", ref="HEAD", prompt=SUMMARY)
    with caplog.at_level(logging.INFO, logger="promptctl.server"):
        stream = open_stream(base, last_id=last_id)
        [ready] = stream.wait_for("ready")
    assert stream.status == 200
    assert stream.kinds() == ["resync", "ready"]
    resync = data(stream.events[0])
    assert sorted(r["prompt"] for r in resync["releases"]) == [SUMMARY, TRIAGE]
    assert int(ready.id or 0) == resync["cursor"] < 1000  # the server's own cursor
    [said] = [r.getMessage() for r in caplog.records if "Last-Event-ID" in r.getMessage()]
    assert f"Last-Event-ID {last_id[:40]} is not a cursor of this database" in said
    assert "sending a resync" in said


def test_a_cursor_with_leading_zeros_is_the_same_cursor(start, open_stream):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    seen = open_stream(base)
    cursor = seen.wait_for("ready")[0].id or ""
    seen.close()
    resumed = open_stream(base, last_id="0" * 30 + cursor)
    resumed.wait_for("ready")
    assert resumed.kinds() == ["release", "ready"]


def test_a_prompt_filter_streams_only_those_prompts(start, open_stream):
    base = start()
    act(base, "promote", env="staging", ref="v1")
    stream = open_stream(base, prompt=[SUMMARY])
    assert data(stream.wait_for("ready")[0])["releases"] == {}
    act(base, "promote", env="staging", ref="v2")
    act(base, "promote", env="staging", ref="HEAD", prompt=SUMMARY)
    [event] = stream.wait_for("release")
    assert data(event)["prompt"] == SUMMARY


def test_heartbeats_keep_an_idle_stream_talking(start, open_stream):
    base = start(stream_heartbeat=0.05)
    stream = open_stream(base)
    wait_until(lambda: stream.comments >= 3, timeout=CEILING, what="three heartbeats")
    assert not stream.ended.is_set()


def test_a_stream_ends_after_its_longest_life(start, open_stream):
    base = start(stream_max_seconds=0.3)
    stream = open_stream(base)
    assert stream.ended.wait(CEILING)
    assert stream.kinds() == ["ready"]


@pytest.mark.parametrize(
    ("params", "headers", "status", "says"),
    [
        ({"env": "nowhere"}, {}, 404, "unknown environment 'nowhere'"),
        ({"env": "staging"}, {"Last-Event-ID": "yesterday"}, 400, "Last-Event-ID header"),
        ({"env": "staging"}, {"Last-Event-ID": "-3"}, 400, "got '-3'"),
        ({"env": "staging"}, {"Last-Event-ID": "12.5"}, 400, "a whole number"),
        ({"env": "staging"}, {"Last-Event-ID": "²".encode("latin-1")}, 400, "got '²'"),
        ({}, {}, 422, "env"),
    ],
)
def test_bad_input_is_a_problem_naming_it(start, problem_of, params, headers, status, says):
    base = start()
    response = httpx.get(f"{base}/v1/stream", params=params, headers=headers, timeout=CEILING)
    assert says in problem_of(response, status)["detail"]


def test_streams_past_the_limit_get_a_503_with_retry_after(start, open_stream, problem_of):
    base = start(stream_max_clients=2)
    held = [open_stream(base), open_stream(base)]
    for stream in held:
        stream.wait_for("ready")
    refused = httpx.get(f"{base}/v1/stream", params={"env": "staging"}, timeout=CEILING)
    assert "already streams to 2 clients" in problem_of(refused, 503)["detail"]
    assert refused.headers["retry-after"] == "5"
    held[0].close()
    wait_until(lambda: open_stream(base).status == 200, timeout=CEILING, what="room for one more")


def test_a_server_with_streaming_off_says_so(start, problem_of):
    base = start(stream_max_clients=0)
    response = httpx.get(f"{base}/v1/stream", params={"env": "staging"}, timeout=CEILING)
    assert "does not stream" in problem_of(response, 503)["detail"]


def test_a_token_limited_to_another_environment_is_refused(start, make_settings, problem_of):
    base = start(tokens=True)
    secret, _ = Registry(make_settings()).tokens.create("prod-reader", "read", "production")
    headers = {"Authorization": f"Bearer {secret}"}

    def status() -> int:
        return httpx.get(
            f"{base}/v1/stream", params={"env": "staging"}, headers=headers, timeout=CEILING
        ).status_code

    wait_until(lambda: status() == 403, timeout=CEILING, what="the token known, and refused")


def stream_of_token(base: str, secret: str) -> Stream:
    """A staging stream with this token, once the server knows the token (it polls)."""
    headers = {"Authorization": f"Bearer {secret}"}

    def opened() -> Stream | None:
        stream = Stream(base, {"env": "staging"}, headers)
        if stream.status == 200:
            return stream
        stream.close()  # refused while the token is not known yet: no socket left open
        return None

    return wait_until(opened, timeout=CEILING, what="the token known")


def test_a_stream_ends_when_its_token_is_revoked(start, make_settings, open_stream):
    base = start(tokens=True, stream_heartbeat=0.05)
    tokens = Registry(make_settings()).tokens
    secret, info = tokens.create("reader", "read", None)
    stream = stream_of_token(base, secret)
    try:
        stream.wait_for("ready")
        tokens.revoke(info.name)
        assert stream.ended.wait(CEILING)
    finally:
        stream.close()


def test_a_revoked_token_is_sent_no_change_even_between_heartbeats(
    start, make_settings, open_stream
):
    """Changes that come faster than heartbeats never keep a revoked token's stream alive:
    the token is checked before each change is sent."""
    base = start(tokens=True, stream_heartbeat=600)
    registry = Registry(make_settings())
    tokens = registry.tokens
    secret, info = tokens.create("reader", "read", None)
    admin, _ = tokens.create("admin", "admin", None)
    headers = {"Authorization": f"Bearer {secret}"}
    stream = stream_of_token(base, secret)
    try:
        stream.wait_for("ready")
        tokens.revoke(info.name)

        def refused() -> bool:
            answer = httpx.get(
                f"{base}/v1/prompts/{TRIAGE}/versions", headers=headers, timeout=CEILING
            )
            return answer.status_code == 401

        wait_until(refused, timeout=CEILING, what="the revocation known to the server")
        answer = httpx.post(
            f"{base}/v1/prompts/{TRIAGE}/promote",
            json={"env": "staging", "ref": "v1"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=CEILING,
        )
        assert answer.status_code == 200, answer.text
        assert stream.ended.wait(CEILING)
        assert "release" not in stream.kinds()
    finally:
        stream.close()
        registry.close()


def test_many_idle_subscribers_all_get_a_change_while_resolve_answers(start):
    """Two hundred idle streams (raw sockets: cheap on both ends) all receive one
    rollback, and resolve keeps answering while they are open."""
    base = start()
    act(base, "promote", env="staging", ref="v1")
    act(base, "promote", env="staging", ref="v2", canary_weight=50)
    port = int(base.rsplit(":", 1)[1])
    request = b"GET /v1/stream?env=staging HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    with ExitStack() as stack:
        sockets = []
        for _ in range(200):
            sock = stack.enter_context(closing(socket.create_connection(("127.0.0.1", port))))
            sock.sendall(request)
            sockets.append(sock)
        for sock in sockets:
            read_until(sock, b"event: ready")
        for _ in range(20):
            resolved = httpx.get(
                f"{base}/v1/prompts/{TRIAGE}/resolve", params={"env": "staging", "key": "k"}
            )
            assert resolved.status_code == 200
        act(base, "rollback", env="staging")
        for sock in sockets:
            assert b'"revision": 3' in read_until(sock, b"event: release")


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read from `sock` until `marker` and the end of its event have arrived."""
    sock.settimeout(CEILING)
    seen = b""
    while marker not in seen or not seen.split(marker, 1)[1].count(b"\n\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {seen[-300:]!r}"
        seen += chunk
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_stops_at_once_with_streams_open(repo, migrated_database_url):
    """uvicorn waits for open responses before it shuts down; a stream ends as soon as
    the server is told to stop, so SIGTERM never hangs on subscribers."""
    command = [
        *promptctl_command(),
        "--repo",
        str(repo.path),
        "--database-url",
        migrated_database_url,
        "serve",
        "--port",
        "0",
    ]
    server = ServeProcess(command, env=dict(os.environ))
    try:
        stream = Stream(server.wait_started(), {"env": "staging"}, {})
        stream.wait_for("ready")
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=CEILING)
        assert stream.ended.wait(CEILING)
        assert "Application shutdown complete" in server.output()
        assert "timeout graceful shutdown exceeded" not in server.output()
    finally:
        server.stop()
