"""Engines, sessions and schema upgrades for the embedded SQLite file and PostgreSQL.

SQLite runs in WAL mode and starts every transaction with BEGIN IMMEDIATE: writers queue
on the busy timeout instead of failing with a lock upgrade deadlock, and each action reads
the release it changes inside its own write lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from promptctl.registry.errors import (
    ConfigError,
    DatabaseFileUnusable,
    DatabaseUnreachable,
    SchemaOutOfDate,
)
from promptctl.registry.store.embedded import MIGRATIONS, default_sqlite_file, migration_head

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako and Pygments) is imported only to change or judge a schema: a
# database already at the newest migration is recognised without it (`at_head`), which is
# a third of what `promptctl status` spent starting.
SQLITE_BUSY_SECONDS = 30


def default_sqlite_url(base: Path) -> str:
    """Return the embedded database URL: `.promptctl/registry.db` below `base`."""
    return f"sqlite:///{default_sqlite_file(base)}"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for PostgreSQL, in-memory SQLite or a bad URL)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL '{url}': {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False},
            **kwargs,
        )
        _sqlite_pragmas(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"unsupported database '{parsed.get_backend_name()}': use sqlite or postgresql+psycopg"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        url = engine.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escape
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest migration)."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def at_head(engine: Engine) -> bool:
    """Tell, cheaply, whether the database's schema is the newest migration's: one row in
    alembic_version naming it. False when unsure (no such table, an error, a branch):
    whoever asks then takes Alembic's slower and exact path."""
    head = migration_head()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False
    return [tuple(r) for r in rows] == [(head,)]


class Database:
    """An engine and its session factory; the embedded SQLite upgrades itself on first use."""

    def __init__(self, url: str, *, auto_upgrade: bool | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if auto_upgrade is None:
            auto_upgrade = self.engine.dialect.name == "sqlite"
        self._checked = False
        self._auto_upgrade = auto_upgrade
        self.file = sqlite_file(url)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file in use

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ensure_schema(self) -> None:
        """Upgrade the embedded database, or refuse to work on an out-of-date schema."""
        if self._checked:
            return
        if at_head(self.engine):
            self._checked = True
            self.check_file()
            return
        try:
            current = current_revision(self.engine)
        except OperationalError as exc:
            raise DatabaseUnreachable(_first_line(exc)) from exc
        head = head_revision()
        if current != head:
            if not self._auto_upgrade:
                raise SchemaOutOfDate(current, head)
            upgrade(self.engine)
        self._checked = True
        self.check_file()

    def check_file(self) -> None:
        """For SQLite: refuse when the file in use was moved, deleted or replaced, or cannot
        be written (DatabaseError, a 503): SQLite would otherwise keep writing into the
        moved file through its open handle, or a restart would start an empty one."""
        if self.file is None:
            return
        try:
            stat = os.stat(self.file)
        except OSError as exc:
            raise DatabaseFileUnusable(str(self.file), "gone") from exc
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            raise DatabaseFileUnusable(str(self.file), "replaced")
        if not (os.access(self.file, os.R_OK | os.W_OK) and os.access(self.file.parent, os.W_OK)):
            raise DatabaseFileUnusable(str(self.file), "not writable")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error.

        A database that cannot be reached, is locked past the busy timeout or was moved is
        a DatabaseError (503), never a driver error.
        """
        self.ensure_schema()
        self.check_file()
        try:
            with self.sessions() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as exc:
            if str(getattr(exc.orig, "sqlstate", None) or "").startswith("40"):
                raise  # deadlock or serialisation failure: the caller may run it again
            raise DatabaseUnreachable(_first_line(exc), "transaction") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return text.strip().splitlines()[0]
