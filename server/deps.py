"""Dependencies the routes share, as Annotated aliases, and the token check."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from promptctl.registry.core import Registry
from promptctl.registry.errors import ServiceBusy, Unauthorized
from promptctl.server.settings import ServerSettings
from promptctl.server.telemetry import Telemetry

if TYPE_CHECKING:
    from promptctl.registry.auth import TokenInfo
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.releases.serving import ServingCache

T = TypeVar("T")


@dataclass
class AppContext:
    """Everything a request may need; built by create_app, hung on app.state.ctx."""

    settings: ServerSettings
    registry: Registry
    telemetry: Telemetry

    @property
    def cache(self) -> ServingCache:
        """The registry's serving cache (what resolve answers from)."""
        return self.registry.serving

    @cached_property
    def render_workers(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(self.settings.render_workers)

    async def run_render(self, work: Callable[[], T]) -> T:
        """Run a render off the event loop in the bounded render pool.

        Resolve never waits for it, other routes keep the general thread pool, and a render
        that cannot get a worker within `render_queue_seconds` is a 503 with Retry-After.
        Each render stops itself at the render time limit, so workers always come back.
        """
        waited = self.settings.render_queue_seconds
        try:
            with anyio.fail_after(waited):
                await self.render_workers.acquire()
        except TimeoutError:
            raise ServiceBusy("rendering", waited) from None
        try:
            return await anyio.to_thread.run_sync(work)
        finally:
            self.render_workers.release()

    def library(self) -> AbstractContextManager[PromptLibrary]:
        """The git library, one request at a time (pygit2 objects are not shared safely)."""
        return self.registry.git()

    def authorize(
        self,
        request: Request,
        scope: str,
        environment: str | None = None,
        *,
        protected: bool = False,
    ) -> TokenInfo | None:
        """Check the request's bearer token for `scope` (no-op when tokens are off)."""
        if not self.settings.tokens:
            return None
        return self.check_token(
            request.headers.get("authorization", ""), scope, environment, protected=protected
        )

    def check_token(
        self,
        header: str,
        scope: str,
        environment: str | None = None,
        *,
        protected: bool = False,
    ) -> TokenInfo:
        """Check an Authorization header's bearer token for `scope`; return the token.

        `authorize` for a request, and the raw ASGI fast path (server/fastpath.py) for the
        header it read itself: one check, so both decide alike.
        """
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Unauthorized("this server needs an API token: send 'Authorization: Bearer …'")
        token = self.registry.authenticate(secret.strip())
        if token is None:
            raise Unauthorized("the API token is unknown or revoked")
        token.check(scope, environment, protected=protected)
        return token

    def authorize_ops(self, request: Request) -> None:
        """Check the token of a request to an operations endpoint (metrics, readiness, API
        docs): none needed unless tokens are on and PROMPTCTL_OPEN_OPS is false, then any
        valid token that may read."""
        if not self.settings.open_ops:
            self.authorize(request, "read")


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a thread
    # hop (and GIL hand-over) on every request for what is an attribute read.
    return request.app.state.ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def _guard_ops(request: Request, ctx: ContextDep) -> None:
    ctx.authorize_ops(request)


# For the routes of operations endpoints: `dependencies=[OpsGuard]`.
OpsGuard = Depends(_guard_ops)
