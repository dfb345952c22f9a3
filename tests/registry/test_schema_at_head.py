"""A database at the newest migration is recognised without Alembic (what `status` starts
with); one behind it still goes through Alembic: upgraded (SQLite) or refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from promptctl.registry.errors import SchemaOutOfDate
from promptctl.registry.store.database import (
    Database,
    alembic_config,
    at_head,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migration_head,
    upgrade,
)


def test_the_head_read_from_the_migration_files_is_alembics():
    assert migration_head() is not None
    assert migration_head() == head_revision()


def test_a_database_at_head_is_checked_without_importing_alembic(migrated_database_url):
    code = (
        "import sys\n"
        "from promptctl.registry.store.database import Database\n"
        "database = Database(sys.argv[1])\n"
        "with database.session():\n"
        "    pass\n"
        "print('alembic' in sys.modules, 'mako' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, migrated_database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["False", "False"]


def test_a_database_behind_head_is_not_taken_for_one_at_head(database_url):
    engine = make_engine(database_url)
    try:
        assert not at_head(engine)  # no alembic_version table yet
        upgrade(engine)
        assert at_head(engine)
        script = ScriptDirectory.from_config(alembic_config())
        previous = script.get_revision(head_revision()).down_revision
        downgrade(engine, previous)
        assert not at_head(engine)
    finally:
        engine.dispose()

    database = Database(database_url)
    try:
        if database.dialect == "sqlite":
            database.ensure_schema()  # the embedded database upgrades itself
            assert current_revision(database.engine) == head_revision()
        else:
            with pytest.raises(SchemaOutOfDate):
                database.ensure_schema()
    finally:
        database.dispose()
