"""MetricsService: ingest, scores and summaries over one database.

The rules a user of the API sees are in the package's docstring; this module applies
them with the pieces of its neighbours (events, storage, summary).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from promptctl.registry.errors import (
    BatchTooLarge,
    EnvironmentNotFound,
    NeverReleased,
    RegistryError,
    ReleaseNotFound,
    UsageError,
)
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.events import (
    ACCEPTED,
    DEFAULT_MAX_BATCH,
    DUPLICATE,
    REJECTED,
    VARIANTS,
    BatchMemo,
    BatchResult,
    Event,
    batch_result,
    check_score,
    parse_event,
    reject,
)
from promptctl.registry.metrics.merge import merge_rollups
from promptctl.registry.metrics.partitions import (
    NO_PARTITION,
    day_of,
    ensure_partitions,
    existing_partitions,
)
from promptctl.registry.metrics.prices import PriceBook, price_book
from promptctl.registry.metrics.storage import (
    EVENTS,
    MINUTE,
    aggregate_events,
    epoch,
    insert_events_postgresql,
    insert_events_sqlite,
    minutes_kept_from,
    moment,
    retrying,
    rollups_query,
    widen,
    with_hours,
)
from promptctl.registry.metrics.summary import (
    DEFAULT_WINDOW,
    MetricsSummary,
    VersionMetrics,
    check_budget,
)
from promptctl.registry.prompts.budget import Budget
from promptctl.registry.prompts.promptfile import parse_prompt_file
from promptctl.registry.prompts.promptversion import SHORT
from promptctl.registry.releases.queries import find_environment
from promptctl.registry.releases.serving import ServedRelease, ServingCache
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import VersionSnapshot, as_utc, utcnow


class MetricsService:
    """Ingest, scores and summaries of metric events in one database.

    Ingest needs the serving cache (to know releases and variants without a query); the
    summaries do not, so the CLI builds this service without one.
    """

    def __init__(
        self,
        database: Database,
        *,
        cache: ServingCache | None = None,
        prices: PriceBook | Mapping[str, Any] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], float] = time.time,
        trace_url_template: str | None = None,
        event_retention: timedelta | None = None,
    ) -> None:
        self.db = database
        # Events older than this are refused: their ids are pruned (retention), so a
        # repeated delivery could no longer be told from a new one.
        self.event_retention = event_retention
        self.cache = cache
        # A table (model -> input/output) overrides the maintained prices, as settings do.
        self.prices = prices if isinstance(prices, PriceBook) else price_book(prices)
        self.max_batch = max_batch
        self.clock = clock
        self.trace_url_template = trace_url_template
        # Called with the events each ingest stored, after its transaction commits (the
        # server's /metrics counts them); an observer must be quick and must not raise.
        self.observers: list[Callable[[list[Event]], None]] = []
        # (prompt, digest) -> the model in its front matter, for every released version
        # seen so far; a miss is looked up in the snapshots once per batch.
        self._versions: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()
        # PostgreSQL: the days whose events partition this process knows to exist.
        self._partition_days: set[date] = set()
        # SQLite has one writer at a time, and a writer that finds the database locked
        # sleeps for up to tens of milliseconds before it retries: this process's
        # writers queue here instead, and take the lock the moment it is free.
        self._writer: AbstractContextManager[Any] = (
            threading.Lock() if database.dialect == "sqlite" else nullcontext()
        )

    # -- ingest ------------------------------------------------------------------------

    def ingest(
        self,
        events: Sequence[Any],
        *,
        authorize: Callable[[str], str | None] | None = None,
    ) -> BatchResult:
        """Validate and store a batch of events; answer each one.

        `authorize(env)` returns why the caller may not write to that environment, or
        None when it may.
        """
        if len(events) > self.max_batch:
            raise BatchTooLarge(len(events), self.max_batch)
        if self.cache is None:
            raise RegistryError("ingest needs the serving cache")
        now = self.clock()
        results: list[dict[str, Any] | None] = [None] * len(events)
        parsed: list[Event] = []
        oldest = now - self.event_retention.total_seconds() if self.event_retention else None
        memo = BatchMemo()
        for index, raw in enumerate(events):
            event = parse_event(raw, now, memo)
            if isinstance(event, str):
                results[index] = reject(raw, event)
            elif oldest is not None and event.epoch < oldest:
                results[index] = reject(raw, _too_old(self.event_retention))  # type: ignore[arg-type]
            else:
                event.index = index
                parsed.append(event)
        releases = self._releases({(e.prompt, e.env) for e in parsed})
        self._learn_versions(
            {(e.prompt, e.digest) for e in parsed if isinstance(releases[(e.prompt, e.env)], tuple)}
        )
        allowed: dict[str, str | None] = {}
        seen: set[str] = set()
        candidates: list[Event] = []
        for e in parsed:
            # The caller's right to the environment first: what a refused event is told
            # must say nothing of the releases there.
            reason = None
            if authorize is not None:
                if e.env not in allowed:
                    allowed[e.env] = authorize(e.env)
                reason = allowed[e.env]
            if reason is None:
                reason = self._place(e, releases[(e.prompt, e.env)])
            if reason is not None:
                results[e.index] = {"event_id": e.event_id, "status": REJECTED, "reason": reason}
            elif e.event_id in seen:
                results[e.index] = {
                    "event_id": e.event_id,
                    "status": DUPLICATE,
                    "reason": "repeated in this batch",
                }
            else:
                seen.add(e.event_id)
                candidates.append(e)
        stored = self._store(candidates, datetime.fromtimestamp(now, UTC)) if candidates else set()
        if stored and self.observers:
            fresh = [e for e in candidates if e.event_id in stored]
            for observe in self.observers:
                observe(fresh)
        for e in candidates:
            if e.event_id in stored:
                results[e.index] = {"event_id": e.event_id, "status": ACCEPTED}
            else:
                results[e.index] = {
                    "event_id": e.event_id,
                    "status": DUPLICATE,
                    "reason": "already stored",
                }
        return batch_result(results)

    def _releases(
        self, pairs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str | None, dict[str, str | None]] | str]:
        """Per (prompt, env): (canary digest, {served digest: model}), or why not."""
        assert self.cache is not None
        found: dict[tuple[str, str], Any] = {}
        refreshed = False
        for prompt, env in sorted(pairs):
            try:
                served = self.cache.served(prompt, env)
            except (EnvironmentNotFound, ReleaseNotFound) as exc:
                if refreshed:
                    found[(prompt, env)] = str(exc)
                    continue
                # Maybe another replica just released it: look once per batch.
                self.cache.refresh_if_changed()
                refreshed = True
                try:
                    served = self.cache.served(prompt, env)
                except (EnvironmentNotFound, ReleaseNotFound) as again:
                    found[(prompt, env)] = str(again)
                    continue
            found[(prompt, env)] = _served_versions(served)
        return found

    def _learn_versions(self, pairs: set[tuple[str, str]]) -> None:
        """Look up, in one query, the released versions not seen yet."""
        missing = {pair for pair in pairs if pair not in self._versions}
        if not missing:
            return
        with self.db.session() as session:
            rows = session.execute(
                select(
                    VersionSnapshot.prompt,
                    VersionSnapshot.digest,
                    VersionSnapshot.relpath,
                    VersionSnapshot.files,
                ).where(
                    VersionSnapshot.prompt.in_({p for p, _ in missing}),
                    VersionSnapshot.digest.in_({d for _, d in missing}),
                )
            ).all()
        with self._lock:
            for prompt, digest, relpath, files in rows:
                self._versions[(prompt, digest)] = _model_of(relpath, files)

    def _place(self, e: Event, release: Any) -> str | None:
        """Check an event against what is released; set its variant, model and cost."""
        if isinstance(release, str):
            return release
        canary, served = release
        if e.digest in served:
            version_model = served[e.digest]
        elif (e.prompt, e.digest) in self._versions:
            version_model = self._versions[(e.prompt, e.digest)]
        else:
            return (
                f"unknown version {e.digest[:SHORT]} of '{e.prompt}': no release of it was "
                "ever made"
            )
        if e.variant is None:
            e.variant = "canary" if e.digest == canary else "stable"
        if e.model is None:
            e.model = version_model
        if e.cost is None and (e.input_tokens is not None or e.output_tokens is not None):
            e.cost = self.prices.cost(e.model, e.input_tokens or 0, e.output_tokens or 0)
        return None

    def _store(self, events: list[Event], received: datetime) -> set[str]:
        """Insert events (first delivery wins) and add the new ones to their rollups."""
        # Sorted by id, so concurrent batches sharing ids take their locks in one order.
        events.sort(key=lambda e: e.event_id)
        # Aggregated before the transaction, for the usual case of no duplicates.
        aggregates = aggregate_events(events)

        postgresql = self.db.dialect == "postgresql"
        if postgresql:
            self._ensure_partitions({day_of(e.epoch) for e in events})

        def work() -> set[str]:
            with self._writer, self.db.session() as session:
                if postgresql:
                    stored = insert_events_postgresql(session, events, received)
                else:
                    stored = insert_events_sqlite(session, events, received)
                fresh = aggregates
                if len(stored) != len(events):
                    fresh = aggregate_events(e for e in events if e.event_id in stored)
                merge_rollups(session, fresh)
                return stored

        try:
            return retrying(work)
        except IntegrityError as exc:
            if not postgresql or getattr(exc.orig, "sqlstate", None) != NO_PARTITION:
                raise
            # A day this process knew was dropped meanwhile (retention on another
            # replica): look again, create it, store once more.
            self._partition_days.clear()
            self._ensure_partitions({day_of(e.epoch) for e in events})
            return retrying(work)

    def _ensure_partitions(self, days: set[date]) -> None:
        """Create the daily events partitions of these days that this process has not
        seen, in a short transaction of its own (PostgreSQL)."""
        if days <= self._partition_days:
            return
        with self.db.session() as session:
            connection = session.connection()
            if not self._partition_days:
                self._partition_days.update(existing_partitions(connection))
            ensure_partitions(connection, days - self._partition_days)
        self._partition_days.update(days)

    # -- scores ------------------------------------------------------------------------

    def score(
        self,
        scores: Sequence[Any],
        *,
        authorize: Callable[[str], str | None] | None = None,
    ) -> BatchResult:
        """Attach quality scores to stored events, once each; answer each score."""
        if len(scores) > self.max_batch:
            raise BatchTooLarge(len(scores), self.max_batch)
        results: list[dict[str, Any] | None] = [None] * len(scores)
        wanted: dict[str, tuple[int, float]] = {}
        for index, raw in enumerate(scores):
            reason = check_score(raw)
            if reason is not None:
                results[index] = reject(raw, reason)
            elif raw["event_id"] in wanted:
                results[index] = {
                    "event_id": raw["event_id"],
                    "status": DUPLICATE,
                    "reason": "repeated in this batch",
                }
            else:
                wanted[raw["event_id"]] = (index, float(raw["quality"]))
        if wanted:

            def work() -> list[tuple[int, dict[str, Any]]]:
                with self._writer:
                    return self._apply_scores(wanted, authorize)

            for index, result in retrying(work):
                results[index] = result
        return batch_result(results)

    def _apply_scores(
        self,
        wanted: Mapping[str, tuple[int, float]],
        authorize: Callable[[str], str | None] | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        answers: list[tuple[int, dict[str, Any]]] = []
        allowed: dict[str, str | None] = {}
        now = utcnow()
        with self.db.session() as session:
            ids = sorted(wanted)
            found: dict[str, Any] = {}
            for start in range(0, len(ids), 500):
                query = (
                    select(
                        EVENTS.c.event_id,
                        EVENTS.c.prompt,
                        EVENTS.c.environment,
                        EVENTS.c.digest,
                        EVENTS.c.variant,
                        EVENTS.c.ts,
                        EVENTS.c.quality,
                    )
                    .where(EVENTS.c.event_id.in_(ids[start : start + 500]))
                    .order_by(EVENTS.c.event_id)
                    .with_for_update()
                )
                found.update((row.event_id, row) for row in session.execute(query))
            minutes: dict[tuple[str, str, str, str, int], Aggregate] = {}
            updates = []
            for event_id in ids:
                index, quality = wanted[event_id]
                row = found.get(event_id)
                reason = None
                if row is None:
                    reason = "unknown event_id: no event with this id is stored"
                elif authorize is not None:
                    if row.environment not in allowed:
                        allowed[row.environment] = authorize(row.environment)
                    reason = allowed[row.environment]
                if reason is not None:
                    answers.append(
                        (index, {"event_id": event_id, "status": REJECTED, "reason": reason})
                    )
                    continue
                if row.quality is not None:
                    answers.append(
                        (
                            index,
                            {
                                "event_id": event_id,
                                "status": DUPLICATE,
                                "reason": "the event already has a quality score",
                            },
                        )
                    )
                    continue
                minute = epoch(row.ts) // MINUTE * MINUTE
                key = (row.prompt, row.environment, row.digest, row.variant, minute)
                agg = minutes.get(key)
                if agg is None:
                    agg = minutes[key] = Aggregate()
                agg.add_quality(quality)
                updates.append({"score_id": event_id, "quality": quality, "scored_at": now})
                answers.append((index, {"event_id": event_id, "status": ACCEPTED}))
            if updates:
                session.execute(
                    update(EVENTS).where(EVENTS.c.event_id == bindparam("score_id")),
                    updates,
                )
                merge_rollups(session, with_hours(minutes))
        return answers

    # -- summaries ---------------------------------------------------------------------

    def summary(
        self,
        prompt: str,
        environment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> MetricsSummary:
        """Return count, error rate, latency quantiles, cost, tokens and quality per
        version and variant over [since, until) (default: the last 7 days)."""
        end_at = until or datetime.fromtimestamp(self.clock(), UTC)
        start_at = since or end_at - DEFAULT_WINDOW
        start = math.floor(as_utc(start_at).timestamp() / MINUTE) * MINUTE
        if until is None:  # up to now: the minute under way is included
            end = math.floor(as_utc(end_at).timestamp() / MINUTE) * MINUTE + MINUTE
        else:
            end = math.ceil(as_utc(end_at).timestamp() / MINUTE) * MINUTE
        if start >= end:
            raise UsageError("the window is empty: 'since' must be before 'until'")
        with self.db.session() as session:
            find_environment(session, environment)
            # Before the minute watermark the window is read in whole hours (their minute
            # rows may be pruned); `since` and `until` say what was read.
            start, end = widen(start, end, minutes_kept_from(session))
            groups: dict[tuple[str, str], Aggregate] = {}
            for row in session.execute(rollups_query(prompt, environment, start, end)):
                agg = groups.get((row.digest, row.variant))
                if agg is None:
                    agg = groups[(row.digest, row.variant)] = Aggregate()
                agg.merge_row(row)
            numbers = dict(
                session.execute(
                    select(VersionSnapshot.digest, VersionSnapshot.number).where(
                        VersionSnapshot.prompt == prompt
                    )
                ).all()
            )
            if not groups and not numbers:
                raise NeverReleased(prompt)
            budgets = _budgets(session, prompt, {digest for digest, _ in groups})
        versions = []
        for (digest, variant), agg in groups.items():
            if not agg.count:
                continue
            v = VersionMetrics.from_aggregate(digest, numbers.get(digest), variant, agg)
            if budgets.get(digest) is not None:
                v = replace(v, budget=check_budget(v, budgets[digest]))
            if self.trace_url_template and v.failing_traces:
                v = v.with_links(self.trace_url_template)
            versions.append(v)
        versions.sort(key=lambda v: (-(v.number or 0), v.digest, VARIANTS.index(v.variant)))
        return MetricsSummary(
            prompt, environment, moment(start), moment(end), versions, self.prices.to_json()
        )


def _too_old(retention: timedelta) -> str:
    days = retention / timedelta(days=1)
    return (
        f"ts is older than the {days:g} days events are kept (PROMPTCTL_RETENTION_EVENTS): "
        "a repeated delivery of it could not be told from a new call"
    )


def _budgets(session: Any, prompt: str, digests: set[str]) -> dict[str, Budget | None]:
    """The budget each version's front matter declares (from its promoted snapshot)."""
    if not digests:
        return {}
    rows = session.execute(
        select(VersionSnapshot.digest, VersionSnapshot.relpath, VersionSnapshot.files).where(
            VersionSnapshot.prompt == prompt, VersionSnapshot.digest.in_(digests)
        )
    ).all()
    found: dict[str, Budget | None] = {}
    for digest, relpath, files in rows:
        try:
            found[digest] = parse_prompt_file(relpath, files[relpath]).budget
        except (RegistryError, KeyError):
            found[digest] = None  # a snapshot promoted with --force may not parse
    return found


def _served_versions(served: ServedRelease) -> tuple[str | None, dict[str, str | None]]:
    versions = {served.stable.version.digest: served.stable.version.prompt.model}
    canary = None
    if served.canary is not None:
        canary = served.canary.version.digest
        versions[canary] = served.canary.version.prompt.model
    return canary, versions


def _model_of(relpath: str, files: Mapping[str, str]) -> str | None:
    try:
        model = parse_prompt_file(relpath, files[relpath]).model
    except (RegistryError, KeyError):
        return None  # a snapshot promoted with --force may not parse; it has no price
    return model if isinstance(model, str) else None
