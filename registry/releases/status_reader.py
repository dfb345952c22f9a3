"""What is released, read from the embedded SQLite file with the driver alone.

`promptctl status` is a read of two tables. Through the release service it costs
SQLAlchemy, the models and the service's own imports: twice the time of the rest of the
command. Here the same rows are read with `sqlite3`, read-only, and the answer built as
queries.release_states builds it (a test holds the two to the same answers).

It answers only when it can answer exactly as the service would, and otherwise returns
None for the caller to ask the service: a file that is missing, not at the newest
migration (the service upgrades it), not writable (the service refuses it), an
environment that does not exist (the service says so), or any driver error.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from promptctl.registry.releases.values import ReleaseState, VersionRef

_RELEASES = (
    "SELECT r.prompt, e.name, r.stable_digest, r.canary_digest, r.canary_weight_bp,"
    " r.revision, r.updated_at, r.updated_by"
    " FROM releases r JOIN environments e ON e.id = r.environment_id"
)


def read_status(
    file: Path, head: str | None, prompt: str | None, environment: str | None
) -> list[ReleaseState] | None:
    """The releases (of `prompt`, in `environment`) in the SQLite `file` whose schema
    should be at migration `head`; None when only the release service can answer."""
    if head is None or not _usable(file):
        return None
    try:
        with closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5)) as db:
            if db.execute("SELECT version_num FROM alembic_version").fetchall() != [(head,)]:
                return None
            if (
                environment is not None
                and not db.execute(
                    "SELECT 1 FROM environments WHERE name = ?", (environment,)
                ).fetchone()
            ):
                return None
            where, params = [], []
            if prompt is not None:
                where.append("r.prompt = ?")
                params.append(prompt)
            if environment is not None:
                where.append("e.name = ?")
                params.append(environment)
            sql = _RELEASES + (" WHERE " + " AND ".join(where) if where else "")
            rows = db.execute(sql + " ORDER BY r.prompt, e.id", params).fetchall()
            numbers = _numbers(db, {(r[0], d) for r in rows for d in (r[2], r[3]) if d})
    except sqlite3.Error:
        return None
    states = []
    for name, env, stable, canary, weight, revision, updated_at, updated_by in rows:
        stable_ref = VersionRef.numbered(name, stable, numbers)
        assert stable_ref is not None  # the column is NOT NULL
        states.append(
            ReleaseState(
                prompt=name,
                environment=env,
                stable=stable_ref,
                canary=VersionRef.numbered(name, canary, numbers),
                weight_bp=weight,
                revision=revision,
                updated_at=_stored_time(updated_at),
                updated_by=updated_by,
            )
        )
    return states


def _usable(file: Path) -> bool:
    """The file is there and writable, in a writable folder, as the service requires."""
    return file.is_file() and os.access(file, os.R_OK | os.W_OK) and os.access(file.parent, os.W_OK)


def _numbers(
    db: sqlite3.Connection, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int | None, str | None]]:
    """{(prompt, digest): (number, source ref)} from the version snapshots."""
    if not pairs:
        return {}
    prompts = sorted({p for p, _ in pairs})
    digests = sorted({d for _, d in pairs})
    sql = (
        "SELECT prompt, digest, number, source_ref FROM version_snapshots"
        f" WHERE prompt IN ({','.join('?' * len(prompts))})"
        f" AND digest IN ({','.join('?' * len(digests))})"
    )
    return {(p, d): (n, s) for p, d, n, s in db.execute(sql, [*prompts, *digests])}


def _stored_time(value: str | datetime) -> datetime:
    """A time as SQLAlchemy stores it in SQLite (ISO text, UTC, no offset), aware."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
