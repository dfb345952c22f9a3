"""metric watermarks: how far retention has pruned each kind of metric row; an index
of rollups by period for the prune

Readers take minute rollups only from the `minute` mark on and hour rollups before it,
so pruning minute rows never leaves a window half read (registry.metrics.retention).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_watermarks",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_metric_watermarks")),
    )
    # Retention deletes rollups of one period older than a cutoff, for every prompt.
    op.create_index(
        "ix_metric_rollups_period", "metric_rollups", ["period_seconds", "period_start"]
    )


def downgrade() -> None:
    op.drop_index("ix_metric_rollups_period", table_name="metric_rollups")
    op.drop_table("metric_watermarks")
