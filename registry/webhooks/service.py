"""Webhook subscriptions: add, list, remove, test, and read their delivery log."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from promptctl.registry.errors import InvalidWebhook, WebhookNotFound
from promptctl.registry.releases.queries import find_environment
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    as_utc,
    utcnow,
)
from promptctl.registry.webhooks.dispatcher import Dispatcher
from promptctl.registry.webhooks.signing import generate_secret
from promptctl.registry.webhooks.targets import check_url, guarded_target
from promptctl.registry.webhooks.values import (
    FORMATS,
    PENDING,
    Attempt,
    Delivery,
    NewSubscription,
    Subscription,
    check_patterns,
)

MAX_GLOB = 255
MAX_DESCRIPTION = 500
MAX_LOG = 1000


class WebhookService:
    """Subscriptions in the release database; sending is the dispatcher's."""

    def __init__(self, database: Database, dispatcher: Dispatcher) -> None:
        self.db = database
        self.dispatcher = dispatcher

    def add(
        self,
        url: str,
        events: Iterable[str],
        *,
        environment: str | None = None,
        prompt: str | None = None,
        format: str = "standard",
        description: str | None = None,
        actor: str = "",
    ) -> NewSubscription:
        """Subscribe `url` to the events matching `events` (optionally of one environment,
        of prompts matching a glob); return it with its new secret, shown this once."""
        url = check_url(url)
        patterns = check_patterns(events)
        if format not in FORMATS:
            raise InvalidWebhook("format", f"'{format}' is not one of {', '.join(FORMATS)}")
        if prompt is not None and not (0 < len(prompt.strip()) <= MAX_GLOB):
            raise InvalidWebhook("prompt", f"a glob of 1 to {MAX_GLOB} characters, e.g. support/*")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise InvalidWebhook("description", f"at most {MAX_DESCRIPTION} characters")
        # The guard (a server with tokens on a public interface) checks where it leads now,
        # and again at every attempt.
        guarded_target(url, self.dispatcher.sender.guarded)
        secret = generate_secret()
        with self.db.session() as session:
            if environment is not None:
                find_environment(session, environment)  # EnvironmentNotFound, did you mean
            row = WebhookSubscription(
                url=url,
                secret=secret,
                events=list(patterns),
                environment=environment,
                prompt=prompt.strip() if prompt else None,
                format=format,
                description=description,
                created_at=utcnow(),
                created_by=actor,
            )
            session.add(row)
            session.flush()
            return NewSubscription(_subscription(row, 0), secret)

    def list(self) -> list[Subscription]:
        """Every subscription, oldest first, with how many deliveries wait (no secrets)."""
        with self.db.session() as session:
            pending = dict(
                session.execute(
                    select(WebhookDelivery.subscription_id, func.count())
                    .where(WebhookDelivery.status == PENDING)
                    .group_by(WebhookDelivery.subscription_id)
                ).all()
            )
            rows = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
            return [_subscription(row, pending.get(row.id, 0)) for row in rows]

    def get(self, subscription_id: int) -> Subscription:
        """One subscription; WebhookNotFound when there is none with that id."""
        for subscription in self.list():
            if subscription.id == subscription_id:
                return subscription
        raise WebhookNotFound(subscription_id)

    def remove(self, subscription_id: int) -> Subscription:
        """Remove a subscription, its pending deliveries and its log; return what it was."""
        removed = self.get(subscription_id)
        with self.db.session() as session:
            deliveries = select(WebhookDelivery.id).where(
                WebhookDelivery.subscription_id == subscription_id
            )
            session.execute(
                delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries))
            )
            session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
            )
            session.execute(
                delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
            )
        return removed

    def test(self, subscription_id: int) -> Delivery:
        """Send a test event to one subscription now, once; return its delivery."""
        delivery_id = self.dispatcher.send_test(subscription_id)
        return self._deliveries(subscription_id, delivery_id=delivery_id)[0]

    def deliveries(self, subscription_id: int, limit: int = 50) -> list[Delivery]:
        """A subscription's deliveries, newest first, each with its attempts."""
        self.get(subscription_id)
        return self._deliveries(subscription_id, limit=min(limit, MAX_LOG))

    def _deliveries(
        self, subscription_id: int, *, limit: int = 1, delivery_id: int | None = None
    ) -> list[Delivery]:
        with self.db.session() as session:
            query = (
                select(WebhookDelivery, WebhookEvent)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
            if delivery_id is not None:
                query = query.where(WebhookDelivery.id == delivery_id)
            rows = session.execute(query).all()
            attempts: dict[int, list[Attempt]] = {}
            found = session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_([d.id for d, _ in rows]))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
            )
            for a in found:
                attempts.setdefault(a.delivery_id, []).append(
                    Attempt(
                        a.number,
                        as_utc(a.started_at),
                        a.outcome,
                        a.status_code,
                        a.duration_ms,
                        a.error,
                    )
                )
            return [
                Delivery(
                    id=d.id,
                    subscription_id=d.subscription_id,
                    message_id=e.message_id,
                    type=e.type,
                    prompt=e.prompt,
                    environment=e.environment,
                    status=d.status,
                    created_at=as_utc(d.created_at),
                    next_attempt_at=as_utc(d.next_attempt_at),
                    finished_at=as_utc(d.finished_at) if d.finished_at else None,
                    attempts=tuple(attempts.get(d.id, ())),
                )
                for d, e in rows
            ]


def _subscription(row: WebhookSubscription, pending: int) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        environment=row.environment,
        prompt=row.prompt,
        format=row.format,
        description=row.description,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        consecutive_failures=row.consecutive_failures or 0,
        failing_since=as_utc(row.failing_since) if row.failing_since else None,
        last_success_at=as_utc(row.last_success_at) if row.last_success_at else None,
        last_error=row.last_error,
        pending=pending,
    )
