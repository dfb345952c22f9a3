"""Metrics summary benchmark: a summary's cost at a thousand events and at a million.

    .venv/bin/python bench/summary.py                 # SQLite, and PostgreSQL when
                                                      # PROMPTCTL_TEST_POSTGRES_URL is set
    .venv/bin/python bench/summary.py --events 200000 --only sqlite
    .venv/bin/python bench/summary.py --postgres postgresql+psycopg://postgres@127.0.0.1/test

Setup per database: the example prompts in a temporary git repository, `support/triage`
v1 stable and v2 as a 10 % canary in `staging`; a fresh SQLite file or PostgreSQL schema.

Events are stored through the real ingest path (`MetricsService.ingest`, the code behind
`POST /v1/metrics`, called in process with batches of 10,000), so the rollups are exactly
the ones the service builds. Their timestamps are spread evenly over the last 7 days (the
default window of a summary), in time order as they would arrive: with enough events,
2 versions x 10,080 minutes of minute rollups plus their hour rollups. Latency is
log-normal, a third of the events carry a quality.

Measured (median of `--runs` after one warm-up) with 1,000 events stored, then 10,000,
100,000 and `--events` (default 1,000,000), each load spread over the same week:

- summary 7d / 24h / 1h: `MetricsService.summary` (what `GET /v1/prompts/{name}/metrics`
  and `promptctl metrics` run), over the default 7 days, the last 24 hours and 1 hour;
- baseline count(*): `SELECT count(*) FROM metric_events`, the cheapest question about
  the events;
- baseline raw 7d: the same summary computed from the raw events without rollups: one
  GROUP BY for counts and means, and every latency fetched in order for exact
  percentiles.

Goal: the summary under 50 ms at a million events, and about the same as at a thousand.
Printed: milliseconds, summary/count(*) and raw/summary ratios, and the largest relative
error of p50/p95/p99 against the exact percentiles of the raw events. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from ingest import PRICES, PROMPT, database, make_repo, release  # noqa: E402
from sqlalchemy import text  # noqa: E402

from promptctl.registry.core import Registry, Settings  # noqa: E402
from promptctl.registry.metrics import MetricsService  # noqa: E402
from promptctl.registry.releases.serving import ServingCache  # noqa: E402

ENV = "staging"
LOAD_BATCH = 10_000
WEEK = timedelta(days=7)


def checkpoints(events: int) -> list[int]:
    """Where the figures are taken: 1,000 events, then every power of ten up to `events`."""
    points, point = [], 1_000
    while point < events:
        points.append(point)
        point *= 10
    return [*points, events]


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of `runs` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def load(service: MetricsService, count: int, stable: str, canary: str, now: datetime) -> float:
    """Ingest `count` events spread over the last 7 days; return events per second."""
    rng = random.Random(count)
    start_epoch = (now - WEEK).timestamp() + 1
    span = WEEK.total_seconds() - 2
    stored = 0
    started = time.perf_counter()
    while stored < count:
        batch = []
        for _ in range(min(LOAD_BATCH, count - stored)):
            event = {
                "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "prompt": PROMPT,
                "env": ENV,
                "digest": canary if rng.random() < 0.1 else stable,
                # In time order, as events arrive: a batch covers its slice of the week.
                "ts": start_epoch + (stored + len(batch) + rng.random()) * span / count,
                "latency_ms": rng.lognormvariate(6.5, 0.6),
                "input_tokens": rng.randint(300, 900),
                "output_tokens": rng.randint(20, 400),
                "error": rng.random() < 0.02,
            }
            if rng.random() < 0.33:
                event["quality"] = rng.random()
            batch.append(event)
        result = service.ingest(batch)
        if result.accepted != len(batch):
            raise SystemExit(f"ingest refused events: {result.results[:3]}")
        stored += len(batch)
        if count >= 100_000 and stored % 100_000 == 0:
            rate = stored / (time.perf_counter() - started)
            print(f"    {stored:>9,} events stored ({rate:,.0f}/s)", flush=True)
    return count / (time.perf_counter() - started)


def raw_summary(service: MetricsService, now: datetime) -> dict:
    """The 7-day summary from raw events: GROUP BY, and sorted latencies for percentiles."""
    since = now - WEEK
    params = {"prompt": PROMPT, "env": ENV, "since": since, "until": now + timedelta(minutes=1)}
    where = "prompt = :prompt AND environment = :env AND ts >= :since AND ts < :until"
    if service.db.dialect == "sqlite":  # DateTime's storage form there
        params["since"] = since.replace(tzinfo=None).isoformat(" ", "microseconds")
        params["until"] = params["until"].replace(tzinfo=None).isoformat(" ", "microseconds")
    result: dict = {}
    with service.db.engine.connect() as connection:
        for row in connection.execute(
            text(
                "SELECT digest, variant, count(*), sum(CASE WHEN error THEN 1 ELSE 0 END), "
                "avg(latency_ms), avg(cost_usd), avg(input_tokens), avg(output_tokens), "
                f"avg(quality) FROM metric_events WHERE {where} GROUP BY digest, variant"
            ),
            params,
        ):
            result[(row[0], row[1])] = {"count": row[2], "latencies": []}
        for digest, variant, latency in connection.execute(
            text(
                f"SELECT digest, variant, latency_ms FROM metric_events WHERE {where} "
                "ORDER BY digest, variant, latency_ms"
            ),
            params,
        ):
            result[(digest, variant)]["latencies"].append(latency)
    for figures in result.values():
        ordered = figures["latencies"]
        figures["quantiles"] = {
            q: ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1] for q in (0.5, 0.95, 0.99)
        }
    return result


def count_star(service: MetricsService) -> int:
    with service.db.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM metric_events")).scalar_one()


def measure(service: MetricsService, now: datetime, runs: int) -> dict[str, float]:
    def summary(window: timedelta) -> Callable[[], object]:
        return lambda: service.summary(PROMPT, ENV, since=now - window, until=now)

    return {
        "summary 7d": timed(summary(WEEK), runs),
        "summary 24h": timed(summary(timedelta(hours=24)), runs),
        "summary 1h": timed(summary(timedelta(hours=1)), runs),
        "count(*)": timed(lambda: count_star(service), runs),
    }


def size_of(kind: str, url: str, service: MetricsService) -> str:
    if kind == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    else:
        with service.db.engine.connect() as connection:
            total = connection.execute(
                text(
                    "SELECT pg_total_relation_size('metric_events') "
                    "+ pg_total_relation_size('metric_rollups')"
                )
            ).scalar_one()
    return f"{total / 1e6:,.0f} MB"


def run(kind: str, repo: Path, postgres: str | None, events: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp), postgres, kind) as url:
        stable, canary = release(repo, url)
        registry = Registry(Settings(repo=repo, database_url=url))
        cache = ServingCache(registry.releases)
        cache.load_all()
        service = MetricsService(
            registry.database, cache=cache, prices=PRICES, max_batch=LOAD_BATCH
        )
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        at = ", ".join(f"{c:,}" for c in checkpoints(events))
        print(f"\n{kind}: {events:,} events through MetricsService.ingest in batches of "
              f"{LOAD_BATCH:,}, measured at {at}")  # fmt: skip
        figures: dict[int, dict[str, float]] = {}
        stored, seconds = 0, 0.0
        for checkpoint in checkpoints(events):
            started = time.perf_counter()
            load(service, checkpoint - stored, stable, canary, now)
            seconds += time.perf_counter() - started
            stored = checkpoint
            figures[checkpoint] = measure(service, now, runs)
        with service.db.engine.connect() as connection:
            rollups = connection.execute(text("SELECT count(*) FROM metric_rollups")).scalar_one()
        print(f"  stored {stored:,} events at {stored / seconds:,.0f} events/s: {rollups:,} "
              f"rollup rows, database {size_of(kind, url, service)}")  # fmt: skip
        raw_ms = timed(lambda: raw_summary(service, now), max(1, runs // 5))

        # Accuracy: the 7-day summary against the raw events.
        summary = service.summary(PROMPT, ENV, since=now - WEEK, until=now)
        raw = raw_summary(service, now)
        worst = 0.0
        for version in summary.versions:
            exact = raw[(version.digest, version.variant)]
            assert version.count == exact["count"], "summary and raw counts differ"
            for q, got in ((0.5, version.latency_p50), (0.95, version.latency_p95),
                           (0.99, version.latency_p99)):  # fmt: skip
                worst = max(worst, abs(got - exact["quantiles"][q]) / exact["quantiles"][q])

        first, last = figures[min(figures)], figures[max(figures)]
        header = "".join(f"{f'{c:,} events':>18}" for c in figures)
        print(f"  {'':<30}{header}{'last/first':>12}")
        for name in first:
            cells = "".join(f"{figures[c][name]:>15.2f} ms" for c in figures)
            print(f"  {name:<30}{cells}{last[name] / first[name]:>11.2f}x")
        print(f"  {'baseline raw 7d (no rollups)':<30}{raw_ms:>{18 * len(figures) - 3}.2f} ms")
        big = last["summary 7d"]
        print(f"  summary 7d / count(*) at {stored:,}: {big / last['count(*)']:>8.3f}x")
        print(f"  raw 7d / summary 7d at {stored:,}:   {raw_ms / big:>8.0f}x")
        print(f"  summary 7d goal < 50 ms:         {'met' if big < 50 else 'MISSED'}")
        print(f"  worst p50/p95/p99 error vs exact: {worst:.2%} (bound 2 %)")
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"))
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    args = parser.parse_args()
    kinds = [k for k in ("sqlite", "postgresql") if args.only in (None, k)]
    if "postgresql" in kinds and not args.postgres:
        print("PostgreSQL skipped: give --postgres URL or set PROMPTCTL_TEST_POSTGRES_URL")
        kinds.remove("postgresql")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp))
        for kind in kinds:
            run(kind, repo, args.postgres, args.events, args.runs)


if __name__ == "__main__":
    main()
