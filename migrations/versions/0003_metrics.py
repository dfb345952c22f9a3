"""metrics: events and their per-minute and per-hour rollups

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_events",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("error", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_metric_events")),
    )
    op.create_table(
        "metric_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_min", sa.Float(), nullable=True),
        sa.Column("latency_max", sa.Float(), nullable=True),
        sa.Column("latency_histogram", sa.JSON(), nullable=False),
        sa.Column("input_tokens_count", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens_count", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("cost_count", sa.BigInteger(), nullable=False),
        sa.Column("cost_sum", sa.Float(), nullable=False),
        sa.Column("quality_count", sa.BigInteger(), nullable=False),
        sa.Column("quality_sum", sa.Float(), nullable=False),
        sa.Column("quality_sumsq", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_rollups")),
        # Also the index of summaries: prompt, environment, granularity, then time.
        sa.UniqueConstraint(
            "prompt",
            "environment",
            "period_seconds",
            "period_start",
            "digest",
            "variant",
            name="uq_metric_rollups_key",
        ),
    )


def downgrade() -> None:
    op.drop_table("metric_rollups")
    op.drop_table("metric_events")
