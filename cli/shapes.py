"""What each command prints with `--json`: one documented shape per command.

The shapes the command line shares with the API (a release, a history row, an
environment, a metrics summary) are the API's own models in server/schemas.py; the ones
only the command line prints are here. `COMMAND_SHAPES` maps every command that takes
`--json` to its shape, and tests/cli/test_json_contract.py runs each command and
validates what it prints, so a command (or a key) without a documented shape fails there.
Errors under `--json` are `ErrorShape` on stderr.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, TypeAdapter

from promptctl.server.schemas import (
    CanaryAnalysisShape,
    CommitShape,
    Digest,
    EnvironmentShape,
    Label,
    LogEntryShape,
    MetricsSummaryShape,
    NewWebhookShape,
    PricesShape,
    PromotionShape,
    ReleaseShape,
    RenderedShape,
    RolloutShape,
    Shape,
    Timestamp,
    VersionNumber,
    WebhookDeliveryShape,
    WebhookShape,
)


class StatusRowShape(ReleaseShape):
    """A release as status prints it: with its canary analysis' one-word verdict."""

    analysis: Literal["pass", "fail", "inconclusive", "no data"] | None = Field(
        description="The running canary's verdict (promptctl analyze); null without one."
    )


class LayoutShape(Shape):
    root: str
    pattern: str
    branch: str


class InitShape(Shape):
    """`init --json`: the repository and the files written or kept."""

    repository: str
    created_repository: bool
    layout: LayoutShape
    written: list[str]
    kept: list[str]


class PromptVersionShape(Shape):
    """`show --json` (with `front_matter` and `body`) and a row of `list --json` (without)."""

    prompt: str
    version: VersionNumber
    label: Label
    digest: Digest
    source: str = Field(description="Where it was read: a git revision or the working tree.")
    path: str
    kind: Literal["chat", "text"]
    model: str | None
    params: dict[str, Any]
    description: str | None
    inputs: dict[str, dict[str, Any]]
    partials: list[str]
    commit: CommitShape | None
    first_commit: CommitShape | None
    front_matter: dict[str, Any] | None = None
    body: str | None = None


class InvalidPromptShape(Shape):
    """A row of `list --json` for a prompt file that cannot be read."""

    prompt: str
    error: str


class LogVersionShape(Shape):
    version: int
    label: Label
    digest: Digest
    commit: CommitShape


class LogChangeShape(Shape):
    commit: CommitShape
    digest: Digest | None = Field(description="Null where the commit removed the prompt.")
    version: VersionNumber
    moved_from: str | None = Field(
        default=None, description="Where the file was before this commit moved it."
    )


class LogShape(Shape):
    """`log --json`: versions on the tracked branch and the commits that changed the prompt."""

    prompt: str
    branch: str
    current: Digest | None
    versions: list[LogVersionShape]
    changes: list[LogChangeShape]


class RenderCommandShape(RenderedShape):
    """`render --json`."""

    prompt: str
    version: VersionNumber
    label: Label
    digest: Digest


class DiffSideShape(Shape):
    version: VersionNumber
    label: Label
    digest: Digest
    source: str


class FieldChangeShape(Shape):
    key: str
    old: Any
    new: Any


class VariableChangesShape(Shape):
    added: list[str]
    removed: list[str]
    changed: list[str]


class ConflictShape(Shape):
    against: str = Field(description="The version it breaks callers of: `v6 (stable)`.")
    code: str
    variable: str | None
    message: str


class DiffShape(Shape):
    """`diff --json`."""

    prompt: str
    old: DiffSideShape | None
    new: DiffSideShape | None
    unchanged: bool
    front_matter: list[FieldChangeShape]
    variables: VariableChangesShape
    body: str = Field(description="Unified diff of the body.")
    partials: dict[str, str] = Field(description="Unified diff per partial.")
    breaking: list[ConflictShape]


class FindingShape(Shape):
    path: str
    line: int
    severity: Literal["error", "warning"]
    code: str
    message: str
    prompt: str


class LintShape(Shape):
    """`lint --json`."""

    checked: int
    errors: int
    warnings: int
    findings: list[FindingShape]


class ResolveCommandShape(Shape):
    """`resolve --json`: the version a key gets, and the routing figures behind it."""

    prompt: str
    environment: str
    key: str | None
    variant: Literal["stable", "canary"]
    digest: Digest
    version: VersionNumber
    label: Label
    source: str | None
    bucket: int | None = Field(description="The key's bucket (0-9999); null without a key.")
    weight: float
    weight_bp: int


class PromoteAllRowShape(Shape):
    """A row of `promote --all --json`: what happened to one prompt."""

    prompt: str
    result: Literal["promoted", "unchanged", "failed"]
    version: VersionNumber
    label: Label | None
    digest: Digest | None
    error: str | None


class ErrorDetailShape(Shape):
    type: str
    title: str
    detail: str


class ErrorShape(Shape):
    """What a command that fails prints on stderr under `--json`."""

    error: ErrorDetailShape


class BundleShape(Shape):
    """`bundle --json`: the file written and how many releases it holds."""

    environment: str
    path: str
    count: int


class SchemaRevisionShape(Shape):
    """`db upgrade --json` and `db downgrade --json`: the revision the database is at."""

    revision: str | None = Field(description="Null once downgraded to base.")
    database: str = Field(description="The database URL without its password.")


class SchemaStatusShape(Shape):
    """`db current --json`."""

    current: str | None
    head: str


class TokenShape(Shape):
    """An API token as `token list --json` and `token revoke --json` show it (never its
    secret; `name` is the token's own name)."""

    id: int
    name: str
    prefix: str
    scope: Literal["read", "metrics:write", "release", "admin"]
    environment: str | None
    created_at: Timestamp
    revoked_at: Timestamp | None


class NewTokenShape(TokenShape):
    """`token create --json`: the token with its secret, shown this once."""

    token: str


class WorkflowShape(Shape):
    """`ci github-actions --json`: the review workflow (inline unless written to `output`)."""

    output: str | None
    paths: list[str]
    tracked_branch: str
    requirement: str
    label: str
    workflow: str | None


class CommentShape(Shape):
    """`ci comment --json`: what happened to the pull request's comment."""

    action: str = Field(description="created, updated, unchanged or skipped.")
    comment_id: int | None
    url: str | None
    truncated: bool
    reason: str | None


class ReviewSideShape(Shape):
    version: VersionNumber
    label: Label
    digest: Digest
    path: str


class ReviewPromptShape(Shape):
    """One prompt of `review --json`. Its nested parts (samples, costs, environments) are
    review's own and kept open here: registry/review/report.py says what they hold."""

    prompt: str
    change: Literal["added", "removed", "renamed", "changed"]
    renamed_from: str | None
    old: ReviewSideShape | None
    new: ReviewSideShape | None
    via_partials: Any
    front_matter: list[dict[str, Any]]
    variables: VariableChangesShape
    body_diff: str
    partial_diffs: dict[str, str]
    tokens: dict[str, Any]
    cost: dict[str, Any]
    budget: dict[str, Any] | None
    lint: list[FindingShape]
    samples: list[dict[str, Any]]
    breaking: list[Any]
    environments: list[dict[str, Any]] | None
    error: str | None


class ReviewOutcomeShape(Shape):
    passed: bool
    exit_code: int
    text: str


class GitRefShape(Shape):
    ref: str | None
    commit: str | None


class ReviewShape(Shape):
    """`review --json`: the report of a change, and whether it may merge."""

    base: GitRefShape
    head: GitRefShape
    base_is_ancestor: bool | None
    result: ReviewOutcomeShape
    exit_code: int
    summary: dict[str, int]
    environments: list[str] | None
    prompts: list[ReviewPromptShape]
    prices: PricesShape | None
    # promptctl.toml's [rollout] changes (registry/review/policies.py); None when unchanged
    rollout_policies: dict[str, Any] | None
    notes: list[str]


class PrunedKindShape(Shape):
    """What a prune did to one kind of metric row."""

    kind: Literal["events", "minute", "hour"]
    retention_days: float = Field(description="How long this kind is kept (settings).")
    cutoff: Timestamp = Field(description="Rows older than this go (or went).")
    rows: int = Field(description="Rows deleted, or that would be deleted with --dry-run.")
    partitions: list[str] = Field(
        description="PostgreSQL daily event partitions dropped (or to drop)."
    )
    stretched: bool = Field(
        description="Kept longer than its retention for a live canary's analysis window."
    )


class PruneShape(Shape):
    """`db prune --json`."""

    dry_run: bool
    at: Timestamp
    complete: bool = Field(description="False when stopped before the last batch.")
    kinds: list[PrunedKindShape]
    warnings: list[str]


# Each command (its path below `promptctl`) and the shapes its --json output may take.
COMMAND_SHAPES: dict[str, TypeAdapter[Any]] = {
    "init": TypeAdapter(InitShape),
    "list": TypeAdapter(list[PromptVersionShape | InvalidPromptShape]),
    "show": TypeAdapter(PromptVersionShape),
    "log": TypeAdapter(LogShape),
    "render": TypeAdapter(RenderCommandShape),
    "diff": TypeAdapter(DiffShape),
    "lint": TypeAdapter(LintShape),
    "env list": TypeAdapter(list[EnvironmentShape]),
    "env create": TypeAdapter(EnvironmentShape),
    "env protect": TypeAdapter(EnvironmentShape),
    "env unprotect": TypeAdapter(EnvironmentShape),
    "promote": TypeAdapter(PromotionShape | list[PromoteAllRowShape]),
    "canary": TypeAdapter(ReleaseShape),
    "rollback": TypeAdapter(ReleaseShape),
    "status": TypeAdapter(list[StatusRowShape]),
    "history": TypeAdapter(list[LogEntryShape]),
    "resolve": TypeAdapter(ResolveCommandShape),
    "metrics": TypeAdapter(MetricsSummaryShape),
    "analyze": TypeAdapter(CanaryAnalysisShape),
    "bundle": TypeAdapter(BundleShape),
    **{
        f"rollout {verb}": TypeAdapter(RolloutShape)
        for verb in ("start", "status", "pause", "resume", "abort", "promote")
    },
    "db upgrade": TypeAdapter(SchemaRevisionShape),
    "db downgrade": TypeAdapter(SchemaRevisionShape),
    "db current": TypeAdapter(SchemaStatusShape),
    "db prune": TypeAdapter(PruneShape),
    "token create": TypeAdapter(NewTokenShape),
    "token list": TypeAdapter(list[TokenShape]),
    "token revoke": TypeAdapter(list[TokenShape]),
    "ci github-actions": TypeAdapter(WorkflowShape),
    "ci comment": TypeAdapter(CommentShape),
    "review": TypeAdapter(ReviewShape),
    "webhook add": TypeAdapter(NewWebhookShape),
    "webhook list": TypeAdapter(list[WebhookShape]),
    "webhook remove": TypeAdapter(WebhookShape),
    "webhook test": TypeAdapter(WebhookDeliveryShape),
    "webhook deliveries": TypeAdapter(list[WebhookDeliveryShape]),
}
