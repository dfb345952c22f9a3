"""Alembic environment: the URL and connection come from promptctl, the target is its models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from promptctl.registry.metrics.partitions import is_event_partition
from promptctl.registry.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.begin() as connection:
        _run(connection)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave PostgreSQL's daily events partitions out of autogenerate: the server makes
    and drops them (registry.metrics.partitions); they are no model of their own."""
    return not (type_ == "table" and name is not None and is_event_partition(name))


def _run(connection) -> None:  # noqa: ANN001 - alembic hands over a Connection
    # Batch mode lets SQLite alter tables by copying them, as later migrations will need.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
