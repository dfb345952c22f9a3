"""API tokens with scopes. The secret is shown once; only its SHA-256 is stored.

Scopes: `read` (resolve, render, read the registry), `metrics:write` (push metrics),
`release` (release actions, and read), `admin` (everything). A token may be limited to
one environment: it acts there only, and sees that environment only, in every list,
history and summary (`TokenInfo.narrow`, `sees`; the Registry applies them). Changing a
protected environment needs `admin`, or `release` limited to that very environment: a
general release token cannot touch production by accident. An admin token is never
limited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from promptctl.registry.errors import (
    InsufficientScope,
    OtherEnvironment,
    ProtectedNeedsEnvironmentToken,
    TokenNotFound,
    UsageError,
)
from promptctl.registry.releases.queries import find_environment
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ApiToken, as_utc, utcnow

SCOPES = ("read", "metrics:write", "release", "admin")
TOKEN_PREFIX = "pct_"
# What each scope grants besides itself.
_IMPLIES = {
    "admin": set(SCOPES),
    "release": {"release", "read"},
    "read": {"read"},
    "metrics:write": {"metrics:write"},
}


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    scope: str
    environment: str | None
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scope": self.scope,
            "environment": self.environment,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

    @property
    def limited_to(self) -> str | None:
        """The one environment this token may see and act in; None for every one."""
        return None if self.scope == "admin" else self.environment

    def sees(self, environment: str) -> bool:
        """Tell whether this token may see (and, with its scope, act in) `environment`."""
        return self.limited_to in (None, environment)

    def narrow(self, environment: str | None) -> str | None:
        """The environment a list asked for `environment` (None: every one) may show this
        token: its own when it is limited to one; another one is OtherEnvironment."""
        if environment is None:
            return self.limited_to
        if not self.sees(environment):
            raise OtherEnvironment(self.name, str(self.environment), environment)
        return environment

    def check(self, scope: str, environment: str | None = None, *, protected: bool = False) -> None:
        """Raise Forbidden unless this token may do `scope` in `environment`."""
        if scope not in _IMPLIES[self.scope]:
            raise InsufficientScope(self.name, self.scope, scope)
        if self.scope == "admin" or environment is None:
            return
        if not self.sees(environment):
            raise OtherEnvironment(self.name, str(self.environment), environment)
        if scope == "release" and protected and self.environment != environment:
            raise ProtectedNeedsEnvironmentToken(environment)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    """Create, list, revoke and look up tokens."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def create(
        self, name: str, scope: str, environment: str | None = None
    ) -> tuple[str, TokenInfo]:
        """Create a token and return its secret (shown once) with its record."""
        if scope not in SCOPES:
            raise UsageError(f"unknown scope '{scope}' (scopes: {', '.join(SCOPES)})")
        if not name.strip():
            raise UsageError("a token needs a name")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as session:
            if environment is not None:
                find_environment(session, environment)
            row = ApiToken(
                name=name,
                token_hash=hash_token(secret),
                prefix=secret[:10],
                scope=scope,
                environment=environment,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return secret, _info(row)

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        with self.db.session() as session:
            query = select(ApiToken).order_by(ApiToken.id)
            if not include_revoked:
                query = query.where(ApiToken.revoked_at.is_(None))
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, name_or_id: str) -> list[TokenInfo]:
        """Revoke the active token(s) with this name, id or secret prefix."""
        with self.db.session() as session:
            conditions = [ApiToken.name == name_or_id, ApiToken.prefix == name_or_id]
            if name_or_id.isdigit():
                conditions.append(ApiToken.id == int(name_or_id))
            rows = session.scalars(
                select(ApiToken).where(or_(*conditions), ApiToken.revoked_at.is_(None))
            ).all()
            if not rows:
                raise TokenNotFound(name_or_id)
            now = utcnow()
            for row in rows:
                row.revoked_at = now
            return [_info(row) for row in rows]

    def active(self) -> dict[str, TokenInfo]:
        """Return {hash: token} for every active token (the server keeps this in memory)."""
        with self.db.session() as session:
            rows = session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)))
            return {row.token_hash: _info(row) for row in rows}


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.name,
        row.prefix,
        row.scope,
        row.environment,
        as_utc(row.created_at),
        as_utc(row.revoked_at) if row.revoked_at else None,
    )
