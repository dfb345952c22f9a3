"""Propagation benchmark: how long after a rollback every application serves stable.

    .venv/bin/python bench/propagation.py [--clients 50] [--ttl 30] [--idle 1000]
                                          [--modes stream,poll] [--database-url URL]
                                          [--via api|cli]

1. A `promptctl serve` process over a fresh repository (support/triage v1 stable, v2 a
   100 % canary in production) and SQLite (or --database-url, e.g. PostgreSQL).
2. Per mode, N client processes, each a PromptClient (streaming, or `stream=False` with
   TTL polling) that serves the canary and then calls `get` every millisecond. The
   rollback is made over the API (or, with --via cli, by `promptctl rollback` on the
   database, the time counting the command's start-up); each client notes the
   wall-clock moment it first serves stable. Printed: the time from the rollback
   request until each client switched (median, p99, max), and how long the rollback
   request itself took. Goal: streaming
   p99 under 1 s with 50 clients.
3. Server cost per connected client: the server's RSS and CPU with the N streaming
   clients connected and idle, against before they connected; then with `--idle` bare
   subscribers (raw sockets reading the stream), and resolve latency (p50, p99 of
   sequential GETs) without and with them.

Wall-clock times are compared across processes of one machine, which share its clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "support/triage"
ENV = "production"
GIT = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


# -- a client process -----------------------------------------------------------------


def child(url: str, mode: str, ttl: float) -> None:
    """Serve the canary, say READY, then say when stable is served (a wall-clock time)."""
    from promptctl.client import PromptClient

    client = PromptClient(url, environment=ENV, ttl=ttl, stream=mode == "stream")
    assert client.get(PROMPT, "k").variant == "canary"
    deadline = time.monotonic() + 60
    while mode == "stream" and not client.stream_state.connected:
        assert time.monotonic() < deadline, "the stream never connected"
        time.sleep(0.01)
    print("READY", flush=True)
    while client.get(PROMPT, "k").variant != "stable":
        time.sleep(0.001)
    print(f"STABLE {time.time():.6f}", flush=True)
    sys.stdin.read()  # stay connected until the benchmark is done with this mode
    client.close(timeout=1)


# -- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def promptctl(repo: Path, database_url: str, *args: str) -> None:
    command = [sys.executable, "-m", "promptctl", "--repo", str(repo), "--database-url"]
    done = subprocess.run([*command, database_url, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"promptctl {' '.join(args)} failed: {done.stderr.strip()}")


def make_repo(path: Path) -> None:
    """The example prompts (all v1), then a commit making support/triage v2."""
    env = {**os.environ, **GIT}
    path.mkdir()
    shutil.copytree(ROOT / "prompts", path / "prompts")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "prompts")
    triage = path / "prompts" / "support" / "triage.prompt"
    anchor = "Read the ticket, decide how it should be routed"
    triage.write_text(triage.read_text().replace(anchor, "Be brief.\n" + anchor, 1))
    git("commit", "-q", "-am", "triage v2")


def start_server(repo: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "promptctl", "--repo", str(repo), "--database-url"]
    command += [database_url, "serve", "--port", str(port), "--create", "--log-level", "warning"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float) -> float:
    """The server's CPU use over `seconds` of nothing happening, in percent of one core."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds * 100


# -- one mode -------------------------------------------------------------------------


def run_mode(
    url: str, repo: Path, database_url: str, server: subprocess.Popen[bytes], args, mode: str
) -> None:
    canary = ("--env", ENV, "--canary", "100", "--yes")
    promptctl(repo, database_url, "promote", f"{PROMPT}@v2", *canary)
    wait_served(url, "canary")
    rss0, cpu0 = rss_mb(server.pid), idle_cpu(server.pid, 3)
    command = [sys.executable, __file__, "--child", url, "--mode", mode, "--ttl", str(args.ttl)]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(args.clients)
    ]
    for process in children:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY"), f"a client failed to start: {line!r}"
    if mode == "stream":
        rss1, cpu1 = rss_mb(server.pid), idle_cpu(server.pid, 15)
        print(
            f"server with {args.clients} streaming clients idle: RSS {rss1:.1f} MB "
            f"(+{(rss1 - rss0) * 1024 / args.clients:.0f} KB per client), CPU {cpu1:.2f} % of a "
            f"core (idle without them: {cpu0:.2f} %)"
        )
    started = time.time()
    if args.via == "cli":  # on the database itself: the server learns of it by its poll
        promptctl(repo, database_url, "rollback", PROMPT, "--env", ENV, "--yes")
    else:
        answer = httpx.post(f"{url}/v1/prompts/{PROMPT}/rollback", json={"env": ENV}, timeout=30)
        assert answer.status_code == 200, answer.text
    committed = time.time()
    switched = []
    for process in children:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("STABLE"), f"a client failed: {line!r}"
        switched.append(float(line.split()[1]) - started)
    for process in children:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
    switched.sort()
    p99 = switched[min(len(switched) - 1, round(0.99 * (len(switched) - 1)))]
    label = "streaming" if mode == "stream" else f"polling (TTL {args.ttl:g} s)"
    print(
        f"{label:>22}: {len(switched)} clients stable after the rollback in median "
        f"{statistics.median(switched) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
        f"{switched[-1] * 1000:.0f} ms (the rollback request took "
        f"{(committed - started) * 1000:.0f} ms)"
    )


def wait_served(url: str, variant: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(f"{url}/v1/prompts/{PROMPT}/resolve", params={"env": ENV, "key": "k"})
        if answer.status_code == 200 and answer.json()["variant"] == variant:
            return
        assert time.monotonic() < deadline, f"the server never served {variant}"
        time.sleep(0.05)


# -- idle subscribers -----------------------------------------------------------------


def resolve_latency(url: str, count: int = 2000) -> tuple[float, float]:
    """p50 and p99 of sequential resolves, in milliseconds."""
    took = []
    with httpx.Client(base_url=url) as http:
        for i in range(count):
            start = time.perf_counter()
            http.get(f"/v1/prompts/{PROMPT}/resolve", params={"env": ENV, "key": f"u{i}"})
            took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return took[len(took) // 2], took[int(len(took) * 0.99)]


async def hold_subscribers(port: int, count: int, ready: asyncio.Event, done: asyncio.Event):
    request = f"GET /v1/stream?env={ENV} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await reader.readuntil(b"event: ready")
        writers.append((reader, writer))
    ready.set()
    await done.wait()
    for _, writer in writers:
        writer.close()


def idle_subscribers(url: str, port: int, server: subprocess.Popen[bytes], count: int) -> None:
    import threading

    before_p50, before_p99 = resolve_latency(url)
    rss0, cpu0 = rss_mb(server.pid), idle_cpu(server.pid, 3)
    loop = asyncio.new_event_loop()
    ready, done = asyncio.Event(), asyncio.Event()
    holder = threading.Thread(
        target=loop.run_until_complete, args=(hold_subscribers(port, count, ready, done),)
    )
    holder.start()
    while not ready.is_set():
        time.sleep(0.05)
    rss1, cpu1 = rss_mb(server.pid), idle_cpu(server.pid, 15)
    after_p50, after_p99 = resolve_latency(url)
    loop.call_soon_threadsafe(done.set)
    holder.join()
    print(
        f"{count} idle subscribers: server RSS +{rss1 - rss0:.1f} MB "
        f"({(rss1 - rss0) * 1024 / count:.1f} KB each), idle CPU {cpu1:.2f} % of a core "
        f"(without them {cpu0:.2f} %, heartbeat every 15 s)"
    )
    print(
        f"resolve without them p50 {before_p50:.2f} ms, p99 {before_p99:.2f} ms; with them "
        f"p50 {after_p50:.2f} ms, p99 {after_p99:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--ttl", type=float, default=30.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--modes", default="stream,poll")
    parser.add_argument("--database-url")
    parser.add_argument(
        "--via",
        choices=["api", "cli"],
        default="api",
        help="roll back through the server's API, or with `promptctl rollback` on the database "
        "(a process of its own, which the server learns of by LISTEN/NOTIFY or its poll)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode, args.ttl)
        return
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_repo(repo)
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'registry.db'}"
        port = free_port()
        server = start_server(repo, database_url, port)
        url = f"http://127.0.0.1:{port}"
        try:
            promptctl(repo, database_url, "promote", "--all", "HEAD~1", "--env", ENV, "--yes")
            print(f"{args.clients} client processes, server on {database_url.split(':')[0]}")
            for mode in args.modes.split(","):
                run_mode(url, repo, database_url, server, args, mode)
            if args.idle:
                idle_subscribers(url, port, server, args.idle)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
