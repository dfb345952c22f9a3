"""Migrations on SQLite and PostgreSQL: up from nothing, down to nothing, in step with models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from promptctl.registry.errors import DatabaseError
from promptctl.registry.metrics.partitions import is_event_partition
from promptctl.registry.store.database import (
    Database,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
)
from promptctl.registry.store.models import Base, Environment

RELEASE_TABLES = {"environments", "version_snapshots", "releases", "release_log"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    """The tables a migration made (PostgreSQL's daily events partitions left out)."""
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    return {name for name in names if not is_event_partition(name)}


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def test_upgrade_from_empty_to_head_creates_every_model_table(engine):
    assert current_revision(engine) is None
    assert tables(engine) == set()

    upgrade(engine)

    assert current_revision(engine) == head_revision()
    assert tables(engine) == set(Base.metadata.tables)
    assert tables(engine) >= RELEASE_TABLES


def test_downgrade_to_base_removes_every_table(engine):
    upgrade(engine)

    downgrade(engine, "base")

    assert current_revision(engine) is None
    assert tables(engine) == set()


def test_each_migration_steps_up_and_back_down_one_revision_at_a_time(engine):
    revisions = revisions_oldest_first()
    assert revisions[0] == "0001"
    seen: list[set[str]] = []

    for revision in revisions:
        upgrade(engine, revision)
        assert current_revision(engine) == revision
        seen.append(tables(engine))
    for index in range(len(revisions) - 1, 0, -1):
        downgrade(engine, "-1")
        assert current_revision(engine) == revisions[index - 1]
        assert tables(engine) == seen[index - 1]
    downgrade(engine, "-1")

    assert current_revision(engine) is None
    assert tables(engine) == set()


def test_the_first_migration_seeds_the_default_environments(engine):
    upgrade(engine, "0001")

    with engine.connect() as connection:
        rows = connection.execute(
            select(Environment.name, Environment.protected).order_by(Environment.id)
        ).all()

    assert [tuple(r) for r in rows] == [
        ("development", False),
        ("staging", False),
        ("production", True),
    ]


def test_upgrade_down_and_up_again_gives_the_same_schema(engine):
    upgrade(engine)
    downgrade(engine, "base")
    upgrade(engine)

    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM environments")).scalar()
    assert count == 3


def test_the_models_and_the_migrations_agree(engine):
    upgrade(engine)

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, _: not (
                    kind == "table" and is_event_partition(name)
                ),
            },
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_only_the_embedded_sqlite_upgrades_itself_postgresql_asks_for_db_upgrade(database_url):
    database = Database(database_url)
    try:
        if database.dialect == "sqlite":
            database.ensure_schema()
            assert current_revision(database.engine) == head_revision()
            return
        with pytest.raises(DatabaseError, match="run 'promptctl db upgrade'"):
            database.ensure_schema()
        assert current_revision(database.engine) is None
    finally:
        database.dispose()
