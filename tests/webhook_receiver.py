"""A real HTTP receiver of webhooks on loopback, for the webhook tests.

It binds its port at once and records every request it gets (headers and body bytes). It
can start refusing connections (bound, not listening: `down=True`), answer with another
status, or hold requests until released (a hanging receiver).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str) -> Any:
        """The JSON body, after the standardwebhooks library checked its signature."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """Records what it receives; `status` is what it answers, `hold` keeps requests
    waiting until it is set."""

    def __init__(self, *, down: bool = False, status: int = 200) -> None:
        self.received: list[Received] = []
        self.arrived = threading.Event()  # a request arrived (answered or held)
        self.status = status
        self.hold: threading.Event | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body))
                receiver.arrived.set()
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None
        if not down:
            self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        """Start listening (until now, connections were refused)."""
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        with self._lock:
            return [r.message_id for r in self.received]

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
