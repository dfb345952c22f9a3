"""releases: environments, snapshots, releases, log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:28:20.216176
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("name", name=op.f("uq_environments_name")),
    )
    op.create_table(
        "release_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_digest", sa.String(length=64), nullable=True),
        sa.Column("to_digest", sa.String(length=64), nullable=True),
        sa.Column("weight_bp", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_log")),
    )
    with op.batch_alter_table("release_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_release_log_prompt_env", ["prompt", "environment", "id"], unique=False
        )

    op.create_table(
        "version_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("source_ref", sa.String(length=255), nullable=True),
        sa.Column("root", sa.String(length=255), nullable=False),
        sa.Column("relpath", sa.String(length=512), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_snapshots")),
        sa.UniqueConstraint("prompt", "digest", name="prompt_digest"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("stable_digest", sa.String(length=64), nullable=False),
        sa.Column("canary_digest", sa.String(length=64), nullable=True),
        sa.Column("canary_weight_bp", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.CheckConstraint(
            "canary_weight_bp >= 0 AND canary_weight_bp <= 10000", name=op.f("ck_releases_weight")
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_releases_environment_id_environments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("prompt", "environment_id", name="prompt_environment"),
    )
    environments = sa.table(
        "environments",
        sa.column("name", sa.String),
        sa.column("protected", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        environments,
        [
            {"name": "development", "protected": False, "created_at": now},
            {"name": "staging", "protected": False, "created_at": now},
            {"name": "production", "protected": True, "created_at": now},
        ],
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("version_snapshots")
    with op.batch_alter_table("release_log", schema=None) as batch_op:
        batch_op.drop_index("ix_release_log_prompt_env")

    op.drop_table("release_log")
    op.drop_table("environments")
