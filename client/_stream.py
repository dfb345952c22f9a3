"""The client's end of the change stream (GET /v1/stream, Server-Sent Events): parsing
the events, and what a client remembers across reconnections.

No I/O here: PromptClient reads the stream in a thread, AsyncPromptClient in a task, and
both hand each parsed event to ClientBase.apply_stream_event. The parser follows the
WHATWG rules for what the server sends (fields `event`, `data`, `id`, `retry`; comments;
an empty line ends an event) and ignores the rest, as a browser's EventSource does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from promptctl.client._events import Backoff

STREAM_PATH = "/v1/stream"
# A stream that stayed up this long was healthy: the next failure starts backing off
# afresh. Shorter, and a proxy that cuts every connection at once meets a growing delay
# rather than a reconnection loop.
HEALTHY_AFTER = 10.0


@dataclass(frozen=True)
class ServerEvent:
    """One event of the stream."""

    kind: str
    data: str
    id: str | None


@dataclass
class EventParser:
    """Turns the lines of a text/event-stream into events."""

    _kind: str = ""
    _data: list[str] = field(default_factory=list)
    last_id: str | None = None
    retry_ms: int | None = None

    def feed(self, line: str) -> ServerEvent | None:
        """Take one line (without its line break); return the event it completes."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._kind = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        kind, data = self._kind or "message", self._data
        self._kind, self._data = "", []
        if not data:
            return None
        return ServerEvent(kind, "\n".join(data), self.last_id)


@dataclass
class StreamState:
    """What a client's stream knows across connections: where to resume, how long to wait
    before the next attempt, and whether it is up."""

    last_id: str | None = None
    connected: bool = False
    lost: bool = False  # a failure was logged and the stream is not back yet
    connections: int = 0  # streams opened that reached `ready`
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=15.0))

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        return headers

    def ended(self, lasted: float) -> float:
        """The stream ended after `lasted` seconds: return how long to wait to reconnect."""
        self.connected = False
        if lasted >= HEALTHY_AFTER:
            self.backoff.reset()
        return self.backoff.next_delay()
