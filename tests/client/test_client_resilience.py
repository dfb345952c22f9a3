"""PromptClient when the server is down, killed, broken, slow or refuses its token."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from client_kit import (
    CANARY_PROMPT,
    ENV,
    RecordingTransport,
    ServerProcess,
    SilentServer,
    example_names,
    key_for,
    run_promptctl,
)
from support import wait_until

from promptctl.client import PromptClient, PromptUnavailable

TICKET = {"ticket": "The dashboard shows 502 errors", "tier": "enterprise"}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def client_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "promptctl.client"]


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.close()


# -- down at start ---------------------------------------------------------------------


def test_with_the_server_down_at_start_the_bundle_serves_every_released_prompt(
    shared_server: ServerProcess, bundle: Path, down_url: str
) -> None:
    with PromptClient(down_url, environment=ENV, bundle=bundle) as prompts:
        served = {name: prompts.get(name, key="user-1") for name in example_names()}

    for name, prompt in served.items():
        release = shared_server.release(name, ENV).json()
        chosen = release["canary"] if prompt.variant == "canary" else release["stable"]
        assert prompt.digest == chosen["digest"], name
        assert (prompt.source, prompt.stale) == ("bundle", True), name
    triage = served[CANARY_PROMPT]
    remote = shared_server.post(
        f"/v1/prompts/{CANARY_PROMPT}/render",
        json={"env": ENV, "key": "user-1", "variables": TICKET},
    ).json()
    assert triage.render(**TICKET) == remote["messages"]


def test_with_the_server_down_at_start_the_disk_cache_of_an_earlier_run_serves(
    shared_server: ServerProcess, down_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "prompt-cache"
    with PromptClient(shared_server.url, environment=ENV, cache_dir=cache, timeout=10) as earlier:
        before = earlier.get("support/reply", key="user-1")

    with PromptClient(down_url, environment=ENV, cache_dir=cache) as restarted:
        after = restarted.get("support/reply", key="user-1")

    assert (after.source, after.stale) == ("disk", True)
    assert (after.digest, after.version, after.model) == (before.digest, 1, "gpt-4o")
    variables = {"customer_name": "Dana", "agent_name": "Sam", "history": []}
    assert after.render(**variables) == before.render(**variables)


def test_the_disk_cache_of_the_last_run_wins_over_an_older_bundle(
    shared_server: ServerProcess, fresh_env: str, down_url: str, tmp_path: Path
) -> None:
    old_bundle = tmp_path / "old.bundle.json"
    shared_server.promptctl("bundle", "--env", fresh_env, "-o", str(old_bundle))
    shared_server.promptctl("canary", CANARY_PROMPT, "--env", fresh_env, "--complete")
    shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=3)
    cache = tmp_path / "prompt-cache"
    with PromptClient(
        shared_server.url, environment=fresh_env, cache_dir=cache, timeout=10
    ) as earlier:
        assert earlier.get(CANARY_PROMPT).version == 2

    with PromptClient(
        down_url, environment=fresh_env, cache_dir=cache, bundle=old_bundle
    ) as restarted:
        prompt = restarted.get(CANARY_PROMPT, key="user-1")

    assert (prompt.source, prompt.version, prompt.variant) == ("disk", 2, "stable")


def test_a_client_that_never_reached_the_server_and_has_nothing_cached_fails_fast(
    down_url: str, tmp_path: Path, transport: RecordingTransport
) -> None:
    with PromptClient(
        down_url, environment=ENV, cache_dir=tmp_path / "empty", transport=transport
    ) as prompts:
        with pytest.raises(PromptUnavailable, match="support/triage") as failure:
            prompts.get("support/triage")
        asked = [(call.path, call.error) for call in transport.calls]

    # Fast: one attempt, refused at once; no retry, and no timeout waited for.
    assert asked == [("/v1/prompts/support/triage/release", "ConnectError")]
    assert "not cached, not on disk, not bundled" in str(failure.value)


def test_a_prompt_missing_from_the_bundle_is_unavailable(bundle: Path, down_url: str) -> None:
    with (
        PromptClient(down_url, environment=ENV, bundle=bundle) as prompts,
        pytest.raises(PromptUnavailable, match="no/such-prompt"),
    ):
        prompts.get("no/such-prompt")


def test_a_prompt_the_server_never_released_is_unavailable(shared_server: ServerProcess) -> None:
    with (
        PromptClient(shared_server.url, environment=ENV, timeout=10) as prompts,
        pytest.raises(PromptUnavailable, match="no/such-prompt"),
    ):
        prompts.get("no/such-prompt")


# -- down mid-run ----------------------------------------------------------------------


def test_a_server_killed_mid_run_leaves_the_client_serving_stale_and_it_recovers(
    shared_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptctl.client")
    with PromptClient(shared_server.url, environment=ENV, ttl=0.2, timeout=10) as prompts:
        fresh = prompts.get(CANARY_PROMPT, key="user-7")
        try:
            shared_server.kill()
            stale = wait_until(
                lambda: (p := prompts.get(CANARY_PROMPT, key="user-7")).stale and p,
                what="the client to notice the server is gone",
            )
            wait_until(lambda: prompts.stats.fetch_failures >= 5, what="five failed refreshes")
            during = client_warnings(caplog)
            rendered_while_down = stale.render(**TICKET)
        finally:
            shared_server.start()
        recovered = wait_until(
            lambda: not (p := prompts.get(CANARY_PROMPT, key="user-7")).stale and p,
            what="the client to recover",
        )

    assert (stale.digest, stale.variant) == (fresh.digest, fresh.variant)
    assert rendered_while_down == fresh.render(**TICKET)
    assert len(during) == 1, during
    assert "cannot refresh prompts" in during[0]
    assert shared_server.url in during[0]
    assert (recovered.digest, recovered.source) == (fresh.digest, "server")
    assert any("reachable again" in m for m in client_warnings(caplog))


def test_every_outage_is_logged_once_even_after_a_304_recovery(
    shared_server: ServerProcess,
    transport: RecordingTransport,
    down_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="promptctl.client")
    with PromptClient(
        shared_server.url, environment=ENV, ttl=0.1, timeout=10, transport=transport
    ) as prompts:
        prompts.get("translate")
        for outage in (1, 2):
            failures = prompts.stats.fetch_failures
            transport.route_to(port_of(down_url))
            wait_until(lambda f=failures: prompts.stats.fetch_failures >= f + 3)
            assert prompts.get("translate").stale
            transport.route_to(None)
            answered = len(transport.calls)
            wait_until(lambda a=answered: any(c.status == 304 for c in transport.calls[a:]))
            # The 304 is recorded as the transport answers, a moment before it is applied.
            wait_until(lambda: not prompts.get("translate").stale)
            outages = [m for m in client_warnings(caplog) if "cannot refresh" in m]
            assert len(outages) == outage


# -- broken servers (httpx MockTransport) -------------------------------------------------

BROKEN_ANSWERS: dict[str, Callable[[bytes], httpx.Response]] = {
    "500 problem": lambda body: httpx.Response(
        500, json={"title": "Internal Server Error", "status": 500, "detail": "boom"}
    ),
    "502 html from a proxy": lambda body: httpx.Response(502, text="<html>Bad Gateway</html>"),
    "503 empty": lambda body: httpx.Response(503),
    "200 html login page": lambda body: httpx.Response(
        200, text="<html>Sign in</html>", headers={"content-type": "text/html"}
    ),
    "200 truncated json": lambda body: httpx.Response(
        200, content=body[: len(body) // 2], headers={"content-type": "application/json"}
    ),
    "200 json of another shape": lambda body: httpx.Response(200, json={"hello": "world"}),
    "200 json list": lambda body: httpx.Response(200, json=[1, 2, 3]),
    "200 release without versions": lambda body: httpx.Response(
        200, json={**json.loads(body), "stable": None}
    ),
    "200 version without its template": lambda body: httpx.Response(
        200,
        json={**json.loads(body), "stable": {**json.loads(body)["stable"], "source": None}},
    ),
}


class BrokenServer:
    """A MockTransport handler: the real server's answers, then broken ones on demand."""

    def __init__(self, real: ServerProcess) -> None:
        self.real = httpx.Client(base_url=real.url, timeout=10)
        self.answer: Callable[[bytes], httpx.Response] | None = None
        self.broken_answers = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        forwarded = self.real.request(
            request.method,
            request.url.path,
            params=request.url.params,
            content=request.content,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        if self.answer is not None and "/release" in request.url.path:
            self.broken_answers += 1
            body = self.real.get(request.url.path, params=request.url.params).content
            return self.answer(body)
        return httpx.Response(
            forwarded.status_code,
            content=forwarded.content,
            headers={k: v for k, v in forwarded.headers.items() if k in ("etag", "content-type")},
        )


@pytest.mark.parametrize("kind", list(BROKEN_ANSWERS))
def test_a_server_answering_errors_or_garbage_leaves_the_client_serving_stale(
    shared_server: ServerProcess, kind: str
) -> None:
    broken = BrokenServer(shared_server)
    with PromptClient(
        shared_server.url, environment=ENV, ttl=0.05, transport=httpx.MockTransport(broken)
    ) as prompts:
        fresh = prompts.get(CANARY_PROMPT, key="user-3")
        broken.answer = BROKEN_ANSWERS[kind]
        stale = wait_until(
            lambda: (p := prompts.get(CANARY_PROMPT, key="user-3")).stale and p,
            what=f"the client to give up on {kind}",
        )
        wait_until(lambda: broken.broken_answers >= 3)
        still = prompts.get(CANARY_PROMPT, key="user-3")
        broken.answer = None
        recovered = wait_until(
            lambda: not (p := prompts.get(CANARY_PROMPT, key="user-3")).stale and p,
            what="the client to recover",
        )

    assert (stale.digest, still.digest, recovered.digest) == (fresh.digest,) * 3
    assert still.stale
    assert still.render(**TICKET) == fresh.render(**TICKET)
    assert prompts.stats.fetch_failures >= 3


# -- slow servers ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_silent_server_never_holds_a_first_get_beyond_the_timeout(
    silent_server: SilentServer, bundle: Path, transport: RecordingTransport
) -> None:
    prompts = PromptClient(
        silent_server.url,
        environment=ENV,
        bundle=bundle,
        timeout=0.5,
        connect_timeout=0.5,
        transport=transport,
    )
    prompt = prompts.get(CANARY_PROMPT, key="user-1")
    first = transport.calls[0]
    with prompts.track(prompt):
        pass
    delivered = prompts.flush(timeout=1.0)
    pending = prompts.stats.events_pending
    prompts.close(timeout=0.5)
    sends = [call.error for call in transport.calls if call.path == "/v1/metrics"]

    assert prompt.source == "bundle"
    # The server never answers: the client's own read timeout ended the first get's request
    # (then the bundle served), and every send of the event.
    assert (first.path, first.error) == (f"/v1/prompts/{CANARY_PROMPT}/release", "ReadTimeout")
    assert sends
    assert set(sends) == {"ReadTimeout"}
    assert delivered is False
    assert pending == 1  # kept, not lost, while the client runs
    assert (prompts.stats.events_dropped, prompts.stats.events_pending) == (1, 0)  # no cache_dir


def test_a_hanging_refresh_never_delays_a_cached_get(
    shared_server: ServerProcess, silent_server: SilentServer, transport: RecordingTransport
) -> None:
    with PromptClient(
        shared_server.url, environment=ENV, ttl=0.1, timeout=2.0, transport=transport
    ) as prompts:
        fresh = prompts.get(CANARY_PROMPT, key="user-5")
        transport.route_to(silent_server.port)
        silent_server.held_request()  # a refresh reached the silent server: it hangs there
        hanging = transport.calls[-1]
        gets = [prompts.get(CANARY_PROMPT, key="user-5") for _ in range(100)]
        # The refresh was still hanging when the gets above returned: not answered (the
        # server holds it) and not yet given up on (the client's timeout is two seconds).
        hung_throughout = hanging.pending and prompts.stats.fetch_failures == 0
        stale = wait_until(lambda: (p := prompts.get(CANARY_PROMPT, key="user-5")).stale and p)
        transport.route_to(None)

    prompt = gets[-1]
    assert hanging.error == "ReadTimeout"  # that refresh did hang, and time out
    assert prompts.stats.fetch_failures >= 1
    assert hung_throughout  # so no get waited for the refresh
    assert all(p.digest == fresh.digest for p in gets)
    assert (prompt.digest, stale.digest) == (fresh.digest, fresh.digest)


# -- tokens ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_revoked_token_leaves_the_client_serving_its_prompts(
    prompt_repo: Path, tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    created = run_promptctl(
        prompt_repo,
        database_url,
        "token",
        "create",
        "--name",
        "app",
        "--scope",
        "admin",
        "--json",
    )
    secret = json.loads(created)["token"]
    server = start_server(prompt_repo, database_url, tokens=True)
    server.release_examples(ENV, token=secret)
    release = server.release(CANARY_PROMPT, ENV, token=secret).json()
    key = key_for(CANARY_PROMPT, release, "canary")

    with PromptClient(server.url, token=secret, environment=ENV, ttl=0.2, timeout=10) as prompts:
        before = prompts.get(CANARY_PROMPT, key=key)
        with prompts.track(before):
            pass
        assert prompts.flush()

        server.promptctl("token", "revoke", "app")
        wait_until(
            lambda: server.release(CANARY_PROMPT, ENV, token=secret).status_code == 401,
            what="the server to refuse the revoked token",
        )
        after = wait_until(
            lambda: (p := prompts.get(CANARY_PROMPT, key=key)).stale and p,
            what="the client to meet the refusal",
        )
        with prompts.track(after):
            pass
        delivered = prompts.flush(timeout=0.5)
        running = (prompts.stats.events_pending, prompts.stats.events_dropped)
        prompts.close(timeout=0.5)

    assert (after.digest, after.variant, after.version) == (before.digest, "canary", 2)
    assert after.render(**TICKET) == before.render(**TICKET)
    assert delivered is False
    assert prompts.stats.events_sent == 1
    assert running == (1, 0)  # refused events stay queued, never dropped, while it runs
