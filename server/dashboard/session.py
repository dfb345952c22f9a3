"""Who is looking at the dashboard: the signed session cookie, sign-in and CSRF tokens.

The cookie holds no secret a script could reuse: a random session id, the SHA-256 of the
API token the person pasted (never the token), and when it was issued, signed with
HMAC-SHA256. It is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
sends it), Secure over HTTPS (the forwarded scheme behind a trusted proxy) or always with
PROMPTCTL_DASHBOARD_SECURE_COOKIE=true. Each request looks the token's hash up among the
active tokens, so revoking the token ends its sessions at once.

Every visitor has a session, signed in or not, so that every form carries a CSRF token:
HMAC(key, session id), checked on each POST. Without tokens on (a loopback server) there is
no sign-in, but the forms are still guarded, since any page the user opens may post to
127.0.0.1. The key is PROMPTCTL_DASHBOARD_SECRET when set (replicas behind one load
balancer must share it), else drawn at start: sessions then end when the server restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from promptctl.registry.errors import RegistryError

if TYPE_CHECKING:
    from promptctl.registry.auth import TokenInfo
    from promptctl.server.deps import AppContext

COOKIE = "promptctl_session"
MAX_AGE = 12 * 3600  # a session lasts a working day; then the person pastes the token again


class CsrfRefused(Exception):
    """A dashboard form posted without this session's CSRF token, or from another site.

    A transport's refusal rather than a registry error: the dashboard's error page shows it.
    """

    status = 403
    title = "Form refused"

    def __init__(self, why: str) -> None:
        super().__init__(
            f"this form cannot be accepted: {why}. Reload the page and submit it again."
        )


@dataclass(frozen=True)
class Session:
    """A dashboard session: its id, the token hash it signed in with (if any), its age."""

    sid: str
    token_hash: str | None
    issued: int

    @classmethod
    def fresh(cls, token_hash: str | None = None) -> Session:
        return cls(secrets.token_hex(16), token_hash, int(time.time()))


@dataclass(frozen=True)
class Visitor:
    """What the page knows of the person: their token (when tokens are on) and CSRF token."""

    session: Session
    token: TokenInfo | None
    tokens_on: bool
    csrf: str

    @property
    def signed_in(self) -> bool:
        return self.token is not None

    @property
    def may_read(self) -> bool:
        return not self.tokens_on or self.token is not None

    def may_act(self, environment: str, protected: bool) -> bool:
        """Tell whether release actions in `environment` are allowed, as the API decides."""
        try:
            self.check_act(environment, protected)
        except RegistryError:
            return False
        return True

    def check_act(self, environment: str, protected: bool) -> None:
        """Raise as the API would for a release action in `environment` by this visitor."""
        if not self.tokens_on:
            return
        from promptctl.registry.errors import Unauthorized

        if self.token is None:
            raise Unauthorized("sign in with an API token to change releases")
        self.token.check("release", environment, protected=protected)

    @property
    def is_admin(self) -> bool:
        return not self.tokens_on or (self.token is not None and self.token.scope == "admin")

    def actor(self) -> str:
        """Who the audit log says acted: the token's name, as the API records it."""
        return f"token:{self.token.name}" if self.token else "dashboard (no token)"


class Sessions:
    """Sign and read session cookies; derive and check CSRF tokens."""

    def __init__(self, ctx: AppContext, key: bytes | None = None) -> None:
        self.ctx = ctx
        self.key = key or secrets.token_bytes(32)
        self.secure = getattr(ctx.settings, "dashboard_secure_cookie", "auto")

    def _sign(self, data: bytes) -> str:
        mac = hmac.new(self.key, data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def encode(self, session: Session) -> str:
        body = json.dumps([session.sid, session.token_hash, session.issued]).encode()
        data = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{data}.{self._sign(data.encode())}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged or too old."""
        if not cookie or "." not in cookie:
            return None
        data, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._sign(data.encode())):
            return None
        try:
            sid, token_hash, issued = json.loads(base64.urlsafe_b64decode(data + "=" * 3))
        except (ValueError, TypeError):
            return None
        if not isinstance(sid, str) or not isinstance(issued, int):
            return None
        if time.time() - issued > MAX_AGE:
            return None
        return Session(sid, token_hash if isinstance(token_hash, str) else None, issued)

    def csrf(self, session: Session) -> str:
        return self._sign(b"csrf:" + session.sid.encode())

    def visitor(self, request: Request) -> tuple[Visitor, Session | None]:
        """Who makes this request; and the session to set when it needs a new cookie."""
        session = self.decode(request.cookies.get(COOKIE))
        new = None
        token = None
        if session is not None and session.token_hash is not None:
            token = self.ctx.registry.serving.token(session.token_hash)
            if token is None:  # revoked since: the session is over
                session = None
        if session is None:
            session = new = Session.fresh()
        return Visitor(session, token, self.ctx.settings.tokens, self.csrf(session)), new

    def set_cookie(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(session),
            max_age=MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.is_secure(request),
        )

    def is_secure(self, request: Request) -> bool:
        """Whether the cookie is for HTTPS only (PROMPTCTL_DASHBOARD_SECURE_COOKIE).

        `auto` asks the request's scheme, which behind a TLS-terminating proxy is the
        forwarded one once uvicorn's proxy headers middleware trusts that proxy."""
        if self.secure == "auto":
            return request.url.scheme == "https"
        return self.secure == "true"

    def check_form(self, request: Request, visitor: Visitor, form: dict[str, str]) -> None:
        """Raise CsrfRefused unless a POST comes from this site's own page of this session."""
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise CsrfRefused("it was sent by another site")
        origin = request.headers.get("origin")
        if origin and origin != "null" and _host_of(origin) != request.headers.get("host"):
            raise CsrfRefused(f"it was sent from {origin}")
        if COOKIE not in request.cookies or self.decode(request.cookies[COOKIE]) is None:
            raise CsrfRefused("the session has ended or its cookie is missing")
        given = form.get("csrf", "")
        if not given or not hmac.compare_digest(given, visitor.csrf):
            raise CsrfRefused("its CSRF token is missing or belongs to another session")


def _host_of(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")
