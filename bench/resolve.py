"""HTTP benchmark of `GET /v1/prompts/{name}/resolve` against bare FastAPI and raw ASGI.

    .venv/bin/python bench/resolve.py                  # as `make bench-resolve` runs it
    .venv/bin/python bench/resolve.py --rounds 9 --duration 5 --connections 64
    .venv/bin/python bench/resolve.py --only key --only 304
    .venv/bin/python bench/resolve.py --loadgen python # without wrk (or to compare)
    .venv/bin/python bench/resolve.py --json out.json  # the figures for a script as well

Setup: the example prompts of this repository are copied into a temporary git repository
with a fresh SQLite database; `support/triage` is promoted in `staging`, edited, and the
edit started as a 10 % canary, so every resolution runs the routing function.

Three servers then run side by side, each in its own process on an ephemeral port, with
the same uvicorn settings (1 worker, uvloop and httptools when installed, else asyncio and
h11, no access log):

- ours: `create_app()` as `promptctl serve` builds it, tokens off (resolve is answered by
  its raw ASGI fast path, server/fastpath.py, behind FastAPI's and our middleware);
- bare: a FastAPI app with one `@app.get` route that returns the very bytes and ETag our
  resolve returns (and 304 when If-None-Match matches it): the floor for FastAPI and
  uvicorn on this machine;
- raw: a bare ASGI callable answering the same bytes and headers (304 likewise) on the
  same uvicorn: the floor for uvicorn itself, what no Python app can beat.

A load generator in a separate process keeps `--connections` keep-alive connections
busy (closed loop): `wrk` when installed (`apt-get install wrk`), else an asyncio
raw-socket client (being Python, it may saturate before the servers do: use wrk for
figures you quote). On Linux with two or more CPUs the servers are pinned to one CPU and
the load generator to the others, so it does not steal the server's core.

Scenarios:

- plain: `?env=staging` (no key: random canary choice per request);
- key:   `?env=staging&key=user-N`, N cycling over 1024 keys (sticky routing hash);
- 304:   `?env=staging&key=<a stable key>` with If-None-Match: the ETag it gets.

Each measurement follows a warm-up; rounds alternate between the servers and the best
round of each is printed (other load on the machine only ever slows a round down), with
the per-round figures after it. Printed per scenario: requests/s, p50 and p99 latency,
the server's CPU time per request (Linux; steadier than requests/s on a busy machine),
ours/bare (goal: >= 1) and ours/raw (goal: >= 0.6), by throughput and by CPU time. The
load average is printed before and after: the figures of a busy machine are not those of
an idle one.

Last, the apps are called in this process through ASGI alone (no uvicorn, no socket):
CPU time per request of the app stack itself, the steadiest figure on a shared machine
(uvicorn's own share, the same for all, is left out, so these ratios are the harsher ones).
Nothing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "support/triage"
ENV = "staging"
PATH = f"/v1/prompts/{PROMPT}/resolve"
KEYS = 1024
SERVERS = ("ours", "bare", "raw")


# -- the servers (run as `resolve.py --serve ours|bare` in their own process) -------------


def uvicorn_options() -> dict[str, object]:
    """The same settings for both servers: the fast loop and parser when installed."""

    def installed(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    return {
        "workers": 1,
        "loop": "uvloop" if installed("uvloop") else "asyncio",
        "http": "httptools" if installed("httptools") else "h11",
        "access_log": False,
        "log_level": "warning",
    }


def serve(which: str, port: int, body_file: str | None, etag: str | None) -> None:
    import uvicorn

    if which == "ours":
        from promptctl.server.app import create_app
        from promptctl.server.settings import ServerSettings

        app: ASGIApp = create_app(ServerSettings())  # PROMPTCTL_* from the environment
    elif which == "bare":
        app = bare_app(Path(body_file or "").read_bytes(), etag or "")
    else:
        app = raw_app(Path(body_file or "").read_bytes(), etag or "")
    uvicorn.run(app, host="127.0.0.1", port=port, **uvicorn_options())


def bare_app(body: bytes, etag: str) -> FastAPI:
    """One route that answers with prebuilt bytes: the least FastAPI can do for a resolve."""
    app = FastAPI()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}

    @app.get(PATH)
    async def resolve(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return app


def raw_app(body: bytes, etag: str) -> ASGIApp:
    """An ASGI callable that answers with prebuilt bytes and our headers: uvicorn's floor."""
    tag = etag.encode()
    ok: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"etag", tag),
            (b"cache-control", b"no-cache"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
    }
    not_modified: Message = {
        "type": "http.response.start",
        "status": 304,
        "headers": [(b"etag", tag), (b"cache-control", b"no-cache")],
    }
    full: Message = {"type": "http.response.body", "body": body}
    empty: Message = {"type": "http.response.body", "body": b""}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]  # startup | shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if (b"if-none-match", tag) in scope["headers"]:
            await send(not_modified)
            await send(empty)
            return
        await send(ok)
        await send(full)

    return app


# -- setup ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_split() -> tuple[set[int], set[int]] | None:
    """CPUs for the servers and for the load generator, or None where pinning is moot."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


def prepare(workdir: Path) -> dict[str, str]:
    """A repository with the example prompts, a release with a 10 % canary; return its env."""
    repo = workdir / "repo"
    shutil.copytree(ROOT / "prompts", repo / "prompts")
    identity = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    env = {
        **os.environ,
        **identity,
        "PROMPTCTL_REPO": str(repo),
        "PROMPTCTL_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
    }
    env.pop("PROMPTCTL_TOKENS", None)

    def run(*args: str) -> None:
        subprocess.run(args, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)

    run("git", "init", "-q", "-b", "main")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "prompts")
    run(sys.executable, "-m", "promptctl", "promote", PROMPT, "--env", ENV)
    triage = repo / "prompts" / f"{PROMPT}.prompt"
    triage.write_text(triage.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    run("git", "commit", "-qam", "canary")
    run(sys.executable, "-m", "promptctl", "promote", PROMPT, "--env", ENV, "--canary", "10")
    return env


def start(args: list[str], env: dict[str, str], cpus: set[int] | None) -> subprocess.Popen:
    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.Popen(
        [sys.executable, __file__, *args],
        env=env,
        cwd=env.get("PROMPTCTL_REPO"),
        preexec_fn=pin if cpus else None,
    )


def wait_ready(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server for {url} exited with {server.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"no server answered at {url}")


# -- load generation -------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    query: str  # after `?`
    keyed: bool = False  # cycle key=user-0..1023 after the query
    if_none_match: str | None = None

    def targets(self) -> list[str]:
        base = f"{PATH}?{self.query}"
        return [f"{base}&key=user-{i}" for i in range(KEYS)] if self.keyed else [base]


@dataclass
class Figures:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None = None  # the server's CPU time per request


WRK_SCRIPT = """
wrk.method = "GET"
{header}
local targets = {{{targets}}}
local n = #targets
local i = 0
if n > 1 then
  request = function()
    i = i + 1
    return wrk.format(nil, targets[(i % n) + 1])
  end
else
  wrk.path = targets[1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "us": %d, "p50": %d, "p99": %d, "errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def run_wrk(
    port: int,
    scenario: Scenario,
    connections: int,
    threads: int,
    seconds: float,
    cpus: set[int] | None,
    script_dir: Path,
) -> Figures:
    header = (
        f'wrk.headers["If-None-Match"] = {json.dumps(scenario.if_none_match)}'
        if scenario.if_none_match
        else ""
    )
    targets = ", ".join(json.dumps(t) for t in scenario.targets())
    script = script_dir / f"{scenario.name}.lua"
    script.write_text(WRK_SCRIPT.format(header=header, targets=targets))
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{"))
    raw = json.loads(line)
    secs = raw["us"] / 1e6
    return Figures(
        raw["requests"],
        secs,
        raw["requests"] / secs,
        raw["p50"] / 1000,
        raw["p99"] / 1000,
        raw["errors"],
    )


def run_python(
    port: int, scenario: Scenario, connections: int, seconds: float, cpus: set[int] | None
) -> Figures:
    spec = {
        "port": port,
        "targets": scenario.targets(),
        "inm": scenario.if_none_match,
        "connections": connections,
        "seconds": seconds,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--load", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    return Figures(**json.loads(out.stdout))


def python_load(spec: dict) -> None:
    """Keep-alive HTTP/1.1 client on raw sockets: one coroutine per connection."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    extra = f"If-None-Match: {spec['inm']}\r\n" if spec["inm"] else ""
    requests = [
        f"GET {t} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode() for t in spec["targets"]
    ]
    latencies: list[float] = []
    errors = 0

    async def connection(offset: int, stop_at: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        i = offset
        while (begin := time.perf_counter()) < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - begin)
            if head[9:10] not in (b"2", b"3"):
                errors += 1
        writer.close()

    async def main() -> float:
        start = time.perf_counter()
        stop_at = start + spec["seconds"]
        await asyncio.gather(*(connection(i * 37, stop_at) for i in range(spec["connections"])))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    n = len(latencies)
    p50, p99 = latencies[n // 2] * 1000, latencies[int(n * 0.99)] * 1000
    print(json.dumps(asdict(Figures(n, elapsed, n / elapsed, p50, p99, errors))))


def best_round(rounds: list[Figures]) -> Figures:
    """The round with the most requests/s, with the least CPU time per request of any.

    Other load on the machine only ever slows a round down, so the best round is the
    closest to what the code itself can do; alternating rounds give both servers the
    same chances.
    """
    best = max(rounds, key=lambda f: f.rps)
    cpu = [f.cpu_us for f in rounds if f.cpu_us is not None]
    return replace(best, cpu_us=min(cpu) if cpu else None)


def asgi_cpu_us(app: ASGIApp, scenario: Scenario, calls: int = 5000) -> float:
    """CPU microseconds per request through the ASGI app alone: no server, no socket.

    The best of five runs of `calls` requests, in this process; every answer must be a
    200 or, with If-None-Match, a 304.
    """
    requests = [target.partition("?") for target in scenario.targets()]
    headers = [(b"host", b"127.0.0.1")]
    if scenario.if_none_match:
        headers.append((b"if-none-match", scenario.if_none_match.encode()))
    expected = 304 if scenario.if_none_match else 200
    statuses: set[int] = set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def run() -> float:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for i in range(calls):
                path, _, query = requests[i % len(requests)]
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "GET",
                    "scheme": "http",
                    "path": path,
                    "raw_path": path.encode(),
                    "root_path": "",
                    "query_string": query.encode(),
                    "headers": headers,
                    "server": ("127.0.0.1", 80),
                    "client": ("127.0.0.1", 50000),
                    "state": {},
                }
                await app(scope, receive, send)
            best = min(best, (time.process_time() - start) / calls * 1e6)
        return best

    cpu_us = asyncio.run(run())
    if statuses != {expected}:
        raise SystemExit(f"{scenario.name}: answered {sorted(statuses)}, not {expected}")
    return cpu_us


def app_alone(workdir: Path, servers: Servers, scenarios: list[Scenario]) -> dict[str, object]:
    """Print (and return) the ASGI figures of the apps: the app stack without uvicorn."""
    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    settings = ServerSettings(
        repo=workdir / "repo", database_url=f"sqlite:///{workdir / 'registry.db'}"
    )
    ours = create_app(settings)
    apps: dict[str, ASGIApp] = {
        "ours": ours,
        "bare": bare_app(servers.body, servers.etag),
        "raw": raw_app(servers.body, servers.etag),
    }
    print("app alone, in process (ASGI calls, no uvicorn, no socket; CPU us/request):")
    results = {}
    for scenario in scenarios:
        cpu = {who: asgi_cpu_us(app, scenario) for who, app in apps.items()}
        to_bare, to_raw = cpu["bare"] / cpu["ours"], cpu["raw"] / cpu["ours"]
        print(
            f"{scenario.name:8} ours {cpu['ours']:6.1f}  bare {cpu['bare']:6.1f}  "
            f"raw {cpu['raw']:6.1f}  ours/bare {to_bare:.2f}x  ours/raw {to_raw:.2f}x",
            flush=True,
        )
        results[scenario.name] = {**cpu, "ratio": to_bare, "ratio_raw": to_raw}
    ours.state.ctx.registry.close()
    return results


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Servers:
    """The servers by name (ours, bare, raw), running, with their ports, and what a stable
    resolution answers."""

    processes: dict[str, subprocess.Popen]
    ports: dict[str, int]
    stable_key: str
    etag: str
    body: bytes

    def stop(self) -> None:
        for server in self.processes.values():
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def start_servers(workdir: Path, env: dict[str, str], cpus: set[int] | None) -> Servers:
    """Start ours, then the bare and raw apps with the very bytes ours answers for a
    stable key."""
    ours_port = free_port()
    ours = start(["--serve", "ours", str(ours_port)], env, cpus)
    processes, ports = {"ours": ours}, {"ours": ours_port}
    try:
        url = f"http://127.0.0.1:{ours_port}{PATH}"
        wait_ready(f"http://127.0.0.1:{ours_port}/healthz", ours)
        for i in range(KEYS):
            reference = httpx.get(url, params={"env": ENV, "key": f"user-{i}"})
            reference.raise_for_status()
            if reference.json()["variant"] == "stable":
                break
        else:
            raise SystemExit("no key routes to the stable version")
        stable_key, etag = f"user-{i}", reference.headers["etag"]
        body_file = workdir / "body.json"
        body_file.write_bytes(reference.content)
        for name in SERVERS[1:]:
            port = ports[name] = free_port()
            args = ["--serve", name, str(port), "--body", str(body_file), "--etag", etag]
            processes[name] = start(args, env, cpus)
            wait_ready(f"http://127.0.0.1:{port}/", processes[name])
        for name, port in ports.items():
            url = f"http://127.0.0.1:{port}{PATH}"
            plain = httpx.get(url, params={"env": ENV, "key": stable_key})
            cached = httpx.get(
                url, params={"env": ENV, "key": stable_key}, headers={"If-None-Match": etag}
            )
            same = plain.content == reference.content and plain.headers["etag"] == etag
            if not same or cached.status_code != 304:
                raise SystemExit(f"{name} does not answer like ours did at first")
    except BaseException:
        for server in processes.values():
            server.kill()
        raise
    return Servers(processes, ports, stable_key, etag, reference.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; best")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--only",
        action="append",
        choices=["plain", "key", "304"],
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--no-asgi", action="store_true", help="skip the in-process figures")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--serve", nargs=2, metavar=("WHICH", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--etag", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.body, args.etag)
        return
    if args.load:
        python_load(json.loads(args.load))
        return

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    if loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --loadgen python")
    split = None if args.no_pin else cpu_split()
    server_cpus, load_cpus = split or (None, None)

    with tempfile.TemporaryDirectory(prefix="promptctl-bench-") as tmp:
        workdir = Path(tmp)
        servers = start_servers(workdir, prepare(workdir), server_cpus)
        try:
            scenarios = [
                Scenario("plain", f"env={ENV}"),
                Scenario("key", f"env={ENV}", keyed=True),
                Scenario("304", f"env={ENV}&key={servers.stable_key}", if_none_match=servers.etag),
            ]
            opts = uvicorn_options()
            pinning = f"servers on CPU {sorted(server_cpus)}" if server_cpus else "no pinning"
            print(
                f"uvicorn: loop={opts['loop']} http={opts['http']} workers=1; load: {loadgen}, "
                f"{args.connections} connections, {args.duration:g}s after {args.warmup:g}s "
                f"warm-up, best of {args.rounds} rounds; {pinning}; "
                f"body {len(servers.body)} bytes; {load_average()}",
                flush=True,
            )

            def measure(server: subprocess.Popen, port: int, scenario: Scenario) -> Figures:
                def load(seconds: float) -> Figures:
                    if loadgen == "python":
                        return run_python(port, scenario, args.connections, seconds, load_cpus)
                    return run_wrk(
                        port, scenario, args.connections, args.threads, seconds, load_cpus, workdir
                    )

                load(args.warmup)  # discarded
                before = cpu_seconds(server.pid)
                figures = load(args.duration)
                after = cpu_seconds(server.pid)
                if before is not None and after is not None and figures.requests:
                    figures.cpu_us = (after - before) / figures.requests * 1e6
                return figures

            targets = {who: (servers.processes[who], servers.ports[who]) for who in SERVERS}
            results = {}
            print(
                f"{'scenario':8} {'server':6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'CPU us/req':>10} {'errors':>6}"
            )
            for scenario in scenarios:
                if args.only and scenario.name not in args.only:
                    continue
                rounds: dict[str, list[Figures]] = {who: [] for who in SERVERS}
                for _ in range(args.rounds):  # alternate, so drift hits all alike
                    for who, (server, port) in targets.items():
                        rounds[who].append(measure(server, port, scenario))
                results[scenario.name] = report(scenario.name, rounds)
            if not args.no_asgi:
                chosen = [s for s in scenarios if not args.only or s.name in args.only]
                results["app_alone"] = app_alone(workdir, servers, chosen)
            print(f"after the run: {load_average()}", flush=True)
            results["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            servers.stop()


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes) and CPU count, for beside the figures."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def report(name: str, rounds: dict[str, list[Figures]]) -> dict[str, object]:
    """Print one scenario's best rounds and ratios; return them for --json."""
    best = {who: best_round(figures) for who, figures in rounds.items()}
    for who, fig in best.items():
        cpu = f"{fig.cpu_us:10.0f}" if fig.cpu_us else f"{'-':>10}"
        print(
            f"{name:8} {who:6} {fig.rps:8,.0f} {fig.p50_ms:7.2f} {fig.p99_ms:7.2f} "
            f"{cpu} {fig.errors:6}"
        )
    ours = best["ours"]
    figures: dict[str, object] = {who: asdict(fig) for who, fig in best.items()}
    for baseline, goal in (("bare", 1.0), ("raw", 0.6)):
        other = best[baseline]
        ratio = ours.rps / other.rps
        by_cpu = other.cpu_us / ours.cpu_us if ours.cpu_us and other.cpu_us else None
        per_round = ", ".join(
            f"{o.rps:,.0f}/{b.rps:,.0f}"
            for o, b in zip(rounds["ours"], rounds[baseline], strict=True)
        )
        print(
            f"{name:8} ours/{baseline}: {ratio:.2f}x throughput"
            + (f", {by_cpu:.2f}x by CPU time per request" if by_cpu else "")
            + f" (goal >= {goal:g}); req/s per round ours/{baseline}: {per_round}",
            flush=True,
        )
        suffix = "" if baseline == "bare" else "_raw"
        figures[f"ratio{suffix}"] = ratio
        figures[f"ratio{suffix}_by_cpu"] = by_cpu
    return figures


if __name__ == "__main__":
    main()
