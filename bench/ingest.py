"""Metrics ingest benchmark: events per second through `POST /v1/metrics`.

    .venv/bin/python bench/ingest.py                          # SQLite, and PostgreSQL when
                                                              # PROMPTCTL_TEST_POSTGRES_URL is set
    .venv/bin/python bench/ingest.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/ingest.py --batches 400 --connections 8 --only sqlite

Setup per database: the example prompts of this repository in a temporary git repository,
`support/triage` promoted in `staging` and an edit of it started as a 10 % canary; a fresh
SQLite file, or a PostgreSQL schema of its own (dropped afterwards).

Events look like what the client sends: a uuid4 `event_id`, the stable digest for 90 % and
the canary's for 10 % (no `variant`: the server derives it), `ts` now, log-normal latency,
tokens (cost derived from the price table for gpt-4o-mini), `error` 2 %, a quality for
a third of them, two attributes. Batches are 500 events, encoded once before timing.

Measured in `--rounds` rounds of `--batches` batches (after `--warmup` batches each),
the three alternating round by round so that a busy moment of the machine hits them all;
the best and the median round are printed:

1. socket: `promptctl serve` (uvicorn, one worker, uvloop and httptools when installed)
   on an ephemeral port in its own process; `--connections` keep-alive connections post
   the batches in a closed loop. Every event must come back `accepted`.
2. in-process: the same code path without HTTP, in this process on another fresh
   database: `json.loads` of the body, `MetricsService.ingest`, `json.dumps` of the
   answer.
3. baseline: the same events inserted into a bare copy of the events table by the
   driver alone (`executemany` on SQLite, one `json_populate_recordset` statement on
   PostgreSQL), one transaction per batch: no validation, no rollups, no HTTP. The floor
   for writing the rows at all.

Goals: 20,000 events/s on SQLite and 50,000 on PostgreSQL (socket). Printed: events/s
for each, and ours/baseline. Nothing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from sqlalchemy import create_engine, text  # noqa: E402

from promptctl.registry.core import Registry, Settings  # noqa: E402
from promptctl.registry.metrics import MetricsService, batch_items  # noqa: E402
from promptctl.registry.releases.serving import ServingCache  # noqa: E402
from promptctl.registry.store.database import Database  # noqa: E402
from promptctl.server.settings import ModelPrice  # noqa: E402

PROMPT = "support/triage"
ENV = "staging"
BATCH = 500
PRICES = {"gpt-4o-mini": ModelPrice(input=0.15, output=0.60)}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


# -- setup ------------------------------------------------------------------------------


def make_repo(workdir: Path) -> Path:
    repo = workdir / "repo"
    shutil.copytree(ROOT / "prompts", repo / "prompts")
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "prompts"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    triage = repo / "prompts" / f"{PROMPT}.prompt"
    triage.write_text(triage.read_text() + "\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "canary"], cwd=repo, env=env, check=True)
    return repo


def release(repo: Path, url: str) -> tuple[str, str]:
    """Promote HEAD~1 stable and HEAD as a 10 % canary; return (stable, canary) digests."""
    registry = Registry(Settings(repo=repo, database_url=url))
    Database(url, auto_upgrade=True).ensure_schema()
    stable = registry.library.get(PROMPT, "HEAD~1")
    canary = registry.library.get(PROMPT, "HEAD")
    registry.releases.promote(stable, ENV, actor="bench")
    registry.releases.promote(canary, ENV, actor="bench", canary_bp=1000)
    registry.close()
    return stable.digest, canary.digest


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    schema = f"promptctl_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database(kind: str, workdir: Path, postgres: str | None, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / (name + '.db')}"
    else:
        assert postgres is not None
        with postgres_schema(postgres) as url:
            yield url


def make_batches(count: int, stable: str, canary: str, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    batches = []
    for _ in range(count):
        events = []
        for _ in range(BATCH):
            event = {
                "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "prompt": PROMPT,
                "env": ENV,
                "digest": canary if rng.random() < 0.1 else stable,
                "ts": now,
                "latency_ms": round(rng.lognormvariate(6.5, 0.6), 3),
                "input_tokens": rng.randint(300, 900),
                "output_tokens": rng.randint(20, 400),
                "error": rng.random() < 0.02,
                "attributes": {"tenant": f"t{rng.randint(1, 50)}", "region": "eu"},
            }
            if rng.random() < 0.33:
                event["quality"] = round(rng.random(), 3)
            events.append(event)
        batches.append(json.dumps({"events": events}).encode())
    return batches


# -- 1. over a socket ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(repo: Path, url: str) -> Iterator[tuple[int, int]]:
    """Run `promptctl serve` on an ephemeral port; yield (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        **GIT_ENV,
        "PROMPTCTL_PRICES": json.dumps({k: v.model_dump() for k, v in PRICES.items()}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "promptctl", "--repo", str(repo), "--database-url", url, "serve",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=repo, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def post_all(port: int, batches: list[bytes], connections: int) -> tuple[float, int]:
    """Post every batch over `connections` keep-alive connections; return (seconds, accepted)."""
    lock = threading.Lock()
    queue = iter(batches)
    accepted = [0]
    failures: list[str] = []

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"content-type": "application/json"}
        while True:
            with lock:
                body = next(queue, None)
            if body is None:
                return
            connection.request("POST", "/v1/metrics", body, headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                failures.append(f"{response.status} {data[:200]!r}")
                return
            n = json.loads(data)["accepted"]
            with lock:
                accepted[0] += n

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"a batch failed: {failures[0]}")
    return elapsed, accepted[0]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OverSocket:
    """Rounds against one server process; also records its CPU time per event."""

    def __init__(self, port: int, pid: int, connections: int) -> None:
        self.port = port
        self.pid = pid
        self.connections = connections
        self.cpu_per_event: list[float] = []

    def round(self, batches: list[bytes]) -> float:
        before = cpu_seconds(self.pid)
        elapsed, accepted = post_all(self.port, batches, self.connections)
        after = cpu_seconds(self.pid)
        if accepted != len(batches) * BATCH:
            raise SystemExit(f"only {accepted} of {len(batches) * BATCH} events were accepted")
        if before is not None and after is not None:
            self.cpu_per_event.append((after - before) / accepted * 1e6)
        return accepted / elapsed


# -- 2. in process -------------------------------------------------------------------------


class InProcess:
    """Rounds through MetricsService in this process: decode, ingest, encode."""

    def __init__(self, repo: Path, url: str) -> None:
        self.registry = Registry(Settings(repo=repo, database_url=url))
        cache = ServingCache(self.registry.releases)
        cache.load_all()
        self.service = MetricsService(self.registry.database, cache=cache, prices=PRICES)

    def one(self, body: bytes) -> int:
        result = self.service.ingest(batch_items(json.loads(body), "events"))
        json.dumps(result.to_json())
        return result.accepted

    def round(self, batches: list[bytes]) -> float:
        start = time.perf_counter()
        accepted = sum(self.one(body) for body in batches)
        elapsed = time.perf_counter() - start
        if accepted != len(batches) * BATCH:
            raise SystemExit("in-process ingest did not accept every event")
        return accepted / elapsed


# -- 3. baseline: the driver alone -------------------------------------------------------

COLUMNS = (
    "event_id", "prompt", "environment", "digest", "variant", "ts", "latency_ms",
    "input_tokens", "output_tokens", "cost_usd", "model", "quality", "error", "attributes",
    "received_at",
)  # fmt: skip


def baseline_rows(body: bytes) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": e["event_id"],
            "prompt": e["prompt"],
            "environment": e["env"],
            "digest": e["digest"],
            "variant": "stable",
            "ts": e["ts"],
            "latency_ms": e["latency_ms"],
            "input_tokens": e.get("input_tokens"),
            "output_tokens": e.get("output_tokens"),
            "cost_usd": None,
            "model": "gpt-4o-mini",
            "quality": e.get("quality"),
            "error": e.get("error", False),
            "attributes": e.get("attributes"),
            "received_at": now,
        }
        for e in json.loads(body)["events"]
    ]


class Baseline:
    """Rounds inserting the same events into a bare copy of the events table, driver only."""

    def __init__(self, kind: str, url: str) -> None:
        Database(url, auto_upgrade=True).ensure_schema()
        if kind == "sqlite":
            connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("CREATE TABLE bare_events AS SELECT * FROM metric_events WHERE 0")
            connection.execute("CREATE UNIQUE INDEX bare_events_id ON bare_events (event_id)")
            statement = (
                f"INSERT INTO bare_events ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})"
            )

            def one(body: bytes) -> None:
                rows = [
                    tuple(json.dumps(r[c]) if c == "attributes" else r[c] for c in COLUMNS)
                    for r in baseline_rows(body)
                ]
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(statement, rows)
                connection.execute("COMMIT")

        else:
            engine = create_engine(url)
            with engine.begin() as c:
                c.execute(text("CREATE TABLE bare_events (LIKE metric_events INCLUDING ALL)"))
            statement = text(
                "INSERT INTO bare_events SELECT * FROM "
                "json_populate_recordset(NULL::bare_events, :rows)"
            )

            def one(body: bytes) -> None:
                with engine.begin() as c:
                    c.execute(statement, {"rows": json.dumps(baseline_rows(body))})

        self.one = one

    def round(self, batches: list[bytes]) -> float:
        start = time.perf_counter()
        for body in batches:
            self.one(body)
        return len(batches) * BATCH / (time.perf_counter() - start)


# -- main ------------------------------------------------------------------------------------


def measure(
    kind: str, repo: Path, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, list[float]], list[float]]:
    """Rounds alternate between the three, so a busy moment of the machine hits them all."""
    rates: dict[str, list[float]] = {"socket": [], "in_process": [], "baseline": []}
    with ExitStack() as stack:
        runners: dict[str, Any] = {}
        batches: dict[str, list[bytes]] = {}
        for name in rates:
            url = stack.enter_context(database(kind, workdir, args.postgres, f"{kind}_{name}"))
            stable, canary = release(repo, url)
            count = args.warmup + args.rounds * args.batches
            batches[name] = make_batches(count, stable, canary, sum(map(ord, kind + name)))
            if name == "socket":
                port, pid = stack.enter_context(server(repo, url))
                runners[name] = OverSocket(port, pid, args.connections)
            elif name == "in_process":
                runners[name] = InProcess(repo, url)
            else:
                runners[name] = Baseline(kind, url)
            runners[name].round(batches[name][: args.warmup])
        for r in range(args.rounds):
            start = args.warmup + r * args.batches
            for name, runner in runners.items():
                rates[name].append(runner.round(batches[name][start : start + args.batches]))
        cpu = runners["socket"].cpu_per_event
    return rates, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 500 per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--postgres", default=os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"))
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    args = parser.parse_args()
    kinds = [k for k in ("sqlite", "postgresql") if args.only in (None, k)]
    if "postgresql" in kinds and not args.postgres:
        print("PostgreSQL skipped: give --postgres URL or set PROMPTCTL_TEST_POSTGRES_URL")
        kinds.remove("postgresql")
    goals = {"sqlite": 20_000, "postgresql": 50_000}
    print(f"{args.rounds} rounds of {args.batches} batches of {BATCH} events after "
          f"{args.warmup} warm-up batches; {args.connections} connections; {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        repo = make_repo(workdir)
        for kind in kinds:
            rates, cpu = measure(kind, repo, workdir, args)
            best = {name: max(r) for name, r in rates.items()}
            median = {name: statistics.median(r) for name, r in rates.items()}
            print(f"\n{kind} (events/s, best and median of {args.rounds} rounds; "
                  f"load average now {os.getloadavg()[0]:.1f})")  # fmt: skip
            rows = (
                ("socket (POST /v1/metrics)", "socket"),
                ("in-process (same code path)", "in_process"),
                ("baseline (driver insert only)", "baseline"),
            )
            for label, name in rows:
                goal = f"   goal {goals[kind]:,}" if name == "socket" else ""
                print(f"  {label:<32}{best[name]:>9,.0f}{median[name]:>10,.0f}{goal}")
            if cpu:
                label = "server process CPU per event"
                print(f"  {label:<32}{min(cpu):>7.1f} us{statistics.median(cpu):>7.1f} us"
                      "   (uvicorn + FastAPI + ingest; the database's own CPU apart)")  # fmt: skip
            for name in ("socket", "in_process"):
                label = f"{name.replace('_', '-')} / baseline"
                print(f"  {label:<32}{best[name] / best['baseline']:>8.2f}x"
                      f"{median[name] / median['baseline']:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
