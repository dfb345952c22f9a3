"""What the client tests share: a real `promptctl serve` process and the CLI to feed it.

Every test here talks to the service through a real socket. A server is a subprocess
(`python -m promptctl serve --port 0`, the port read back from uvicorn's started line; a
restart comes back on the same port) over a git repository holding copies of the example
prompts in `prompts/` (commit 1, all v1) and a second commit that makes v2 of
`support/triage`. Releases are made with the `promptctl` command (run in-process with
click's runner, so it costs no interpreter start), exactly as an operator would.

Starting a server costs seconds (an interpreter importing FastAPI, SQLAlchemy and
pygit2), so the tests that only read share one server per session (`shared_server`, on
SQLite), and isolate what they write by working in an environment of their own
(`fresh_env`). Tests that stop, restart or reconfigure a server start their own
(`start_server`, `server`), on the test's migrated database (`migrated_database_url`):
SQLite, and PostgreSQL too when PROMPTCTL_TEST_POSTGRES_URL is exported. The fixtures are in
conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from support import ServeProcess, wait_until

from promptctl.cli.main import cli
from promptctl.registry.releases.routing import assign

EXAMPLES = Path(__file__).resolve().parents[2] / "prompts"
ENV = "production"
CANARY_PROMPT = "support/triage"
CANARY_PERCENT = 30
TRIAGE_V2_LINE = "Answer in the language the customer wrote in.\n"

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def _clean_environ() -> dict[str, str]:
    """This process's environment without any PROMPTCTL_* setting of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")}


def run_promptctl(repo: Path, database_url: str, *args: str) -> str:
    """Run `promptctl --repo R --database-url U ARGS…`; fail the test on a non-zero exit."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PROMPTCTL_")}
    overrides["PROMPTCTL_ACTOR"] = "client-tests"
    result = CliRunner().invoke(
        cli,
        ["--repo", str(repo), "--database-url", database_url, *args],
        env=overrides,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, f"promptctl {' '.join(args)} failed:\n{result.output}"
    return result.stdout


def build_example_repo(path: Path) -> Path:
    """Commit copies of the example prompts, then a second commit making triage v2."""
    path.mkdir(parents=True)
    home = path.parent / (path.name + "-home")
    home.mkdir()
    env = {
        **_clean_environ(),
        **_GIT_IDENTITY,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    shutil.copytree(EXAMPLES, path / "prompts")
    git("add", "-A")
    git("commit", "-q", "-m", "the example prompts")
    triage = path / "prompts" / "support" / "triage.prompt"
    text = triage.read_text(encoding="utf-8")
    anchor = "Read the ticket, decide how it should be routed"
    assert anchor in text
    triage.write_text(text.replace(anchor, TRIAGE_V2_LINE + anchor, 1), encoding="utf-8")
    git("commit", "-q", "-am", "triage: answer in the customer's language")
    return path


class ServerProcess:
    """`promptctl serve` as a subprocess: start, kill (SIGKILL) and restart on one port.

    The first start binds a port of the server's choosing (`--port 0`); later starts come
    back on that same port, since clients hold its URL.
    """

    def __init__(self, repo: Path, database_url: str, workdir: Path, *, tokens: bool = False):
        self.repo = repo
        self.database_url = database_url
        self.workdir = workdir
        self.tokens = tokens
        self.port: int | None = None
        self.processes: list[ServeProcess] = []

    @property
    def url(self) -> str:
        assert self.port is not None, "the server was never started"
        return f"http://127.0.0.1:{self.port}"

    # -- the process -----------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Start the server and wait until uvicorn listens (its app's start-up done)."""
        assert not self.running, "already running"
        command = [
            sys.executable,
            "-m",
            "promptctl",
            "--repo",
            str(self.repo),
            "--database-url",
            self.database_url,
            "serve",
            "--port",
            str(self.port or 0),
            "--log-level",
            "info",  # where uvicorn says which port it listens on
        ]
        if self.tokens:
            command.append("--tokens")
        env = {**_clean_environ(), "PROMPTCTL_POLL_INTERVAL": "0.2", "PYTHONUNBUFFERED": "1"}
        process = ServeProcess(command, cwd=self.workdir, env=env)
        self.processes.append(process)
        try:
            process.wait_started()
        except BaseException:
            process.stop()
            raise
        self.port = process.port
        return self

    @property
    def running(self) -> bool:
        return bool(self.processes) and self.processes[-1].process.poll() is None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): no graceful shutdown, requests cut mid-way."""
        if self.processes:
            self.processes[-1].kill()

    def stop(self) -> None:
        if self.processes:
            self.processes[-1].stop()

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        """The end of the output of every start, for a failure message."""
        text = "".join(
            f"\n--- start {number} ---\n{process.output()}"
            for number, process in enumerate(self.processes, 1)
        )
        return text[-4000:]

    # -- what tests do with it ---------------------------------------------------------

    def promptctl(self, *args: str) -> str:
        """Run a promptctl command on this server's repository and database."""
        return run_promptctl(self.repo, self.database_url, *args)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=15.0, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=15.0, **kwargs)

    def release(self, name: str, env: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.get(f"/v1/prompts/{name}/release", params={"env": env}, headers=headers)

    def wait_for_release(
        self, name: str, env: str, *, revision: int | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Wait until the server serves a release of `name` in `env` (at `revision`)."""

        def served() -> dict[str, Any] | None:
            response = self.release(name, env, token)
            if response.status_code != 200:
                return None
            document = response.json()
            if revision is not None and document["revision"] != revision:
                return None
            return document

        return wait_until(served, what=f"{name} released in {env} (revision {revision})")

    def summary(self, name: str, env: str) -> dict[str, Any]:
        response = self.get(f"/v1/prompts/{name}/metrics", params={"env": env})
        assert response.status_code == 200, response.text
        return response.json()

    def count(self, name: str, env: str) -> int:
        """Events the server's summary counts for a prompt in an environment."""
        return sum(v["count"] for v in self.summary(name, env)["versions"])

    def release_examples(self, env: str, token: str | None = None) -> None:
        """Release every example at v1 in `env`, and triage v2 as a canary there."""
        if env != ENV:
            self.promptctl("env", "create", env)
        self.promptctl("promote", "--all", "HEAD~1", "--env", env, "--yes")
        self.start_canary(env)
        for name in example_names():
            self.wait_for_release(name, env, token=token)
        self.wait_for_release(CANARY_PROMPT, env, revision=2, token=token)

    def start_canary(self, env: str) -> None:
        self.promptctl(
            "promote",
            f"{CANARY_PROMPT}@v2",
            "--env",
            env,
            "--canary",
            str(CANARY_PERCENT),
            "--yes",
        )


def example_names() -> list[str]:
    """The prompt names of the examples: every .prompt file below prompts/."""
    return sorted(
        p.relative_to(EXAMPLES).with_suffix("").as_posix() for p in EXAMPLES.rglob("*.prompt")
    )


def key_for(name: str, release: dict[str, Any], variant: str) -> str:
    """A stickiness key that the release routes to `variant`."""
    canary = release["canary"]["digest"] if release.get("canary") else None
    for i in range(10_000):
        key = f"user-{i}"
        if assign(name, canary, release["canary_weight_bp"], key) == variant:
            return key
    raise AssertionError(f"no key routes to {variant}")


class SilentServer:
    """A server that accepts connections and never answers: the kernel completes the
    handshake and takes the request in; nobody ever replies."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held: list[socket.socket] = []

    def held_request(self, timeout: float = 15.0) -> bytes:
        """Wait until a request has arrived (`timeout` guards against a hang); return its
        head. The connection stays open and the request unanswered until `close`."""
        self.socket.settimeout(timeout)
        connection, _ = self.socket.accept()
        self.held.append(connection)
        connection.settimeout(timeout)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(65536)
            if not chunk:
                break
            head += chunk
        return head

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.socket.close()


@dataclass
class Exchange:
    """One request a transport made: what was asked, and what came back."""

    method: str
    path: str
    status: int | None
    if_none_match: str | None
    error: str | None = None  # the httpx error that ended it instead of an answer

    @property
    def pending(self) -> bool:
        """Sent, and neither answered nor failed yet."""
        return self.status is None and self.error is None


class RecordingTransport(httpx.HTTPTransport):
    """A real transport that records every request, and can be re-pointed at another port
    (a dead one to take the server away, a silent one to make it hang) and back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[Exchange] = []
        self.streams: list[Exchange] = []
        self.port: int | None = None

    def route_to(self, port: int | None) -> None:
        """Send requests to this port on 127.0.0.1 instead (None: where they were going)."""
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.port is not None:
            request.url = request.url.copy_with(port=self.port)
        call = Exchange(
            request.method, request.url.path, None, request.headers.get("if-none-match")
        )
        # The change stream is the background connection of its own, not a request of
        # the ones tests count: kept apart.
        (self.streams if call.path == "/v1/stream" else self.calls).append(call)
        try:
            response = super().handle_request(request)
        except httpx.HTTPError as exc:
            call.error = type(exc).__name__
            raise
        call.status = response.status_code
        return response

    def count(self, path_part: str = "") -> int:
        return sum(1 for c in self.calls if path_part in c.path)


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    """The asyncio twin of RecordingTransport."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[Exchange] = []
        self.streams: list[Exchange] = []
        self.port: int | None = None

    def route_to(self, port: int | None) -> None:
        self.port = port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.port is not None:
            request.url = request.url.copy_with(port=self.port)
        call = Exchange(
            request.method, request.url.path, None, request.headers.get("if-none-match")
        )
        # The change stream is the background connection of its own, not a request of
        # the ones tests count: kept apart.
        (self.streams if call.path == "/v1/stream" else self.calls).append(call)
        try:
            response = await super().handle_async_request(request)
        except httpx.HTTPError as exc:
            call.error = type(exc).__name__
            raise
        call.status = response.status_code
        return response

    def count(self, path_part: str = "") -> int:
        return sum(1 for c in self.calls if path_part in c.path)
