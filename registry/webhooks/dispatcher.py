"""The dispatcher: sends what the outbox holds, off the request path, at least once.

A loop in a thread of the server claims deliveries that are due and hands each to a pool
of senders, so a receiver that hangs holds one sender for at most the timeout and never
the loop or the other subscriptions. Claiming is one short transaction: the delivery is
leased (`leased_until`) and its attempt written before anything is sent, so a sender that
dies mid-way leaves a lease that runs out and the delivery is sent again: at least once.

- Several replicas: PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so two replicas
  never claim one delivery; on SQLite every transaction takes the write lock
  (BEGIN IMMEDIATE), which serialises claims between processes on one file.
- Order: a delivery is due only when no earlier one of its subscription with the same
  ordering key (prompt and environment) is still pending, so one release's events reach a
  receiver in log order even across retries.
- Retries: exponential backoff with jitter (`RetryPolicy`), about a day in all; then the
  delivery is `failed`. A subscription with `FAILING_AFTER` failed attempts in a row is
  marked failing until an attempt succeeds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, aliased

from promptctl.registry.errors import InvalidWebhook, WebhookNotFound
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from promptctl.registry.webhooks.outbox import enqueue
from promptctl.registry.webhooks.payloads import slack_body
from promptctl.registry.webhooks.signing import signed_headers
from promptctl.registry.webhooks.targets import guarded_target, origin
from promptctl.registry.webhooks.values import DELIVERED, FAILED, PENDING

log = logging.getLogger("promptctl.webhooks")

FAILING_AFTER = 5  # failed attempts in a row that mark a subscription failing
KEEP_DAYS = 30  # finished deliveries (and their attempts) are kept this long
RESPONSE_EXCERPT = 512  # bytes of a receiver's answer kept in the log of a failure
USER_AGENT = "promptctl-webhooks"


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: `base * factor**(n-1)` seconds after the n-th failed attempt,
    at most `cap`, each delay drawn within ±`jitter` of that; `max_attempts` in all."""

    base: float = 30.0
    factor: float = 4.0
    cap: float = 8 * 3600.0
    max_attempts: int = 9
    jitter: float = 0.2

    def nominal(self, failed: int) -> float:
        """The delay after the `failed`-th failed attempt, before jitter."""
        return min(self.cap, self.base * self.factor ** (failed - 1))

    def delay(self, failed: int) -> float:
        """The delay after the `failed`-th failed attempt, with jitter (spreads a burst of
        retries to one receiver that came back)."""
        return self.nominal(failed) * random.uniform(1 - self.jitter, 1 + self.jitter)

    def schedule(self) -> list[float]:
        """The nominal delays between attempts, first to last."""
        return [self.nominal(n) for n in range(1, self.max_attempts)]


@dataclass(frozen=True)
class Claim:
    """A delivery claimed for one attempt: everything the attempt needs."""

    delivery_id: int
    attempt_id: int
    number: int
    subscription_id: int
    url: str
    secret: str
    format: str
    message_id: str
    type: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """How one attempt went."""

    delivered: bool
    status_code: int | None
    duration_ms: float
    error: str | None = None


class Sender:
    """Sends one attempt with httpx: a short timeout, no redirects, the SSRF guard."""

    def __init__(self, *, timeout: float = 10.0, guarded: bool = False) -> None:
        self.timeout = timeout
        self.guarded = guarded
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,  # a redirect could lead past the SSRF guard
            headers={"user-agent": USER_AGENT},
            trust_env=False,  # a proxy from the environment would see every payload
        )

    def close(self) -> None:
        self.http.close()

    def body(self, claim: Claim) -> bytes:
        """The bytes an attempt sends: the stored body, or a Slack message made of it."""
        return slack_body(claim.body) if claim.format == "slack" else claim.body.encode()

    def send(self, claim: Claim) -> Outcome:
        """Make one attempt; never raises for what the receiver or network does."""
        started = time.monotonic()

        def took() -> float:
            return round((time.monotonic() - started) * 1000, 1)

        try:
            target = guarded_target(claim.url, self.guarded)
        except InvalidWebhook as exc:
            return Outcome(False, None, took(), str(exc))
        body = self.body(claim)
        headers = {
            "content-type": "application/json",
            **signed_headers(claim.secret, claim.message_id, int(time.time()), body),
        }
        if target.host:
            headers["host"] = target.host
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        deadline = started + self.timeout
        try:
            with self.http.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= RESPONSE_EXCERPT or time.monotonic() > deadline:
                        break  # the answer's status is what counts; the rest is not read
                status = response.status_code
        except httpx.TimeoutException:
            return Outcome(False, None, took(), f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Outcome(False, None, took(), f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= status < 300:
            return Outcome(True, status, took())
        text = excerpt[:RESPONSE_EXCERPT].decode("utf-8", "replace").strip()
        why = f"HTTP {status}" + (f": {text[:200]}" if text else "")
        if 300 <= status < 400:
            why += " (redirects are not followed: give the final URL)"
        return Outcome(False, status, took(), why)


class Dispatcher:
    """Claims due deliveries and sends them, in a thread of its own once started."""

    def __init__(
        self,
        database: Database,
        sender: Sender,
        policy: RetryPolicy | None = None,
        *,
        interval: float = 1.0,
        workers: int = 8,
    ) -> None:
        self.db = database
        self.sender = sender
        self.policy = policy or RetryPolicy()
        self.interval = interval
        self.workers = workers
        # A claim outlives the longest attempt (the timeout, for the request and for the
        # answer) with room to record it; past it another sender may take the delivery.
        self.lease = timedelta(seconds=2 * sender.timeout + 5)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: set[Future[Outcome | None]] = set()
        self._lock = threading.Lock()
        self._pruned_at = 0.0
        self.on_attempt: Callable[[Claim, Outcome], None] | None = None  # for observers

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> Dispatcher:
        """Start sending in the background (the server calls this at start-up)."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="promptctl-webhook")
        self._thread = threading.Thread(target=self._run, name="promptctl-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; attempts under way finish (each within the timeout) or, if the
        process ends first, are sent again by whoever claims them after their lease."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def wake(self) -> None:
        """Look for due deliveries now (an action in this process just wrote some)."""
        self._wake.set()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            self._wake.clear()
            with self._lock:
                free = self.workers - len(self._inflight)
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = self.claim(free)
                    self._prune_now_and_then()
                    delay = self.interval
                except Exception as exc:  # the database is away: try again, slower
                    log.warning("could not claim webhook deliveries: %s", exc)
                    delay = min(delay * 2, 30.0)
            for claim in claims:
                self._submit(claim)
            if claims and len(claims) == free:
                continue  # more may be due
            self._wake.wait(delay)

    def _submit(self, claim: Claim) -> None:
        assert self._pool is not None
        future = self._pool.submit(self.attempt, claim)
        with self._lock:
            self._inflight.add(future)

        def done(finished: Future[Outcome | None]) -> None:
            with self._lock:
                self._inflight.discard(finished)
            self._wake.set()  # a sender is free again

        future.add_done_callback(done)

    def run_due(self) -> int:
        """Send every delivery due now, in this thread; return how many attempts were made
        (for a process that does not run the loop, and for tests)."""
        made = 0
        while claims := self.claim(self.workers):
            for claim in claims:
                self.attempt(claim)
            made += len(claims)
        return made

    # -- one attempt ---------------------------------------------------------------------

    def attempt(self, claim: Claim) -> Outcome | None:
        """Send one claimed delivery and record how it went."""
        outcome = self.sender.send(claim)
        try:
            self.record(claim, outcome)
        except Exception as exc:  # recorded or not, the lease runs out and it is retried
            log.warning("could not record webhook delivery %s: %s", claim.delivery_id, exc)
        if self.on_attempt is not None:
            self.on_attempt(claim, outcome)
        return outcome

    def claim(self, limit: int, *, now: datetime | None = None) -> list[Claim]:
        """Lease up to `limit` due deliveries (the head of each ordering key) for one
        attempt each, writing the attempt; return them."""
        now = now or utcnow()
        mine = WebhookDelivery
        earlier = aliased(WebhookDelivery)
        blocked = (
            select(earlier.id)
            .where(
                earlier.subscription_id == mine.subscription_id,
                earlier.ordering_key == mine.ordering_key,
                earlier.status == PENDING,
                earlier.id < mine.id,
            )
            .exists()
        )
        query = (
            select(mine)
            .where(
                mine.status == PENDING,
                mine.next_attempt_at <= now,
                or_(mine.leased_until.is_(None), mine.leased_until <= now),
                ~blocked,
            )
            .order_by(mine.id)
            .limit(limit)
        )
        with self.db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=mine)
            rows = list(session.scalars(query))
            return self._lease(session, rows, now)

    def _lease(self, session: Session, rows: list[WebhookDelivery], now: datetime) -> list[Claim]:
        if not rows:
            return []
        events = {
            e.id: e
            for e in session.scalars(
                select(WebhookEvent).where(WebhookEvent.id.in_({r.event_id for r in rows}))
            )
        }
        subscriptions = {
            s.id: s
            for s in session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.id.in_({r.subscription_id for r in rows})
                )
            )
        }
        claims = []
        for row in rows:
            row.attempts += 1
            row.leased_until = now + self.lease
            attempt = WebhookAttempt(delivery_id=row.id, number=row.attempts, started_at=now)
            session.add(attempt)
            session.flush()
            event, subscription = events[row.event_id], subscriptions[row.subscription_id]
            claims.append(
                Claim(
                    delivery_id=row.id,
                    attempt_id=attempt.id,
                    number=row.attempts,
                    subscription_id=subscription.id,
                    url=subscription.url,
                    secret=subscription.secret,
                    format=subscription.format,
                    message_id=event.message_id,
                    type=event.type,
                    body=event.body,
                )
            )
        return claims

    def record(self, claim: Claim, outcome: Outcome, *, now: datetime | None = None) -> None:
        """Write how an attempt went: the attempt's log row, the delivery's next state
        (delivered, retried later, or failed for good), the subscription's health."""
        now = now or utcnow()
        with self.db.session() as session:
            attempt = session.get(WebhookAttempt, claim.attempt_id)
            if attempt is not None:
                attempt.outcome = DELIVERED if outcome.delivered else FAILED
                attempt.status_code = outcome.status_code
                attempt.duration_ms = outcome.duration_ms
                attempt.error = outcome.error
            delivery = session.get(WebhookDelivery, claim.delivery_id)
            subscription = session.get(WebhookSubscription, claim.subscription_id)
            if delivery is None or subscription is None:
                return  # the subscription was removed meanwhile, its deliveries with it
            delivery.leased_until = None
            if outcome.delivered:
                delivery.status = DELIVERED
                delivery.finished_at = now
                subscription.consecutive_failures = 0
                subscription.failing_since = None
                subscription.last_success_at = now
                return
            limit = delivery.max_attempts or self.policy.max_attempts
            if delivery.attempts >= limit:
                delivery.status = FAILED
                delivery.finished_at = now
            else:
                delivery.next_attempt_at = now + timedelta(
                    seconds=self.policy.delay(delivery.attempts)
                )
            subscription.consecutive_failures += 1
            subscription.last_error = outcome.error
            if (
                subscription.consecutive_failures >= FAILING_AFTER
                and not subscription.failing_since
            ):
                subscription.failing_since = now
                log.warning(
                    "webhook %s (%s) is failing: %s",
                    subscription.id,
                    origin(subscription.url),
                    outcome.error,
                )

    def send_test(self, subscription_id: int) -> int:
        """Send a `webhook.test` event to one subscription now, once; return the delivery's
        id (its attempt is in the delivery log, like every other)."""
        now = utcnow()
        with self.db.session() as session:
            if session.get(WebhookSubscription, subscription_id) is None:
                raise WebhookNotFound(subscription_id)
            data = {"subscription": subscription_id, "message": "promptctl webhook test"}
            event = enqueue(
                session, "webhook.test", data, subscription=subscription_id, max_attempts=1
            )
            assert event is not None
            row = session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)
            ).one()
            # Leased here, in the transaction that writes it: no dispatcher takes it first.
            [claim] = self._lease(session, [row], now)
        self.attempt(claim)
        return claim.delivery_id

    # -- the log's size ------------------------------------------------------------------

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned_at < 3600:
            return
        self._pruned_at = time.monotonic()
        self.prune(utcnow() - timedelta(days=KEEP_DAYS))

    def prune(self, before: datetime, batch: int = 500) -> int:
        """Delete finished deliveries older than `before` (their attempts with them) and
        events no delivery needs any more, in small transactions; return how many."""
        removed = 0
        while True:
            with self.db.session() as session:
                ids = list(
                    session.scalars(
                        select(WebhookDelivery.id)
                        .where(
                            WebhookDelivery.status != PENDING,
                            WebhookDelivery.finished_at < before,
                        )
                        .limit(batch)
                    )
                )
                if ids:
                    session.execute(
                        delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                    )
                    session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
            removed += len(ids)
            if len(ids) < batch:
                break
        with self.db.session() as session:
            used = select(WebhookDelivery.event_id).distinct()
            session.execute(
                delete(WebhookEvent).where(
                    WebhookEvent.created_at < before, WebhookEvent.id.not_in(used)
                )
            )
        return removed

    def pending(self) -> int:
        """How many deliveries wait to be sent (for /metrics and tests)."""
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.status == PENDING)
                )
                or 0
            )
