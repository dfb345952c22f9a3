"""The FastAPI application: `create_app(settings)` builds everything; nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from promptctl.registry.core import Registry
from promptctl.server import (
    problems,
    routes_docs,
    routes_metrics,
    routes_ops,
    routes_prompts,
    routes_releases,
)
from promptctl.server.deps import AppContext
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
    registry = Registry(settings)
    registry.database.ensure_schema()
    cache = registry.serving
    cache.load_all()
    telemetry = Telemetry()
    for name in ("hits", "misses", "reloads"):
        telemetry.gauges[f"cache_{name}"] = gauge_reader(cache, name)
    ctx = AppContext(settings, registry, telemetry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller = asyncio.create_task(_poll(cache, settings.poll_interval))
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            registry.close()

    app = FastAPI(
        title="promptctl",
        version="0.1.0",
        summary="Git-backed prompt registry and release manager",
        lifespan=lifespan,
        # FastAPI's pages load their assets from CDNs; routes_docs serves them from the
        # package. Installed after the API routes: a resolve no longer tries them first.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install(app)
    routes_prompts.install(app)
    app.include_router(routes_releases.router)
    app.include_router(routes_metrics.router)
    app.include_router(routes_ops.router)
    routes_docs.install(app)
    app.add_middleware(JsonWrites, router=app.router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    return app


async def _poll(cache: ServingCache, interval: float) -> None:
    """Pick up changes made by other replicas (or the CLI) within about `interval`."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(cache.refresh_if_changed)
        except Exception:  # the database may be away for a while; keep serving from memory
            log.warning("could not refresh releases from the database", exc_info=True)
