"""Client benchmark: resolution and rendering on a cache hit, and event delivery.

    .venv/bin/python bench/client.py [--calls 200000] [--events 50000]

1. `get` alone (resolution: memory lookup + sticky routing), `get` + `render`, and as the
   baseline the same template rendered with Jinja2 directly (a plain Environment with the
   same partial loader, compiled once), all per call in the same run. Goal: resolution
   itself under 5 us.
2. Events per second through `track` with a real server (uvicorn on an ephemeral port):
   time from the first `track` until `flush` returns with every event accepted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from jinja2 import DictLoader, Environment, StrictUndefined

ROOT = Path(__file__).resolve().parent.parent

from promptctl.client import PromptClient  # noqa: E402

PROMPT = "support/triage"
SAMPLE = {"ticket": "I was charged twice this month", "tier": "pro"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def promptctl(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "promptctl", *args],
        check=True,
        env=env,
        cwd=env["PROMPTCTL_REPO"],
        stdout=subprocess.DEVNULL,
    )


def start_server(workdir: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    repo = workdir / "repo"
    shutil.copytree(ROOT / "prompts", repo / "prompts")
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "prompts"]):
        subprocess.run(["git", *args], cwd=repo, env=git_env, check=True)
    env = {
        **git_env,
        "PROMPTCTL_REPO": str(repo),
        "PROMPTCTL_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
    }
    promptctl("promote", PROMPT, "--env", "staging", env=env)
    # A second version as a 10 % canary, so every `get` runs the sticky routing hash.
    triage = repo / "prompts" / f"{PROMPT}.prompt"
    triage.write_text(triage.read_text() + "\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "canary"], cwd=repo, env=git_env, check=True)
    promptctl("promote", PROMPT, "--env", "staging", "--canary", "10", env=env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "promptctl", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=repo,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return server, url, env
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def per_call(fn, calls: int) -> float:
    """Return microseconds per call (best of three runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, url, _ = start_server(Path(tmp))
        try:
            client = PromptClient(url, environment="staging", flush_interval=0.05)
            prompt = client.get(PROMPT, key="user-1")
            version = prompt._version
            files = version.files()
            jinja = Environment(
                loader=DictLoader(files),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                extensions=["promptctl.registry.prompts.rendering.MessageExtension"],
            )
            # The message extension needs our collector, so the baseline renders the same
            # body with message tags removed: what plain Jinja2 costs for the same text.
            plain = version.prompt.body.replace("{% message", "{% if true or")
            plain = plain.replace("{% endmessage %}", "{% endif %}")
            baseline = jinja.from_string(plain)
            values = {
                **{k: s.default for k, s in (version.prompt.inputs or {}).items() if s.has_default},
                **SAMPLE,
            }
            keys = [f"user-{i}" for i in range(1024)]
            counter = iter(range(10**12))

            def get() -> None:
                client.get(PROMPT, key=keys[next(counter) & 1023])

            def get_render() -> None:
                client.get(PROMPT, key=keys[next(counter) & 1023]).render(**SAMPLE)

            def jinja_render() -> None:
                baseline.render(values)

            calls = args.calls
            t_get = per_call(get, calls)
            t_get_render = per_call(get_render, calls // 10)
            t_jinja = per_call(jinja_render, calls // 10)
            print(f"client.get (cache hit, sticky key):   {t_get:8.2f} us/call   goal < 5 us")
            print(f"client.get + render:                  {t_get_render:8.2f} us/call")
            print(f"Jinja2 render of the same template:   {t_jinja:8.2f} us/call (baseline)")
            print(f"get+render / Jinja2 baseline:         {t_get_render / t_jinja:8.2f}x")

            start = time.perf_counter()
            for _ in range(args.events):
                with client.track(prompt) as call:
                    call.record(input_tokens=400, output_tokens=40, cost_usd=0.0004)
            queued = time.perf_counter() - start
            delivered = client.flush(timeout=120)
            total = time.perf_counter() - start
            stats = client.stats
            print(
                f"track: {args.events} events queued in {queued * 1000:.0f} ms "
                f"({queued / args.events * 1e6:.2f} us/event on the caller's thread)"
            )
            print(
                f"delivered: {delivered}, accepted {stats.events_sent}, "
                f"duplicates {stats.events_duplicate}, rejected {stats.events_rejected}, "
                f"dropped {stats.events_dropped}: {args.events / total:,.0f} events/s "
                "end to end"
            )
            client.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
