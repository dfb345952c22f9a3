"""Two transports for the release commands: the local database, or a promptctl server.

The decision logic is registry.releases.ReleaseService in both cases (the server runs it
too); these classes only carry the call. `PROMPTCTL_SERVER` (or `--server`) picks the
remote one.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from promptctl.registry.core import Registry
from promptctl.registry.errors import RegistryError
from promptctl.registry.releases.serving import release_document
from promptctl.registry.releases.values import EnvironmentInfo, LogEntry, ReleaseState


# Not in registry.errors: it is the HTTP transport's error, a problem document the server
# sent back (the server raised the domain error); only the CLI's remote backend makes one.
# A RegistryError so that the CLI's one handler prints it like the local error.
class RemoteError(RegistryError):
    """The server refused a request; carries its status and problem detail."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title


class ReleaseBackend(Protocol):
    def environments(self) -> list[EnvironmentInfo]: ...
    def create_environment(self, name: str, *, protected: bool) -> EnvironmentInfo: ...
    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo: ...
    def status(self, prompt: str | None, environment: str | None) -> list[ReleaseState]: ...
    def history(
        self, prompt: str, environment: str | None, limit: int | None
    ) -> list[LogEntry]: ...
    def promote(
        self,
        name: str,
        ref: str | None,
        environment: str,
        *,
        source: str | None,
        canary_bp: int | None,
        reason: str | None,
        actor: str | None,
        force: bool,
        confirmed: bool,
        if_changed: bool,
    ) -> ReleaseState: ...
    def ramp(
        self,
        name: str,
        environment: str,
        weight_bp: int,
        *,
        reason: str | None,
        actor: str | None,
        confirmed: bool,
    ) -> ReleaseState: ...
    def complete(
        self, name: str, environment: str, *, reason: str | None, actor: str | None, confirmed: bool
    ) -> ReleaseState: ...
    def abort(
        self, name: str, environment: str, *, reason: str | None, actor: str | None
    ) -> ReleaseState: ...
    def rollback(
        self,
        name: str,
        environment: str,
        *,
        to_ref: str | None,
        reason: str | None,
        actor: str | None,
    ) -> ReleaseState: ...


class LocalBackend:
    """Acts on the release database directly (the embedded SQLite by default)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.releases = registry.releases

    def environments(self) -> list[EnvironmentInfo]:
        return self.releases.environments()

    def create_environment(self, name: str, *, protected: bool) -> EnvironmentInfo:
        return self.releases.create_environment(name, protected=protected)

    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo:
        return self.releases.set_protected(name, protected)

    def status(self, prompt: str | None, environment: str | None) -> list[ReleaseState]:
        return self.releases.status(prompt, environment)

    def history(self, prompt: str, environment: str | None, limit: int | None) -> list[LogEntry]:
        return self.releases.history(prompt, environment, limit=limit)

    def promote(
        self,
        name: str,
        ref: str | None,
        environment: str,
        *,
        source: str | None,
        canary_bp: int | None,
        reason: str | None,
        actor: str | None,
        force: bool,
        confirmed: bool,
        if_changed: bool,
    ) -> ReleaseState:
        who = self.registry.actor(actor)
        if source is not None:
            return self.releases.promote_from(
                name,
                source,
                environment,
                actor=who,
                canary_bp=canary_bp,
                reason=reason,
                confirmed=confirmed,
            )
        version = self.registry.library.get(name, ref or "HEAD")
        return self.releases.promote(
            version,
            environment,
            actor=who,
            canary_bp=canary_bp,
            reason=reason,
            force=force,
            confirmed=confirmed,
            skip_unchanged=if_changed,
        )

    def ramp(
        self,
        name: str,
        environment: str,
        weight_bp: int,
        *,
        reason: str | None,
        actor: str | None,
        confirmed: bool,
    ) -> ReleaseState:
        return self.releases.ramp(
            name,
            environment,
            weight_bp,
            actor=self.registry.actor(actor),
            reason=reason,
            confirmed=confirmed,
        )

    def complete(
        self, name: str, environment: str, *, reason: str | None, actor: str | None, confirmed: bool
    ) -> ReleaseState:
        return self.releases.complete(
            name, environment, actor=self.registry.actor(actor), reason=reason, confirmed=confirmed
        )

    def abort(
        self, name: str, environment: str, *, reason: str | None, actor: str | None
    ) -> ReleaseState:
        return self.releases.abort(
            name, environment, actor=self.registry.actor(actor), reason=reason
        )

    def rollback(
        self,
        name: str,
        environment: str,
        *,
        to_ref: str | None,
        reason: str | None,
        actor: str | None,
    ) -> ReleaseState:
        to = self.registry.library.get(name, to_ref) if to_ref else None
        return self.releases.rollback(
            name, environment, actor=self.registry.actor(actor), to=to, reason=reason
        )

    def release_documents(self, environment: str) -> dict[str, dict[str, Any]]:
        """Every release in an environment with its content, as clients receive it."""
        return {
            state.prompt: release_document(state, stable, canary)
            for state, stable, canary in self.releases.served_releases(environment=environment)
        }

    def metrics_summary(self, name: str, environment: str) -> dict[str, Any] | None:
        """Metrics of the stable version in an environment over the last 7 days, for review
        reports (None when nothing was reported)."""
        from promptctl.registry.metrics import MetricsService

        summary = MetricsService(self.registry.database).summary(name, environment)
        return review_figures(summary.to_json())


class RemoteBackend:
    """Acts through a promptctl server's release API."""

    def __init__(
        self, server: str, token: str | None = None, actor: str | None = None, timeout: float = 30.0
    ) -> None:
        headers = {"User-Agent": "promptctl-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if actor:
            headers["X-Promptctl-Actor"] = actor
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(
                503, "Server unreachable", f"cannot reach the server at {self.server}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
                detail = problem.get("detail") or response.text
                title = problem.get("title", "Error")
            except ValueError:
                detail, title = response.text[:200] or response.reason_phrase, "Error"
            raise RemoteError(response.status_code, title, f"server: {detail}")
        return response.json()

    def _action(self, name: str, action: str, body: dict[str, Any]) -> ReleaseState:
        body = {k: v for k, v in body.items() if v is not None}
        return ReleaseState.from_json(self._call("POST", f"/v1/prompts/{name}/{action}", json=body))

    def environments(self) -> list[EnvironmentInfo]:
        return [EnvironmentInfo.from_json(e) for e in self._call("GET", "/v1/environments")]

    def create_environment(self, name: str, *, protected: bool) -> EnvironmentInfo:
        return EnvironmentInfo.from_json(
            self._call("POST", "/v1/environments", json={"name": name, "protected": protected})
        )

    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo:
        return EnvironmentInfo.from_json(
            self._call("PATCH", f"/v1/environments/{name}", json={"protected": protected})
        )

    def status(self, prompt: str | None, environment: str | None) -> list[ReleaseState]:
        params = {k: v for k, v in (("prompt", prompt), ("env", environment)) if v}
        return [ReleaseState.from_json(s) for s in self._call("GET", "/v1/releases", params=params)]

    def history(self, prompt: str, environment: str | None, limit: int | None) -> list[LogEntry]:
        params = {k: v for k, v in (("env", environment), ("limit", limit)) if v}
        return [
            LogEntry.from_json(e)
            for e in self._call("GET", f"/v1/prompts/{prompt}/history", params=params)
        ]

    def promote(
        self,
        name: str,
        ref: str | None,
        environment: str,
        *,
        source: str | None,
        canary_bp: int | None,
        reason: str | None,
        actor: str | None,
        force: bool,
        confirmed: bool,
        if_changed: bool,
    ) -> ReleaseState:
        return self._action(
            name,
            "promote",
            {
                "env": environment,
                "ref": ref,
                "from_env": source,
                "canary_weight": canary_bp / 100 if canary_bp is not None else None,
                "reason": reason,
                "actor": actor,
                "force": force,
                "confirm": confirmed,
                "if_changed": if_changed,
            },
        )

    def ramp(
        self,
        name: str,
        environment: str,
        weight_bp: int,
        *,
        reason: str | None,
        actor: str | None,
        confirmed: bool,
    ) -> ReleaseState:
        return self._action(
            name,
            "ramp",
            {
                "env": environment,
                "weight": weight_bp / 100,
                "reason": reason,
                "actor": actor,
                "confirm": confirmed,
            },
        )

    def complete(
        self, name: str, environment: str, *, reason: str | None, actor: str | None, confirmed: bool
    ) -> ReleaseState:
        return self._action(
            name,
            "complete",
            {"env": environment, "reason": reason, "actor": actor, "confirm": confirmed},
        )

    def abort(
        self, name: str, environment: str, *, reason: str | None, actor: str | None
    ) -> ReleaseState:
        return self._action(name, "abort", {"env": environment, "reason": reason, "actor": actor})

    def rollback(
        self,
        name: str,
        environment: str,
        *,
        to_ref: str | None,
        reason: str | None,
        actor: str | None,
    ) -> ReleaseState:
        return self._action(
            name, "rollback", {"env": environment, "to": to_ref, "reason": reason, "actor": actor}
        )

    def release_documents(self, environment: str) -> dict[str, dict[str, Any]]:
        return {
            state.prompt: self._call(
                "GET", f"/v1/prompts/{state.prompt}/release", params={"env": environment}
            )
            for state in self.status(None, environment)
        }

    def metrics_summary(self, name: str, environment: str) -> dict[str, Any] | None:
        try:
            summary = self._call("GET", f"/v1/prompts/{name}/metrics", params={"env": environment})
        except RemoteError:
            return None
        return review_figures(summary)


def review_figures(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The figures a review shows for an environment: those of its busiest stable version."""
    stable = [v for v in summary.get("versions", []) if v.get("variant") == "stable"]
    if not stable:
        return None
    best = max(stable, key=lambda v: v.get("count", 0))
    return {
        "version": best.get("label"),
        "count": best.get("count"),
        "error_rate": best.get("error_rate"),
        "latency_p95_ms": (best.get("latency_ms") or {}).get("p95"),
        "mean_cost_usd": (best.get("cost_usd") or {}).get("mean"),
        "mean_quality": (best.get("quality") or {}).get("mean"),
    }
