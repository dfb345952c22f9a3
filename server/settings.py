"""Server settings: the registry's settings plus how the service listens and guards itself."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from promptctl.registry.core import ModelPriceSetting, Settings
from promptctl.registry.errors import UnguardedHost

# The price setting lives with the registry's settings (the CLI prices too); the old name
# stays importable from here.
ModelPrice = ModelPriceSetting


def is_loopback(host: str) -> bool:
    """Tell whether `host` reaches this machine only: `localhost` or a loopback address."""
    name = host.strip().removeprefix("[").removesuffix("]")
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return (mapped or address).is_loopback


class ServerSettings(Settings):
    """`PROMPTCTL_*` environment variables; options of `promptctl serve` override them."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: bool = False
    poll_interval: float = Field(default=0.5, gt=0)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    max_batch: int = Field(default=1000, gt=0)
    # Renders run in a pool of their own, so hostile templates (each stopped at the render
    # time limit) can hold at most these workers; a render that waits longer is a 503.
    render_workers: int = Field(default=4, gt=0)
    render_queue_seconds: float = Field(default=5.0, gt=0)
    # With tokens on, whether /metrics, /readyz, the API docs and /openapi.json stay open
    # (for Prometheus and load balancers on a private network) or need a `read` token.
    # /healthz is open either way.
    open_ops: bool = True
    # The remote the server's clone follows: a remote's name or a URL (default: the clone's
    # `origin`, if it has one); how often it fetches in the background (seconds, 0: only on
    # demand); the secret that signs GitHub push webhooks (X-Hub-Signature-256).
    git_remote: str | None = None
    git_fetch_interval: float = Field(default=30.0, ge=0)
    git_webhook_secret: SecretStr | None = None
    # The change stream (GET /v1/stream): a comment every `stream_heartbeat` seconds keeps
    # idle connections open through proxies; at most `stream_max_clients` streams per
    # process (0: streaming off, clients poll), a 503 past it; a stream ends after
    # `stream_max_seconds` and its client resumes where it was, which spreads long-lived
    # connections over replicas added since.
    stream_heartbeat: float = Field(default=15.0, gt=0)
    stream_max_clients: int = Field(default=10_000, ge=0)
    stream_max_seconds: float = Field(default=3600.0, gt=0)
    # The rollout controller looks at every running rollout this often (seconds; 0: this
    # replica never acts). One replica acts at a time; another takes over within two looks.
    rollout_interval: float = Field(default=30.0, ge=0)
    # Metric retention (PROMPTCTL_RETENTION_* in registry settings) is applied this often
    # (seconds; 0: never by this process, `promptctl db prune` instead), the first time a
    # minute after start. Replicas may all prune: they take different rows.
    retention_interval: float = Field(default=600.0, ge=0)
    # Webhooks (registry.webhooks): whether this process sends deliveries (a replica may
    # leave it to others), how often it looks for due ones, how many it sends at once, the
    # timeout of one attempt, the first retry's delay (later ones grow fourfold, at most
    # 8 h) and the attempts in all. With tokens on a public interface, targets on private
    # or loopback addresses are refused (the SSRF guard) unless `webhook_allow_private`.
    webhook_dispatch: bool = True
    webhook_interval: float = Field(default=1.0, gt=0)
    webhook_workers: int = Field(default=8, gt=0)
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_base: float = Field(default=30.0, gt=0)
    webhook_max_attempts: int = Field(default=9, ge=1, le=50)
    webhook_allow_private: bool = False
    # The key that signs dashboard session cookies and CSRF tokens. Replicas behind one
    # load balancer must share it; unset, each process draws one at start (sessions then
    # end when it restarts).
    dashboard_secret: SecretStr | None = None
    # Whether the session cookie is marked Secure (sent over HTTPS only): `auto` when the
    # request came over HTTPS, as uvicorn's proxy headers tell it behind a TLS-terminating
    # proxy it trusts (FORWARDED_ALLOW_IPS, default 127.0.0.1); `true` always, for a proxy
    # that sends no X-Forwarded-Proto or is not trusted; `false` never.
    dashboard_secure_cookie: Literal["auto", "true", "false"] = "auto"

    @field_validator("dashboard_secure_cookie", mode="before")
    @classmethod
    def _auto_or_boolean(cls, value: Any) -> Any:
        """Read True/False as "true"/"false", and any case of the words."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def webhook_guarded(self) -> bool:
        """Whether webhook targets must be public addresses: a server with tokens on a
        public interface, unless PROMPTCTL_WEBHOOK_ALLOW_PRIVATE."""
        return self.tokens and not is_loopback(self.host) and not self.webhook_allow_private

    def check_exposure(self) -> None:
        """Raise UnguardedHost when tokens are off and `host` is not loopback: without
        tokens, anyone who can connect may read prompts and change releases."""
        if not self.tokens and not is_loopback(self.host):
            raise UnguardedHost(self.host)
