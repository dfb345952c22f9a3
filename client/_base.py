"""The part of both clients that decides, without doing I/O to the server: what a fetch or
a send result means for the cached releases and the event buffer, which fallback serves,
and what becomes of undelivered events at close (the spool)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptctl.client._disk import DiskCache, load_bundle
from promptctl.client._entries import PromptUnavailable, ReleaseEntry, ResolvedPrompt, newest
from promptctl.client._events import (
    Call,
    EventBuffer,
    Spool,
    annotate_span,
    enter_call,
    leave_call,
)
from promptctl.client._stream import STREAM_PATH, ServerEvent, StreamState

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("promptctl.client")


@dataclass
class ClientStats:
    """Counters an application can export: what was sent, retried, dropped, rejected."""

    events_sent: int = 0
    events_duplicate: int = 0
    events_rejected: int = 0
    events_dropped: int = 0
    events_pending: int = 0
    events_spooled: int = 0
    send_failures: int = 0
    fetch_failures: int = 0
    scores_sent: int = 0


class ServerProblem(Exception):
    """The server could not be used for this request (down, slow, 5xx, garbage, 401)."""


class ClientBase:
    """Configuration, cached releases and the event buffer shared by both clients.

    The constructor is the clients' own: each one adds its connection (`_connect`) and its
    background work (`_start_background`), threads or asyncio tasks.
    """

    def __init__(
        self,
        server_url: str | None = None,
        token: str | None = None,
        environment: str = "production",
        *,
        ttl: float = 30.0,
        timeout: float = 2.0,
        connect_timeout: float = 0.5,
        bundle: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        stream: bool = True,
        stream_timeout: float = 45.0,
    ) -> None:
        """Serve `environment`'s prompts from `server_url` (None: from `cache_dir` and
        `bundle` only), revalidating after `ttl` seconds; `transport` replaces httpx's
        (sync for PromptClient, async for AsyncPromptClient), for tests and proxies.

        With `stream` (the default) the background worker also holds the server's change
        stream open and applies a release change the moment it happens; TTL revalidation
        goes on beside it, so a stream that breaks (or a server without one) costs
        freshness only down to `ttl`. A stream silent for `stream_timeout` seconds (the
        server sends a heartbeat every 15 s by default) counts as broken.
        """
        self.server_url = server_url.rstrip("/") if server_url else None
        self.environment = environment
        self.ttl = ttl
        self.stream = stream
        self.stream_timeout = stream_timeout
        self.stream_state = StreamState()
        # Plain numbers: httpx (and what its package imports) loads when a client with a
        # server is built, not when an application imports promptctl.
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.headers = {"User-Agent": "promptctl-client"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.entries: dict[str, ReleaseEntry] = {}
        self.disk = DiskCache.open(cache_dir) if cache_dir else None
        self.spool = Spool(self.disk.directory / "spool", environment) if self.disk else None
        self.bundled = load_bundle(bundle, environment) if bundle else {}
        self.events = EventBuffer(max_buffer)
        self.scores = EventBuffer(max_buffer)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.warnings = WarnOnce()
        self._stats = ClientStats()
        self._dropped_at_close = 0
        # Spool files loaded into the buffers -> the items of each not answered yet.
        self._spooled: dict[Path, set[tuple[str, str]]] = {}
        self._spool_lock = threading.Lock()
        self._spool_waiting = False  # files left on disk because the buffers were full
        self._spool_unread: set[Path] = set()  # files this client cannot read
        self._spool_closed = False
        if self.spool is not None and self.server_url:
            self.load_spool()
        self.http = self._connect(transport) if self.server_url else None
        self._start_background()

    def _connect(self, transport: Any) -> Any:
        """The HTTP client of this kind of client (called only with a server)."""
        raise NotImplementedError

    def _start_background(self) -> None:
        """Set up the background work of this kind of client."""
        raise NotImplementedError

    def http_options(self, transport: Any) -> dict[str, Any]:
        """What both kinds of httpx client are built with."""
        import httpx  # here, not at module level: see the timeouts above

        return {
            "base_url": self.server_url,
            "headers": self.headers,
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
            "transport": transport,
        }

    # -- resolution ------------------------------------------------------------------

    def cached(self, name: str, key: str | None) -> ResolvedPrompt | None:
        """The hot path: resolve from memory, or None when the prompt was never loaded."""
        entry = self.entries.get(name)
        return entry.resolve(key) if entry is not None else None

    def release_path(self, name: str) -> tuple[str, dict[str, str]]:
        return f"/v1/prompts/{name}/release", {"env": self.environment}

    def conditional_headers(self, name: str) -> dict[str, str]:
        entry = self.entries.get(name)
        if entry is not None and entry.etag and entry.source == "server":
            return {"If-None-Match": entry.etag}
        return {}

    def apply_fetch(self, name: str, response: httpx.Response) -> ReleaseEntry:
        """Turn a release response into the cached entry, or raise ServerProblem."""
        if response.status_code == 304 and name in self.entries:
            entry = self.entries[name]
            entry.fetched_at = time.monotonic()
            entry.stale = False
            self.warnings.clear("fetch", f"server {self.server_url} is reachable again")
            return entry
        if response.status_code != 200:
            raise ServerProblem(f"{response.status_code} {_detail(response)}")
        try:
            entry = ReleaseEntry.from_document(
                response.json(), response.headers.get("etag"), "server"
            )
        except Exception as exc:  # garbage from a proxy or a broken server
            raise ServerProblem(f"unreadable release document: {exc}") from exc
        held = self.entries.get(name)
        if held is not None and held.source == "server" and held.rank > entry.rank:
            # The stream brought a later state while this answer was on its way.
            held.fetched_at = time.monotonic()
            return held
        self.entries[name] = entry
        if self.disk is not None:
            self.disk.save(entry)
        self.warnings.clear("fetch", f"server {self.server_url} is reachable again")
        return entry

    def fetch_failed(self, name: str, problem: Exception) -> ResolvedPrompt | None:
        """Fall back after a failed fetch: memory (stale), disk, bundle, or nothing."""
        self._stats.fetch_failures += 1
        self.warnings.warn(
            "fetch",
            f"cannot refresh prompts from {self.server_url}: {problem}; "
            "serving the last known versions",
        )
        entry = self.entries.get(name)
        if entry is not None:
            entry.stale = True
            return None
        fallback = self.local_entry(name)
        if fallback is not None:
            fallback.stale = True
            self.entries[name] = fallback
        return None

    def unavailable(self, name: str) -> PromptUnavailable:
        where = f"server {self.server_url}" if self.server_url else "no server configured"
        return PromptUnavailable(
            f"prompt '{name}' in {self.environment}: not cached, not on disk, not bundled, "
            f"and {where} did not provide it"
        )

    def offline_entry(self, name: str) -> ReleaseEntry | None:
        """Without a server: the newer of the disk cache and the bundle."""
        entry = self.local_entry(name)
        if entry is not None:
            self.entries[name] = entry
        return entry

    def local_entry(self, name: str) -> ReleaseEntry | None:
        """The release state of `name` that the disk cache or the bundle holds, whichever
        is newer by the release's own revision (see `release_rank`), not by where it was
        found: a bundle shipped after a rollback beats the cache of the run before it,
        and the cache of a run that saw a later release beats an older bundle. A bundle
        without revisions counts as older; on a tie the disk cache serves."""
        on_disk = self.disk.load(self.environment, name) if self.disk else None
        return newest(on_disk, self.bundled.get(name))

    def due_for_refresh(self) -> list[str]:
        now = time.monotonic()
        return [
            n
            for n, e in self.entries.items()
            if e.source != "server" or now - e.fetched_at >= self.ttl
        ]

    # -- the change stream -----------------------------------------------------------

    def stream_request(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """The path, query and headers that open (or resume) this client's stream."""
        return STREAM_PATH, {"env": self.environment}, self.stream_state.headers()

    def stream_opened(self, response: httpx.Response) -> None:
        """Raise ServerProblem unless `response` is the start of an event stream."""
        kind = response.headers.get("content-type", "")
        if response.status_code != 200 or not kind.startswith("text/event-stream"):
            # The body is read only when it is short, to say what the problem was.
            detail = _detail(response) if response.is_stream_consumed else ""
            raise ServerProblem(f"{response.status_code} {detail}".strip())

    def apply_stream_event(self, event: ServerEvent) -> list[str]:
        """Apply one event of the stream; return the prompts to fetch at once (held ones
        the server has a later state of than the event said: see `ready`)."""
        if event.id:
            self.stream_state.last_id = event.id
        try:
            data = json.loads(event.data)
            if event.kind == "release":
                self._apply_streamed(data)
            elif event.kind == "resync":
                for release in data["releases"]:
                    self._apply_streamed(release)
            elif event.kind == "ready":
                return self._stream_ready(data["releases"])
        except Exception as exc:  # a broken event is one warning; the TTL still revalidates
            self.warnings.warn(
                f"stream-event:{event.kind}", f"ignoring a malformed {event.kind!r} event: {exc}"
            )
        return []

    def _apply_streamed(self, data: dict[str, Any]) -> None:
        name = data["prompt"]
        held = self.entries.get(name)
        if held is None or data.get("environment") != self.environment:
            return  # a prompt this application never asked for: not loaded
        entry = ReleaseEntry.from_document(data["release"], data.get("etag"), "server")
        if held.source == "server" and held.rank >= entry.rank:
            if held.rank == entry.rank:
                held.fetched_at = time.monotonic()
                held.stale = False
            return
        self.entries[name] = entry  # one assignment: `get` never takes a lock
        if self.disk is not None:
            self.disk.save(entry)

    def _stream_ready(self, releases: dict[str, dict[str, Any]]) -> list[str]:
        state = self.stream_state
        state.connected = True
        state.connections += 1
        if state.lost:
            state.lost = False
            log.info("promptctl: the change stream of %s is back", self.server_url)
        behind = []
        for name, held in list(self.entries.items()):
            known = releases.get(name)
            if known is None:
                continue
            if held.source != "server" or held.rank[0] < known.get("revision", -1):
                behind.append(name)
        return behind

    def stream_failed(self, problem: object) -> None:
        """Log (once until it is back) that the stream failed: at info level, since TTL
        revalidation still keeps prompts fresh, and an outage of the server is already
        the fetch's one warning."""
        state = self.stream_state
        state.connected = False
        if not state.lost:
            state.lost = True
            log.info(
                "promptctl: change stream of %s unavailable (%s); revalidating every %g s "
                "until it is back",
                self.server_url,
                problem,
                self.ttl,
            )

    # -- metrics ---------------------------------------------------------------------

    @contextmanager
    def track(self, prompt: ResolvedPrompt) -> Iterator[Call]:
        """Measure one call made with `prompt`; an exception is recorded as an error and
        re-raised. The event is queued, never sent inline."""
        call = Call(prompt)
        start = time.perf_counter()
        error = False
        token = enter_call(call)  # so prompt.parse inside can record output_valid
        try:
            yield call
        except BaseException as exc:
            error = True
            call.fail(exc)
            raise
        finally:
            latency_ms = (time.perf_counter() - start) * 1000
            leave_call(token)
            annotate_span(call, error)
            self.events.put(call.event(latency_ms, error))

    def queue_score(self, event_id: str, quality: float) -> None:
        if not 0 <= quality <= 1:
            raise ValueError(f"quality must be within [0, 1], got {quality}")
        self.scores.put({"event_id": event_id, "quality": quality})

    def apply_send(
        self, batch: list[dict[str, Any]], response: httpx.Response, *, scores: bool = False
    ) -> None:
        """Count the per-event answers of a metrics batch, or raise ServerProblem to retry."""
        if response.status_code >= 400:
            raise ServerProblem(f"{response.status_code} {_detail(response)}")
        try:
            results = response.json()["results"]
        except Exception as exc:
            raise ServerProblem(f"unreadable metrics answer: {exc}") from exc
        # The server answers every item, in order: anything else is garbage (from a proxy,
        # say), and the batch is retried; its event ids make the retry harmless.
        if (
            not isinstance(results, list)
            or len(results) != len(batch)
            or not all(isinstance(r, dict) for r in results)
        ):
            raise ServerProblem(
                f"unreadable metrics answer: expected {len(batch)} results, got {results!r:.100}"
            )
        if self._spooled:
            self._answered("score" if scores else "event", batch)
        for result in results:
            status = result.get("status")
            if status == "accepted":
                if scores:
                    self._stats.scores_sent += 1
                else:
                    self._stats.events_sent += 1
            elif status == "duplicate":
                self._stats.events_duplicate += 1
            else:
                self._stats.events_rejected += 1
                self.warnings.warn(
                    f"rejected:{result.get('reason')}",
                    f"the server rejected an event: {result.get('reason')}",
                )
        self.warnings.clear("send", "metrics are being delivered again")

    def send_failed(self, problem: Exception) -> None:
        self._stats.send_failures += 1
        self.warnings.warn(
            "send", f"cannot deliver metrics to {self.server_url}: {problem}; keeping them queued"
        )

    @property
    def stats(self) -> ClientStats:
        self._stats.events_dropped = (
            self.events.dropped + self.scores.dropped + self._dropped_at_close
        )
        self._stats.events_pending = len(self.events) + len(self.scores)
        return self._stats

    # -- the spool -------------------------------------------------------------------

    def load_spool(self) -> None:
        """Queue the events and scores earlier clients spooled, a whole file at a time while
        they fit in the buffers; files that do not fit wait until the buffers drain."""
        assert self.spool is not None
        with self._spool_lock:
            if self._spool_closed:
                return
            self._spool_waiting = False
            for path in self.spool.files():
                if path in self._spooled or path in self._spool_unread:
                    continue
                read = self.spool.read(path)
                if read is None:
                    self._spool_unread.add(path)  # warned about once; not read again
                    continue
                events, scores = read
                pending = {("event", e["event_id"]) for e in events}
                pending |= {("score", s["event_id"]) for s in scores}
                if not pending:
                    self.spool.remove(path)  # nothing in it can be delivered
                    continue
                # Into empty buffers a file always goes, however large (the spool limit
                # bounds it), so that no file waits forever.
                empty = not len(self.events) and not len(self.scores)
                if not empty and (
                    len(events) > self.events.room() or len(scores) > self.scores.room()
                ):
                    self._spool_waiting = True
                    break
                self.events.extend(events)
                self.scores.extend(scores)
                self._spooled[path] = pending
                log.info(
                    "promptctl: %d events and %d scores spooled by an earlier client queued "
                    "again from %s",
                    len(events),
                    len(scores),
                    path,
                )

    def spool_if_waiting(self) -> None:
        """When spool files were left on disk for want of room, try again (the senders call
        this whenever they find nothing to send)."""
        if self._spool_waiting and self.spool is not None:
            self.load_spool()

    def _answered(self, kind: str, batch: list[dict[str, Any]]) -> None:
        """The server answered for `batch`: remove the spool files it completes."""
        keys = {(kind, item.get("event_id")) for item in batch}
        with self._spool_lock:
            for path, pending in list(self._spooled.items()):
                pending -= keys
                if not pending:
                    del self._spooled[path]
                    assert self.spool is not None
                    self.spool.remove(path)
                    log.info("promptctl: delivered the spool file %s; removed it", path)

    def spool_undelivered(self) -> None:
        """At close: write what was not delivered to a spool file, or count it dropped
        without a cache_dir. Logged either way; items that came from a spool file still
        on disk are left to that file."""
        events, scores = self.events.drain(), self.scores.drain()
        with self._spool_lock:
            self._spool_closed = True
            on_disk = set().union(*self._spooled.values())
        if on_disk:
            events = [e for e in events if ("event", e.get("event_id")) not in on_disk]
            scores = [s for s in scores if ("score", s.get("event_id")) not in on_disk]
        if not events and not scores:
            return
        what = _count(len(events), len(scores))
        if self.spool is None:
            self._dropped_at_close += len(events) + len(scores)
            log.warning("promptctl: %s dropped: no cache_dir to spool them to", what)
            return
        try:
            path, written, left_out = self.spool.write(events, scores)
        except OSError as exc:
            self._dropped_at_close += len(events) + len(scores)
            log.warning(
                "promptctl: %s dropped: cannot write a spool file in %s (%s)",
                what,
                self.spool.directory,
                exc,
            )
            return
        self._stats.events_spooled += written
        self._dropped_at_close += left_out
        if not left_out:
            log.warning("promptctl: %s spooled to %s", what, path)
            return
        full = f"the spool of {self.environment} is full ({self.spool.limit:,} bytes)"
        if written:
            log.warning(
                "promptctl: %d of %s spooled to %s; %d dropped: %s",
                written,
                what,
                path,
                left_out,
                full,
            )
        else:
            log.warning("promptctl: %s dropped: %s", what, full)


def _count(events: int, scores: int) -> str:
    """'3 events', or '3 events and 1 scores' when there are scores."""
    return f"{events} events" + (f" and {scores} scores" if scores else "")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:200]
    except Exception:
        return response.text[:200]


class WarnOnce:
    """Logs a warning the first time a condition starts, and once when it ends."""

    def __init__(self) -> None:
        self.active: set[str] = set()

    def warn(self, key: str, message: str) -> None:
        if key not in self.active:
            self.active.add(key)
            log.warning("promptctl: %s", message)

    def clear(self, key: str, message: str) -> None:
        if key in self.active:
            self.active.discard(key)
            log.warning("promptctl: %s", message)
