"""Dashboard benchmark: the overview with 1,000 prompts × 3 environments, and a prompt page
with 30 days of rollups.

    .venv/bin/python bench/dashboard.py                 # SQLite
    .venv/bin/python bench/dashboard.py --prompts 300 --runs 5

Setup: a git repository with `--prompts` prompts (one commit, then a second version of
every tenth prompt); every prompt released stable in development, staging and production,
every tenth with its second version as a 10 % canary in staging; calls of the last hour
for every release through the real ingest (`MetricsService.ingest`), a few per release.
For the
prompt page, `p0000` in production with v1 stable and v2 a 20 % canary and calls spread
over 30 days (six an hour per variant: 720 hour rows and 4,320 minute rows per variant).

Measured in process through the ASGI app (Starlette's TestClient, so routing, the view,
the template and the response; no socket), median of `--runs` after one warm-up:

- overview: GET /
- overview JSON: GET /?format=json
- prompt 30d / 7d / 24h: GET /prompts/p0000?env=production&range=...

Goal: each page under 150 ms of server time. Printed, nothing asserted: the wall-clock
median, and the CPU time the process spent (all its threads), which stays meaningful on a
machine other work keeps busy, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from fastapi.testclient import TestClient  # noqa: E402

from promptctl.registry.releases.actions import Promote  # noqa: E402
from promptctl.server.app import create_app  # noqa: E402
from promptctl.server.settings import ServerSettings  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
ENVIRONMENTS = ("development", "staging", "production")
PAGE_PROMPT = "p0000"


def prompt_text(index: int, version: int) -> str:
    return (
        "---\n"
        f"description: Benchmark prompt {index}\n"
        "model: gpt-4o-mini\n"
        "input:\n"
        "  name: {type: string}\n"
        "samples:\n"
        "  - {name: Ada}\n"
        "---\n"
        f"Hello {{{{ name }}}}, prompt {index} version {version}.\n"
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True)


def make_repo(workdir: Path, prompts: int) -> tuple[Path, list[str]]:
    """The prompts in one commit, then a second version of every tenth prompt."""
    repo = workdir / "repo"
    (repo / "prompts").mkdir(parents=True)
    names = [f"p{i:04d}" for i in range(prompts)]
    for i, name in enumerate(names):
        (repo / "prompts" / f"{name}.prompt").write_text(prompt_text(i, 1), encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "prompts")
    canaries = names[::10]
    for name in canaries:
        index = int(name[1:])
        (repo / "prompts" / f"{name}.prompt").write_text(prompt_text(index, 2), encoding="utf-8")
    git(repo, "commit", "-qam", "second versions")
    return repo, canaries


def promote(registry, name: str, env: str, ref: str, canary_bp: int | None = None) -> None:
    registry.perform(
        Promote(
            prompt=name,
            environment=env,
            ref=ref,
            canary_bp=canary_bp,
            confirmed=True,
            actor="bench",
            reason=None,
            expected_revision=None,
        )
    )


def event(name: str, env: str, digest: str, at: datetime, i: int) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "prompt": name,
        "env": env,
        "digest": digest,
        "ts": at.isoformat(),
        "latency_ms": 150.0 + (i * 37) % 400,
        "error": i % 23 == 0,
        "input_tokens": 200 + i % 50,
        "output_tokens": 40 + i % 20,
        "quality": (i % 10) / 10,
    }


def ingest(registry, events: list[dict]) -> int:
    """Store `events` through the real ingest; return how many it refused (none expected)."""
    refused = 0
    for start in range(0, len(events), 1000):
        refused += registry.metrics.ingest(events[start : start + 1000]).rejected
    return refused


def setup(workdir: Path, prompts: int) -> TestClient:
    repo, canaries = make_repo(workdir, prompts)
    settings = ServerSettings(
        repo=repo,
        database_url=f"sqlite:///{workdir / 'registry.db'}",
        # Ingest refuses events older than the raw events' retention (7 days by default):
        # kept a little longer than the 30 days the prompt page shows.
        retention_events=timedelta(days=31),
    )
    app = create_app(settings)
    client = TestClient(app)
    client.__enter__()
    registry = app.state.ctx.registry
    started = time.perf_counter()
    for name in (f"p{i:04d}" for i in range(prompts)):
        for env in ENVIRONMENTS:
            promote(registry, name, env, "HEAD~1" if name in canaries else "HEAD")
    for name in canaries:
        promote(registry, name, "staging", "HEAD", canary_bp=1000)
    promote(registry, PAGE_PROMPT, "production", "HEAD", canary_bp=2000)
    print(f"released {prompts} prompts x 3 environments in {time.perf_counter() - started:.1f} s")

    now = datetime.now(UTC)
    recent = []
    for state in registry.status():
        for i in range(3):
            at = now - timedelta(minutes=5 * i + 1)
            recent.append(event(state.prompt, state.environment, state.stable.digest, at, i))
        if state.canary is not None:
            at = now - timedelta(minutes=2)
            recent.append(event(state.prompt, state.environment, state.canary.digest, at, 7))
    refused = ingest(registry, recent)

    [page] = registry.status(PAGE_PROMPT, "production")
    history = []
    for hour in range(30 * 24):
        for k in range(6):
            at = now - timedelta(hours=hour, minutes=10 * k + 3)
            history.append(event(PAGE_PROMPT, "production", page.stable.digest, at, hour + k))
            history.append(event(PAGE_PROMPT, "production", page.canary.digest, at, hour * k))
    refused += ingest(registry, history)
    print(f"ingested {len(recent)} recent events and {len(history)} over 30 days")
    if refused:
        raise SystemExit(f"ingest refused {refused} events: the pages would miss data")
    return client


def measure(client: TestClient, path: str, runs: int) -> tuple[float, float, int]:
    """Median wall-clock and CPU milliseconds of a request, and the answer's size."""
    response = client.get(path)  # warm-up
    assert response.status_code == 200, response.text[:500]
    wall, cpu = [], []
    for _ in range(runs):
        started, used = time.perf_counter(), time.process_time()
        response = client.get(path)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return statistics.median(wall), statistics.median(cpu), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        client = setup(Path(tmp), options.prompts)
        try:
            pages = {
                "overview": "/",
                "overview JSON": "/?format=json",
                "prompt 30d": f"/prompts/{PAGE_PROMPT}?env=production&range=30d",
                "prompt 7d": f"/prompts/{PAGE_PROMPT}?env=production&range=7d",
                "prompt 24h": f"/prompts/{PAGE_PROMPT}?env=production&range=24h",
            }
            print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            print(f"{'page':<16} {'wall ms':>10} {'cpu ms':>10} {'bytes':>10}")
            for label, path in pages.items():
                ms, cpu, size = measure(client, path, options.runs)
                print(f"{label:<16} {ms:>10.1f} {cpu:>10.1f} {size:>10,}")
            print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        finally:
            client.__exit__(None, None, None)


if __name__ == "__main__":
    main()
