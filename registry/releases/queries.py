"""The release service's reads and writes inside a session: the environment and the locked
release row, the stable stack replayed from the log, version snapshots, and the conversion
of rows into the values of registry.releases.values.

Each function takes the caller's session and neither commits nor opens one: the service
owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from promptctl.registry.errors import EnvironmentNotFound, VersionNotFound
from promptctl.registry.prompts.promptversion import SHORT, PromptVersion, version_from_files
from promptctl.registry.releases.values import (
    PUSHES,
    EnvironmentInfo,
    LogEntry,
    ReleaseState,
    VersionRef,
    replay_stable,
)
from promptctl.registry.store.models import (
    ApiToken,
    Environment,
    Release,
    ReleaseLog,
    VersionSnapshot,
    as_utc,
    utcnow,
)


def find_environment(session: Session, name: str) -> Environment:
    """Return the environment row of that name, or raise EnvironmentNotFound."""
    row = session.scalar(select(Environment).where(Environment.name == name))
    if row is None:
        known = list(session.scalars(select(Environment.name).order_by(Environment.id)))
        raise EnvironmentNotFound(name, known)
    return row


def locked_release(
    session: Session, prompt: str, env: Environment, *, lock: bool
) -> Release | None:
    """Return the release row of a prompt in an environment (locked FOR UPDATE with `lock`)."""
    query = select(Release).where(Release.prompt == prompt, Release.environment_id == env.id)
    if lock:
        # Lock only the release row: its environment is joined in, and PostgreSQL refuses
        # FOR UPDATE on the nullable side of that outer join.
        query = query.with_for_update(of=Release)
    return session.scalar(query)


def write_release(
    session: Session,
    release: Release | None,
    prompt: str,
    env: Environment,
    revision: int,
    values: dict[str, Any],
) -> bool:
    """Insert the release, or update it if it is still at `revision`; False if it was not."""
    if release is None:
        session.add(Release(prompt=prompt, environment_id=env.id, **values))
        session.flush()
        return True
    result = session.execute(
        update(Release)
        .where(Release.id == release.id, Release.revision == revision)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def written_state(session: Session, prompt: str, env: Environment) -> ReleaseState:
    """Read a release back in the transaction that wrote it, while its row is still locked:
    read afterwards, it could already be a rival action's state."""
    written = session.scalar(
        select(Release)
        .where(Release.prompt == prompt, Release.environment_id == env.id)
        .execution_options(populate_existing=True)
    )
    assert written is not None
    digests = {(prompt, d) for d in (written.stable_digest, written.canary_digest) if d}
    return release_state(written, version_numbers(session, digests))


def environment_infos(session: Session) -> list[EnvironmentInfo]:
    """Return every environment, oldest first."""
    rows = session.scalars(select(Environment).order_by(Environment.id)).all()
    return [environment_info(row) for row in rows]


def stable_stack(session: Session, prompt: str, environment: str) -> list[str]:
    """Replay the log: promotions push the new stable version, rollbacks pop it."""
    return stable_history(session, prompt, environment)[0]


def stable_history(
    session: Session, prompt: str, environment: str
) -> tuple[list[str], frozenset[str]]:
    """Replay the log: the stack of stable versions, and every version ever stable there."""
    rows = session.execute(
        select(ReleaseLog.action, ReleaseLog.to_digest)
        .where(ReleaseLog.prompt == prompt, ReleaseLog.environment == environment)
        .order_by(ReleaseLog.id)
    ).all()
    steps = [(action, to_digest or None) for action, to_digest in rows]
    ever = frozenset(d for action, d in steps if action in PUSHES and d is not None)
    return replay_stable(steps), ever


def release_states(
    session: Session, prompt: str | None, environment: str | None
) -> list[ReleaseState]:
    """Return releases, optionally of one prompt and/or one environment."""
    if environment is not None:
        find_environment(session, environment)
    query = select(Release).join(Release.environment).order_by(Release.prompt, Environment.id)
    if prompt is not None:
        query = query.where(Release.prompt == prompt)
    if environment is not None:
        query = query.where(Environment.name == environment)
    rows = session.scalars(query).all()
    numbers = version_numbers(
        session,
        {(r.prompt, d) for r in rows for d in (r.stable_digest, r.canary_digest) if d},
    )
    return [release_state(row, numbers) for row in rows]


def log_entries(
    session: Session, prompt: str, environment: str | None, limit: int | None
) -> list[LogEntry]:
    """Return the release log of a prompt, newest first."""
    if environment is not None:
        find_environment(session, environment)
    # A row keeps the weight its action set (None: the action left no canary), so the
    # weight before it is the one the previous row of its environment set: read in order
    # over the whole log, before the limit cuts it.
    previous = func.lag(func.coalesce(ReleaseLog.weight_bp, 0)).over(
        partition_by=ReleaseLog.environment, order_by=ReleaseLog.id
    )
    ordered = select(ReleaseLog, previous.label("previous_weight_bp")).where(
        ReleaseLog.prompt == prompt
    )
    if environment is not None:
        ordered = ordered.where(ReleaseLog.environment == environment)
    window = ordered.subquery()
    row_of = aliased(ReleaseLog, window)
    query = select(row_of, window.c.previous_weight_bp).order_by(window.c.id.desc())
    if limit:
        query = query.limit(limit)
    rows = session.execute(query).all()
    numbers = version_numbers(
        session, {(r.prompt, d) for r, _ in rows for d in (r.from_digest, r.to_digest) if d}
    )
    return [log_entry(row, numbers, previous_weight_bp=before or 0) for row, before in rows]


def read_snapshot(session: Session, prompt: str, digest: str) -> PromptVersion:
    """Return a released version's content from its snapshot."""
    row = session.scalar(
        select(VersionSnapshot).where(
            VersionSnapshot.prompt == prompt, VersionSnapshot.digest == digest
        )
    )
    if row is None:
        raise VersionNotFound(prompt, digest[:SHORT], "no snapshot in the database")
    return snapshot_version(row)


def read_snapshots(
    session: Session, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], PromptVersion]:
    """Return {(prompt, digest): version} for the snapshots of these versions, in bulk."""
    versions: dict[tuple[str, str], PromptVersion] = {}
    rows = session.scalars(
        select(VersionSnapshot).where(
            VersionSnapshot.prompt.in_({p for p, _ in wanted}),
            VersionSnapshot.digest.in_({d for _, d in wanted}),
        )
    )
    for row in rows:
        if (row.prompt, row.digest) in wanted:
            versions[(row.prompt, row.digest)] = snapshot_version(row)
    return versions


def release_fingerprint(session: Session) -> tuple[int, ...]:
    """A cheap value that changes whenever a release, environment or token changes."""
    row = session.execute(
        select(
            select(func.count()).select_from(Release).scalar_subquery(),
            select(func.coalesce(func.sum(Release.revision), 0)).scalar_subquery(),
            select(func.count()).select_from(Environment).scalar_subquery(),
            select(func.count())
            .select_from(Environment)
            .where(Environment.protected.is_(True))
            .scalar_subquery(),
            select(func.count()).select_from(ApiToken).scalar_subquery(),
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.revoked_at.is_not(None))
            .scalar_subquery(),
        )
    ).one()
    return tuple(int(v) for v in row)


def store_snapshot(session: Session, version: PromptVersion) -> None:
    """Store a version's content once; give it its number once it has one."""
    values = {
        "prompt": version.name,
        "digest": version.digest,
        "number": version.number,
        "commit_sha": version.commit.sha if version.commit else None,
        "source_ref": version.source,
        "root": version.root,
        "relpath": version.relpath,
        "files": version.files(),
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(VersionSnapshot)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["prompt", "digest"])
    )
    session.execute(statement)
    if version.number is not None:
        # A version promoted before it was merged gets its number once it has one.
        session.execute(
            update(VersionSnapshot)
            .where(
                VersionSnapshot.prompt == version.name,
                VersionSnapshot.digest == version.digest,
                VersionSnapshot.number.is_(None),
            )
            .values(number=version.number)
        )


def version_numbers(
    session: Session, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int | None, str | None]]:
    """Return {(prompt, digest): (version number, source ref)} from the snapshots."""
    if not pairs:
        return {}
    prompts = {p for p, _ in pairs}
    digests = {d for _, d in pairs}
    rows = session.execute(
        select(
            VersionSnapshot.prompt,
            VersionSnapshot.digest,
            VersionSnapshot.number,
            VersionSnapshot.source_ref,
        ).where(VersionSnapshot.prompt.in_(prompts), VersionSnapshot.digest.in_(digests))
    ).all()
    return {(p, d): (n, source) for p, d, n, source in rows}


def _ref(prompt: str, digest: str | None, numbers: dict) -> VersionRef | None:
    return VersionRef.numbered(prompt, digest, numbers)


def release_state(row: Release, numbers: dict) -> ReleaseState:
    """Return a release row as a ReleaseState, its versions numbered from `numbers`."""
    stable = _ref(row.prompt, row.stable_digest, numbers)
    assert stable is not None
    return ReleaseState(
        prompt=row.prompt,
        environment=row.environment.name,
        stable=stable,
        canary=_ref(row.prompt, row.canary_digest, numbers),
        weight_bp=row.canary_weight_bp,
        revision=row.revision,
        updated_at=as_utc(row.updated_at),
        updated_by=row.updated_by,
    )


def log_entry(row: ReleaseLog, numbers: dict, *, previous_weight_bp: int = 0) -> LogEntry:
    """Return a release log row as a LogEntry, its versions numbered from `numbers`."""
    return LogEntry(
        id=row.id,
        prompt=row.prompt,
        environment=row.environment,
        action=row.action,
        from_version=_ref(row.prompt, row.from_digest, numbers),
        to_version=_ref(row.prompt, row.to_digest, numbers),
        weight_bp=row.weight_bp,
        revision=row.revision,
        actor=row.actor,
        reason=row.reason,
        forced=row.forced,
        time=as_utc(row.created_at),
        allowed_breaking=tuple(row.allowed_breaking or ()),
        previous_weight_bp=previous_weight_bp,
    )


def environment_info(row: Environment) -> EnvironmentInfo:
    """Return an environment row as an EnvironmentInfo."""
    return EnvironmentInfo(row.name, row.protected, as_utc(row.created_at))


def snapshot_version(row: VersionSnapshot) -> PromptVersion:
    """Return the version a snapshot row holds."""
    return version_from_files(
        row.prompt,
        digest=row.digest,
        root=row.root,
        relpath=row.relpath,
        files=row.files,
        source=f"release snapshot ({row.source_ref or 'unknown source'})",
        number=row.number,
    )
