"""What the tests of every package share: waiting for a condition, and servers that bind
their own ports.

Importable as `support` from any test module: pytest puts tests/, the folder of the root
conftest.py, on sys.path.

- `wait_until` (and `async_wait_until`) is the one poll loop. Its timeout guards against a
  hang; it is never a measurement, so no test asserts how long anything took.
- A server always binds the port itself (port 0) and says which one it got: `serving` runs
  an app with uvicorn in a thread and reads the port from uvicorn's socket; `ServeProcess`
  runs `promptctl serve --port 0` and reads it from uvicorn's started line. No test picks a
  free port and binds it later (another process could take it in between).
- `refused_port` is a port on which connections are refused, held for as long as a test
  needs "a server that is down".
- `promptctl_command` is the installed `promptctl` beside this interpreter (else
  `python -m promptctl`), for tests that run the command as a subprocess.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn


def promptctl_command() -> list[str]:
    """The `promptctl` command as a subprocess argument list."""
    beside = Path(sys.executable).parent / "promptctl"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "promptctl"]


STARTUP_TIMEOUT = 60.0  # a guard against a server that never starts, never a measurement
STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Call `condition` until it returns something truthy and return that; fail the test
    when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """`wait_until` for asyncio: awaits `condition`, and sleeps without blocking the loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(interval)


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses every connection while the block runs.

    A socket is bound to it and never listens: a connection gets a reset at once, as from a
    server that is down, and no other process can start listening there meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class _ThreadServer(uvicorn.Server):
    """uvicorn's server, saying when its start-up is over (bound and serving, or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:  # uvicorn leaves with SystemExit when it cannot start
            self.startup_over.set()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread, on a port it binds itself; yield its base URL.

    Cheaper than a subprocess. Stops the server when the block ends.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        server.startup_over.wait(STARTUP_TIMEOUT)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ServeProcess:
    """A `promptctl serve` subprocess; its port is read from uvicorn's started line.

    `command` ends in `serve --port 0` (or the port of an earlier process, to come back on
    the same address) and must log at info level, where uvicorn says where it listens.
    The output is read for the whole life of the process, so the pipe never fills up.
    """

    def __init__(self, command: list[str], **popen: Any) -> None:
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = STARTED.search(line)
            if found and self.port is None:
                self.port = int(found.group(1))
                self._started.set()
        self._started.set()  # the process ended

    def wait_started(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """Wait until uvicorn listens (the app's start-up is done by then); return the URL."""
        self._started.wait(timeout)
        assert self.port is not None, "promptctl serve did not start:\n" + self.output()
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): no graceful shutdown, requests cut mid-way."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)


def on_terminal(
    command: list[str], *, answer: str = "", env: dict[str, str] | None = None, **popen: Any
) -> tuple[int, str]:
    """Run `command` with stdin, stdout and stderr on a pseudo-terminal, type `answer` into
    it, and return the exit code and everything it showed (newlines as '\\n').

    The answer waits in the terminal's line buffer until the command reads it. The guard
    against a hang is STARTUP_TIMEOUT, never a measurement.
    """
    import os
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, **popen)
    os.close(slave)
    if answer:
        os.write(master, answer.encode())
    shown = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], STARTUP_TIMEOUT)
            if not ready:
                process.kill()
                pytest.fail(f"{command} showed nothing for {STARTUP_TIMEOUT} s: {shown!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = process.wait(STARTUP_TIMEOUT)
    finally:
        os.close(master)
    return code, shown.decode(errors="replace").replace("\r\n", "\n")
