"""Where the embedded database lives and which migration is the newest, known without
SQLAlchemy or Alembic: what a read of the release tables needs before it opens the file
(see registry/releases/status_reader.py) and what `Database` checks a schema against."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"  # promptctl/migrations
# `revision = "0007"` and `down_revision = "0006"` as our migration files write them.
_REVISION_LINE = re.compile(
    r"^(down_revision|revision)\s*(?::[^=]+)?=\s*(?:\(\s*)?['\"]([^'\"]+)['\"]", re.MULTILINE
)


def default_sqlite_file(base: Path) -> Path:
    """Return the embedded database file: `.promptctl/registry.db` below `base`."""
    return (base / ".promptctl" / "registry.db").resolve()


@cache
def migration_head() -> str | None:
    """The newest migration's revision, read from the files' `revision` and
    `down_revision` lines without Alembic; None unless exactly one revision is no other's
    parent (then only Alembic can tell)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        try:
            found = dict(_REVISION_LINE.findall(path.read_text()))
        except OSError:
            return None
        if "revision" in found:
            revisions.add(found["revision"])
        if "down_revision" in found:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
