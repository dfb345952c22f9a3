"""metrics: what canary analysis reads from rollups (squares, successful calls' latency)

Rollups gain the sums of squares of cost, input tokens and output tokens (quality had
them), so a mean's variance adds up across minutes and hours, and the latency of
successful calls apart (sum, min, max and histogram): a failed call's latency (often a
fast refusal) must never make a failing version look faster.

A NULL means "not recorded": the row was written before this revision. It is filled in
here where the stored figures give it exactly: a row without errors has its latency as
its successful calls' latency, and a figure no call reported has squares 0. Readers
leave the other old rows out of the figures they lack (the analysis, the summaries'
latency), and a row that stays NULL keeps NULL as newer events merge into it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (sum of squares column, the count column that says whether any call reported it)
_SQUARES = (
    ("cost_sumsq", "cost_count"),
    ("input_tokens_sumsq", "input_tokens_count"),
    ("output_tokens_sumsq", "output_tokens_count"),
)
_SUCCESS = ("success_latency_sum", "success_latency_min", "success_latency_max")


def upgrade() -> None:
    with op.batch_alter_table("metric_rollups", schema=None) as batch_op:
        for name, _ in _SQUARES:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        for name in _SUCCESS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("success_latency_histogram", sa.JSON(), nullable=True))
    rollups = sa.table(
        "metric_rollups",
        sa.column("errors", sa.BigInteger()),
        sa.column("latency_sum", sa.Float()),
        sa.column("latency_min", sa.Float()),
        sa.column("latency_max", sa.Float()),
        sa.column("latency_histogram", sa.JSON()),
        *(sa.column(name, sa.Float()) for name, _ in _SQUARES),
        *(sa.column(count, sa.BigInteger()) for _, count in _SQUARES),
        *(sa.column(name, sa.Float()) for name in _SUCCESS),
        sa.column("success_latency_histogram", sa.JSON()),
    )
    c = rollups.c
    op.execute(
        rollups.update()
        .where(c.errors == 0)
        .values(
            success_latency_sum=c.latency_sum,
            success_latency_min=c.latency_min,
            success_latency_max=c.latency_max,
            success_latency_histogram=c.latency_histogram,
        )
    )
    for name, count in _SQUARES:
        op.execute(rollups.update().where(c[count] == 0).values({name: 0.0}))


def downgrade() -> None:
    with op.batch_alter_table("metric_rollups", schema=None) as batch_op:
        batch_op.drop_column("success_latency_histogram")
        for name in reversed(_SUCCESS):
            batch_op.drop_column(name)
        for name, _ in reversed(_SQUARES):
            batch_op.drop_column(name)
