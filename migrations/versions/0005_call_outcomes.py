"""metrics: how calls ended (error type, output validity, finish reason, trace id)

Events gain the four fields; rollups gain the counts summaries read (outputs checked and
invalid, finish reasons and truncations, calls per error type) and the newest flagged
calls' trace ids. Existing rows read as "nothing reported".

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_EVENT_COLUMNS = ("error_type", "output_valid", "finish_reason", "trace_id")
_ROLLUP_COUNTS = ("outputs_checked", "outputs_invalid", "finishes", "truncated")


def upgrade() -> None:
    with op.batch_alter_table("metric_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("output_valid", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("finish_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("trace_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("metric_rollups", schema=None) as batch_op:
        for name in _ROLLUP_COUNTS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        batch_op.add_column(sa.Column("error_types", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("failing_traces", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_rollups", schema=None) as batch_op:
        for name in ("failing_traces", "error_types", *reversed(_ROLLUP_COUNTS)):
            batch_op.drop_column(name)
    with op.batch_alter_table("metric_events", schema=None) as batch_op:
        for name in reversed(_EVENT_COLUMNS):
            batch_op.drop_column(name)
