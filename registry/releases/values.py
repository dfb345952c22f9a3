"""The release values the service hands out: what a release and its log look like.

Plain frozen dataclasses with their JSON forms, shared by the service, the server and the
CLI's remote backend (which rebuilds them from the server's JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promptctl.registry.prompts.promptversion import SHORT
from promptctl.registry.releases.routing import format_percent


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


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    protected: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protected": self.protected,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentInfo:
        return cls(data["name"], data["protected"], datetime.fromisoformat(data["created_at"]))


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
            "canary_weight_bp": self.weight_bp if self.canary else 0,
            "canary_weight": format_percent(self.weight_bp) if self.canary else None,
            "revision": self.revision,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseState:
        stable = VersionRef.from_json(data["stable"])
        assert stable is not None
        return cls(
            prompt=data["prompt"],
            environment=data["environment"],
            stable=stable,
            canary=VersionRef.from_json(data.get("canary")),
            weight_bp=data.get("canary_weight_bp", 0),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "environment": self.environment,
            "action": self.action,
            "from": self.from_version.to_json() if self.from_version else None,
            "to": self.to_version.to_json() if self.to_version else None,
            "weight_bp": self.weight_bp,
            "revision": self.revision,
            "actor": self.actor,
            "reason": self.reason,
            "forced": self.forced,
            "allowed_breaking": list(self.allowed_breaking),
            "time": self.time.isoformat(),
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
            weight_bp=data.get("weight_bp"),
            revision=data["revision"],
            actor=data["actor"],
            reason=data.get("reason"),
            forced=data.get("forced", False),
            time=datetime.fromisoformat(data["time"]),
            allowed_breaking=tuple(data.get("allowed_breaking") or ()),
        )
