"""What webhooks are made of, as values: the event types, subscriptions, deliveries and
their attempts, with their JSON forms (the API's and `promptctl webhook --json`'s).

Adding an event type is one line in EVENT_TYPES; the outbox refuses any type not there.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from promptctl.registry.errors import UnknownEventType
from promptctl.registry.releases.values import timestamp

# Every event a subscription may ask for, with what it means. Patterns: an exact type,
# `family.*` (release.*, rollout.*, environment.*) or `*`.
EVENT_TYPES: dict[str, str] = {
    "release.promoted": "a version became stable (promote, or promote --from)",
    "release.canary_started": "a version started as canary at a weight",
    "release.canary_ramped": "the canary's weight changed",
    "release.canary_completed": "the canary became stable",
    "release.canary_aborted": "the canary was dropped; all traffic back to stable",
    "release.rolled_back": "a rollback: a canary aborted, or stable put back to a version before",
    "environment.protected": "an environment became protected",
    "environment.unprotected": "an environment stopped being protected",
    "rollout.advanced": "an automated rollout moved the canary to its next step",
    "rollout.held": "an automated rollout kept its step (not enough data yet)",
    "rollout.paused": "an automated rollout paused and waits for a person",
    "rollout.rolled_back": "an automated rollout rolled the canary back",
    "rollout.completed": "an automated rollout made the canary stable",
    "webhook.test": "a test message (`promptctl webhook test ID`)",
}

# The event type of each release log action.
RELEASE_EVENTS: dict[str, str] = {
    "promote": "release.promoted",
    "canary_start": "release.canary_started",
    "ramp": "release.canary_ramped",
    "complete": "release.canary_completed",
    "abort": "release.canary_aborted",
    "rollback": "release.rolled_back",
    "rollback_to": "release.rolled_back",
    "rollback_canary": "release.rolled_back",
}

FORMATS = ("standard", "slack")
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Return the event patterns cleaned up; UnknownEventType for one that names nothing."""
    cleaned = tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))
    if not cleaned:
        raise UnknownEventType("", EVENT_TYPES)
    families = {t.split(".")[0] for t in EVENT_TYPES}
    for pattern in cleaned:
        if pattern == "*" or pattern in EVENT_TYPES:
            continue
        family, dot, rest = pattern.partition(".")
        if dot and rest == "*" and family in families:
            continue
        raise UnknownEventType(pattern, [*EVENT_TYPES, *(f"{f}.*" for f in sorted(families))])
    return cleaned


def wants(
    patterns: Iterable[str],
    environment_filter: str | None,
    prompt_glob: str | None,
    event_type: str,
    prompt: str | None,
    environment: str | None,
) -> bool:
    """Tell whether a subscription with these filters receives an event."""
    if not any(fnmatch.fnmatchcase(event_type, p) for p in patterns):
        return False
    if environment_filter is not None and environment != environment_filter:
        return False
    return prompt_glob is None or (prompt is not None and fnmatch.fnmatchcase(prompt, prompt_glob))


def _time(value: datetime | None) -> str | None:
    return timestamp(value) if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription, as listed (never with its secret)."""

    id: int
    url: str
    events: tuple[str, ...]
    environment: str | None
    prompt: str | None  # a glob over prompt names
    format: str
    description: str | None
    created_at: datetime
    created_by: str
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    pending: int = 0  # deliveries waiting to be sent

    @property
    def status(self) -> str:
        """`failing` after repeated failed attempts in a row, else `active`."""
        return "failing" if self.failing_since is not None else "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "environment": self.environment,
            "prompt": self.prompt,
            "format": self.format,
            "description": self.description,
            "status": self.status,
            "consecutive_failures": self.consecutive_failures,
            "failing_since": _time(self.failing_since),
            "last_success_at": _time(self.last_success_at),
            "last_error": self.last_error,
            "pending": self.pending,
            "created_at": timestamp(self.created_at),
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(
            id=data["id"],
            url=data["url"],
            events=tuple(data["events"]),
            environment=data.get("environment"),
            prompt=data.get("prompt"),
            format=data["format"],
            description=data.get("description"),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=data.get("created_by", ""),
            consecutive_failures=data.get("consecutive_failures", 0),
            failing_since=_parse(data.get("failing_since")),
            last_success_at=_parse(data.get("last_success_at")),
            last_error=data.get("last_error"),
            pending=data.get("pending", 0),
        )


@dataclass(frozen=True)
class NewSubscription:
    """A subscription just added, with its signing secret: shown this once."""

    subscription: Subscription
    secret: str

    def to_json(self) -> dict[str, Any]:
        return {**self.subscription.to_json(), "secret": self.secret}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NewSubscription:
        return cls(Subscription.from_json(data), data["secret"])


@dataclass(frozen=True)
class Attempt:
    """One try at sending a delivery; `outcome` None while it runs (or when its sender
    stopped before it knew)."""

    number: int
    started_at: datetime
    outcome: str | None  # "delivered", "failed"
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "started_at": timestamp(self.started_at),
            "outcome": self.outcome,
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            number=data["attempt"],
            started_at=datetime.fromisoformat(data["started_at"]),
            outcome=data.get("outcome"),
            status_code=data.get("status_code"),
            duration_ms=data.get("duration_ms"),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one subscription, with every attempt so far."""

    id: int
    subscription_id: int
    message_id: str  # the event's id: `webhook-id`, the same for every attempt
    type: str
    prompt: str | None
    environment: str | None
    status: str  # pending, delivered, failed (gave up)
    created_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription": self.subscription_id,
            "event_id": self.message_id,
            "type": self.type,
            "prompt": self.prompt,
            "environment": self.environment,
            "status": self.status,
            "created_at": timestamp(self.created_at),
            "next_attempt_at": _time(self.next_attempt_at) if self.status == PENDING else None,
            "finished_at": _time(self.finished_at),
            "attempts": [a.to_json() for a in self.attempts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(
            id=data["id"],
            subscription_id=data["subscription"],
            message_id=data["event_id"],
            type=data["type"],
            prompt=data.get("prompt"),
            environment=data.get("environment"),
            status=data["status"],
            created_at=datetime.fromisoformat(data["created_at"]),
            next_attempt_at=_parse(data.get("next_attempt_at")),
            finished_at=_parse(data.get("finished_at")),
            attempts=tuple(Attempt.from_json(a) for a in data.get("attempts", ())),
        )
