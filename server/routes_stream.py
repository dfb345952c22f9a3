"""The change stream: `GET /v1/stream?env=E[&prompt=P...]`, Server-Sent Events.

What a stream sends, in this order:

1. `retry: 1000` (how long an EventSource waits before reconnecting).
2. With `Last-Event-ID: N`: one `release` event per release of the environment changed
   after cursor N (its current state), oldest first; or, when nothing can be replayed
   from N (a cursor past the newest, or too large to be a cursor at all: another
   database, one restored from a backup, another server's ids), a single `resync` event
   with the state of every release. A Last-Event-ID that is not a whole number is a 400.
3. `ready`: the cursor the stream starts from (its `id:`), the heartbeat interval, and
   the revision and ETag of every release of the environment, so that a client that
   fetched before subscribing can tell what it missed.
4. Then a `release` event whenever a release of the environment changes on any replica,
   a `: ping` comment every heartbeat, and a `resync` when a slow reader fell behind.

Each `release` event's `id:` is the change's cursor (see registry/releases/changes.py);
its data is one line of JSON: prompt, environment, revision, etag and `release`, the
document GET /v1/prompts/{name}/release answers. Tokens need `read` on the environment,
as for that route. The stream ends on its own after PROMPTCTL_STREAM_MAX_SECONDS, when
the token is revoked, and at once when the server shuts down; clients reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from promptctl.registry.errors import EnvironmentNotFound, RegistryError, UsageError
from promptctl.registry.releases.serving import change_of
from promptctl.server.deps import AppContext, ContextDep
from promptctl.server.problems import problem_responses

if TYPE_CHECKING:
    from promptctl.registry.releases.changes import ReleaseChange, Subscription
    from promptctl.registry.releases.serving import ServingCache

log = logging.getLogger("promptctl.server")

router = APIRouter(prefix="/v1", tags=["releases"])

EVENT_STREAM = "text/event-stream"
RETRY_MS = 1000
HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied answers unless told not to; a buffered stream is no stream.
    "X-Accel-Buffering": "no",
}
# The most prompts one stream may name; past it, subscribe to the whole environment.
MAX_PROMPTS = 1000
PING = b": ping\n\n"
# Cursors are ids of a 64-bit signed column: a larger number cannot be one of ours (and
# would overflow the database's integer if we asked it).
MAX_CURSOR = 2**63 - 1

PromptsQuery = Annotated[
    tuple[str, ...],
    Query(
        max_length=MAX_PROMPTS,
        description="Only these prompts (repeat the parameter); default: every prompt",
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID", description="The `id:` of the last event received: resume after it"
    ),
]

STREAM_DESCRIPTION = (
    "Server-Sent Events: `release`, `resync` and `ready` events (data: one line of JSON) "
    "and `: ping` comments. See the route's description for their order."
)


@router.get(
    "/stream",
    summary="Stream release changes of an environment",
    description=__doc__,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": STREAM_DESCRIPTION,
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **problem_responses(400, 401, 403, 404, 422, 503),
    },
)
async def stream(
    request: Request,
    ctx: ContextDep,
    env: str = Query(description="Environment, e.g. production"),
    prompt: PromptsQuery = (),
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Send every release change of `env` as it happens, on any replica."""
    ctx.authorize(request, "read", env)
    cache = ctx.cache
    if env not in cache.environments():
        raise EnvironmentNotFound(env, list(cache.environments()))
    after = _cursor(last_event_id)
    prompts = frozenset(prompt)
    # Subscribed before reading what to replay: a change in between is sent twice at
    # worst (clients keep the newer revision), never lost.
    subscription = cache.changes.subscribe(env, prompts)
    try:
        replayed: list[ReleaseChange] | None = None
        if after is not None and after <= MAX_CURSOR:
            replayed = await run_in_threadpool(cache.replay, env, after, prompts)
    except BaseException:
        subscription.close()
        raise
    if after is not None and replayed is None:
        log.info(
            "stream of %s: Last-Event-ID %.40s is not a cursor of this database (past its "
            "newest, %d here: another database's, or a backup's); sending a resync "
            "with every release",
            env,
            (last_event_id or "").strip(),
            cache.changes.cursor,
        )
    opening = _opening(cache, subscription, after, replayed, ctx.settings.stream_heartbeat)
    events = _events(ctx, request, subscription, opening)
    return StreamingResponse(events, media_type=EVENT_STREAM, headers=HEADERS)


def _cursor(header: str | None) -> int | None:
    """The cursor a Last-Event-ID names (past MAX_CURSOR: too large to be ours, which
    the stream treats as unknown); UsageError (400) when it is not a whole number."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not value.isascii() or not value.isdigit():
        raise UsageError(
            f"the Last-Event-ID header must be the id of an event of this stream (a "
            f"whole number of 0 or more), got {header[:40]!r}"
        )
    digits = value.lstrip("0") or "0"
    # Not parsed past 19 digits: int() of a very long string is slow (and refused past
    # 4300 digits), and any such number is past MAX_CURSOR anyway.
    return int(digits) if len(digits) <= 19 else MAX_CURSOR + 1


def _opening(
    cache: ServingCache,
    subscription: Subscription,
    after: int | None,
    replayed: list[ReleaseChange] | None,
    heartbeat: float,
) -> list[bytes]:
    """What a stream starts with: retry, the replay (or a resync), and `ready`."""
    parts = [f"retry: {RETRY_MS}\n\n".encode()]
    environment, prompts = subscription.environment, subscription.prompts
    cursor = cache.changes.cursor
    if after is not None and replayed is None:
        parts.append(_resync(cache, subscription, cursor))
    elif after is not None and replayed is not None:
        parts.extend(release_event(change) for change in replayed)
        cursor = max(cursor, after, *(change.cursor for change in replayed))
    releases = {
        e.state.prompt: {"revision": e.state.revision, "etag": e.release_etag}
        for e in cache.released_in(environment, prompts)
    }
    ready = {
        "environment": environment,
        "cursor": cursor,
        "heartbeat": heartbeat,
        "releases": releases,
    }
    parts.append(_event("ready", cursor, json.dumps(ready, ensure_ascii=False).encode()))
    return parts


def release_event(change: ReleaseChange) -> bytes:
    return _event("release", change.cursor, change.payload)


def _resync(cache: ServingCache, subscription: Subscription, cursor: int) -> bytes:
    """Every release of the subscription, in one event."""
    served = cache.released_in(subscription.environment, subscription.prompts)
    payloads = b",".join(change_of(e, cursor).payload for e in served)
    head = json.dumps({"environment": subscription.environment, "cursor": cursor})
    data = head[:-1].encode() + b', "releases": [' + payloads + b"]}"
    return _event("resync", cursor, data)


def _event(kind: str, cursor: int, data: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (cursor, kind.encode(), data)


async def _events(
    ctx: AppContext, request: Request, subscription: Subscription, opening: list[bytes]
) -> AsyncIterator[bytes]:
    settings = ctx.settings
    loop = asyncio.get_running_loop()
    ends = loop.time() + settings.stream_max_seconds
    try:
        yield b"".join(opening)
        while not subscription.ended:
            left = ends - loop.time()
            if left <= 0:
                return
            try:
                change = await subscription.next(min(settings.stream_heartbeat, left))
            except TimeoutError:
                if not _still_allowed(ctx, request, subscription.environment):
                    return
                yield PING
                continue
            if change is None:
                return  # the server is shutting down
            # Checked before every change too: changes coming faster than heartbeats
            # would otherwise keep a revoked token's stream going.
            if not _still_allowed(ctx, request, subscription.environment):
                return
            if subscription.overflowed:
                yield _catch_up(ctx.cache, subscription)
                continue
            yield release_event(change)
    finally:
        subscription.close()


def _catch_up(cache: ServingCache, subscription: Subscription) -> bytes:
    """After the reader fell behind: drop what waits, send everything once."""
    while not subscription.queue.empty():
        if subscription.queue.get_nowait() is None:
            subscription.ended = True
    subscription.overflowed = False
    return _resync(cache, subscription, cache.changes.cursor)


def _still_allowed(ctx: AppContext, request: Request, environment: str) -> bool:
    """Whether the stream's token (if tokens are on) is still valid for it."""
    try:
        ctx.authorize(request, "read", environment)
    except RegistryError:
        return False
    return True
