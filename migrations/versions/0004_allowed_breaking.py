"""release log: the incompatibilities a promotion let through (--allow-breaking)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("release_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_breaking", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("release_log", schema=None) as batch_op:
        batch_op.drop_column("allowed_breaking")
