"""Events: tracked calls, the bounded buffer they wait in, the retry policy that sends
them, and the spool that keeps what a closing client could not deliver."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptctl.client._disk import Unusable, describe
from promptctl.client._entries import ResolvedPrompt

log = logging.getLogger("promptctl.client")
SPOOL_FORMAT = "promptctl-spool/1"
SPOOL_LIMIT_BYTES = 16 * 2**20  # all spool files of one environment together


def time_ordered_id() -> str:
    """A unique event id that sorts by creation time (like UUIDv7): the server's index on
    event ids then grows at its end instead of at random pages, which keeps ingest fast."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


class EventBuffer:
    """A bounded, thread-safe queue of events; what does not fit is dropped and counted.

    A batch handed out by `take` stays pending (counted by `len` and against the capacity)
    until the sender reports it `done` or puts it back, so a batch on its way is never
    mistaken for a delivered one. `drain` hands out everything pending, batches on their
    way included, for the spool: a batch drained while on its way may reach the server as
    well, which its event ids make harmless.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._in_flight: dict[int, list[dict[str, Any]]] = {}  # id(batch) -> batch
        self._in_flight_count = 0
        self.dropped = 0
        self.enqueued = 0

    def put(self, item: dict[str, Any]) -> bool:
        with self._lock:
            if len(self._items) + self._in_flight_count >= self.capacity:
                self.dropped += 1
                return False
            self._items.append(item)
            self.enqueued += 1
            return True

    def room(self) -> int:
        """How many more items fit."""
        with self._lock:
            return self.capacity - len(self._items) - self._in_flight_count

    def extend(self, items: list[dict[str, Any]]) -> None:
        """Queue items the caller made `room` for (spooled ones, which are never dropped)."""
        with self._lock:
            self._items.extend(items)
            self.enqueued += len(items)

    def take(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            count = min(limit, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            if batch:
                self._in_flight[id(batch)] = batch
                self._in_flight_count += count
            return batch

    def put_back(self, items: list[dict[str, Any]]) -> None:
        """Return an unsent batch to the front, in order (retries keep their event ids)."""
        with self._lock:
            if self._in_flight.pop(id(items), None) is None:
                return  # drained for the spool meanwhile
            self._items.extendleft(reversed(items))
            self._in_flight_count -= len(items)

    def done(self, items: list[dict[str, Any]]) -> None:
        """Forget a batch the server has answered."""
        with self._lock:
            if self._in_flight.pop(id(items), None) is not None:
                self._in_flight_count -= len(items)

    def drain(self) -> list[dict[str, Any]]:
        """Take everything not delivered yet, batches on their way first (they are older)."""
        with self._lock:
            items = [item for batch in self._in_flight.values() for item in batch]
            items.extend(self._items)
            self._items.clear()
            self._in_flight.clear()
            self._in_flight_count = 0
            return items

    def __len__(self) -> int:
        """Items not delivered yet: queued, or in a batch on its way."""
        with self._lock:
            return len(self._items) + self._in_flight_count


@dataclass
class Backoff:
    """Exponential backoff with full jitter, capped."""

    base: float = 0.2
    cap: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class Call:
    """One tracked LLM call: `record` what it cost; latency and errors are measured."""

    prompt: ResolvedPrompt
    event_id: str = field(default_factory=lambda: time_ordered_id())
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    quality: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def record(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        quality: float | None = None,
        **attributes: Any,
    ) -> None:
        """Record usage and quality; extra keyword arguments become event attributes."""
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens
        if cost_usd is not None:
            self.cost_usd = cost_usd
        if quality is not None:
            self.quality = quality
        self.attributes.update(attributes)

    def event(self, latency_ms: float, error: bool) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": self.event_id,
            "prompt": self.prompt.name,
            "env": self.prompt.environment,
            "digest": self.prompt.digest,
            "variant": self.prompt.variant,
            "ts": datetime.now(UTC).isoformat(),
            "latency_ms": round(latency_ms, 3),
            "error": error,
        }
        for key in ("input_tokens", "output_tokens", "cost_usd", "quality"):
            value = getattr(self, key)
            if value is not None:
                event[key] = value
        if self.attributes:
            event["attributes"] = self.attributes
        return event


def annotate_span(call: Call, error: bool) -> None:
    """Put the call's prompt and usage on the current OpenTelemetry span, if OTel is there."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    prompt = call.prompt
    attributes: dict[str, Any] = {
        "promptctl.prompt.name": prompt.name,
        "promptctl.prompt.environment": prompt.environment,
        "promptctl.prompt.digest": prompt.digest,
        "promptctl.prompt.variant": prompt.variant,
        "promptctl.event_id": call.event_id,
        "promptctl.error": error,
    }
    if prompt.version is not None:
        attributes["promptctl.prompt.version"] = prompt.version
    for key in ("input_tokens", "output_tokens", "cost_usd", "quality"):
        value = getattr(call, key)
        if value is not None:
            attributes[f"promptctl.{key}"] = value
    span.set_attributes(attributes)


class Spool:
    """Events and scores a closing client could not deliver, kept for the next client.

    `close` appends what is left to a new file `<cache_dir>/spool/<environment>-<uuid>.jsonl`
    (written to a temporary name and renamed, so a crash never leaves half a file): a
    header line `{"format": "promptctl-spool/1", "environment": ..., "created_at": ...}`,
    then one line per item, `{"event": {...}}` or `{"score": {...}}`. All spool files of an
    environment together hold at most `limit` bytes; what does not fit is dropped, and
    counted in the log line. The next client of that environment with a server and the
    same cache_dir queues the items again and removes a file once the server has answered
    for all of its items; event ids make anything sent twice a harmless duplicate.
    """

    def __init__(self, directory: Path, environment: str, limit: int = SPOOL_LIMIT_BYTES) -> None:
        self.directory = directory
        self.environment = environment
        self.limit = limit

    def files(self) -> list[Path]:
        """This environment's spool files, oldest first."""
        try:
            candidates = [p for p in self.directory.iterdir() if p.suffix == ".jsonl"]
        except OSError:
            return []
        mine = []
        for path in candidates:
            environment, _, tag = path.stem.rpartition("-")
            if environment == self.environment and len(tag) == 32:
                try:
                    mine.append((path.stat().st_mtime, path.name, path))
                except OSError:
                    continue  # removed by another client meanwhile
        return [path for _, _, path in sorted(mine)]

    def write(
        self, events: list[dict[str, Any]], scores: list[dict[str, Any]]
    ) -> tuple[Path, int, int]:
        """Write a new spool file; return (its path, items written, items left out).

        Raises OSError when the file cannot be written."""
        room = self.limit - sum(_size(p) for p in self.files())
        header = {
            "format": SPOOL_FORMAT,
            "environment": self.environment,
            "created_at": datetime.now(UTC).isoformat(),
        }
        lines = [_line(header)]
        room -= len(lines[0])
        written = 0
        for kind, items in (("event", events), ("score", scores)):
            for item in items:
                line = _line({kind: item})
                if len(line) > room:
                    continue  # a smaller item further on may still fit
                lines.append(line)
                room -= len(line)
                written += 1
        path = self.directory / f"{self.environment}-{uuid.uuid4().hex}.jsonl"
        if not written:
            return path, 0, len(events) + len(scores)
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        try:
            with temporary.open("wb") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        return path, written, len(events) + len(scores) - written

    def read(self, path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The events and scores in a spool file; None when the file is not one this client
        reads (it is then left in place). Broken lines are skipped with one warning."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None  # delivered and removed by another client meanwhile
        except OSError as exc:
            log.warning("promptctl: cannot read spool file %s (%s)", path, describe(exc))
            return None
        lines = raw.split(b"\n")
        try:
            header = json.loads(lines[0].decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != SPOOL_FORMAT:
                found = header.get("format") if isinstance(header, dict) else None
                raise Unusable(f"format {found!r}, expected {SPOOL_FORMAT!r}")
        except Exception as exc:
            log.warning(
                "promptctl: spool file %s line 1: not a promptctl spool (%s); left in place",
                path,
                describe(exc),
            )
            return None
        events: list[dict[str, Any]] = []
        scores: list[dict[str, Any]] = []
        broken: list[str] = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, dict) or len(record) != 1:
                    raise Unusable("not an event or a score")
                ((kind, item),) = record.items()
                if kind not in ("event", "score") or not isinstance(item, dict):
                    raise Unusable("not an event or a score")
                if not isinstance(item.get("event_id"), str):
                    raise Unusable(f"a {kind} without an event_id")
            except Exception as exc:
                broken.append(
                    f"line {number} ({exc if isinstance(exc, Unusable) else describe(exc)})"
                )
                continue
            (events if kind == "event" else scores).append(item)
        if broken:
            log.warning(
                "promptctl: spool file %s: skipped %d broken line(s): %s; kept the other %d",
                path,
                len(broken),
                ", ".join(broken[:5]) + (", …" if len(broken) > 5 else ""),
                len(events) + len(scores),
            )
        return events, scores

    def remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("promptctl: cannot remove delivered spool file %s (%s)", path, exc)


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode() + b"\n"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
