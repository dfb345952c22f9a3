"""The audit log across prompts: every release action, filtered and paged, newest first.

`history` answers one prompt's log; the dashboard's audit page asks across every prompt,
by environment, actor and time, a page at a time (`before`: the smallest id of the page
already shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from promptctl.registry.releases.queries import find_environment, log_entry, version_numbers
from promptctl.registry.releases.values import LogEntry
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ReleaseLog

MAX_PAGE = 1000


@dataclass(frozen=True)
class AuditQuery:
    """Which log rows to show: every filter is optional; `actor` matches a part, any case."""

    prompt: str | None = None
    environment: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 100


def audit_entries(database: Database, query: AuditQuery) -> list[LogEntry]:
    """Return the log rows `query` selects, newest first, at most `query.limit`."""
    limit = max(1, min(query.limit, MAX_PAGE))
    # The weight before an action is the one the previous row of its (prompt, environment)
    # set: computed over the rows of those partitions before the other filters cut them.
    previous = func.lag(func.coalesce(ReleaseLog.weight_bp, 0)).over(
        partition_by=(ReleaseLog.prompt, ReleaseLog.environment), order_by=ReleaseLog.id
    )
    ordered = select(ReleaseLog, previous.label("previous_weight_bp"))
    if query.prompt:
        ordered = ordered.where(ReleaseLog.prompt == query.prompt)
    if query.environment:
        ordered = ordered.where(ReleaseLog.environment == query.environment)
    window = ordered.subquery()
    row_of = aliased(ReleaseLog, window)
    selected = select(row_of, window.c.previous_weight_bp)
    if query.actor:
        pattern = "%" + query.actor.lower().replace("%", r"\%").replace("_", r"\_") + "%"
        selected = selected.where(func.lower(window.c.actor).like(pattern, escape="\\"))
    if query.since is not None:
        selected = selected.where(window.c.created_at >= query.since)
    if query.until is not None:
        selected = selected.where(window.c.created_at < query.until)
    if query.before is not None:
        selected = selected.where(window.c.id < query.before)
    selected = selected.order_by(window.c.id.desc()).limit(limit)
    with database.session() as session:
        if query.environment:
            find_environment(session, query.environment)
        rows = session.execute(selected).all()
        numbers = version_numbers(
            session, {(r.prompt, d) for r, _ in rows for d in (r.from_digest, r.to_digest) if d}
        )
        return [log_entry(row, numbers, previous_weight_bp=before or 0) for row, before in rows]
