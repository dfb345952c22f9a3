"""Request bodies of the API. Unknown fields are refused, so a typo never passes silently."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    # Strict: JSON types as sent, no coercion (`"weight": true` is not 1 %, `"protected": 0`
    # is not false, a number is not a string).
    model_config = ConfigDict(extra="forbid", strict=True)


class RenderRequest(Strict):
    env: str | None = Field(default=None, description="Resolve in this environment.")
    key: str | None = Field(default=None, description="Stickiness key for canary routing.")
    version: str | None = Field(
        default=None,
        description="Render this version (vN, digest, "
        "git revision) instead of resolving in an environment.",
    )
    variables: dict[str, Any] = Field(default_factory=dict)


class ActionBase(Strict):
    env: str
    reason: str | None = None
    actor: str | None = Field(default=None, description="Who acts (defaults to the token name).")


class PromoteRequest(ActionBase):
    ref: str | None = Field(
        default=None,
        description="Version to promote: vN, a digest prefix or a git revision (default: HEAD "
        "of the server's clone, its tracked branch). With 'digest', only what the user asked "
        "for. Not with from_env.",
    )
    digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Promote exactly this content (the full SHA-256 digest, as the CLI sends "
        "it); the server fetches its remote when it lacks it, else answers 409.",
    )
    commit: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
        description="The commit the digest was read at (where to find it).",
    )
    from_env: str | None = Field(default=None, description="Promote what is stable there.")
    canary_weight: float | None = Field(
        default=None, ge=0, le=100, description="Start as a canary at this percentage."
    )
    force: bool = False
    allow_breaking: bool = Field(
        default=False,
        description="Promote even though the version breaks callers of one serving beside it "
        "(a canary and its stable get the same calls); the release log records what was let "
        "through. Without it such a promotion is a 409 naming each incompatibility.",
    )
    if_changed: bool = Field(
        default=False, description="Do nothing when the version is already stable (CI use)."
    )
    confirm: bool = Field(
        default=False,
        description="Confirm a protected environment (needed when the server runs without tokens).",
    )


class RampRequest(ActionBase):
    weight: float = Field(ge=0, le=100, description="Canary percentage, 0.01 resolution.")
    confirm: bool = False


class CompleteRequest(ActionBase):
    confirm: bool = False


class AbortRequest(ActionBase):
    pass


class RollbackRequest(ActionBase):
    to: str | None = Field(default=None, description="Roll back to this version.")


class EnvironmentCreate(Strict):
    name: str
    protected: bool = False


class EnvironmentUpdate(Strict):
    protected: bool
