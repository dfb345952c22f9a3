"""What the sync and async clients share: release entries, local resolution, the event
buffer, call tracking, the retry policy, the disk cache, bundles and the event spool. No
I/O to the server happens here; the two clients bring their own transport.

Nothing read from disk here stops an application: a missing or broken bundle, an unusable
cache directory, a broken cache or spool file is a warning naming the file and what is
wrong, and the client goes on with what else it has.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptctl.registry.prompts.promptversion import PromptVersion, version_from_document
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.releases.bundle import bundle_problem
from promptctl.registry.releases.routing import assign

log = logging.getLogger("promptctl.client")
SPOOL_FORMAT = "promptctl-spool/1"
SPOOL_LIMIT_BYTES = 16 * 2**20  # all spool files of one environment together


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
        if not isinstance(document, dict):
            raise TypeError(f"a release must be a JSON object, not {type(document).__name__}")
        canary_doc = document.get("canary")
        self.name: str = document["prompt"]
        self.environment: str = document["environment"]
        if not isinstance(self.name, str) or not isinstance(self.environment, str):
            raise TypeError("'prompt' and 'environment' must be strings")
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
    def rank(self) -> tuple[int, float]:
        """How recent this release state is: see `release_rank`."""
        return release_rank(self.document)

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


def release_rank(document: Mapping[str, Any]) -> tuple[int, float]:
    """Order two states of one release: (revision, updated_at as a timestamp), higher is newer.

    The registry raises a release's `revision` by one with every action on it (promote,
    ramp, complete, abort, rollback), in the transaction that makes the change, so of two
    documents of the same release the one with the higher revision is the later state,
    whatever the clocks of the machines that acted said. `updated_at` only breaks a tie.
    A document that lacks either (a hand-made bundle, or one from an older promptctl)
    counts as older than any that has it: an unknown age never wins over a known one.
    """
    revision = document.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        revision = -1
    try:
        updated = datetime.fromisoformat(document["updated_at"])
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        timestamp = updated.timestamp()
    except (KeyError, TypeError, ValueError):
        timestamp = float("-inf")
    return revision, timestamp


def newest(*entries: ReleaseEntry | None) -> ReleaseEntry | None:
    """The entry with the newest release state (`release_rank`); the first one on a tie."""
    found = [e for e in entries if e is not None]
    return max(found, key=lambda e: e.rank) if found else None


def describe(exc: BaseException) -> str:
    """What is wrong, in words, for a warning about a file."""
    if isinstance(exc, Unusable):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}" if exc.args else "a missing field"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"truncated or not JSON: {exc.msg}, line {exc.lineno} column {exc.colno}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, TypeError | AttributeError | ValueError):
        return f"wrong shape ({exc})"
    return f"{type(exc).__name__}: {exc}"


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


class DiskCache:
    """Release documents on disk, so a restarted application still has its prompts."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._reported: set[Path] = set()  # broken files already warned about
        self._save_failing = False

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> DiskCache | None:
        """The cache in `directory`, created if need be; None, with one warning, when the
        directory cannot be created or written to."""
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            why = "it is a file" if path.is_file() else describe(exc)
            log.warning(
                "promptctl: cache_dir %s cannot be used (%s); going on without a disk cache "
                "and without an event spool",
                path,
                why,
            )
            return None
        return cls(path)

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
            if not self._save_failing:  # once until a save works again, not once a fetch
                log.warning("promptctl: cannot write the disk cache at %s: %s", path, exc)
            self._save_failing = True
        else:
            self._save_failing = False
            self._reported.discard(path)

    def load(self, environment: str, name: str) -> ReleaseEntry | None:
        """The cached release of `name`, or None; a broken file is skipped with a warning."""
        path = self._path(environment, name)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            entry = ReleaseEntry.from_document(data["release"], data.get("etag"), "disk")
            if (entry.name, entry.environment) != (name, environment):
                raise ValueError(f"it holds {entry.name!r} in {entry.environment!r}")
        except FileNotFoundError:
            return None
        except Exception as exc:  # whatever is in the file, the application goes on
            if path not in self._reported:
                self._reported.add(path)
                log.warning(
                    "promptctl: disk cache file %s is broken (%s); skipped", path, describe(exc)
                )
            return None
        entry.stale = True
        return entry


class Unusable(Exception):
    """A file the client reads is not what it should be (the message says how)."""


def load_bundle(path: str | os.PathLike[str], environment: str) -> dict[str, ReleaseEntry]:
    """Read a bundle written by `promptctl bundle`: {prompt: entry} of what is usable in it.

    Never raises. A bundle that cannot be used at all (missing, unreadable, truncated, not
    a bundle, for another environment) is one warning naming the file and the problem, and
    no entries; releases of the wrong shape in a good bundle are one warning naming them,
    and the others are kept.
    """
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
        problem = bundle_problem(data, environment)
        if problem is not None:
            raise Unusable(problem)
        releases = data["releases"]
    except Exception as exc:
        why = "the file does not exist" if isinstance(exc, FileNotFoundError) else describe(exc)
        log.warning("promptctl: bundle %s cannot be used (%s); going on without it", path, why)
        return {}
    entries: dict[str, ReleaseEntry] = {}
    broken: list[str] = []
    for name, document in releases.items():
        try:
            entry = ReleaseEntry.from_document(document, None, "bundle")
            if (entry.name, entry.environment) != (name, environment):
                raise ValueError(f"it holds {entry.name!r} in {entry.environment!r}")
        except Exception as exc:
            broken.append(f"{name} ({describe(exc)})")
        else:
            entries[name] = entry
    if broken:
        log.warning(
            "promptctl: bundle %s: skipped %d release(s) that cannot be read: %s; "
            "using the other %d",
            path,
            len(broken),
            "; ".join(broken[:5]) + ("; …" if len(broken) > 5 else ""),
            len(entries),
        )
    return entries


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
