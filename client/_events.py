"""Events: tracked calls, the bounded buffer they wait in, the retry policy that sends
them, and the spool that keeps what a closing client could not deliver."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from contextvars import ContextVar, Token
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


ERROR_TYPE_MAX = 64
FINISH_REASON_MAX = 32
TRACE_ID_MAX = 64
# Finish reasons that mean the model stopped because it ran out of tokens: a truncation.
TRUNCATED = frozenset(("length", "max_tokens"))


@dataclass
class Call:
    """One tracked LLM call: `record` what it cost and how it ended; latency and errors are
    measured, and an exception's class becomes its `error_type`."""

    prompt: ResolvedPrompt
    event_id: str = field(default_factory=lambda: time_ordered_id())
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    quality: float | None = None
    output_valid: bool | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    trace_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def record(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        quality: float | None = None,
        output_valid: bool | None = None,
        finish_reason: str | None = None,
        error_type: str | None = None,
        trace_id: str | None = None,
        **attributes: Any,
    ) -> None:
        """Record usage, quality and how the call ended; extra keyword arguments become
        event attributes.

        `finish_reason` is the provider's (`stop`, `length`, `max_tokens`, …: the last two
        count as truncated); `output_valid` whether the output met the version's contract
        (`prompt.parse` records it by itself); `error_type` a short label of why the call
        failed (`timeout`, `rate_limit`, `invalid_output`, …), which marks the call failed.
        A value the server would refuse raises here, where the mistake is, rather than
        losing the event later.
        """
        if output_valid is not None and type(output_valid) is not bool:
            raise TypeError(f"output_valid must be True or False, got {output_valid!r}")
        _check_label("finish_reason", finish_reason, FINISH_REASON_MAX)
        _check_label("error_type", error_type, ERROR_TYPE_MAX)
        _check_label("trace_id", trace_id, TRACE_ID_MAX)
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens
        if cost_usd is not None:
            self.cost_usd = cost_usd
        if quality is not None:
            self.quality = quality
        if output_valid is not None:
            self.output_valid = output_valid
        if finish_reason is not None:
            self.finish_reason = finish_reason
        if error_type is not None:
            self.error_type = error_type
        if trace_id is not None:
            self.trace_id = trace_id
        self.attributes.update(attributes)

    @property
    def truncated(self) -> bool:
        """Whether the model stopped for want of tokens."""
        return self.finish_reason in TRUNCATED

    def fail(self, exc: BaseException) -> None:
        """Note why the call raised, unless an error type was recorded already."""
        if self.error_type is None:
            self.error_type = error_type_of(exc)

    def event(self, latency_ms: float, error: bool) -> dict[str, Any]:
        if self.trace_id is None:
            self.trace_id = current_trace_id()
        event: dict[str, Any] = {
            "event_id": self.event_id,
            "prompt": self.prompt.name,
            "env": self.prompt.environment,
            "digest": self.prompt.digest,
            "variant": self.prompt.variant,
            "ts": datetime.now(UTC).isoformat(),
            "latency_ms": round(latency_ms, 3),
            "error": error or self.error_type is not None,
        }
        for key in _OPTIONAL_EVENT_FIELDS:
            value = getattr(self, key)
            if value is not None:
                event[key] = value
        if self.attributes:
            event["attributes"] = self.attributes
        return event


_OPTIONAL_EVENT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "quality",
    "output_valid",
    "finish_reason",
    "error_type",
    "trace_id",
)


def _check_label(name: str, value: Any, limit: int) -> None:
    if value is None:
        return
    if type(value) is not str or not 0 < len(value) <= limit or not value.isprintable():
        raise ValueError(
            f"{name} must be a non-empty string of at most {limit} printable characters, "
            f"got {value!r:.80}"
        )


_current: ContextVar[Call | None] = ContextVar("promptctl_current_call", default=None)


def current_call() -> Call | None:
    """Return the innermost tracked call under way in this context (thread or task)."""
    return _current.get()


def enter_call(call: Call) -> Token[Call | None]:
    """Make `call` the current one until `leave_call` with the token returned."""
    return _current.set(call)


def leave_call(token: Token[Call | None]) -> None:
    """End the call `enter_call` began: the one around it is current again."""
    try:
        _current.reset(token)
    except ValueError:  # left from another context (a generator resumed elsewhere)
        _current.set(None)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def error_type_of(exc: BaseException) -> str:
    """A short label for why a call raised: `timeout`, `rate_limit`, `provider_5xx`,
    `invalid_output`, `cancelled`, else the exception class's name in snake_case."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return "timeout"
    if "RateLimit" in name:
        return "rate_limit"
    if name == "OutputInvalid":
        return "invalid_output"
    if name == "CancelledError":
        return "cancelled"
    status = _status_of(exc)
    if status == 429:
        return "rate_limit"
    if status is not None and 500 <= status <= 599:
        return "provider_5xx"
    label = _CAMEL.sub("_", name).lower()
    return label[:ERROR_TYPE_MAX] or "error"


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status a provider SDK's error carries (openai, anthropic, httpx)."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if type(status) is int else None


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current OpenTelemetry span, if OTel is there."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x")


def annotate_span(call: Call, error: bool) -> None:
    """Put the call's prompt and usage on the current OpenTelemetry span, if OTel is there:
    the promptctl attributes, and the OpenTelemetry GenAI semantic conventions' ones."""
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
        "promptctl.error": error or call.error_type is not None,
    }
    if prompt.version is not None:
        attributes["promptctl.prompt.version"] = prompt.version
    for key in _OPTIONAL_EVENT_FIELDS[:-1]:  # the trace id is the span's own
        value = getattr(call, key)
        if value is not None:
            attributes[f"promptctl.{key}"] = value
    attributes.update(_gen_ai_attributes(call))
    span.set_attributes(attributes)


# gen_ai.request.* attributes of the semantic conventions and the params that feed them.
_GEN_AI_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def _gen_ai_attributes(call: Call) -> dict[str, Any]:
    """The OpenTelemetry GenAI semantic conventions' attributes of a call."""
    prompt = call.prompt
    found: dict[str, Any] = {}
    model = call.attributes.get("model", prompt.model)
    if isinstance(model, str) and model:
        found["gen_ai.request.model"] = model
    for param, attribute in _GEN_AI_PARAMS.items():
        value = prompt.params.get(param)
        if type(value) in (int, float):
            found[attribute] = value
    if call.input_tokens is not None:
        found["gen_ai.usage.input_tokens"] = call.input_tokens
    if call.output_tokens is not None:
        found["gen_ai.usage.output_tokens"] = call.output_tokens
    if call.finish_reason is not None:
        found["gen_ai.response.finish_reasons"] = [call.finish_reason]
    if call.error_type is not None:
        found["error.type"] = call.error_type
    return found


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
