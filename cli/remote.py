"""The release commands through a promptctl server instead of the local database.

`RemoteBackend` is the HTTP side of `registry.releases.actions.ReleaseBackend`: the same
operations as the local `Registry`, each one request to the server's API, whose answers
are rebuilt into the same values. `PROMPTCTL_SERVER` (or `--server`) picks it.
"""

from __future__ import annotations

from typing import Any

import httpx

from promptctl.cli.waiting import spinner
from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.errors import RegistryError
from promptctl.registry.metrics.summary import MetricsSummary
from promptctl.registry.releases.actions import Complete, Promote, Ramp, ReleaseAction, Rollback
from promptctl.registry.releases.values import EnvironmentInfo, LogEntry, ReleaseState


# Not in registry.errors: it is the HTTP transport's error, a problem document the server
# sent back (the server raised the domain error); only the CLI's remote backend makes one.
# A RegistryError so that the CLI's one handler prints it like the local error.
class RemoteError(RegistryError):
    """The server refused a request; carries its status and problem detail."""

    def __init__(self, status: int, title: str, detail: str, error_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        # What --json calls the error: the problem's own type when it is not about:blank,
        # else its title as a slug ("Prompt not found" -> "prompt-not-found").
        self.error_type = error_type or "-".join(title.lower().split())


class RemoteBackend:
    """Acts through a promptctl server's API."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        actor: str | None = None,
        timeout: float = 30.0,
        *,
        quiet: bool = False,
    ) -> None:
        headers = {"User-Agent": "promptctl-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if actor:
            headers["X-Promptctl-Actor"] = actor
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.quiet = quiet  # no spinner (a second look after Ctrl-C)
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Make one request; a problem document, no answer in time, or none at all becomes a
        RemoteError. On a terminal, a spinner shows after a second of waiting."""
        try:
            if self.quiet:
                response = self.http.request(method, path, **kwargs)
            else:
                with spinner(f"waiting for {self.server}"):
                    response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RemoteError(
                504,
                "Server timeout",
                f"the server at {self.server} did not answer within {self.timeout:g} s "
                "(--timeout or PROMPTCTL_TIMEOUT to wait longer)",
            ) from exc
        except httpx.HTTPError as exc:
            raise RemoteError(
                503, "Server unreachable", f"cannot reach the server at {self.server}: {exc}"
            ) from exc
        if response.status_code >= 400:
            kind = None
            try:
                problem = response.json()
                detail = problem.get("detail") or response.text
                title = problem.get("title", "Error")
                if problem.get("type") not in (None, "about:blank"):
                    kind = str(problem["type"])
            except (ValueError, AttributeError):
                detail, title = response.text[:200] or response.reason_phrase, "Error"
            raise RemoteError(response.status_code, title, f"server: {detail}", kind)
        return response.json()

    def environments(self) -> list[EnvironmentInfo]:
        return [EnvironmentInfo.from_json(e) for e in self._call("GET", "/v1/environments")]

    def create_environment(self, name: str, *, protected: bool = False) -> EnvironmentInfo:
        body = {"name": name, "protected": protected}
        return EnvironmentInfo.from_json(self._call("POST", "/v1/environments", json=body))

    def set_protected(self, name: str, protected: bool) -> EnvironmentInfo:
        body = {"protected": protected}
        return EnvironmentInfo.from_json(self._call("PATCH", f"/v1/environments/{name}", json=body))

    def status(
        self, prompt: str | None = None, environment: str | None = None
    ) -> list[ReleaseState]:
        params = _present(prompt=prompt, env=environment)
        return [ReleaseState.from_json(s) for s in self._call("GET", "/v1/releases", params=params)]

    def history(
        self, prompt: str, environment: str | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        params = _present(env=environment, limit=limit)
        entries = self._call("GET", f"/v1/prompts/{prompt}/history", params=params)
        return [LogEntry.from_json(e) for e in entries]

    def perform(self, action: ReleaseAction) -> ReleaseState:
        revision = action.expected_revision
        headers = {"If-Match": f'"{revision}"'} if revision is not None else None
        path = f"/v1/prompts/{action.prompt}/{action.verb}"
        return ReleaseState.from_json(
            self._call("POST", path, json=_request_body(action), headers=headers)
        )

    def release_documents(self, environment: str) -> dict[str, dict[str, Any]]:
        return {
            state.prompt: self._call(
                "GET", f"/v1/prompts/{state.prompt}/release", params={"env": environment}
            )
            for state in self.status(None, environment)
        }

    def metrics_summary(
        self, prompt: str, environment: str, since: str | None = None, until: str | None = None
    ) -> MetricsSummary:
        params = {"env": environment, **_present(since=since, until=until)}
        summary = self._call("GET", f"/v1/prompts/{prompt}/metrics", params=params)
        return MetricsSummary.from_json(summary)

    def analyze(self, name: str, environment: str, *, since: str | None = None) -> CanaryReport:
        params = {"env": environment, **_present(since=since)}
        return CanaryReport.from_json(
            self._call("GET", f"/v1/prompts/{name}/analysis", params=params)
        )


def _request_body(action: ReleaseAction) -> dict[str, Any]:
    """The API's request body for an action (server/schemas.py): percentages, not basis
    points, and the API's field names."""
    body: dict[str, Any] = {"env": action.environment, "reason": action.reason}
    body["actor"] = action.actor
    if isinstance(action, Promote):
        canary = action.canary_bp / 100 if action.canary_bp is not None else None
        body.update(ref=action.ref, from_env=action.source, canary_weight=canary)
        body.update(digest=action.digest, commit=action.commit)  # what Registry.pin read
        body.update(force=action.force, if_changed=action.if_changed)
        if action.allow_breaking:  # only when set: a server without the gate refuses the field
            body["allow_breaking"] = True
    elif isinstance(action, Ramp):
        body["weight"] = action.weight_bp / 100
    elif isinstance(action, Rollback):
        body["to"] = action.to_ref
    if isinstance(action, Promote | Ramp | Complete):  # abort and rollback need no --yes
        body["confirm"] = action.confirmed
    return {k: v for k, v in body.items() if v is not None}


def _present(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v}
