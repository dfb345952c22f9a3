"""Client import benchmark: what `import promptctl.client` costs an application's start.

    .venv/bin/python bench/client_import.py [--runs 15]

Each import runs in a fresh interpreter (`python -c "import X"`), timed inside that
interpreter with perf_counter around the import alone, so interpreter start-up is not
counted. The baseline, in the same run, is `import httpx` alone: the one dependency the
client needs to talk to a server. The client imports httpx only when a client with a
server is built, so its import should be about the baseline's or less. Also printed:
how many modules each import adds to sys.modules, and whether any library that only the
server, the database, git or the command needs got loaded (it must not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

HEAVY = (
    "pygit2",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "click",
    "pydantic",
    "pydantic_settings",
)

PROBE = """
import sys, time, json
before = set(sys.modules)
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
added = set(sys.modules) - before
print(json.dumps({{"ms": elapsed * 1000, "modules": len(added),
                  "top": sorted({{m.partition(".")[0] for m in added}})}}))
"""


def measure(module: str, runs: int) -> tuple[float, float, int, list[str]]:
    """Return (median ms, min ms, modules added, heavy libraries loaded) over `runs`."""
    times: list[float] = []
    counts: set[int] = set()
    heavy: set[str] = set()
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(result.stdout)
        times.append(data["ms"])
        counts.add(data["modules"])
        heavy.update(set(data["top"]).intersection(HEAVY))
    return statistics.median(times), min(times), max(counts), sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = {module: measure(module, args.runs) for module in ("promptctl.client", "httpx")}
    for module, (median, best, modules, heavy) in rows.items():
        label = f"import {module}:"
        print(
            f"{label:26} median {median:7.1f} ms   min {best:7.1f} ms   "
            f"{modules:4d} modules   heavy: {', '.join(heavy) or 'none'}"
        )
    client, httpx = rows["promptctl.client"], rows["httpx"]
    print(
        f"client / httpx (baseline): {client[0] / httpx[0]:6.2f}x median, "
        f"{client[2] / httpx[2]:.2f}x modules ({args.runs} fresh interpreters each)"
    )


if __name__ == "__main__":
    main()
