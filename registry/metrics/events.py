"""Event and score validation: the fields and limits of an event, `parse_event` (the format
checks, run for every event ingested) and the checked `Event` it returns, the checks of a
score, and the answer to a batch (`BatchResult`, `batch_items`).

Nothing here reads the database: whether an event's prompt, environment and version were
released is the service's question. The metrics errors (BatchTooLarge, InvalidBatch,
NeverReleased) live with the others in registry.errors.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from promptctl.registry.errors import InvalidBatch

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
MAX_CLOCK_SKEW = 300  # seconds an event's ts may be ahead of the server's clock
OLDEST_TS = 946_684_800  # 2000-01-01: anything earlier is a client bug, not a call
EVENT_ID_MAX = 128
NAME_MAX = 255
ATTRIBUTES_MAX_BYTES = 8192
INT_MAX = 2**31 - 1
# Past these an event is a client bug, not a call; one would poison a version's
# percentiles and means for good, so it is rejected on its own.
MAX_LATENCY_MS = 86_400_000.0  # a day
MAX_COST_USD = 1_000.0  # one call
DEFAULT_MAX_BATCH = 1000
ERROR_TYPE_MAX = 64
FINISH_REASON_MAX = 32
TRACE_ID_MAX = 64
# Finish reasons that mean the model ran out of tokens: the output is truncated.
TRUNCATED = frozenset(("length", "max_tokens"))
# Distinct error types a version keeps in rollups and series; the rest count as OTHER.
ERROR_TYPES_MAX = 20
OTHER = "other"

REQUIRED = ("event_id", "prompt", "env", "digest", "latency_ms")
OPTIONAL = (
    "ts",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "quality",
    "error",
    "attributes",
    "variant",
    "model",
    "error_type",
    "output_valid",
    "finish_reason",
    "trace_id",
)
FIELDS = frozenset(REQUIRED + OPTIONAL)
SCORE_FIELDS = frozenset(("event_id", "quality"))
VARIANTS = ("stable", "canary")
_HEX64 = re.compile(r"[0-9a-f]{64}")


# -- events and scores ----------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """The answer to a batch: one result per item, in the batch's order, and the counts."""

    results: list[dict[str, Any]]
    accepted: int
    duplicate: int
    rejected: int

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "results": self.results,
        }


class Event:
    """An event that passed the format checks."""

    __slots__ = (
        "event_id",
        "prompt",
        "env",
        "digest",
        "epoch",
        "ts",
        "latency",
        "input_tokens",
        "output_tokens",
        "cost",
        "quality",
        "error",
        "attributes",
        "variant",
        "model",
        "error_type",
        "output_valid",
        "finish_reason",
        "trace_id",
        "index",
        "stamped",
    )

    def __init__(
        self,
        event_id: str,
        prompt: str,
        env: str,
        digest: str,
        epoch: float,
        ts: datetime,
        latency: float,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
        quality: float | None,
        error: bool,
        attributes: str | None,
        variant: str | None,
        model: str | None,
        error_type: str | None = None,
        output_valid: bool | None = None,
        finish_reason: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.event_id = event_id
        self.prompt = prompt
        self.env = env
        self.digest = digest
        self.epoch = epoch
        self.ts = ts
        self.latency = latency
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost = cost
        self.quality = quality
        self.error = error
        self.attributes = attributes  # as JSON text
        self.variant = variant
        self.model = model
        self.error_type = error_type
        self.output_valid = output_valid
        self.finish_reason = finish_reason
        self.trace_id = trace_id
        self.index = 0
        self.stamped = False  # sent without ts: the server's clock was used


def reject(raw: Any, reason: str) -> dict[str, Any]:
    """Return the answer to a rejected batch item."""
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return {
        "event_id": event_id if isinstance(event_id, str) else None,
        "status": REJECTED,
        "reason": reason,
    }


def _is_number(value: Any) -> bool:
    """A finite JSON number that fits a float (JSON integers may be arbitrarily long)."""
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (kind is int and -_BIG < value < _BIG)


_BIG = 2**63


def _is_text(value: Any, limit: int) -> bool:
    """A non-empty string up to `limit` characters of printable text: no NUL or other
    control characters, no lone surrogates, which neither database could store."""
    return type(value) is str and 0 < len(value) <= limit and value.isprintable()


def _token_count(raw: dict[str, Any], name: str) -> int | None | str:
    """A token count that is not a plain int: an integral float, or the reason it is bad."""
    value = raw.get(name)
    if type(value) is float and value.is_integer() and 0 <= value <= INT_MAX:
        return int(value)
    if type(value) is int and 0 <= value <= INT_MAX:
        return value
    return _token_reason(raw, name)


def _token_reason(raw: dict[str, Any], name: str) -> str:
    return f"{name} must be an integer from 0 to {INT_MAX}, got {_show(raw.get(name))}"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_ts(value: Any, now: float) -> tuple[float, datetime] | str:
    if value is None:
        return now, datetime.fromtimestamp(now, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return f"ts {_show(value)} is not an ISO 8601 time or Unix seconds"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        epoch = moment.timestamp()
    elif _is_number(value):
        epoch = float(value)
        if not OLDEST_TS <= epoch <= now + MAX_CLOCK_SKEW:
            moment = None  # reported below without building an out-of-range datetime
        else:
            moment = datetime.fromtimestamp(epoch, UTC)
    else:
        return f"ts must be an ISO 8601 time or Unix seconds, got {_show(value)}"
    if epoch > now + MAX_CLOCK_SKEW:
        ahead = timedelta(seconds=round(epoch - now))
        return (
            f"ts is {ahead} in the future (more than {MAX_CLOCK_SKEW // 60} minutes ahead of "
            "the server's clock)"
        )
    if epoch < OLDEST_TS:
        return "ts is before 2000-01-01"
    assert moment is not None
    return epoch, moment.astimezone(UTC)


class BatchMemo:
    """What a batch's events share, checked once per batch: the prompt, environment and
    digest texts that passed, and each ts text's reading (the batch's `now` is fixed)."""

    __slots__ = ("names", "digests", "times")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.digests: set[str] = set()
        self.times: dict[str, tuple[float, datetime] | str] = {}


def parse_event(raw: Any, now: float, memo: BatchMemo | None = None) -> Event | str:
    """Check one event's format; return it, or the reason it is rejected.

    Written flat, without helpers for the common case: it runs for every event ingested.
    `memo` (one per batch, for one `now`) skips the checks an earlier event of the batch
    passed with the same text; the answers are the same with it or without.
    """
    if memo is None:
        memo = BatchMemo()
    if type(raw) is not dict:
        return "an event must be a JSON object"
    if not FIELDS.issuperset(raw):
        unknown = sorted(k for k in raw if k not in FIELDS)
        return "unknown field " + ", ".join(f"'{k}'" for k in unknown[:5])
    get = raw.get
    event_id, prompt, env = get("event_id"), get("prompt"), get("env")
    digest, latency = get("digest"), get("latency_ms")
    if event_id is None or prompt is None or env is None or digest is None or latency is None:
        missing = [k for k in REQUIRED if get(k) is None]
        return ("missing field " if len(missing) == 1 else "missing fields ") + ", ".join(
            f"'{k}'" for k in missing
        )
    if not _is_text(event_id, EVENT_ID_MAX):
        return f"event_id must be a non-empty string of at most {EVENT_ID_MAX} printable characters"
    names = memo.names
    # Only strings are looked up: a prompt sent as a list or an object would not hash.
    if type(prompt) is not str or prompt not in names:
        if not _is_text(prompt, NAME_MAX):
            return f"prompt must be a non-empty string, got {_show(prompt)}"
        names.add(prompt)
    if type(env) is not str or env not in names:
        if not _is_text(env, NAME_MAX):
            return f"env must be a non-empty string, got {_show(env)}"
        names.add(env)
    if type(digest) is not str or digest not in memo.digests:
        if type(digest) is not str or not _HEX64.fullmatch(digest):
            if type(digest) is str and _HEX64.fullmatch(digest.lower()):
                digest = digest.lower()
            else:
                return (
                    "digest must be the version's full SHA-256 (64 hex characters, as resolve "
                    f"returns it), got {_show(digest)}"
                )
        else:
            memo.digests.add(digest)
    if type(latency) is not float:
        if not _is_number(latency):
            return f"latency_ms must be a finite number, got {_show(latency)}"
        latency = float(latency)
    elif not math.isfinite(latency):
        return f"latency_ms must be a finite number, got {_show(latency)}"
    if latency < 0:
        return f"latency_ms must not be negative, got {_show(get('latency_ms'))}"
    if latency > MAX_LATENCY_MS:
        return f"latency_ms must be at most {MAX_LATENCY_MS:.0f} (a day), got {_show(latency)}"
    raw_ts = get("ts")
    if type(raw_ts) is str:
        ts = memo.times.get(raw_ts)
        if ts is None:
            ts = memo.times[raw_ts] = _parse_ts(raw_ts, now)
    else:
        ts = _parse_ts(raw_ts, now)
    if type(ts) is str:
        return ts
    epoch, moment = ts
    input_tokens = get("input_tokens")
    if input_tokens is not None and (
        type(input_tokens) is not int or not 0 <= input_tokens <= INT_MAX
    ):
        input_tokens = _token_count(raw, "input_tokens")
        if type(input_tokens) is str:
            return input_tokens
    output_tokens = get("output_tokens")
    if output_tokens is not None and (
        type(output_tokens) is not int or not 0 <= output_tokens <= INT_MAX
    ):
        output_tokens = _token_count(raw, "output_tokens")
        if type(output_tokens) is str:
            return output_tokens
    cost = get("cost_usd")
    if cost is not None:
        if not _is_number(cost) or cost < 0:
            return f"cost_usd must be a finite number >= 0, got {_show(cost)}"
        if cost > MAX_COST_USD:
            return f"cost_usd must be at most {MAX_COST_USD:.0f} for one call, got {_show(cost)}"
        cost = float(cost)
    quality = get("quality")
    if quality is not None:
        if not _is_number(quality) or not 0 <= quality <= 1:
            return f"quality must be a number in [0, 1], got {_show(quality)}"
        quality = float(quality)
    error = get("error")
    if error is None:
        error = False
    elif type(error) is not bool:
        return f"error must be true or false, got {_show(error)}"
    attributes = get("attributes")
    if attributes is not None:
        if type(attributes) is not dict:
            return f"attributes must be a JSON object, got {_show(attributes)}"
        if not attributes:
            attributes = None
        else:
            # Serialised once: the size check and the stored text are the same string.
            attributes = _compact_json(attributes)
            try:
                size = len(attributes.encode())
            except UnicodeEncodeError:
                return "attributes contain text that is not valid Unicode (a lone surrogate)"
            if size > ATTRIBUTES_MAX_BYTES:
                return f"attributes are over {ATTRIBUTES_MAX_BYTES} bytes of JSON"
    variant = get("variant")
    if variant is not None and variant not in VARIANTS:
        return f"variant must be 'stable' or 'canary', got {_show(variant)}"
    model = get("model")
    if model is not None and not _is_text(model, NAME_MAX):
        return f"model must be a non-empty string, got {_show(model)}"
    error_type = get("error_type")
    if error_type is not None:
        if not _is_text(error_type, ERROR_TYPE_MAX):
            return _label_reason("error_type", error_type, ERROR_TYPE_MAX)
        error = True  # a reason for failing is a failure, whatever `error` says
    output_valid = get("output_valid")
    if output_valid is not None and type(output_valid) is not bool:
        return f"output_valid must be true or false, got {_show(output_valid)}"
    finish_reason = get("finish_reason")
    if finish_reason is not None and not _is_text(finish_reason, FINISH_REASON_MAX):
        return _label_reason("finish_reason", finish_reason, FINISH_REASON_MAX)
    trace_id = get("trace_id")
    if trace_id is not None and not _is_text(trace_id, TRACE_ID_MAX):
        return _label_reason("trace_id", trace_id, TRACE_ID_MAX)
    event = Event(
        event_id,
        prompt,
        env,
        digest,
        epoch,
        moment,
        latency,
        input_tokens,
        output_tokens,
        cost,
        quality,
        error,
        attributes,
        variant,
        model,
        error_type,
        output_valid,
        finish_reason,
        trace_id,
    )
    event.stamped = raw_ts is None
    return event


def _label_reason(name: str, value: Any, limit: int) -> str:
    if type(value) is not str:
        return f"{name} must be a string, got {_show(value)}"
    if not value:
        return f"{name} must not be empty"
    if len(value) > limit:
        return f"{name} must be at most {limit} characters, got {len(value)}: {_show(value)}"
    return f"{name} must be printable text without control characters, got {_show(value)}"


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def check_score(raw: Any) -> str | None:
    """Return why a score is malformed, or None."""
    if not isinstance(raw, dict):
        return "a score must be a JSON object"
    if not SCORE_FIELDS.issuperset(raw):
        unknown = sorted(k for k in raw if k not in SCORE_FIELDS)
        return "unknown field " + ", ".join(f"'{k}'" for k in unknown[:5])
    event_id, quality = raw.get("event_id"), raw.get("quality")
    if event_id is None or quality is None:
        missing = [k for k in ("event_id", "quality") if raw.get(k) is None]
        return "missing field " + ", ".join(f"'{k}'" for k in missing)
    if not _is_text(event_id, EVENT_ID_MAX):
        return f"event_id must be a non-empty string of at most {EVENT_ID_MAX} printable characters"
    if not _is_number(quality) or not 0 <= quality <= 1:
        return f"quality must be a number in [0, 1], got {_show(quality)}"
    return None


def batch_result(results: list[dict[str, Any] | None]) -> BatchResult:
    """Count the answers to a batch."""
    counts = {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}
    for result in results:
        assert result is not None
        counts[result["status"]] += 1
    return BatchResult(results, counts[ACCEPTED], counts[DUPLICATE], counts[REJECTED])


def batch_items(body: Any, key: str) -> list[Any]:
    """Return the list of a batch body: `{key: [...]}` or a bare JSON list."""
    items = body.get(key) if isinstance(body, dict) else body
    if isinstance(body, dict) and not set(body) <= {key}:
        raise InvalidBatch(key, sorted(set(body) - {key}))
    if not isinstance(items, list):
        raise InvalidBatch(key)
    return items
