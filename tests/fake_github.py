"""A fake of the few GitHub REST endpoints that keep a pull-request comment, over a socket.

`FakeGitHub` serves the issue-comments API from a thread on a port it binds itself (port
0): list (paginated like GitHub, with a `Link` header, but `page_size` comments a page
whatever `per_page` asks, so pagination shows with a handful of comments), create and
update. It checks the bearer token, refuses a body over GitHub's 65,536 characters with
422 as GitHub does, answers 403 to writes when `read_only` (the token a fork's pull
request gets) and 502 to everything when `down`, and records every request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 65_536
TOKEN = "ghs_fake-token"
REPOSITORY_ID = 4242

_LIST = re.compile(r"/(?:repos/(?P<repo>[^/]+/[^/]+)|repositories/\d+)/issues/(?P<n>\d+)/comments")
_ONE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)")


@dataclass
class FakeGitHub:
    """The state behind the fake API: comments per pull request, and what was asked."""

    repository: str = "acme/prompts"
    page_size: int = 2
    read_only: bool = False
    down: bool = False  # every answer a 502, as from GitHub in an outage
    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _next_id: int = 1000

    def add(self, number: int, body: str, user: str = "someone") -> dict[str, Any]:
        """Add a comment as another user would."""
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": {"login": user},
            "html_url": f"https://github.test/{self.repository}/pull/{number}"
            f"#issuecomment-{self._next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] in ("POST", "PATCH")]

    def pages_read(self) -> int:
        return sum(1 for method, _ in self.requests if method == "GET")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        fake.requests.append((method, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"null") if length else None
        if fake.down:
            return self._send(502, {"message": "Server Error"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"message": "Bad credentials"})
        parts = urlsplit(self.path)
        listing, one = _LIST.fullmatch(parts.path), _ONE.fullmatch(parts.path)
        if listing and method == "GET":
            return self._list(int(listing["n"]), parse_qs(parts.query))
        if method in ("POST", "PATCH") and fake.read_only:
            return self._send(403, {"message": "Resource not accessible by integration"})
        if method in ("POST", "PATCH"):
            body = (payload or {}).get("body")
            if not isinstance(body, str) or len(body) > BODY_LIMIT:
                return self._send(422, {"message": "Validation Failed: body is too long"})
        if listing and method == "POST":
            return self._send(201, fake.add(int(listing["n"]), body, user="github-actions[bot]"))
        if one and method == "PATCH":
            for comments in fake.comments.values():
                for comment in comments:
                    if comment["id"] == int(one["id"]):
                        comment["body"] = body
                        return self._send(200, comment)
        return self._send(404, {"message": "Not Found"})

    def _list(self, number: int, query: dict[str, list[str]]) -> None:
        fake = self.server.fake
        page = int(query.get("page", ["1"])[0])
        size = min(int(query.get("per_page", ["30"])[0]), fake.page_size)
        comments = fake.comments.get(number, [])
        last = max(1, -(-len(comments) // size))
        links = []
        if page < last:
            # GitHub's own next links name the repository by id, not by owner/name: a
            # client must follow them as given, never rebuild them.
            base = f"{fake.url}/repositories/{REPOSITORY_ID}/issues/{number}/comments"
            links.append(f'<{base}?per_page={size}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={size}&page={last}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        self._send(200, comments[(page - 1) * size : page * size], headers)

    def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub


@contextmanager
def fake_github(**options: Any) -> Iterator[FakeGitHub]:
    """Serve a FakeGitHub on 127.0.0.1 and a port of its own while the block runs."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeGitHub(**options)
    server.fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
