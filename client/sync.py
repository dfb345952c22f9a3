"""PromptClient: the thread-based client for ordinary Python applications."""

from __future__ import annotations

import atexit
import contextlib
import socket
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from promptctl.client._base import ClientBase, ServerProblem
from promptctl.client._entries import ResolvedPrompt
from promptctl.client._events import Backoff
from promptctl.client._stream import EventParser

if TYPE_CHECKING:
    import httpx


class PromptClient(ClientBase):
    """Fetches releases once, resolves locally, and reports metrics in the background.

    `get` makes no network call on a cache hit. When the server is down, slow or broken,
    the last state it had keeps serving (marked stale); with no state at all, the disk
    cache (`cache_dir`) or the bundle serves, whichever holds the newer release state by
    the release's revision (an older bundle never hides a later release the disk cache
    saw, nor an older disk cache a bundle shipped after a rollback).

    None of the fallbacks stops the application: a missing, unreadable or broken bundle
    (truncated, not a bundle, for another environment), an unusable `cache_dir`, a broken
    cache or spool file is one warning on the "promptctl.client" logger naming the file,
    and the client goes on with what else it has.

    Release changes arrive over the server's change stream (one connection, held by a
    background thread, resumed with backoff when it breaks) and apply at once; TTL
    revalidation runs beside it, so without the stream (`stream=False`, a proxy that
    blocks it, an older server) every prompt is still at most `ttl` seconds old.

    Events are queued (bounded, drops counted) and sent in batches by a background thread
    with retries, backoff and jitter; `flush` and `close` (also at interpreter exit, and
    as a context manager) deliver what is queued. What `close` cannot deliver in time,
    events and scores, goes to a spool file in `cache_dir` (see `Spool`) that the next
    client of the same environment with a server and that `cache_dir` delivers; without
    a `cache_dir` it is dropped. Either way one warning gives the count.
    """

    http: httpx.Client | None

    def _connect(self, transport: httpx.BaseTransport | None) -> httpx.Client:
        import httpx  # here, not at module level: see ClientBase

        return httpx.Client(**self.http_options(transport))

    def _start_background(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stream_response: httpx.Response | None = None
        self._closed = False
        finalizer = weakref.WeakMethod(self.close)
        atexit.register(lambda: (close := finalizer()) and close(timeout=5.0))
        if len(self.events) or len(self.scores):
            self._start_threads()  # events an earlier client spooled go out at once

    # -- prompts ---------------------------------------------------------------------

    def get(self, name: str, key: str | None = None) -> ResolvedPrompt:
        """Return the version of `name` a request with stickiness `key` gets."""
        resolved = self.cached(name, key)
        if resolved is not None:
            return resolved
        with self._lock:
            if name not in self.entries:
                self._load(name)
            self._start_threads()
        resolved = self.cached(name, key)
        if resolved is None:
            raise self.unavailable(name)
        return resolved

    def _load(self, name: str) -> None:
        if self.http is None:
            self.offline_entry(name)
            return
        try:
            self._fetch(name)
        except ServerProblem as exc:
            self.fetch_failed(name, exc)

    def _fetch(self, name: str) -> None:
        import httpx  # already loaded by the constructor: a dictionary lookup

        assert self.http is not None
        path, params = self.release_path(name)
        try:
            response = self.http.get(path, params=params, headers=self.conditional_headers(name))
        except httpx.HTTPError as exc:
            raise ServerProblem(f"{type(exc).__name__}: {exc}") from exc
        self.apply_fetch(name, response)

    def refresh(self) -> None:
        """Revalidate every prompt whose TTL ran out (the background thread calls this)."""
        for name in self.due_for_refresh():
            try:
                self._fetch(name)
            except ServerProblem as exc:
                self.fetch_failed(name, exc)

    # -- metrics ---------------------------------------------------------------------

    def score(self, event_id: str, quality: float) -> None:
        """Attach a quality score to an event later (a review or an LLM judge)."""
        self.queue_score(event_id, quality)
        self._start_threads()
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued; return True when nothing is left within `timeout`."""
        if self.http is None:
            return len(self.events) == 0
        self._start_threads()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not len(self.events) and not len(self.scores) and self._idle.is_set():
                return True
            self._wake.set()
            time.sleep(0.01)
        return not len(self.events) and not len(self.scores)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the background threads and the connection pool, and spool to
        `cache_dir` what could not be delivered within `timeout`."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._interrupt_stream()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self.http is not None:
            self.http.close()
        self.spool_undelivered()

    def __enter__(self) -> PromptClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- background work -----------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads or self.http is None or self._closed:
            return
        loops = [(self._send_loop, "promptctl-metrics"), (self._refresh_loop, "promptctl-refresh")]
        if self.stream:
            loops.append((self._stream_loop, "promptctl-stream"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _refresh_loop(self) -> None:
        interval = max(0.05, min(self.ttl, 5.0))
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # never let a surprise kill the thread that keeps us fresh
                self.warnings.warn("refresh", "unexpected error while refreshing prompts")

    def _stream_loop(self) -> None:
        """Hold the change stream open; after it ends or fails, wait (backoff) and resume."""
        while not self._stop.is_set():
            opened = time.monotonic()
            try:
                self._stream_once()
            except Exception as exc:  # the connection broke: reconnect, never die
                if self._stop.is_set():
                    return  # closing cut it
                self.stream_failed(exc if isinstance(exc, ServerProblem) else _named(exc))
            if self._stop.wait(self.stream_state.ended(time.monotonic() - opened)):
                return

    def _stream_once(self) -> None:
        """Read one stream until the server ends it, it breaks, or the client closes."""
        import httpx  # already loaded by the constructor: a dictionary lookup

        assert self.http is not None
        path, params, headers = self.stream_request()
        timeout = httpx.Timeout(
            self.timeout, connect=self.connect_timeout, read=self.stream_timeout
        )
        with self.http.stream("GET", path, params=params, headers=headers, timeout=timeout) as r:
            self._stream_response = r
            try:
                if r.status_code != 200:
                    r.read()
                self.stream_opened(r)
                parser = EventParser()
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    event = parser.feed(line)
                    if event is not None:
                        for name in self.apply_stream_event(event):
                            self._refetch(name)
            finally:
                self._stream_response = None

    def _refetch(self, name: str) -> None:
        try:
            self._fetch(name)
        except ServerProblem as exc:
            self.fetch_failed(name, exc)

    def _interrupt_stream(self) -> None:
        """Wake the stream thread out of its blocking read (closing alone would not)."""
        response = self._stream_response
        if response is None:
            return
        network = response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)

    def _send_loop(self) -> None:
        backoff = Backoff()
        while True:
            stopping = self._stop.is_set()
            sent, failed = self._send_one_batch()
            if failed:
                if stopping:
                    return  # closing with the server away: what is left stays pending
                self._stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if stopping and not sent:
                return
            if not sent:
                self.spool_if_waiting()
                self._wake.wait(self.flush_interval)
                self._wake.clear()

    def _send_one_batch(self) -> tuple[bool, bool]:
        import httpx  # already loaded by the constructor: a dictionary lookup

        """Send one batch of events (or else of scores); return (sent one, it failed)."""
        for buffer, path, field in (
            (self.events, "/v1/metrics", "events"),
            (self.scores, "/v1/metrics/scores", "scores"),
        ):
            batch = buffer.take(self.batch_size)
            if not batch:
                continue
            self._idle.clear()
            try:
                assert self.http is not None
                try:
                    response = self.http.post(path, json={field: batch})
                except httpx.HTTPError as exc:
                    raise ServerProblem(f"{type(exc).__name__}: {exc}") from exc
                self.apply_send(batch, response, scores=field == "scores")
            except ServerProblem as exc:
                buffer.put_back(batch)
                self.send_failed(exc)
                return True, True
            else:
                buffer.done(batch)
            finally:
                self._idle.set()
            return True, False
        return False, False


def _named(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
