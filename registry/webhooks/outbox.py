"""The transactional outbox: events written in the transaction of the action that made them.

`enqueue` is the one call an action makes (a release action through `release_logged`, a
rollout decision directly): in the caller's session it writes the event's body once and
one delivery per subscription that wants it, so the action and its notifications commit
together or not at all. With no subscription that wants it, it writes nothing.

    enqueue(session, "rollout.advanced", {...numbers...}, prompt=p, environment=e)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptctl.registry.errors import UnknownEventType
from promptctl.registry.releases.queries import log_entry, version_numbers
from promptctl.registry.store.models import (
    ReleaseLog,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    as_utc,
    utcnow,
)
from promptctl.registry.webhooks.payloads import event_body, new_message_id
from promptctl.registry.webhooks.values import EVENT_TYPES, PENDING, RELEASE_EVENTS, wants


def ordering_key(prompt: str | None, environment: str | None) -> str | None:
    """The key whose deliveries go out in order: one release (prompt and environment)."""
    if prompt is None and environment is None:
        return None
    return f"{prompt or ''}\n{environment or ''}"


def enqueue(
    session: Session,
    event_type: str,
    data: dict[str, Any],
    *,
    prompt: str | None = None,
    environment: str | None = None,
    moment: datetime | None = None,
    subscription: int | None = None,
    max_attempts: int | None = None,
) -> WebhookEvent | None:
    """Write an event and its deliveries in `session`'s transaction; return the event, or
    None when no subscription wants it. `subscription` sends it to that one alone."""
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(event_type, EVENT_TYPES)
    query = select(WebhookSubscription)
    if subscription is not None:
        query = query.where(WebhookSubscription.id == subscription)
    targets = [
        s
        for s in session.scalars(query)
        if subscription is not None
        or wants(s.events, s.environment, s.prompt, event_type, prompt, environment)
    ]
    if not targets:
        return None
    moment = moment or utcnow()
    message_id = new_message_id()
    event = WebhookEvent(
        message_id=message_id,
        type=event_type,
        prompt=prompt,
        environment=environment,
        body=event_body(message_id, event_type, moment, data),
        created_at=moment,
    )
    session.add(event)
    session.flush()
    key = ordering_key(prompt, environment) if subscription is None else None
    session.add_all(
        WebhookDelivery(
            event_id=event.id,
            subscription_id=target.id,
            ordering_key=key,
            status=PENDING,
            attempts=0,
            max_attempts=max_attempts,
            next_attempt_at=moment,
            created_at=moment,
        )
        for target in targets
    )
    session.flush()
    return event


def release_logged(session: Session, row: ReleaseLog) -> WebhookEvent | None:
    """Enqueue the event of a release log row just written (and flushed) in `session`:
    the row as history shows it (versions, weights before and after, actor, reason)."""
    previous = session.scalar(
        select(ReleaseLog.weight_bp)
        .where(
            ReleaseLog.prompt == row.prompt,
            ReleaseLog.environment == row.environment,
            ReleaseLog.id < row.id,
        )
        .order_by(ReleaseLog.id.desc())
        .limit(1)
    )
    digests = {(row.prompt, d) for d in (row.from_digest, row.to_digest) if d}
    entry = log_entry(row, version_numbers(session, digests), previous_weight_bp=previous or 0)
    return enqueue(
        session,
        RELEASE_EVENTS[row.action],
        entry.to_json(),
        prompt=row.prompt,
        environment=row.environment,
        moment=as_utc(row.created_at),
    )


def environment_changed(session: Session, environment: str, protected: bool) -> None:
    """Enqueue `environment.protected` or `environment.unprotected`."""
    kind = "environment.protected" if protected else "environment.unprotected"
    enqueue(
        session,
        kind,
        {"environment": environment, "protected": protected},
        environment=environment,
    )
