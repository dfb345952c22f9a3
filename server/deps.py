"""Dependencies the routes share, as Annotated aliases, and the token check."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from promptctl.registry.core import Registry
from promptctl.registry.library import PromptLibrary
from promptctl.registry.serving import ServingCache
from promptctl.registry.tokens import TokenInfo, Unauthorized, hash_token
from promptctl.server.settings import ServerSettings
from promptctl.server.telemetry import Telemetry


@dataclass
class AppContext:
    """Everything a request may need; built by create_app, hung on app.state.ctx."""

    settings: ServerSettings
    registry: Registry
    cache: ServingCache
    telemetry: Telemetry
    git_lock: threading.Lock

    @contextmanager
    def library(self) -> Iterator[PromptLibrary]:
        """The git library, one request at a time (pygit2 objects are not shared safely)."""
        with self.git_lock:
            yield self.registry.library

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
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Unauthorized("this server needs an API token: send 'Authorization: Bearer …'")
        token = self.cache.token(hash_token(secret.strip()))
        if token is None:
            raise Unauthorized("the API token is unknown or revoked")
        token.check(scope, environment, protected=protected)
        return token


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a thread
    # hop (and GIL hand-over) on every request for what is an attribute read.
    return request.app.state.ctx


ContextDep = Annotated[AppContext, Depends(get_context)]
