"""Events a closing client cannot deliver are spooled under cache_dir and delivered, once,
by the next client; broken spool files never stop it."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from client_kit import CANARY_PROMPT, ServerProcess

from promptctl.client import AsyncPromptClient, PromptClient


@pytest.fixture
def bundle(shared_server: ServerProcess, fresh_env: str, tmp_path: Path) -> Path:
    """What is released in this test's environment, so a client with the server down
    can still get prompts and track calls."""
    path = tmp_path / "prompts.bundle.json"
    shared_server.promptctl("bundle", "--env", fresh_env, "-o", str(path))
    return path


def spool_files(cache: Path) -> list[Path]:
    return sorted((cache / "spool").glob("*.jsonl")) if (cache / "spool").is_dir() else []


def quality_count(server: ServerProcess, env: str) -> int:
    return sum(v["quality"]["count"] for v in server.summary(CANARY_PROMPT, env)["versions"])


def track_while_down(
    down_url: str, env: str, bundle: Path, cache: Path | None, events: int, scores: int = 0
) -> PromptClient:
    """A client that never reaches its server tracks `events` calls, scores the first
    `scores` of them, and closes."""
    prompts = PromptClient(down_url, environment=env, bundle=bundle, cache_dir=cache)
    for i in range(events):
        prompt = prompts.get(CANARY_PROMPT, key=f"user-{i}")
        with prompts.track(prompt) as call:
            call.record(input_tokens=100 + i, output_tokens=10)
        if i < scores:
            prompts.score(call.event_id, 0.5)
    prompts.close(timeout=0.5)
    return prompts


def test_close_with_the_server_down_spools_and_the_next_client_delivers_exactly_once(
    shared_server: ServerProcess,
    fresh_env: str,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    closed = track_while_down(down_url, fresh_env, bundle, cache, events=5, scores=1)

    (spooled,) = spool_files(cache)
    assert spooled.name.startswith(f"{fresh_env}-")
    assert any(f"5 events and 1 scores spooled to {spooled}" in w for w in warnings_of())
    stats = closed.stats
    assert (stats.events_spooled, stats.events_pending, stats.events_dropped) == (6, 0, 0)
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 0

    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as restarted:
        delivered = restarted.flush(timeout=30)
        left = spool_files(cache)
    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as third:
        assert third.flush(timeout=30)

    assert delivered
    assert left == []
    assert (restarted.stats.events_sent, restarted.stats.scores_sent) == (5, 1)
    assert (third.stats.events_sent, third.stats.events_duplicate) == (0, 0)
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 5
    assert quality_count(shared_server, fresh_env) == 1


def test_a_spool_file_sent_twice_is_counted_once_by_the_server(
    shared_server: ServerProcess, fresh_env: str, bundle: Path, down_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "prompt-cache"
    track_while_down(down_url, fresh_env, bundle, cache, events=4, scores=2)
    (spooled,) = spool_files(cache)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(spooled, copy)
    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as first:
        assert first.flush(timeout=30)
    shutil.copy(copy, spooled)  # as if the first client died before it removed the file

    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as again:
        assert again.flush(timeout=30)

    assert (again.stats.events_sent, again.stats.scores_sent) == (0, 0)
    assert again.stats.events_duplicate == 6  # four events and two scores, all known
    assert spool_files(cache) == []
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 4
    assert quality_count(shared_server, fresh_env) == 2


def test_aclose_with_the_server_down_spools_and_the_next_client_delivers(
    shared_server: ServerProcess,
    fresh_env: str,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"

    async def main() -> None:
        prompts = AsyncPromptClient(down_url, environment=fresh_env, bundle=bundle, cache_dir=cache)
        prompt = await prompts.get(CANARY_PROMPT, key="user-1")
        for _ in range(3):
            with prompts.track(prompt):
                pass
        await prompts.aclose(timeout=0.3)

    asyncio.run(main())
    (spooled,) = spool_files(cache)
    assert any(f"3 events spooled to {spooled}" in w for w in warnings_of())

    async def restart() -> bool:
        async with AsyncPromptClient(
            shared_server.url, environment=fresh_env, cache_dir=cache
        ) as restarted:
            return await restarted.flush(timeout=30)

    assert asyncio.run(restart())
    assert spool_files(cache) == []
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 3


def test_broken_spool_lines_are_skipped_with_a_warning_and_the_good_ones_delivered(
    shared_server: ServerProcess,
    fresh_env: str,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    track_while_down(down_url, fresh_env, bundle, cache, events=4)
    (spooled,) = spool_files(cache)
    header, *events = spooled.read_bytes().splitlines()
    spooled.write_bytes(
        b"\n".join(
            [
                header,
                events[0],
                b"\x00\xffgarbage",  # line 3
                events[1],
                json.dumps({"metric": {"event_id": "x"}}).encode(),  # line 5
                events[2],
                events[3],
                events[3][: len(events[3]) // 2],  # line 8: a truncated copy
            ]
        )
    )

    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as restarted:
        assert restarted.flush(timeout=30)

    (warning,) = [w for w in warnings_of() if "broken line" in w]
    assert str(spooled) in warning
    assert "skipped 3 broken line(s)" in warning
    assert "line 3 (not UTF-8 text)" in warning
    assert "line 5 (not an event or a score)" in warning
    assert "line 8 (truncated or not JSON" in warning
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 4
    assert spool_files(cache) == []


def test_a_spool_file_of_another_format_is_left_in_place_with_a_warning(
    shared_server: ServerProcess,
    fresh_env: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    spool = cache / "spool"
    spool.mkdir(parents=True)
    future = spool / f"{fresh_env}-{'0' * 32}.jsonl"
    future.write_text(json.dumps({"format": "promptctl-spool/9"}) + "\n{}\n")

    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as prompts:
        prompt = prompts.get(CANARY_PROMPT)
        with prompts.track(prompt):
            pass
        assert prompts.flush(timeout=30)

    (warning,) = [w for w in warnings_of() if str(future) in w]
    assert "line 1" in warning
    assert "format 'promptctl-spool/9'" in warning
    assert future.exists()
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 1


def test_closing_without_a_cache_dir_says_how_many_events_it_drops(
    fresh_env: str, bundle: Path, down_url: str, warnings_of: Callable[[], list[str]]
) -> None:
    closed = track_while_down(down_url, fresh_env, bundle, None, events=3, scores=1)

    dropped = "3 events and 1 scores dropped: no cache_dir to spool them to"
    assert any(dropped in w for w in warnings_of()), warnings_of()
    assert (closed.stats.events_dropped, closed.stats.events_pending) == (4, 0)


def test_the_spool_never_grows_beyond_its_limit(
    fresh_env: str,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    prompts = PromptClient(down_url, environment=fresh_env, bundle=bundle, cache_dir=cache)
    assert prompts.spool is not None
    prompts.spool.limit = 4_000
    prompt = prompts.get(CANARY_PROMPT)
    for _ in range(40):
        with prompts.track(prompt):
            pass
    prompts.close(timeout=0.3)

    (spooled,) = spool_files(cache)
    written = len(spooled.read_bytes().splitlines()) - 1
    assert spooled.stat().st_size <= 4_000
    assert 0 < written < 40
    assert (prompts.stats.events_spooled, prompts.stats.events_dropped) == (written, 40 - written)
    full = f"{40 - written} dropped: the spool of {fresh_env} is full"
    assert any(full in w for w in warnings_of()), warnings_of()


def test_a_client_that_delivered_everything_writes_no_spool(
    shared_server: ServerProcess,
    fresh_env: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    with PromptClient(shared_server.url, environment=fresh_env, cache_dir=cache) as prompts:
        prompt = prompts.get(CANARY_PROMPT)
        with prompts.track(prompt):
            pass

    assert spool_files(cache) == []
    assert warnings_of() == []
    assert shared_server.count(CANARY_PROMPT, fresh_env) == 1
