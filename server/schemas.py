"""Request and response bodies of the API.

Requests refuse unknown fields, so a typo never passes silently; responses are the JSON
vocabulary the API and the command line share (see below).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema


class Strict(BaseModel):
    # Strict: JSON types as sent, no coercion (`"weight": true` is not 1 %, `"protected": 0`
    # is not false, a number is not a string).
    model_config = ConfigDict(extra="forbid", strict=True)


class RenderRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"env": "production", "key": "user-42", "variables": {"ticket": "Charged twice"}},
                {"version": "v3", "variables": {"ticket": "Charged twice", "tier": "pro"}},
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"env": "staging", "ref": "v8", "reason": "new tone"},
                {"env": "production", "ref": "v8", "canary_weight": 10, "confirm": True},
                {"env": "production", "from_env": "staging", "confirm": True},
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"env": "production", "weight": 50, "confirm": True}]}
    )

    weight: float = Field(ge=0, le=100, description="Canary percentage, 0.01 resolution.")
    confirm: bool = False


class CompleteRequest(ActionBase):
    confirm: bool = False


class AbortRequest(ActionBase):
    pass


class RollbackRequest(ActionBase):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"env": "production", "reason": "error rate up"}]}
    )

    to: str | None = Field(default=None, description="Roll back to this version.")


class EnvironmentCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "eu-prod", "protected": True}]}
    )

    name: str
    protected: bool = False


class WebhookCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://ci.example.com/hooks/promptctl", "events": ["release.*"]},
                {
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "events": ["release.*", "rollout.*"],
                    "env": "production",
                    "prompt": "support/*",
                    "format": "slack",
                },
            ]
        }
    )

    url: str = Field(max_length=2048, description="http(s) URL that receives the events.")
    events: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1,
        max_length=50,
        description="Event types or patterns: release.promoted, release.*, rollout.*, *.",
    )
    env: str | None = Field(default=None, description="Only events of this environment.")
    prompt: str | None = Field(
        default=None, max_length=255, description="Only events of prompts matching this glob."
    )
    format: Literal["standard", "slack"] = Field(
        default="standard",
        description="standard: the signed JSON event; slack: a message for a Slack "
        "incoming webhook.",
    )
    description: str | None = Field(default=None, max_length=500)


class EnvironmentUpdate(Strict):
    protected: bool


# -- response bodies ------------------------------------------------------------------------
#
# The JSON vocabulary, written down once. The API documents its answers with these models,
# and `promptctl ... --json` prints the same shapes (cli/shapes.py maps each command to
# its model); tests validate live answers and every command's output against them.
#
# - `prompt` is a prompt's name, `environment` an environment's name (`env` only in query
#   strings and request bodies, as it always was);
# - `version` is the number N of vN, or null for a version not on the tracked branch;
#   `label` is how it shows (`v3`, or the short digest), `digest` the full SHA-256;
# - `weight` is the canary's share in percent, `weight_bp` beside it in basis points (both
#   0 when there is no canary); a history row has `from_weight`/`to_weight` (and `_bp`);
# - times are ISO 8601 in UTC with the offset: `created_at` when a record came to be (a
#   log row, an environment, a bundle), `updated_at` when a record that changes last did
#   (a release), `committed_at` for a git commit (its author date).
#
# Responses are never validated against these models at run time (the routes answer their
# own dicts or prebuilt bytes): they document, and the tests hold the answers to them.

TIMESTAMP_EXAMPLE = "2026-03-02T09:15:27.512301+00:00"
DIGEST_EXAMPLE = "1a2b3c4d5e6f" + "0" * 52


def _utc_timestamp(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from exc
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"not in UTC with its offset: {value!r}")
    return value


Timestamp = Annotated[
    str,
    AfterValidator(_utc_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": [TIMESTAMP_EXAMPLE]}),
]
Digest = Annotated[
    str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the version's content.")
]
VersionNumber = Annotated[
    int | None,
    Field(ge=1, description="N of vN; null for a version not on the tracked branch."),
]
Percent = Annotated[float, Field(ge=0, le=100, description="Canary share in percent.")]
BasisPoints = Annotated[int, Field(ge=0, le=10_000, description="The same in basis points.")]
Label = Annotated[str, Field(description="`vN`, or the short digest of an unnumbered version.")]


class Shape(BaseModel):
    """A response body: every key documented, none left over."""

    model_config = ConfigDict(extra="forbid")


class CommitShape(Shape):
    sha: str
    author: str
    email: str
    committed_at: Timestamp
    summary: str


class VersionRefShape(Shape):
    """A released version as status and history show it."""

    digest: Digest
    version: VersionNumber
    label: Label
    source: str | None = Field(
        description="For an unnumbered version, the branch or commit it is a preview of."
    )


class ReleaseShape(Shape):
    """The release of one prompt in one environment."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "support/triage",
                    "environment": "production",
                    "stable": {
                        "digest": DIGEST_EXAMPLE,
                        "version": 6,
                        "label": "v6",
                        "source": None,
                    },
                    "canary": {
                        "digest": "9" * 64,
                        "version": 8,
                        "label": "v8",
                        "source": None,
                    },
                    "weight": 12.5,
                    "weight_bp": 1250,
                    "revision": 14,
                    "updated_at": TIMESTAMP_EXAMPLE,
                    "updated_by": "Ada <ada@example.com>",
                }
            ]
        }
    )

    prompt: str
    environment: str
    stable: VersionRefShape
    canary: VersionRefShape | None
    weight: Percent
    weight_bp: BasisPoints
    revision: int = Field(description="Raised by one with every action (If-Match).")
    updated_at: Timestamp
    updated_by: str


class PromotionShape(ReleaseShape):
    """`promote --json`: the release after it, and what the person promoting should know."""

    warnings: list[str]


class EnvironmentShape(Shape):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"environment": "production", "protected": True, "created_at": TIMESTAMP_EXAMPLE}
            ]
        }
    )

    environment: str
    protected: bool
    created_at: Timestamp


Action = Literal[
    "promote", "canary_start", "ramp", "complete", "abort", "rollback_canary", "rollback",
    "rollback_to",
]  # fmt: skip


class LogEntryShape(Shape):
    """One release action of the append-only log; weights before (`from_`) and after it."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 31,
                    "prompt": "support/triage",
                    "environment": "production",
                    "action": "ramp",
                    "from": {"digest": "9" * 64, "version": 8, "label": "v8", "source": None},
                    "to": {"digest": "9" * 64, "version": 8, "label": "v8", "source": None},
                    "from_weight": 10.0,
                    "from_weight_bp": 1000,
                    "to_weight": 50.0,
                    "to_weight_bp": 5000,
                    "revision": 15,
                    "actor": "Ada <ada@example.com>",
                    "reason": "error rate flat",
                    "forced": False,
                    "allowed_breaking": [],
                    "created_at": TIMESTAMP_EXAMPLE,
                }
            ]
        },
    )

    id: int
    prompt: str
    environment: str
    action: Action
    from_: VersionRefShape | None = Field(
        alias="from", description="Stable before (a canary's: the canary it ends, or ramps)."
    )
    to: VersionRefShape | None = Field(description="The version the action put in place.")
    from_weight: Percent
    from_weight_bp: BasisPoints
    to_weight: Percent
    to_weight_bp: BasisPoints
    revision: int
    actor: str
    reason: str | None
    forced: bool = Field(description="Promoted past lint errors (--force).")
    allowed_breaking: list[str] = Field(
        description="The incompatibilities --allow-breaking let through."
    )
    created_at: Timestamp


class MessageShape(Shape):
    role: str
    content: str


class VersionDocumentShape(Shape):
    """A version's content as clients need it to render locally."""

    prompt: str
    name: str = Field(
        deprecated=True,
        description="The prompt's name again, for clients before the shared vocabulary.",
    )
    version: VersionNumber
    label: Label
    digest: Digest
    kind: Literal["chat", "text"]
    model: str | None
    params: dict[str, Any]
    front_matter: dict[str, Any]
    template: str = Field(description="The body: the template after the front matter.")
    source: str = Field(description="The prompt file's whole text.")
    body_line: int = Field(description="The file's line where the body starts.")
    path: str = Field(description="The prompt file below the prompt root.")
    root: str = Field(description="The prompt root in the repository.")
    partials: dict[str, str] = Field(description="The partials it includes: path -> text.")
    template_engine: Literal["jinja2", "plain", "mustache"] = Field(
        default="jinja2",
        description="How the body renders: its `template:`, else the repository's default.",
    )


class ResolutionShape(VersionDocumentShape):
    """`GET .../resolve`: the version a request gets, and which variant it is."""

    environment: str
    variant: Literal["stable", "canary"]


class ReleaseDocumentShape(Shape):
    """`GET .../release`: a release with the content of its versions (clients and bundles)."""

    prompt: str
    environment: str
    stable: VersionDocumentShape
    canary: VersionDocumentShape | None
    weight: Percent
    weight_bp: BasisPoints
    canary_weight_bp: BasisPoints = Field(
        deprecated=True, description="`weight_bp` again, for clients before the shared vocabulary."
    )
    revision: int
    updated_at: Timestamp
    updated_by: str


class VersionDetailShape(VersionDocumentShape):
    """`GET .../versions/{ref}`: a version's content and where it comes from."""

    source: str = Field(  # type: ignore[assignment]
        description="Where it was read: a git revision, the working tree or a release snapshot."
    )
    commit: CommitShape | None
    first_commit: CommitShape | None


class RenderedShape(Shape):
    """Chat messages, or text for a prompt without message blocks."""

    messages: list[MessageShape] | None = None
    text: str | None = None
    ignored: list[str] = Field(description="Variables given that the version does not declare.")


class RenderShape(RenderedShape):
    """`POST .../render`: what was rendered, and with which version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "support/triage",
                    "environment": "production",
                    "variant": "stable",
                    "version": 6,
                    "label": "v6",
                    "digest": DIGEST_EXAMPLE,
                    "model": "gpt-4o-mini",
                    "params": {"temperature": 0.2},
                    "messages": [
                        {"role": "system", "content": "You triage support tickets."},
                        {"role": "user", "content": "I was charged twice"},
                    ],
                    "ignored": [],
                }
            ]
        }
    )

    prompt: str
    environment: str | None
    variant: Literal["stable", "canary"] | None = Field(description="Null for a given version.")
    version: VersionNumber
    label: Label
    digest: Digest
    model: str | None
    params: dict[str, Any]


class VersionRowShape(Shape):
    version: int
    label: Label
    digest: Digest
    current: bool = Field(description="What the tracked branch has now.")
    commit: CommitShape


class VersionListShape(Shape):
    """`GET .../versions`: numbered versions on the tracked branch, newest first."""

    prompt: str
    branch: str
    versions: list[VersionRowShape]


class CatalogReleaseShape(Shape):
    stable: VersionRefShape
    canary: VersionRefShape | None
    weight: Percent
    weight_bp: BasisPoints
    revision: int


class CatalogEntryShape(Shape):
    """A prompt on the tracked branch (or released), with its release per environment.

    A prompt that cannot be read has `error` instead of its version; one that is only
    released (the repository unreadable) has only its releases.
    """

    prompt: str
    version: VersionNumber = None
    label: Label | None = None
    digest: Digest | None = None
    description: str | None = None
    model: str | None = None
    error: str | None = None
    releases: dict[str, CatalogReleaseShape] = Field(description="By environment.")


class FiguresShape(Shape):
    mean: float | None
    count: int


class LatencyShape(Shape):
    """Successful calls only: failed calls are counted apart (`errors`, `error_types`)."""

    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None
    count: int | None = Field(description="Successful calls measured.")


class CostShape(Shape):
    mean: float | None
    total: float
    count: int


class QualityShape(Shape):
    mean: float | None
    ci95: list[float] | None = Field(min_length=2, max_length=2, description="[low, high].")
    count: int


class OutputsShape(Shape):
    checked: int = Field(description="Calls whose output was checked against its contract.")
    invalid: int
    invalid_rate: float | None


class FinishReasonsShape(Shape):
    reported: int = Field(description="Calls that reported a finish reason.")
    truncated: int
    truncation_rate: float | None


class ErrorTypeShape(Shape):
    type: str
    count: int


class FlaggedTraceShape(Shape):
    trace_id: str
    created_at: Timestamp = Field(description="When the call was made.")
    reason: str
    url: str | None


class BudgetCheckShape(Shape):
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    exceeded: list[str] = Field(description="The figures whose mean is over the budget.")


class PricesShape(Shape):
    source: str
    as_of: str | None


class VersionMetricsShape(Shape):
    digest: Digest
    version: VersionNumber
    label: Label
    variant: Literal["stable", "canary"]
    count: int
    errors: int
    error_rate: float | None
    latency_ms: LatencyShape
    input_tokens: FiguresShape
    output_tokens: FiguresShape
    cost_usd: CostShape
    quality: QualityShape
    outputs: OutputsShape
    finish_reasons: FinishReasonsShape
    error_types: list[ErrorTypeShape] = Field(description="Most frequent first.")
    failing_traces: list[FlaggedTraceShape]
    budget: BudgetCheckShape | None = Field(description="The version's declared budget.")


class MetricsSummaryShape(Shape):
    """Per version and variant over [since, until), at minute resolution."""

    prompt: str
    environment: str
    since: Timestamp
    until: Timestamp
    versions: list[VersionMetricsShape]
    prices: PricesShape | None = Field(description="Where the prices of cost_usd come from.")


class PercentileShape(Shape):
    q: float = Field(description="0.5, 0.95, 0.99.")
    stable: float | None
    canary: float | None


class GuardResultShape(Shape):
    """One guard metric: both arms, the canary's difference with its interval, a verdict."""

    metric: Literal[
        "error_rate",
        "latency",
        "cost",
        "input_tokens",
        "output_tokens",
        "quality",
        "invalid_output",
        "truncation",
    ]
    label: str
    verdict: Literal["pass", "fail", "inconclusive", "no data"]
    rule: str = Field(description="Why this verdict, in words.")
    required: bool = Field(description="Without data on it the analysis is `no data`.")
    unit: str
    stable: float | None = Field(description="A rate, a mean, or the geometric-mean latency.")
    canary: float | None
    n_stable: int = Field(description="Observations of this metric in stable.")
    n_canary: int
    scale: Literal["absolute", "relative"] = Field(
        description="absolute: canary - stable; relative: canary / stable - 1."
    )
    difference: float | None
    low: float | None = Field(description="The anytime-valid interval of the difference.")
    high: float | None
    limit: float = Field(description="The tolerance, signed in the harmful direction.")
    alpha: float = Field(description="This metric's share of the overall alpha.")
    percentiles: list[PercentileShape] = Field(description="Latency only: p50, p95, p99.")


class ArmCallsShape(Shape):
    stable: int
    canary: int


class CanaryAnalysisShape(Shape):
    """The canary against stable on the same window (a concurrent control)."""

    prompt: str
    environment: str
    stable: VersionRefShape
    canary: VersionRefShape
    weight: Percent
    weight_bp: BasisPoints
    step_started_at: Timestamp = Field(description="When the current weight step began.")
    since: Timestamp = Field(description="The window read: whole minutes from here ...")
    until: Timestamp = Field(description="... to the end of the minute under way.")
    verdict: Literal["pass", "fail", "inconclusive", "no data"]
    reasons: list[str]
    calls: ArmCallsShape
    metrics: list[GuardResultShape]
    settings: dict[str, Any] = Field(description="alpha, the method and every guard.")
    notes: list[str] = Field(description="How the window was rounded; what weakens it.")


class ItemResultShape(Shape):
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = Field(default=None, description="Why it was rejected.")


class BatchResultShape(Shape):
    """The answer to a batch: every item in order, and the counts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "duplicate": 0,
                    "rejected": 1,
                    "results": [
                        {"event_id": "e-1", "status": "accepted"},
                        {"event_id": "e-2", "status": "rejected", "reason": "latency_ms: < 0"},
                    ],
                }
            ]
        }
    )

    accepted: int
    duplicate: int
    rejected: int
    results: list[ItemResultShape]


class GitStatusShape(Shape):
    """Which commit the clone has on its tracked branch, and how following its remote goes."""

    branch: str
    commit: str | None
    remote: str | None
    fetch_interval: float
    last_fetch_at: Timestamp | None
    last_attempt_at: Timestamp | None
    last_error: str | None
    last_error_at: Timestamp | None


class GitErrorShape(Shape):
    error: str


class ReadinessChecksShape(Shape):
    database: str = Field(description="`ok`, or `error: ...`.")
    repository: str = Field(description="`ok`, or why not.")


class ReadinessShape(Shape):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {"database": "ok", "repository": "ok"},
                    "git": {
                        "branch": "main",
                        "commit": "4" * 40,
                        "remote": None,
                        "fetch_interval": 0.0,
                        "last_fetch_at": None,
                        "last_attempt_at": None,
                        "last_error": None,
                        "last_error_at": None,
                    },
                }
            ]
        }
    )

    status: Literal["ready", "not ready"]
    checks: ReadinessChecksShape
    git: GitStatusShape | GitErrorShape


class HealthShape(Shape):
    status: Literal["ok"]


# -- webhooks -------------------------------------------------------------------------------

WebhookStatus = Literal["active", "failing"]


class WebhookShape(Shape):
    """A webhook subscription (never its secret)."""

    id: int
    url: str
    events: list[str]
    environment: str | None = Field(description="Only events of this environment.")
    prompt: str | None = Field(description="Only events of prompts matching this glob.")
    format: Literal["standard", "slack"]
    description: str | None
    status: WebhookStatus = Field(
        description="failing after 5 failed attempts in a row, until one succeeds."
    )
    consecutive_failures: int
    failing_since: Timestamp | None
    last_success_at: Timestamp | None
    last_error: str | None
    pending: int = Field(description="Deliveries waiting to be sent.")
    created_at: Timestamp
    created_by: str


class NewWebhookShape(WebhookShape):
    """A subscription just added, with the secret that signs its deliveries: shown once."""

    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")


class WebhookAttemptShape(Shape):
    attempt: int
    started_at: Timestamp
    outcome: Literal["delivered", "failed"] | None = Field(
        description="null while it runs, or when its sender stopped before it knew."
    )
    status_code: int | None
    duration_ms: float | None
    error: str | None


class WebhookDeliveryShape(Shape):
    """One event on its way to one subscription, with every attempt so far."""

    id: int
    subscription: int
    event_id: str = Field(description="The event's id, sent as webhook-id on every attempt.")
    type: str
    prompt: str | None
    environment: str | None
    status: Literal["pending", "delivered", "failed"]
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    finished_at: Timestamp | None
    attempts: list[WebhookAttemptShape]



# -- automated rollouts (routes_rollouts) --------------------------------------------------


class RolloutStartRequest(ActionBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"env": "production", "ref": "v8", "policy": "careful", "confirm": True}]
        }
    )

    ref: str | None = Field(default=None, description="The version to roll out (default HEAD).")
    digest: str | None = Field(default=None, description="Exactly this content (as pinned).")
    commit: str | None = None
    policy: str | None = Field(
        default=None, description="A policy of promptctl.toml (default: the prompt's own)."
    )
    confirm: bool = False


class RolloutActionRequest(ActionBase):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"env": "production", "reason": "waiting for a fix"}]}
    )

    confirm: bool = False


class RolloutEventShape(BaseModel):
    action: str
    step: int
    weight: float | None
    weight_bp: int | None
    actor: str
    reason: str | None
    revision: int | None
    analysis: dict[str, Any] | None
    created_at: str


class RolloutEndingShape(Shape):
    """How an ended rollout ended."""

    outcome: Literal["completed", "rolled_back", "aborted"]
    at: Timestamp
    by: str | None = Field(description="Who ended it (promptctl-controller for the controller).")
    reason: str | None = Field(description="Why, as the ending decision recorded it.")
    step: int = Field(description="The step it ended at, from 1")
    weight: Percent
    weight_bp: BasisPoints


class RolloutShape(BaseModel):
    """A rollout: its policy snapshot, step, status, the last analysis and what comes next
    (while live) or how it ended."""

    id: int
    prompt: str
    environment: str
    status: str = Field(description="running, paused, completed, rolled_back or aborted")
    policy: dict[str, Any]
    step: int = Field(description="The current step, from 1")
    steps: int
    weight: float
    weight_bp: int
    step_started_at: str
    seconds_in_step: float
    extended: bool
    deadline: str | None = Field(
        description="When a step without a verdict is acted on; null once the rollout ended."
    )
    stable_digest: str
    canary_digest: str
    revision: int
    started_at: str
    started_by: str
    ended_at: str | None
    reason: str | None
    last_checked_at: str | None
    analysis: dict[str, Any] | None
    next: str | None = Field(description="What happens next, in words; null once ended.")
    ended: RolloutEndingShape | None = Field(description="How it ended; null while live.")
    events: list[RolloutEventShape]
