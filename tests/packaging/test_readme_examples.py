"""The README's examples, run as written against a live server.

Convention (stated in one line at the top of README.md too): every ```sh and ```python
block in the README is an example that runs as written; a block that is not to be run
(the `make run` / `make test` set-up, pip installs, a prompt file, a layout) is fenced
```console, ```text, ```toml or with a plain ```. Any other fence language fails
`test_every_readme_block_is_run_or_declared_not_to_run`, so an example cannot drop out of
the tests by being fenced ```bash.

The server is set up as `make run` sets it up: a temporary git repository holds copies of
the example prompts (`prompts/`) and `promptctl.toml`; the recipe lines of the Makefile's
`run` target run in it (lint, db upgrade, the promotions, status) and its last line,
`promptctl serve … --port ${PROMPTCTL_PORT:-8080}`, starts the server with PROMPTCTL_PORT=0:
it binds a port of its own, read back from uvicorn's started line. Before a block runs,
exactly two things change in its text:

- `localhost:8080` → `localhost:<the server's port>`;
- `.venv/bin/` → the bin directory of the venv running these tests (the checkout's
  `.venv/bin/` under `make test`); `$(BIN)` in the Makefile maps to the same directory.

A shell block runs with `sh -e` in a fresh directory. `curl` on its PATH is a thin wrapper
that runs the real curl with the block's arguments, passes the answer through unchanged,
and fails the block on an HTTP status outside 2xx or an empty answer; it logs every call
so the test can check it. A python block runs with the venv's python in a fresh directory
and must exit 0 without a traceback, printing what it prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import ServeProcess

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
BIN = Path(sys.executable).parent
RUN = {"sh", "python"}
NOT_RUN = {"console", "text", "toml", "json", ""}  # json: a payload shown, never run
FENCE = re.compile(r"^```(\S*)\s*$")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Readme Test",
    "GIT_AUTHOR_EMAIL": "readme@example.com",
    "GIT_COMMITTER_NAME": "Readme Test",
    "GIT_COMMITTER_EMAIL": "readme@example.com",
}

CURL_WRAPPER = """\
#!/bin/sh
# curl as the README writes it: the answer passes through unchanged; the status and URL
# are logged, and a status outside 2xx or an empty answer fails the command.
answer=$(mktemp "$CURL_LOG_DIR/answer.XXXXXX")
written=$("$REAL_CURL" -o "$answer" -w '%{http_code} %{url_effective}' "$@") || {
    cat "$answer"; exit 1; }
cat "$answer"
status=${written%% *}
printf '%s %s %s\\n' "$status" "$answer" "${written#* }" >> "$CURL_LOG_DIR/calls"
case "$status" in 2??) ;; *) echo "curl: HTTP $status from ${written#* }" >&2; exit 22 ;; esac
[ -s "$answer" ] || { echo "curl: empty answer from ${written#* }" >&2; exit 1; }
"""


@dataclass(frozen=True)
class Block:
    language: str
    line: int  # of the opening fence, 1-based
    text: str

    @property
    def id(self) -> str:
        return f"{self.language or 'plain'}-line{self.line}"


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, with its language and where it starts."""
    blocks: list[Block] = []
    opened: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if opened is None and fence:
            opened, body = (fence.group(1), number), []
        elif opened is not None and line.strip() == "```":
            blocks.append(Block(opened[0], opened[1], "\n".join(body) + "\n"))
            opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"README.md: the block opened at line {opened[1]} never closes"
    return blocks


EXAMPLES = [block for block in readme_blocks() if block.language in RUN]


def make_run_recipe() -> list[str]:
    """The recipe lines of the Makefile's `run` target, as the shell would get them."""
    lines = (CHECKOUT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"run\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line[1:].replace("$(BIN)", str(BIN)).replace("$$", "$"))
    return recipe


@dataclass
class LiveServer:
    port: int
    url: str
    env: dict[str, str]
    workdir: Path

    def adapt(self, text: str) -> str:
        """The only changes made to a block: the port, and where .venv/bin/ is."""
        return text.replace("localhost:8080", f"localhost:{self.port}").replace(
            ".venv/bin/", f"{BIN}/"
        )

    def count(self, name: str, env: str) -> int:
        response = httpx.get(f"{self.url}/v1/prompts/{name}/metrics", params={"env": env})
        assert response.status_code == 200, response.text
        return sum(v["count"] for v in response.json()["versions"])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The example prompts released and served as `make run` does, on a port of its own."""
    workdir = tmp_path_factory.mktemp("readme")
    home = workdir / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Readme Test\n\temail = readme@example.com\n")
    real_curl = shutil.which("curl")
    assert real_curl, "the README's examples need curl"
    wrappers = workdir / "bin"
    wrappers.mkdir()
    (wrappers / "curl").write_text(CURL_WRAPPER)
    (wrappers / "curl").chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")},
        **GIT_IDENTITY,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "PATH": f"{wrappers}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "REAL_CURL": real_curl,
        "PROMPTCTL_PORT": "0",  # the server binds a port of its own and says which
    }
    env.pop("PYTHONPATH", None)

    repo = workdir / "repo"
    repo.mkdir()
    shutil.copytree(CHECKOUT / "prompts", repo / "prompts")
    shutil.copy2(CHECKOUT / "promptctl.toml", repo / "promptctl.toml")
    for git in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "examples"]):
        subprocess.run(["git", *git], cwd=repo, env=env, check=True, capture_output=True)

    *steps, serve = make_run_recipe()
    assert "promptctl serve" in serve, f"the Makefile's run target no longer ends in serve: {serve}"
    for step in steps:
        done = subprocess.run(["sh", "-ec", step], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"make run step failed: {step}\n{done.stdout}{done.stderr}"

    # exec: the shell becomes the server, so stopping it stops the server.
    server = ServeProcess(["sh", "-ec", f"exec {serve}"], cwd=repo, env=env)
    try:
        server.wait_started()
        # The blocks see the port the server took, as `make run`'s shell would have it.
        blocks_env = {**env, "PROMPTCTL_PORT": str(server.port)}
        yield LiveServer(server.port, server.url, blocks_env, workdir)
    finally:
        server.stop()


def test_every_readme_block_is_run_or_declared_not_to_run():
    blocks = readme_blocks()
    unknown = [b.id for b in blocks if b.language not in RUN | NOT_RUN]
    assert unknown == [], "fence these ```sh/```python (to run) or ```console/```text (not)"
    languages = [b.language for b in EXAMPLES]
    assert languages.count("sh") >= 2
    assert languages.count("python") >= 1


@pytest.mark.parametrize("block", EXAMPLES, ids=[b.id for b in EXAMPLES])
def test_readme_example_runs_as_written(block, live_server, tmp_path):
    text = live_server.adapt(block.text)
    log_dir = tmp_path / "curl"
    log_dir.mkdir()
    env = {**live_server.env, "CURL_LOG_DIR": str(log_dir)}
    tracked_before = live_server.count("support/triage", "production")
    if block.language == "sh":
        command = ["sh", "-ec", text]
    else:
        script = tmp_path / "example.py"
        script.write_text(text, encoding="utf-8")
        command = [str(BIN / "python"), str(script)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (
        f"README.md line {block.line} ({block.language}) exited {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr

    calls = (log_dir / "calls").read_text().splitlines() if (log_dir / "calls").exists() else []
    assert len(calls) == len(re.findall(r"(?m)^\s*(?:\w+=\$\()?curl ", block.text))
    for call in calls:
        status, answer, url = call.split(" ", 2)
        assert status.startswith("2"), call
        assert Path(answer).stat().st_size > 0, call
        if url.endswith("/v1/metrics"):
            results = json.loads(Path(answer).read_text())["results"]
            assert {r["status"] for r in results} <= {"accepted", "duplicate"}, results
    if "promptctl status" in block.text:
        assert "support/triage" in done.stdout
    if "print(" in block.text:
        assert done.stdout.strip(), "the example prints nothing"
    if ".track(" in block.text:
        # close() flushed the example's event to the server.
        assert live_server.count("support/triage", "production") == tracked_before + 1
    shown = done.stdout if len(done.stdout) < 400 else done.stdout[:400] + " …"
    print(f"\n[README.md line {block.line}] {shown.strip()}")
