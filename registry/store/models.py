"""The operational truth in SQL: environments, version snapshots, releases and their log.

The schema changes only through Alembic migrations in `migrations/`; a test checks that
these models and the migrations agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return a stored time as aware UTC (SQLite hands back naive datetimes)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Environment(Base):
    """A deployment target such as production; protected ones need explicit confirmation."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VersionSnapshot(Base):
    """The full content of a promoted version, partials included, so serving needs no git."""

    __tablename__ = "version_snapshots"
    __table_args__ = (UniqueConstraint("prompt", "digest", name="prompt_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    commit_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    root: Mapped[str] = mapped_column(String(255), default="")
    relpath: Mapped[str] = mapped_column(String(512))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Release(Base):
    """What runs for one (prompt, environment): a stable version and maybe a canary."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("prompt", "environment_id", name="prompt_environment"),
        CheckConstraint("canary_weight_bp >= 0 AND canary_weight_bp <= 10000", name="weight"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    stable_digest: Mapped[str] = mapped_column(String(64))
    canary_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    canary_weight_bp: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))

    environment: Mapped[Environment] = relationship(lazy="joined")


class ReleaseLog(Base):
    """One row per release action; rows are only ever appended."""

    __tablename__ = "release_log"
    __table_args__ = (Index("ix_release_log_prompt_env", "prompt", "environment", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weight_bp: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revision: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # The incompatibilities with versions serving beside it that a promotion let through
    # (`--allow-breaking`); None when there were none.
    allowed_breaking: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """An API token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MetricEvent(Base):
    """One call an application reported; its `event_id` makes a retried delivery count once.

    No secondary index on purpose: summaries read `metric_rollups`, scores find an event
    by its primary key, and every extra index costs ingest throughput.
    """

    __tablename__ = "metric_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[float] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    model: Mapped[str | None] = mapped_column(String(255), nullable=True)
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    output_valid: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MetricRollup(Base):
    """Mergeable aggregates of the events of one (prompt, environment, digest, variant) in
    one period: a minute (`period_seconds` 60) or an hour (3600).

    `latency_histogram` is `{"zero": n, "offset": k, "counts": [...]}`: `counts[j]` events
    with latency in (γ^(k+j-1), γ^(k+j)] ms, γ as in `registry.metrics`; `zero` at 0 ms.
    It counts every call, failed ones too; `success_latency_histogram` (same form) only the
    successful ones, which is what summaries and canary analysis report as latency.
    """

    __tablename__ = "metric_rollups"
    __table_args__ = (
        UniqueConstraint(
            "prompt",
            "environment",
            "period_seconds",
            "period_start",
            "digest",
            "variant",
            name="uq_metric_rollups_key",
        ),
        # What retention prunes by (all prompts' rows of a period older than a cutoff).
        Index("ix_metric_rollups_period", "period_seconds", "period_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    period_seconds: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum: Mapped[float] = mapped_column(Float, default=0.0)
    latency_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_histogram: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_tokens_count: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens_count: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_count: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_sum: Mapped[float] = mapped_column(Float, default=0.0)
    quality_count: Mapped[int] = mapped_column(BigInteger, default=0)
    quality_sum: Mapped[float] = mapped_column(Float, default=0.0)
    quality_sumsq: Mapped[float] = mapped_column(Float, default=0.0)
    # How the calls ended: outputs checked against the contract and found invalid, finish
    # reasons reported and truncated (length, max_tokens), calls per error type (at most
    # 20 types and `other`), and the newest flagged calls' [ts, trace id, why].
    outputs_checked: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    outputs_invalid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    finishes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    truncated: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error_types: Mapped[dict[str, int] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    failing_traces: Mapped[list[Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    # What canary analysis reads (revision 0006): the squares of cost and tokens, and the
    # latency of successful calls apart (the `latency_*` columns above count every call).
    # NULL: not recorded, the row was written before 0006 (see that migration).
    cost_sumsq: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_tokens_sumsq: Mapped[float | None] = mapped_column(Float, nullable=True)
    output_tokens_sumsq: Mapped[float | None] = mapped_column(Float, nullable=True)
    success_latency_sum: Mapped[float | None] = mapped_column(Float, nullable=True)
    success_latency_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    success_latency_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    success_latency_histogram: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MetricWatermark(Base):
    """How far retention has pruned one kind of metric row (`events`, `minute`, `hour`):
    every row of that kind older than `pruned_before` may be gone.

    A prune moves the mark first, in a transaction of its own, and deletes after: readers
    (summaries, canary analysis, series) read minute rows only from the `minute` mark on
    and hour rows before it, so a prune that is interrupted, or still at work, never
    shows them a window with part of its rows deleted.
    """

    __tablename__ = "metric_watermarks"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    pruned_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookSubscription(Base):
    """Where to send which events. The signing secret is kept as given (the server signs
    with it): only admins may list subscriptions, and the secret is never returned again."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list[str]] = mapped_column(JSON)
    environment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt: Mapped[str | None] = mapped_column(String(255), nullable=True)  # a glob
    format: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    # Failed attempts in a row; at the threshold the subscription is marked failing (since
    # when), and a success clears both.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookEvent(Base):
    """One event in the outbox: its standard body, exactly as every attempt sends it."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str | None] = mapped_column(String(255), nullable=True)
    environment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event on its way to one subscription, written in the transaction of the action
    that made the event.

    `ordering_key` (prompt and environment) keeps a subscription's deliveries of one
    release in log order: one is sent only when no earlier one with its key is pending.
    `leased_until` is how long the sender that claimed it may take before another may.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    ordering_key: Mapped[str | None] = mapped_column(String(330), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None: the dispatcher's retry policy; 1 for a test message, sent once.
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookAttempt(Base):
    """One try at a delivery: the delivery log. Written when the try starts; its outcome,
    status code and duration when it ends (none when its sender died meanwhile)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


# -- automated rollouts (registry.rollouts) ------------------------------------------------


class Rollout(Base):
    """One automated rollout of a canary in one environment, with the policy it runs by.

    `policy` is a snapshot (the controller never reads git); `release_revision` is the
    release's revision as the rollout last wrote or saw it, so a change made by anyone
    else shows; `revision` guards the row itself against two writers.
    """

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_prompt_env", "prompt", "environment", "id"),
        Index("ix_rollouts_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    stable_digest: Mapped[str] = mapped_column(String(64))
    canary_digest: Mapped[str] = mapped_column(String(64))
    policy_name: Mapped[str] = mapped_column(String(64))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)  # 0-based index into the policy's steps
    step_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    release_revision: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_analysis: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )


class RolloutEvent(Base):
    """One decision of a rollout (started, advanced, paused, rolled back, ...); appended only."""

    __tablename__ = "rollout_events"
    __table_args__ = (Index("ix_rollout_events_rollout", "rollout_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"))
    action: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer)
    weight_bp: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    release_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ControllerLease(Base):
    """Which server replica may act for a controller (the rollouts'), until when."""

    __tablename__ = "controller_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
