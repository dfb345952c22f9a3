"""The release values the service hands out: what a release and its log look like.

Plain frozen dataclasses with their JSON forms, shared by the service, the server and the
CLI's remote backend (which rebuilds them from the server's JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from promptctl.registry.prompts.promptversion import SHORT

V = TypeVar("V")

# Log actions that make a new version stable; a `rollback` without --to returns to the one
# before.
PUSHES = ("promote", "complete", "rollback_to")


def replay_stable(steps: Iterable[tuple[str, V | None]]) -> list[V]:
    """The stack of stable versions a release's log leaves, given its (action, new version)
    steps oldest first: promotions push the new stable version, rollbacks pop it."""
    stack: list[V] = []
    for action, version in steps:
        if action in PUSHES and version is not None:
            stack.append(version)
        elif action == "rollback" and stack:
            stack.pop()
    return stack


def timestamp(moment: datetime) -> str:
    """Return a moment as the JSON vocabulary writes every time: ISO 8601, UTC, with offset."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def percent(weight_bp: int) -> float:
    """Return basis points as the percentage `weight` fields carry (1250 -> 12.5)."""
    return weight_bp / 100


def _first(data: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The value of the first of `keys` present: reads a current document or an older one."""
    for key in keys:
        if key in data:
            return data[key]
    return default


@dataclass(frozen=True)
class VersionRef:
    """A released version as status and history show it."""

    digest: str
    number: int | None = None
    source: str | None = None

    @property
    def label(self) -> str:
        return f"v{self.number}" if self.number else self.digest[:SHORT]

    def describe(self) -> str:
        """`v3 (1a2b3c4d5e6f)`, or for an unmerged version `1a2b3c4d5e6f (preview of ...)`."""
        if self.number:
            return f"{self.label} ({self.digest[:SHORT]})"
        return f"{self.label} (preview of {self.source})" if self.source else self.label

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "version": self.number,
            "label": self.label,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> VersionRef | None:
        return cls(data["digest"], data.get("version"), data.get("source")) if data else None

    @classmethod
    def numbered(
        cls,
        prompt: str,
        digest: str | None,
        numbers: Mapping[tuple[str, str], tuple[int | None, str | None]],
    ) -> VersionRef | None:
        """A stored digest with its number and source ref from `numbers` (as the version
        snapshots give them, by prompt and digest); None for no digest."""
        if not digest:
            return None
        number, source = numbers.get((prompt, digest), (None, None))
        return cls(digest, number, source)


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    protected: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.name,
            "protected": self.protected,
            "created_at": timestamp(self.created_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentInfo:
        name = _first(data, "environment", "name")  # "name" from older servers
        return cls(name, data["protected"], datetime.fromisoformat(data["created_at"]))


@dataclass(frozen=True)
class ReleaseState:
    """The release of one prompt in one environment."""

    prompt: str
    environment: str
    stable: VersionRef
    canary: VersionRef | None
    weight_bp: int
    revision: int
    updated_at: datetime
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "environment": self.environment,
            "stable": self.stable.to_json(),
            "canary": self.canary.to_json() if self.canary else None,
            "weight": percent(self.canary_weight_bp),
            "weight_bp": self.canary_weight_bp,
            "revision": self.revision,
            "updated_at": timestamp(self.updated_at),
            "updated_by": self.updated_by,
        }

    @property
    def canary_weight_bp(self) -> int:
        """The canary's share in basis points: 0 when there is no canary."""
        return self.weight_bp if self.canary else 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseState:
        stable = VersionRef.from_json(data["stable"])
        assert stable is not None
        return cls(
            prompt=data["prompt"],
            environment=data["environment"],
            stable=stable,
            canary=VersionRef.from_json(data.get("canary")),
            # "canary_weight_bp" from older servers
            weight_bp=_first(data, "weight_bp", "canary_weight_bp", default=0) or 0,
            revision=data["revision"],
            updated_at=datetime.fromisoformat(data["updated_at"]),
            updated_by=data["updated_by"],
        )


@dataclass(frozen=True)
class LogEntry:
    """One audited release action."""

    id: int
    prompt: str
    environment: str
    action: str
    from_version: VersionRef | None
    to_version: VersionRef | None
    weight_bp: int | None
    revision: int
    actor: str
    reason: str | None
    forced: bool
    time: datetime
    allowed_breaking: tuple[str, ...] = ()  # incompatibilities let through (--allow-breaking)
    # The canary's weight before the action: the log keeps only the weight an action set, so
    # this is the weight after the previous action in the same environment (read in order).
    previous_weight_bp: int = 0

    @property
    def from_weight_bp(self) -> int:
        return self.previous_weight_bp

    @property
    def to_weight_bp(self) -> int:
        """The canary's weight after the action: what it set, else 0 (no canary remains)."""
        return self.weight_bp if self.weight_bp is not None else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "environment": self.environment,
            "action": self.action,
            "from": self.from_version.to_json() if self.from_version else None,
            "to": self.to_version.to_json() if self.to_version else None,
            "from_weight": percent(self.from_weight_bp),
            "from_weight_bp": self.from_weight_bp,
            "to_weight": percent(self.to_weight_bp),
            "to_weight_bp": self.to_weight_bp,
            "revision": self.revision,
            "actor": self.actor,
            "reason": self.reason,
            "forced": self.forced,
            "allowed_breaking": list(self.allowed_breaking),
            "created_at": timestamp(self.time),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogEntry:
        return cls(
            id=data["id"],
            prompt=data["prompt"],
            environment=data["environment"],
            action=data["action"],
            from_version=VersionRef.from_json(data.get("from")),
            to_version=VersionRef.from_json(data.get("to")),
            # "weight_bp" and "time" from older servers
            weight_bp=_first(data, "to_weight_bp", "weight_bp"),
            revision=data["revision"],
            actor=data["actor"],
            reason=data.get("reason"),
            forced=data.get("forced", False),
            time=datetime.fromisoformat(_first(data, "created_at", "time")),
            allowed_breaking=tuple(data.get("allowed_breaking") or ()),
            previous_weight_bp=data.get("from_weight_bp") or 0,
        )
