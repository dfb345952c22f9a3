"""The FastAPI application: `create_app(settings)` builds everything; nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from promptctl.registry.core import Registry
from promptctl.registry.errors import NoRemote, RegistryError
from promptctl.server import (
    dashboard,
    openapi,
    problems,
    routes_docs,
    routes_git,
    routes_metrics,
    routes_ops,
    routes_prompts,
    routes_releases,
    routes_rollouts,
    routes_stream,
    routes_webhooks,
)
from promptctl.server.deps import AppContext
from promptctl.server.fastpath import FastPath, FastPathApp
from promptctl.server.guards import JsonWrites
from promptctl.server.settings import ServerSettings
from promptctl.server.telemetry import (
    BodyLimitMiddleware,
    Telemetry,
    TelemetryMiddleware,
    gauge_reader,
)

if TYPE_CHECKING:
    from promptctl.registry.releases.serving import ServingCache

log = logging.getLogger("promptctl.server")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the service over one repository and one release database."""
    settings = settings or ServerSettings()
    settings.check_exposure()
    registry = Registry(settings)
    registry.database.ensure_schema()
    cache = registry.serving
    cache.load_all()
    registry.follower  # noqa: B018 - a server follows its clone's remote (see routes_git)
    telemetry = Telemetry()
    for name in ("hits", "misses", "reloads"):
        telemetry.gauges[f"cache_{name}"] = gauge_reader(cache, name)
    telemetry.calls.attach(cache, registry.metrics)  # per-version call series on /metrics
    ctx = AppContext(settings, registry, telemetry)
    cache.changes.limit = settings.stream_max_clients

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_poll(cache, settings.poll_interval))]
        if settings.git_fetch_interval > 0:
            tasks.append(asyncio.create_task(_follow(registry, settings.git_fetch_interval)))
        if settings.rollout_interval > 0:
            tasks.append(asyncio.create_task(_control(registry, settings.rollout_interval)))
        if settings.retention_interval > 0:
            tasks.append(asyncio.create_task(_prune(registry, settings.retention_interval)))
        listener = cache.listen()  # PostgreSQL: other replicas' changes at once
        cache.changes.reopen()
        restore = end_streams_on_exit(cache)
        # Webhooks go out from a thread of their own, never from a request.
        dispatcher = registry.webhook_dispatcher.start() if settings.webhook_dispatch else None
        try:
            yield
        finally:
            restore()
            if dispatcher is not None:
                await run_in_threadpool(dispatcher.stop)
            cache.changes.close()
            if listener is not None:
                listener.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            registry.close()

    app = FastPathApp(
        title="promptctl",
        version="0.1.0",
        summary="Git-backed prompt registry and release manager",
        lifespan=lifespan,
        # FastAPI's pages load their assets from CDNs; routes_docs serves them from the
        # package. Installed after the API routes: a resolve no longer tries them first.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # routes_docs serves it, behind the operations endpoints' guard
    )
    app.state.ctx = ctx
    problems.install(app)
    routes_prompts.install(app)
    # Before the release routes: their `/{name:path}/abort` and `/promote` would otherwise
    # take `/{name}/rollout/abort` as a prompt called `{name}/rollout`.
    app.include_router(routes_rollouts.router)
    app.include_router(routes_releases.router)
    app.include_router(routes_git.router)
    app.include_router(routes_metrics.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_webhooks.router)
    routes_docs.install(app)
    dashboard.install(app)  # last: `/prompts/{name:path}` and `/` take what the API did not
    openapi.install(app, settings)
    app.add_middleware(JsonWrites, router=app.router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    # Resolve and release-state hits answered in front of all of the above, from memory
    # (server/fastpath.py); every other request goes on to the app as before.
    app.fast_path = FastPath(app)
    return app


def end_streams_on_exit(cache: ServingCache) -> Callable[[], None]:
    """End the change streams as soon as the server is told to stop (SIGINT, SIGTERM);
    return what puts the signal handlers back.

    uvicorn waits for open responses to finish before it shuts the app down, and a stream
    never finishes by itself: without this, a stopping server would hang until its
    graceful-shutdown timeout. Ended streams make their clients reconnect elsewhere.
    Signals reach only the main thread; a server run in another thread (tests) ends its
    streams at shutdown instead, after PROMPTCTL_STREAM_MAX_SECONDS at the latest.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_exit(sig: int, frame: FrameType | None) -> None:
        cache.changes.close()
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:  # what the signal would have done without us
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in previous:
        signal.signal(sig, on_exit)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_exit:
                signal.signal(sig, handler)

    return restore


async def _poll(cache: ServingCache, interval: float) -> None:
    """Pick up changes made by other replicas (or the CLI) within about `interval`."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(cache.refresh_if_changed)
        except Exception:  # the database may be away for a while; keep serving from memory
            log.warning("could not refresh releases from the database", exc_info=True)


async def _control(registry: Registry, interval: float) -> None:
    """The rollout controller: every `interval` seconds, if this replica holds the lease,
    judge every running rollout and act (registry.rollouts.controller)."""
    controller = registry.rollout_controller(interval)
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(controller.tick)
            except Exception:  # the database may be away for a while; look again later
                log.warning("the rollout controller could not look", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            controller.lease.release()  # let another replica act at once, not at expiry


async def _prune(registry: Registry, interval: float) -> None:
    """Apply metric retention a minute after start, then every `interval` seconds, in a
    worker thread (registry.metrics.retention: small transactions, resumable)."""
    stopping = threading.Event()
    try:
        await asyncio.sleep(min(60.0, interval))
        while True:
            try:
                report = await run_in_threadpool(
                    registry.prune_metrics, keep_going=lambda: not stopping.is_set()
                )
                for warning in report.warnings:
                    log.warning("retention: %s", warning)
                if report.rows:
                    log.info("retention: pruned %d metric rows", report.rows)
            except Exception:  # the database may be away for a while; prune next time
                log.warning("could not prune metrics past their retention", exc_info=True)
            await asyncio.sleep(interval)
    finally:
        stopping.set()  # a prune under way stops after its current batch


async def _follow(registry: Registry, interval: float) -> None:
    """Fetch the clone's remote now and every `interval` seconds, in a worker thread.

    A failure is logged and kept for /readyz and GET /v1/git; serving goes on.
    """
    while True:
        try:
            await run_in_threadpool(registry.fetch_remote)
        except NoRemote:
            return  # nothing to follow; POST /v1/git/fetch says so
        except RegistryError as exc:
            log.warning("could not follow the repository's remote: %s", exc)
        except Exception:
            log.warning("could not follow the repository's remote", exc_info=True)
        await asyncio.sleep(interval)
