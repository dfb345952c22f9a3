"""AsyncPromptClient: the asyncio twin of PromptClient, with tasks instead of threads."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from promptctl.client._base import ClientBase, ServerProblem
from promptctl.client._entries import ResolvedPrompt
from promptctl.client._events import Backoff
from promptctl.client._stream import EventParser

if TYPE_CHECKING:
    import httpx


class AsyncPromptClient(ClientBase):
    """Same behaviour as PromptClient: `await get(...)`, `track(...)`, `await flush()`.

    Background refresh, the change stream and metric delivery run as tasks on the
    running loop; use the
    client as `async with AsyncPromptClient(...)` or call `await aclose()`, which spools
    to `cache_dir` what it cannot deliver in time, as PromptClient's `close` does. A
    client never closed spools what is left at interpreter exit (no loop runs then to
    send it).
    """

    http: httpx.AsyncClient | None

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        import httpx  # here, not at module level: see ClientBase

        return httpx.AsyncClient(**self.http_options(transport))

    def _start_background(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._busy = False
        self._closed = False
        finalizer = weakref.WeakMethod(self._spool_at_exit)
        atexit.register(lambda: (spool := finalizer()) and spool())

    async def get(self, name: str, key: str | None = None) -> ResolvedPrompt:
        """Return the version of `name` a request with stickiness `key` gets."""
        resolved = self.cached(name, key)
        if resolved is not None:
            return resolved
        if name not in self.entries:
            if self.http is None:
                self.offline_entry(name)
            else:
                try:
                    await self._fetch(name)
                except ServerProblem as exc:
                    self.fetch_failed(name, exc)
        self._start_tasks()
        resolved = self.cached(name, key)
        if resolved is None:
            raise self.unavailable(name)
        return resolved

    async def _fetch(self, name: str) -> None:
        import httpx  # already loaded by the constructor: a dictionary lookup

        assert self.http is not None
        path, params = self.release_path(name)
        try:
            response = await self.http.get(
                path, params=params, headers=self.conditional_headers(name)
            )
        except httpx.HTTPError as exc:
            raise ServerProblem(f"{type(exc).__name__}: {exc}") from exc
        self.apply_fetch(name, response)

    async def refresh(self) -> None:
        """Revalidate every prompt whose TTL ran out."""
        for name in self.due_for_refresh():
            try:
                await self._fetch(name)
            except ServerProblem as exc:
                self.fetch_failed(name, exc)

    def score(self, event_id: str, quality: float) -> None:
        """Attach a quality score to an event later."""
        self.queue_score(event_id, quality)
        self._start_tasks()
        if self._wake is not None:
            self._wake.set()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued; return True when nothing is left within `timeout`."""
        if self.http is None:
            return not len(self.events)
        self._start_tasks()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if not len(self.events) and not len(self.scores) and not self._busy:
                return True
            if self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.01)
        return not len(self.events) and not len(self.scores)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Flush, stop the background tasks and the connection pool, and spool to
        `cache_dir` what could not be delivered within `timeout`."""
        if self._closed:
            return
        self._closed = True
        await self.flush(timeout)
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.http is not None:
            await self.http.aclose()
        self.spool_undelivered()

    def _spool_at_exit(self) -> None:
        if not self._closed:
            self._closed = True
            self.spool_undelivered()

    async def __aenter__(self) -> AsyncPromptClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _start_tasks(self) -> None:
        if self._tasks or self.http is None or self._closed:
            return
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="promptctl-metrics"),
            asyncio.create_task(self._refresh_loop(), name="promptctl-refresh"),
        ]
        if self.stream:
            self._tasks.append(asyncio.create_task(self._stream_loop(), name="promptctl-stream"))

    async def _stream_loop(self) -> None:
        """Hold the change stream open; after it ends or fails, wait (backoff) and resume."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            opened = loop.time()
            try:
                await self._stream_once()
            except Exception as exc:  # the connection broke: reconnect, never die
                if self._stopping:
                    return
                problem = exc if isinstance(exc, ServerProblem) else f"{type(exc).__name__}: {exc}"
                self.stream_failed(problem)
            await asyncio.sleep(self.stream_state.ended(loop.time() - opened))

    async def _stream_once(self) -> None:
        """Read one stream until the server ends it, it breaks, or the client closes."""
        import httpx  # already loaded by the constructor: a dictionary lookup

        assert self.http is not None
        path, params, headers = self.stream_request()
        timeout = httpx.Timeout(
            self.timeout, connect=self.connect_timeout, read=self.stream_timeout
        )
        async with self.http.stream(
            "GET", path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
            self.stream_opened(response)
            parser = EventParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                for name in self.apply_stream_event(event):
                    try:
                        await self._fetch(name)
                    except ServerProblem as exc:
                        self.fetch_failed(name, exc)

    async def _refresh_loop(self) -> None:
        interval = max(0.05, min(self.ttl, 5.0))
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # keep refreshing whatever happens
                self.warnings.warn("refresh", "unexpected error while refreshing prompts")

    async def _send_loop(self) -> None:
        backoff = Backoff()
        assert self._wake is not None
        # Checked as well as cancelled by aclose: on Python 3.11, asyncio.wait_for swallows a
        # cancellation that arrives just as the event it waits for is set, and the loop
        # would run on (and aclose wait for it) forever.
        while not self._stopping:
            sent, failed = await self._send_one_batch()
            if failed:
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            if not sent:
                self.spool_if_waiting()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()

    async def _send_one_batch(self) -> tuple[bool, bool]:
        import httpx  # already loaded by the constructor: a dictionary lookup

        for buffer, path, field in (
            (self.events, "/v1/metrics", "events"),
            (self.scores, "/v1/metrics/scores", "scores"),
        ):
            batch = buffer.take(self.batch_size)
            if not batch:
                continue
            self._busy = True
            try:
                assert self.http is not None
                try:
                    response = await self.http.post(path, json={field: batch})
                except httpx.HTTPError as exc:
                    raise ServerProblem(f"{type(exc).__name__}: {exc}") from exc
                self.apply_send(batch, response, scores=field == "scores")
            except ServerProblem as exc:
                buffer.put_back(batch)
                self.send_failed(exc)
                return True, True
            except asyncio.CancelledError:
                buffer.put_back(batch)  # closing mid-send: keep the batch counted as pending
                raise
            else:
                buffer.done(batch)
            finally:
                self._busy = False
            return True, False
        return False, False
