"""AsyncPromptClient against a real server: the same behaviour as PromptClient, on asyncio."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import httpx
import pytest
from client_kit import (
    CANARY_PROMPT,
    ENV,
    AsyncRecordingTransport,
    ServerProcess,
    key_for,
)
from support import async_wait_until

from promptctl.client import AsyncPromptClient, PromptUnavailable

TICKET = {"ticket": "how do i export my projects to csv?"}


def test_get_returns_the_version_each_key_is_routed_to(shared_server: ServerProcess) -> None:
    release = shared_server.release(CANARY_PROMPT, ENV).json()

    async def main() -> dict:
        async with AsyncPromptClient(shared_server.url, environment=ENV, timeout=10) as prompts:
            return {
                v: await prompts.get(CANARY_PROMPT, key=key_for(CANARY_PROMPT, release, v))
                for v in ("stable", "canary")
            }

    served = asyncio.run(main())
    for variant, number in (("stable", 1), ("canary", 2)):
        prompt = served[variant]
        assert (prompt.variant, prompt.version) == (variant, number)
        assert prompt.digest == release[variant]["digest"]
        assert prompt.front_matter == release[variant]["front_matter"]
        assert prompt.model == "gpt-4o-mini"
        assert dict(prompt.params) == {"temperature": 0.2, "max_tokens": 600}
        assert (prompt.source, prompt.stale) == ("server", False)


def test_render_gives_the_same_messages_as_the_servers_render(
    shared_server: ServerProcess,
) -> None:
    release = shared_server.release(CANARY_PROMPT, ENV).json()

    async def main() -> list[tuple]:
        pairs = []
        async with (
            AsyncPromptClient(shared_server.url, environment=ENV, timeout=10) as prompts,
            httpx.AsyncClient(base_url=shared_server.url, timeout=10) as http,
        ):
            for variant in ("stable", "canary"):
                key = key_for(CANARY_PROMPT, release, variant)
                prompt = await prompts.get(CANARY_PROMPT, key=key)
                remote = await http.post(
                    f"/v1/prompts/{CANARY_PROMPT}/render",
                    json={"env": ENV, "key": key, "variables": TICKET},
                )
                pairs.append((prompt, prompt.render(**TICKET), remote.json()))
        return pairs

    for prompt, local, remote in asyncio.run(main()):
        assert (prompt.variant, prompt.digest) == (remote["variant"], remote["digest"])
        assert local == remote["messages"]


def test_local_routing_agrees_with_the_servers_resolve_for_every_key(
    shared_server: ServerProcess,
) -> None:
    keys = [f"session-{i}" for i in range(300)]

    async def main() -> tuple[dict, dict]:
        local, remote = {}, {}
        async with (
            AsyncPromptClient(shared_server.url, environment=ENV, timeout=10) as prompts,
            httpx.AsyncClient(base_url=shared_server.url, timeout=10) as http,
        ):
            for key in keys:
                prompt = await prompts.get(CANARY_PROMPT, key=key)
                local[key] = (prompt.variant, prompt.digest)
                answer = await http.get(
                    f"/v1/prompts/{CANARY_PROMPT}/resolve", params={"env": ENV, "key": key}
                )
                remote[key] = (answer.json()["variant"], answer.json()["digest"])
        return local, remote

    local, remote = asyncio.run(main())
    assert local == remote
    assert set(Counter(v for v, _ in local.values())) == {"stable", "canary"}


def test_a_cache_hit_makes_no_network_call(
    shared_server: ServerProcess, async_transport: AsyncRecordingTransport
) -> None:
    async def main() -> tuple[int, int]:
        async with AsyncPromptClient(
            shared_server.url, environment=ENV, ttl=300, timeout=10, transport=async_transport
        ) as prompts:
            await prompts.get("classify/intent", key="user-1")
            fetches = async_transport.count()
            for i in range(2000):
                await prompts.get("classify/intent", key=f"user-{i}")
            return fetches, async_transport.count()

    assert asyncio.run(main()) == (1, 1)


def test_after_the_ttl_a_304_keeps_the_entry_and_a_new_promotion_shows_up(
    shared_server: ServerProcess, fresh_env: str, async_transport: AsyncRecordingTransport
) -> None:
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    key = key_for(CANARY_PROMPT, release, "stable")

    async def main() -> tuple:
        async with AsyncPromptClient(
            shared_server.url,
            environment=fresh_env,
            ttl=0.2,
            timeout=10,
            transport=async_transport,
        ) as prompts:
            before = await prompts.get(CANARY_PROMPT, key=key)
            entry = prompts.entries[CANARY_PROMPT]

            async def revalidated() -> bool:
                return any(c.status == 304 for c in async_transport.calls)

            await async_wait_until(revalidated, what="a revalidation answered 304")
            kept = prompts.entries[CANARY_PROMPT] is entry
            await asyncio.to_thread(
                shared_server.promptctl, "canary", CANARY_PROMPT, "--env", fresh_env, "--complete"
            )

            async def promoted():
                p = await prompts.get(CANARY_PROMPT, key=key)
                return p.version == 2 and p

            after = await async_wait_until(promoted, what="the completed canary")
            return before, kept, after

    before, kept, after = asyncio.run(main())
    assert kept
    assert (before.version, after.version, after.variant) == (1, 2, "stable")
    assert after.digest == release["canary"]["digest"]
    etags = {c.if_none_match for c in async_transport.calls[1:]}
    assert None not in etags


def test_with_the_server_down_at_start_the_bundle_serves(
    shared_server: ServerProcess, tmp_path: Path, down_url: str
) -> None:
    bundle = tmp_path / "prompts.bundle.json"
    shared_server.promptctl("bundle", "--env", ENV, "-o", str(bundle))

    async def main():
        async with AsyncPromptClient(down_url, environment=ENV, bundle=bundle) as prompts:
            return await prompts.get("summarize/article")

    prompt = asyncio.run(main())
    assert (prompt.source, prompt.stale, prompt.version) == ("bundle", True, 1)
    assert (
        prompt.digest == shared_server.release("summarize/article", ENV).json()["stable"]["digest"]
    )
    assert prompt.render(article="Cats sit on mats.").startswith("Summarise the article below")


def test_with_the_server_down_at_start_the_disk_cache_of_an_earlier_run_serves(
    shared_server: ServerProcess, tmp_path: Path, down_url: str
) -> None:
    cache = tmp_path / "prompt-cache"

    async def main():
        async with AsyncPromptClient(
            shared_server.url, environment=ENV, cache_dir=cache, timeout=10
        ) as earlier:
            before = await earlier.get("translate")
        async with AsyncPromptClient(down_url, environment=ENV, cache_dir=cache) as restarted:
            return before, await restarted.get("translate")

    before, after = asyncio.run(main())
    assert (after.source, after.stale, after.digest) == ("disk", True, before.digest)


def test_a_client_that_never_reached_the_server_raises_prompt_unavailable_quickly(
    down_url: str, async_transport: AsyncRecordingTransport
) -> None:
    async def main() -> list[tuple]:
        async with AsyncPromptClient(
            down_url, environment=ENV, transport=async_transport
        ) as prompts:
            with pytest.raises(PromptUnavailable, match="translate"):
                await prompts.get("translate")
            return [(call.path, call.error) for call in async_transport.calls]

    # Quickly: one attempt, refused at once; no retry, and no timeout waited for.
    assert asyncio.run(main()) == [("/v1/prompts/translate/release", "ConnectError")]


def test_an_outage_leaves_the_client_serving_stale_with_one_warning_and_it_recovers(
    shared_server: ServerProcess,
    async_transport: AsyncRecordingTransport,
    down_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="promptctl.client")

    async def main() -> tuple:
        async with AsyncPromptClient(
            shared_server.url, environment=ENV, ttl=0.1, timeout=10, transport=async_transport
        ) as prompts:
            fresh = await prompts.get("translate")
            async_transport.route_to(down_port)

            async def stale():
                p = await prompts.get("translate")
                return prompts.stats.fetch_failures >= 3 and p.stale and p

            during = await async_wait_until(stale, what="three failed refreshes")
            warnings = [r.getMessage() for r in caplog.records if r.name == "promptctl.client"]
            async_transport.route_to(None)

            async def recovered():
                p = await prompts.get("translate")
                return not p.stale and p

            return fresh, during, warnings, await async_wait_until(recovered)

    fresh, during, warnings, after = asyncio.run(main())
    assert during.digest == after.digest == fresh.digest
    assert len(warnings) == 1
    assert "cannot refresh prompts" in warnings[0]


def test_a_server_answering_500_leaves_the_client_serving_stale(
    shared_server: ServerProcess,
) -> None:
    real = httpx.AsyncClient(base_url=shared_server.url, timeout=10)
    broken = {"on": False}

    async def handler(request: httpx.Request) -> httpx.Response:
        if broken["on"]:
            return httpx.Response(500, json={"detail": "boom"})
        forwarded = await real.get(request.url.path, params=request.url.params)
        return httpx.Response(forwarded.status_code, content=forwarded.content)

    async def main() -> tuple:
        async with AsyncPromptClient(
            shared_server.url, environment=ENV, ttl=0.05, transport=httpx.MockTransport(handler)
        ) as prompts:
            fresh = await prompts.get("sql/generate")
            broken["on"] = True

            async def stale():
                p = await prompts.get("sql/generate")
                return p.stale and p

            during = await async_wait_until(stale)
        await real.aclose()
        return fresh, during, prompts.stats.fetch_failures

    fresh, during, failures = asyncio.run(main())
    assert during.digest == fresh.digest
    assert during.render(question="How many users?", schema={}) == fresh.render(
        question="How many users?", schema={}
    )
    assert failures >= 1


def test_flush_aclose_and_async_with_deliver_tracked_events(
    shared_server: ServerProcess, fresh_env: str
) -> None:
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    key = key_for(CANARY_PROMPT, release, "stable")

    async def main() -> tuple:
        async with AsyncPromptClient(
            shared_server.url, environment=fresh_env, timeout=10, flush_interval=3600
        ) as prompts:
            prompt = await prompts.get(CANARY_PROMPT, key=key)
            for _ in range(10):
                with prompts.track(prompt):
                    await asyncio.sleep(0)
            flushed = await prompts.flush()
            after_flush = await asyncio.to_thread(shared_server.count, CANARY_PROMPT, fresh_env)
            for _ in range(5):
                with prompts.track(prompt) as call:
                    call.record(input_tokens=10, output_tokens=2)
        # leaving `async with` delivered these five
        after_exit = await asyncio.to_thread(shared_server.count, CANARY_PROMPT, fresh_env)

        closing = AsyncPromptClient(
            shared_server.url, environment=fresh_env, timeout=10, flush_interval=3600
        )
        prompt = await closing.get(CANARY_PROMPT, key=key)
        with pytest.raises(RuntimeError, match="model failed"), closing.track(prompt):
            raise RuntimeError("model failed")
        await closing.aclose()
        return flushed, after_flush, after_exit, prompts.stats, closing.stats

    flushed, after_flush, after_exit, stats, closing_stats = asyncio.run(main())
    assert flushed is True
    assert (after_flush, after_exit) == (10, 15)
    assert (stats.events_sent, stats.events_pending) == (15, 0)
    assert closing_stats.events_sent == 1
    (metrics,) = shared_server.summary(CANARY_PROMPT, fresh_env)["versions"]
    assert (metrics["count"], metrics["errors"]) == (16, 1)


class WatchedEvent(asyncio.Event):
    """An asyncio.Event that says when someone has started waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited_on = asyncio.Event()

    async def wait(self) -> bool:
        self.waited_on.set()
        return await super().wait()


def test_aclose_stops_even_when_a_wake_up_races_its_cancellation(
    shared_server: ServerProcess,
) -> None:
    async def main() -> list[bool]:
        closed = []
        for _ in range(3):
            prompts = AsyncPromptClient(shared_server.url, environment=ENV, timeout=10)
            await prompts.get("translate")
            # The get started the sender task, which has not run yet; watch the event that
            # wakes it, to know when it is idle, waiting to be woken.
            wake = prompts._wake = WatchedEvent()
            await asyncio.wait_for(wake.waited_on.wait(), timeout=5)  # a deadline
            prompts.score("an-event-id", 0.5)  # wakes it, and closing at once cancels it
            closing = asyncio.ensure_future(prompts.aclose(timeout=0))
            done, _ = await asyncio.wait({closing}, timeout=5)  # a deadline
            closed.append(closing in done)
        return closed

    assert asyncio.run(main()) == [True, True, True]


def test_score_attaches_a_quality_to_an_event(shared_server: ServerProcess, fresh_env: str) -> None:
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    key = key_for(CANARY_PROMPT, release, "canary")

    async def main() -> bool:
        async with AsyncPromptClient(
            shared_server.url, environment=fresh_env, timeout=10
        ) as prompts:
            prompt = await prompts.get(CANARY_PROMPT, key=key)
            with prompts.track(prompt) as call:
                pass
            prompts.score(call.event_id, 0.25)
            return await prompts.flush()

    assert asyncio.run(main())
    (metrics,) = shared_server.summary(CANARY_PROMPT, fresh_env)["versions"]
    assert (metrics["variant"], metrics["count"]) == ("canary", 1)
    assert metrics["quality"]["mean"] == pytest.approx(0.25)


def test_a_full_buffer_drops_new_events_and_counts_them(
    shared_server: ServerProcess, tmp_path: Path, down_url: str
) -> None:
    bundle = tmp_path / "prompts.bundle.json"
    shared_server.promptctl("bundle", "--env", ENV, "-o", str(bundle))

    async def main() -> tuple:
        prompts = AsyncPromptClient(down_url, environment=ENV, bundle=bundle, max_buffer=4)
        prompt = await prompts.get("translate")
        for _ in range(7):
            with prompts.track(prompt):
                pass
        delivered = await prompts.flush(timeout=0.3)
        stats = (prompts.stats.events_dropped, prompts.stats.events_pending)
        await prompts.aclose(timeout=0.3)
        return delivered, stats, (prompts.stats.events_dropped, prompts.stats.events_pending)

    delivered, (dropped, pending), after_close = asyncio.run(main())
    assert delivered is False
    assert (dropped, pending) == (3, 4)
    # Closing with the server away and no cache_dir to spool to drops them, and says so.
    assert after_close == (7, 0)
