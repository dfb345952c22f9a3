"""Metrics ingest through one and through two server replicas on one PostgreSQL.

    .venv/bin/python bench/replicas.py            # PROMPTCTL_TEST_POSTGRES_URL, or --postgres
    .venv/bin/python bench/replicas.py --replicas 1 --replicas 2 --replicas 3 --rounds 5

For each replica count: a fresh PostgreSQL schema, the example prompts with a 10 % canary
(as bench/ingest.py sets them up, whose helpers this uses), that many `promptctl serve`
processes on ephemeral ports, and the batches of 500 events bench/ingest.py makes, posted
over `--connections` keep-alive connections in all, spread evenly over the replicas (as a
round-robin load balancer would). Each round posts `--batches` batches after a warm-up.

Printed per replica count (best round by events/s, and the median):

- events/s in all, and per replica;
- server CPU time per event (all replicas together);
- database CPU time per event: every `postgres` process on this machine (backends, WAL
  writer, checkpointer), read from /proc, so run it where PostgreSQL runs and nothing
  else uses it; and from it, events/s per database core (a core's second over the
  database's CPU time per event): what one PostgreSQL core absorbs;
- bytes on disk per stored event: every table and index of the schema (events, rollups,
  the rest) over the number of events, after the last round;
- the load average before and after (a shared machine slows every figure).

Nothing is asserted: the figures depend on the machine. On a machine where the servers,
PostgreSQL and the load generator share few cores, a second replica adds no throughput
(the cores are the limit), but the CPU time per event of servers and database still says
what each costs, which is what sizing a deployment needs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # noqa: E402  (bench/ingest.py: repository, release, batches, servers)
from sqlalchemy import create_engine, text  # noqa: E402


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by every `postgres` process on this machine."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        if stat[stat.index("(") + 1 : stat.rindex(")")] != "postgres":
            continue
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Round:
    events_per_second: float
    server_us: float  # server CPU per event, all replicas
    database_us: float  # PostgreSQL CPU per event


def post_spread(ports: list[int], batches: list[bytes], connections: int) -> tuple[float, int]:
    """Post the batches spread evenly over the replicas at once; return (seconds, accepted)."""
    share = [batches[i :: len(ports)] for i in range(len(ports))]
    per_replica = max(1, connections // len(ports))
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def run(port: int, mine: list[bytes]) -> None:
        result = ingest.post_all(port, mine, per_replica)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(ports, share, strict=True)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, sum(accepted for _, accepted in results)


def bytes_per_event(url: str) -> float:
    """The schema's tables and indexes on disk over the events stored."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            size = connection.execute(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            ).scalar_one()
            events = connection.execute(text("SELECT count(*) FROM metric_events")).scalar_one()
    finally:
        engine.dispose()
    return float(size) / max(1, events)


def measure(postgres: str, replicas: int, args: argparse.Namespace) -> tuple[list[Round], float]:
    """Rounds of ingest through `replicas` servers on a fresh schema; and the bytes on
    disk per event after them."""
    with tempfile.TemporaryDirectory(prefix="promptctl-replicas-") as tmp, ExitStack() as stack:
        repo = ingest.make_repo(Path(tmp))
        url = stack.enter_context(ingest.postgres_schema(postgres))
        stable, canary = ingest.release(repo, url)
        servers = [stack.enter_context(ingest.server(repo, url)) for _ in range(replicas)]
        ports, pids = [port for port, _ in servers], [pid for _, pid in servers]
        seed = 1000 * replicas
        post_spread(ports, ingest.make_batches(args.warmup, stable, canary, seed), args.connections)
        rounds = []
        for n in range(args.rounds):
            batches = ingest.make_batches(args.batches, stable, canary, seed + n + 1)
            servers_before = [ingest.cpu_seconds(pid) or 0.0 for pid in pids]
            database_before = postgres_cpu_seconds()
            seconds, accepted = post_spread(ports, batches, args.connections)
            database = postgres_cpu_seconds() - database_before
            server = sum((ingest.cpu_seconds(pid) or 0.0) for pid in pids) - sum(servers_before)
            if accepted != len(batches) * ingest.BATCH:
                raise SystemExit(f"only {accepted} of {len(batches) * ingest.BATCH} accepted")
            rounds.append(
                Round(accepted / seconds, server / accepted * 1e6, database / accepted * 1e6)
            )
        return rounds, bytes_per_event(url)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"))
    parser.add_argument("--replicas", type=int, action="append", help="default: 1 and 2")
    parser.add_argument("--batches", type=int, default=60, help="batches of 500 per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4, help="in all, over the replicas")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres URL (or set PROMPTCTL_TEST_POSTGRES_URL)")
    print(
        f"{args.rounds} rounds of {args.batches} batches of {ingest.BATCH} events, "
        f"{args.connections} connections in all; {load_average()}",
        flush=True,
    )
    print(
        f"{'replicas':>8} {'events/s':>9} {'median':>9} {'per replica':>11} "
        f"{'server us/ev':>12} {'db us/ev':>9} {'ev/s per db core':>16} {'bytes/ev':>8}"
    )
    for replicas in args.replicas or [1, 2]:
        rounds, on_disk = measure(args.postgres, replicas, args)
        best = max(rounds, key=lambda r: r.events_per_second)
        median = statistics.median(r.events_per_second for r in rounds)
        database_us = min(r.database_us for r in rounds)
        print(
            f"{replicas:8} {best.events_per_second:9,.0f} {median:9,.0f} "
            f"{best.events_per_second / replicas:11,.0f} "
            f"{min(r.server_us for r in rounds):12.1f} {database_us:9.1f} "
            f"{1e6 / database_us:16,.0f} {on_disk:8,.0f}",
            flush=True,
        )
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
