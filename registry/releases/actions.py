"""Release actions as values: what a person (the CLI) or a request (the API) asks of a release.

`Registry.perform` carries one out on the release database; the CLI's remote backend sends
the same value to a server, whose routes build it from a request body. An action's fields
are written here once, whichever transport carries it.

A promotion names the content it means: the CLI reads its reference in the user's own
repository (`Registry.pin`) and sends the digest and commit with it, and whoever carries it
out promotes exactly that digest or refuses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from promptctl.registry.analysis.report import CanaryReport
    from promptctl.registry.metrics.summary import MetricsSummary
    from promptctl.registry.releases.values import EnvironmentInfo, LogEntry, ReleaseState

# What a promotion without a reference means: HEAD (what is committed) of the repository the
# reference is read in. The CLI reads it in the user's repository, locally and through a
# server alike, and sends the digest; only an API request that names nothing is read in the
# server's clone, whose HEAD is the tracked branch it follows.
DEFAULT_REF = "HEAD"


@dataclass(frozen=True, kw_only=True)
class ReleaseAction:
    """What every action names: the release, why, who, and what it expects to find.

    `actor` None means whoever the registry says acts (option, PROMPTCTL_ACTOR, git
    identity, OS user). `confirmed` is the `--yes` a protected environment asks for.
    `expected_revision` makes the action conditional on the release's revision.
    """

    verb: ClassVar[str]

    prompt: str
    environment: str
    reason: str | None = None
    actor: str | None = None
    confirmed: bool = False
    expected_revision: int | None = None


@dataclass(frozen=True, kw_only=True)
class Promote(ReleaseAction):
    """Make the version `ref` names stable, or start it as canary at `canary_bp`.

    With `source`, what is stable in that environment is promoted (no git needed). With
    `if_changed`, promoting the version that is already stable changes nothing. With
    `digest`, exactly that content is promoted, found at `commit` when given (`ref` then
    only says what the user asked for); without it, `ref` (default DEFAULT_REF) is read.
    """

    verb: ClassVar[str] = "promote"

    ref: str | None = None
    digest: str | None = None
    commit: str | None = None
    source: str | None = None
    canary_bp: int | None = None
    force: bool = False
    if_changed: bool = False
    # Go ahead even though the version breaks callers of one that serves beside it (a
    # canary and its stable get the same calls); the release log records what was allowed.
    allow_breaking: bool = False


@dataclass(frozen=True, kw_only=True)
class Ramp(ReleaseAction):
    """Change the canary's weight (basis points)."""

    verb: ClassVar[str] = "ramp"

    weight_bp: int


@dataclass(frozen=True, kw_only=True)
class Complete(ReleaseAction):
    """Make the canary stable."""

    verb: ClassVar[str] = "complete"


@dataclass(frozen=True, kw_only=True)
class Abort(ReleaseAction):
    """Drop the canary: all traffic back to stable (never needs confirmation)."""

    verb: ClassVar[str] = "abort"


@dataclass(frozen=True, kw_only=True)
class Rollback(ReleaseAction):
    """Abort a canary, else restore the previous stable version, or the one `to_ref` names."""

    verb: ClassVar[str] = "rollback"

    to_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class PromoteAll:
    """`promote --all`: every prompt at `ref` whose version is not stable in `environment` yet."""

    environment: str
    ref: str = "HEAD"
    reason: str | None = None
    actor: str | None = None
    force: bool = False
    allow_breaking: bool = False
    confirmed: bool = False

    def action(self, prompt: str) -> Promote:
        """The promotion of one of the prompts."""
        return Promote(prompt=prompt, if_changed=True, **asdict(self))


class ReleaseBackend(Protocol):
    """What the release commands ask of a registry: the local one (`Registry`), or a server
    (the CLI's remote backend, over the release API). Both answer with the same values."""

    def environments(self) -> list[EnvironmentInfo]: ...
    def create_environment(self, name: str, *, protected: bool = False) -> EnvironmentInfo: ...
    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo: ...
    def status(
        self, prompt: str | None = None, environment: str | None = None
    ) -> list[ReleaseState]: ...
    def history(
        self, prompt: str, environment: str | None = None, limit: int | None = None
    ) -> list[LogEntry]: ...
    def perform(self, action: ReleaseAction) -> ReleaseState: ...
    def release_documents(self, environment: str) -> dict[str, dict[str, Any]]: ...
    def metrics_summary(
        self, prompt: str, environment: str, since: str | None = None, until: str | None = None
    ) -> MetricsSummary: ...
    def analyze(self, name: str, environment: str, *, since: str | None = None) -> CanaryReport: ...
