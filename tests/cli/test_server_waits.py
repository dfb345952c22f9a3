"""Waiting on a server: --timeout and its message, the spinner on a terminal only, Ctrl-C
during a release action, and `serve` on a port that is taken."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import STARTUP_TIMEOUT, on_terminal, promptctl_command

from promptctl.cli.context import Options
from promptctl.cli.waiting import interrupted_message
from promptctl.registry.releases.actions import Ramp
from promptctl.registry.releases.values import ReleaseState, VersionRef

TRIAGE = "support/triage"


@contextmanager
def hung_server() -> Iterator[str]:
    """A server that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")}


def test_a_hung_server_fails_after_the_timeout_naming_server_and_timeout(repo):
    with hung_server() as url:
        result = subprocess.run(
            [*promptctl_command(), "--repo", str(repo.path), "status", "--server", url]
            + ["--timeout", "0.5"],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=STARTUP_TIMEOUT,
        )

    assert result.returncode == 1
    assert result.stderr == (
        f"error: the server at {url} did not answer within 0.5 s "
        "(--timeout or PROMPTCTL_TIMEOUT to wait longer)\n"
    )


def test_the_timeout_comes_from_promptctl_timeout_too(repo):
    with hung_server() as url:
        result = subprocess.run(
            [*promptctl_command(), "--repo", str(repo.path), "env", "list"],
            capture_output=True,
            text=True,
            env={**environment(), "PROMPTCTL_SERVER": url, "PROMPTCTL_TIMEOUT": "0.5"},
            timeout=STARTUP_TIMEOUT,
        )

    assert result.returncode == 1
    assert "did not answer within 0.5 s" in result.stderr
    assert "waiting for" not in result.stderr  # no spinner in a pipe


def test_on_a_terminal_a_spinner_shows_while_waiting(repo):
    with hung_server() as url:
        code, shown = on_terminal(
            [*promptctl_command(), "--repo", str(repo.path), "--server", url, "env", "list"]
            + ["--timeout", "2"],
            env=environment(),
        )

    assert code == 1
    assert f"waiting for {url}" in shown
    assert "did not answer within 2 s" in shown


# -- Ctrl-C during a release action ---------------------------------------------------------


def state(revision: int, weight_bp: int) -> dict:
    """A release as the server's API answers it, built by the value object that reads it."""
    return ReleaseState(
        prompt=TRIAGE,
        environment="staging",
        stable=VersionRef("a" * 64, 1),
        canary=VersionRef("b" * 64, 2),
        weight_bp=weight_bp,
        revision=revision,
        updated_at=datetime(2025, 1, 1, tzinfo=UTC),
        updated_by="alice",
    ).to_json()


class StubServer:
    """Answers reads of the release with `release`; holds every action (POST) unanswered,
    after switching `release` to `after_post`, until the test ends."""

    def __init__(self, release: dict, after_post: dict) -> None:
        self.release = release
        self.after_post = after_post
        self.posted = threading.Event()
        self.done = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = json.dumps([stub.release]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                stub.release = stub.after_post
                stub.posted.set()
                stub.done.wait(STARTUP_TIMEOUT)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def __enter__(self) -> StubServer:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.http.shutdown()
        self.http.server_close()


def interrupt_a_ramp(repo, stub: StubServer) -> subprocess.CompletedProcess[str]:
    """Ramp through the stub, press Ctrl-C once the action is on its way, and wait."""
    command = [*promptctl_command(), "--repo", str(repo.path), "--server", stub.url]
    command += ["canary", TRIAGE, "--env", "staging", "--weight", "20"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
    )
    try:
        assert stub.posted.wait(STARTUP_TIMEOUT), "the action never reached the server"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_ctrl_c_says_not_applied_when_the_release_did_not_move(repo):
    with StubServer(state(3, 1000), after_post=state(3, 1000)) as stub:
        result = interrupt_a_ramp(repo, stub)

    assert result.returncode == 130
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"error: interrupted: the change was not applied ({TRIAGE} in staging is still at "
        "revision 3); if the server was still at work on it, check "
        f"'promptctl status {TRIAGE} --env staging' in a moment"
    )
    assert "Traceback" not in result.stderr


def test_ctrl_c_says_applied_when_the_release_shows_the_change(repo):
    with StubServer(state(3, 1000), after_post=state(4, 2000)) as stub:
        result = interrupt_a_ramp(repo, stub)

    assert result.returncode == 130
    assert result.stderr == (
        f"error: interrupted, but the change was applied: {TRIAGE} in staging is at revision 4\n"
    )


def test_ctrl_c_says_unknown_when_someone_else_changed_the_release(repo):
    with StubServer(state(3, 1000), after_post=state(4, 7000)) as stub:
        result = interrupt_a_ramp(repo, stub)

    assert result.returncode == 130
    assert "unknown whether the change was applied" in result.stderr
    assert f"check 'promptctl status {TRIAGE} --env staging'" in result.stderr


def test_ctrl_c_before_the_action_is_sent_says_nothing_changed(repo):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        command = [*promptctl_command(), "--repo", str(repo.path), "--server", url]
        command += ["canary", TRIAGE, "--env", "staging", "--weight", "20"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
        )
        try:
            sock.settimeout(STARTUP_TIMEOUT)
            connection, _ = sock.accept()  # the read of the release, never answered
            with connection:
                assert connection.recv(4096).startswith(b"GET ")
                process.send_signal(signal.SIGINT)
                stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()

    assert process.returncode == 130
    assert stdout == ""
    assert stderr == "error: interrupted before the change was sent: nothing changed\n"


@pytest.fixture
def local(repo, migrated_database_url) -> Options:
    return Options({"repo": str(repo.path), "database_url": migrated_database_url})


def test_after_ctrl_c_the_local_database_tells_whether_the_transaction_committed(local, run):
    for args in (["promote", f"{TRIAGE}@v1"], ["promote", f"{TRIAGE}@v2", "--canary", "10"]):
        assert run(*args, "--env", "staging").exit_code == 0
    before = local.registry.status(TRIAGE, "staging")[0]
    ramp = Ramp(prompt=TRIAGE, environment="staging", weight_bp=2000)

    # Interrupted before the transaction committed: the release is as it was.
    assert interrupted_message(local, ramp, before) == (
        f"interrupted: the change was not applied ({TRIAGE} in staging is still at revision 2)"
    )
    local.registry.perform(ramp)  # committed before the interruption
    assert interrupted_message(local, ramp, before) == (
        f"interrupted, but the change was applied: {TRIAGE} in staging is at revision 3"
    )


# -- serve on a taken port ------------------------------------------------------------------


def test_serve_on_a_taken_port_fails_at_once_naming_it(repo, migrated_database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*promptctl_command(), "--repo", str(repo.path), "--database-url"]
            + [migrated_database_url, "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=STARTUP_TIMEOUT,
        )

    assert result.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is in use" in result.stderr
    assert "startup complete" not in result.stderr
    assert "Traceback" not in result.stderr
