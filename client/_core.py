"""What the sync and async clients share: release entries, local resolution, the event
buffer, call tracking, the retry policy, the disk cache and bundles. No I/O to the server
happens here; the two clients bring their own transport.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptctl.registry.promptversion import PromptVersion, version_from_document
from promptctl.registry.rendering import Rendered
from promptctl.registry.routing import assign

log = logging.getLogger("promptctl.client")
BUNDLE_FORMAT = "promptctl-bundle/1"


def time_ordered_id() -> str:
    """A unique event id that sorts by creation time (like UUIDv7): the server's index on
    event ids then grows at its end instead of at random pages, which keeps ingest fast."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


class ClientError(Exception):
    """Base of the client's own errors."""


class PromptUnavailable(ClientError):
    """A prompt could not be fetched and no cached, disk or bundled copy exists."""


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt version chosen for one call: render it, and track the call with it."""

    name: str
    environment: str
    version: int | None
    digest: str
    variant: str
    model: str | None
    params: Mapping[str, Any]
    front_matter: Mapping[str, Any]
    stale: bool
    source: str
    _version: PromptVersion = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version else self.digest[:12]

    def render(self, **variables: Any) -> list[dict[str, str]] | str:
        """Validate the variables and render: chat messages, or text for a text prompt."""
        rendered = self.rendered(variables)
        if rendered.messages is not None:
            return [m.to_dict() for m in rendered.messages]
        return rendered.text or ""

    def rendered(self, variables: Mapping[str, Any]) -> Rendered:
        """Render with the very renderer and validation the server uses."""
        return self._version.render(variables)


class ReleaseEntry:
    """The release state of one prompt in one environment, as the client holds it.

    The two possible answers (stable, canary) are built once, so a cache hit costs a
    routing hash and a dictionary lookup.
    """

    def __init__(self, document: dict[str, Any], etag: str | None, source: str) -> None:
        canary_doc = document.get("canary")
        self.name: str = document["prompt"]
        self.environment: str = document["environment"]
        self.document = document
        self.stable = version_from_document(document["stable"], source)
        self.canary = version_from_document(canary_doc, source) if canary_doc else None
        self.weight_bp = int(document.get("canary_weight_bp") or 0)
        self.etag = etag
        self.fetched_at = time.monotonic()
        self.source = source
        self._stale = False
        self._answers = self._build_answers()

    @classmethod
    def from_document(cls, document: dict[str, Any], etag: str | None, source: str) -> ReleaseEntry:
        return cls(document, etag, source)

    @property
    def stale(self) -> bool:
        return self._stale

    @stale.setter
    def stale(self, value: bool) -> None:
        if value != self._stale:
            self._stale = value
            self._answers = self._build_answers()

    def _build_answers(self) -> dict[str, ResolvedPrompt]:
        answers = {"stable": self._answer(self.stable, "stable")}
        if self.canary is not None:
            answers["canary"] = self._answer(self.canary, "canary")
        return answers

    def _answer(self, version: PromptVersion, variant: str) -> ResolvedPrompt:
        prompt = version.prompt
        return ResolvedPrompt(
            name=self.name,
            environment=self.environment,
            version=version.number,
            digest=version.digest,
            variant=variant,
            model=prompt.model,
            params=prompt.params,
            front_matter=prompt.front_matter,
            stale=self._stale,
            source=self.source,
            _version=version,
        )

    def resolve(self, key: str | None) -> ResolvedPrompt:
        """Pick the variant with the shared routing function."""
        canary = self.canary
        if canary is None:
            return self._answers["stable"]
        return self._answers[assign(self.name, canary.digest, self.weight_bp, key)]


class EventBuffer:
    """A bounded, thread-safe queue of events; what does not fit is dropped and counted.

    A batch handed out by `take` stays pending (counted by `len` and against the capacity)
    until the sender reports it `done` or puts it back, so a batch on its way is never
    mistaken for a delivered one.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.dropped = 0
        self.enqueued = 0

    def put(self, item: dict[str, Any]) -> bool:
        with self._lock:
            if len(self._items) + self._in_flight >= self.capacity:
                self.dropped += 1
                return False
            self._items.append(item)
            self.enqueued += 1
            return True

    def take(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            count = min(limit, len(self._items))
            self._in_flight += count
            return [self._items.popleft() for _ in range(count)]

    def put_back(self, items: list[dict[str, Any]]) -> None:
        """Return an unsent batch to the front, in order (retries keep their event ids)."""
        with self._lock:
            self._items.extendleft(reversed(items))
            self._in_flight -= len(items)

    def done(self, items: list[dict[str, Any]]) -> None:
        """Forget a batch the server has answered."""
        with self._lock:
            self._in_flight -= len(items)

    def __len__(self) -> int:
        """Items not delivered yet: queued, or in a batch on its way."""
        with self._lock:
            return len(self._items) + self._in_flight


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


class DiskCache:
    """Release documents on disk, so a restarted application still has its prompts."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, environment: str, name: str) -> Path:
        return self.directory / environment / (name.replace("/", "__") + ".json")

    def save(self, entry: ReleaseEntry) -> None:
        path = self._path(entry.environment, entry.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"etag": entry.etag, "release": entry.document}))
            temporary.replace(path)  # atomic: a crash never leaves half a file
        except OSError as exc:
            log.warning("promptctl: cannot write the disk cache at %s: %s", path, exc)

    def load(self, environment: str, name: str) -> ReleaseEntry | None:
        path = self._path(environment, name)
        try:
            data = json.loads(path.read_text())
            entry = ReleaseEntry.from_document(data["release"], data.get("etag"), "disk")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        entry.stale = True
        return entry


def load_bundle(path: str | os.PathLike[str], environment: str) -> dict[str, dict[str, Any]]:
    """Read a bundle written by `promptctl bundle`; return {prompt: release document}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != BUNDLE_FORMAT:
        raise ClientError(f"{path}: not a promptctl bundle (format {data.get('format')!r})")
    if data.get("environment") != environment:
        raise ClientError(
            f"{path}: bundle is for {data.get('environment')!r}, the client is for {environment!r}"
        )
    return dict(data["releases"])


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
