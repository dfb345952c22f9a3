"""The dashboard's read-only pages: overview, prompt, audit log, rollout, webhooks.

Each view reads through the `Registry` facade with the visitor's token as `viewer`, so a
token limited to one environment sees that environment only, here as in the API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from promptctl.registry.errors import (
    EnvironmentNotFound,
    PromptNotFound,
    RegistryError,
    UsageError,
)
from promptctl.registry.metrics.series import MetricSeries, SeriesPoint
from promptctl.registry.metrics.summary import parse_time
from promptctl.registry.releases.audit import AuditQuery
from promptctl.registry.releases.values import LogEntry, ReleaseState
from promptctl.server.dashboard.actions import rollback_targets
from promptctl.server.dashboard.charts import Line, line_chart
from promptctl.server.dashboard.present import health, millis, number, percent, usd
from promptctl.server.dashboard.web import Page, PageRequest, to_json_text

# The time-range picker: (window, step). Below an hour's step the minute rollups are read,
# else the hour rollups; each range gives 60 to 120 points.
RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "6h": (6 * 3600, 300),
    "24h": (86400, 900),
    "7d": (7 * 86400, 7200),
    "30d": (30 * 86400, 21600),
}
DEFAULT_RANGE = "24h"
PAGE_SIZE = 200  # prompts per overview page, as datasette pages a table
HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def _environment(pr: PageRequest, name: str, known: list[str]) -> str:
    """`name` when the visitor may see that environment; else the API's 403 or 404."""
    token = pr.visitor.token
    if token is not None:
        token.narrow(name)  # OtherEnvironment (403), as the API answers
    if name not in known:
        raise EnvironmentNotFound(name, known)
    return name


# -- overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One release in the matrix (None where the prompt is not released there)."""

    state: ReleaseState
    calls: int
    error_rate: float | None
    health: Any
    may_act: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.state.to_json(),
            "calls_1h": self.calls,
            "error_rate_1h": self.error_rate,
            "health": self.health.to_json(),
        }


def overview(pr: PageRequest) -> Page:
    """Every prompt × environment: what runs, the last hour's calls and a health mark, a
    page of PAGE_SIZE prompts at a time (by name)."""
    registry, token = pr.registry, pr.visitor.token
    protected = registry.serving.environments()  # from memory, in creation order
    environments = [e for e in protected if token is None or token.sees(e)]
    env_filter = pr.arg("env")
    if env_filter:
        _environment(pr, env_filter, environments)
    q = pr.arg("q").lower()
    show = pr.arg("show", "all")
    if show not in ("all", "canary", "attention", "released"):
        raise UsageError(f"show must be all, canary, attention or released, not {show!r}")
    page = pr.arg("page", "1")
    if not page.isdigit() or int(page) < 1:
        raise UsageError(f"page must be a number from 1, not {page!r}")
    traffic = registry.recent_traffic(_now() - HOUR, viewer=token)
    shown_envs = [env_filter] if env_filter else environments
    served: dict[str, dict[str, Any]] = {}
    for entry in registry.serving.entries():
        if entry.state.environment in shown_envs:
            served.setdefault(entry.state.prompt, {})[entry.state.environment] = entry
    names = set(served)
    if show in ("all", "attention", "canary") and not env_filter:
        try:
            with registry.git() as library:
                rev = library.layout.branch if library.tracked_tip() else None
                names.update(library.list(rev))
        except RegistryError:
            pass  # no readable repository: the matrix shows what is released

    def cell(entry: Any) -> Cell:
        state = entry.state
        t = traffic.get((state.prompt, state.environment))
        return Cell(
            state,
            t.calls if t else 0,
            t.error_rate if t else None,
            health(t),
            pr.visitor.may_act(state.environment, protected.get(state.environment, False)),
        )

    def described(name: str) -> str | None:
        entries = served.get(name)
        return next(iter(entries.values())).stable.version.prompt.description if entries else None

    matching = []
    for name in sorted(names):
        entries = served.get(name, {})
        if q and q not in name.lower() and q not in (described(name) or "").lower():
            continue
        if show == "released" and not entries:
            continue
        if show == "canary" and not any(e.state.canary for e in entries.values()):
            continue
        if show == "attention" and not any(
            cell(e).health.mark in ("failing", "degraded", "canary-worse") for e in entries.values()
        ):
            continue
        matching.append(name)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    number = min(int(page), pages)
    shown = matching[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    matrix = [
        {
            "prompt": name,
            "description": described(name),
            "cells": {
                e: cell(served[name][e]) if e in served.get(name, {}) else None for e in shown_envs
            },
        }
        for name in shown
    ]
    data = lambda: {  # noqa: E731 - built for ?format=json only
        "environments": shown_envs,
        "page": number,
        "pages": pages,
        "total": len(matching),
        "prompts": [
            {
                "prompt": r["prompt"],
                "description": r["description"],
                "releases": {e: c.to_json() for e, c in r["cells"].items() if c is not None},
            }
            for r in matrix
        ],
    }
    keep = {k: v for k, v in pr.query.items() if k in ("q", "env", "show") and v}
    context = {
        "environments": shown_envs,
        "all_environments": environments,
        "matrix": matrix,
        "q": pr.arg("q"),
        "env": env_filter,
        "show": show,
        "total": len(matching),
        "page": number,
        "pages": pages,
        "previous": {**keep, "page": number - 1} if number > 1 else None,
        "next": {**keep, "page": number + 1} if number < pages else None,
    }
    return Page("overview.html", context, data)


# -- prompt ---------------------------------------------------------------------------------


def _chart_lines(series: MetricSeries, value: Any) -> list[Line]:
    lines = []
    for s in series.series:
        points = [(p.start, v) for p in s.points if (v := value(p)) is not None]
        lines.append(Line(f"{s.label} {s.variant}", s.variant == "canary", points))
    return lines


CHARTS: list[tuple[str, str, Any, Any, float | None, float]] = [
    # (key, title, value of a point, format, fixed ceiling, finest step between y ticks)
    ("calls", "Calls per step", lambda p: float(p.count), number, None, 1.0),
    ("error_rate", "Error rate", lambda p: p.error_rate, percent, None, 0.0),
    ("latency_p50", "Latency p50 (successful calls)", lambda p: p.latency_p50, millis, None, 0.0),
    ("latency_p95", "Latency p95 (successful calls)", lambda p: p.latency_p95, millis, None, 0.0),
    ("latency_p99", "Latency p99 (successful calls)", lambda p: p.latency_p99, millis, None, 0.0),
    ("cost", "Cost per call", lambda p: p.cost_mean, usd, None, 0.0),
    ("tokens", "Tokens per call (input + output)", SeriesPoint.tokens_mean.fget, number, None, 0.0),
    ("quality", "Quality (mean)", lambda p: p.quality_mean, number, 1.0, 0.0),
    ("invalid", "Invalid-output rate", lambda p: p.invalid_output_rate, percent, None, 0.0),
]


def _default_environment(states: list[ReleaseState], environments: list[str]) -> str | None:
    """The environment whose figures a prompt page opens on: a canary's, else production's,
    else the first with a release."""
    released = [s.environment for s in states]
    for s in states:
        if s.canary is not None:
            return s.environment
    for preferred in ("production", *released):
        if preferred in released:
            return preferred
    return environments[0] if environments else None


def prompt_page(pr: PageRequest) -> Page:
    """A prompt: versions, where each runs, charts over time, analysis, diff and samples."""
    registry, token = pr.registry, pr.visitor.token
    name = pr.request.path_params["name"]
    environments = [e.name for e in registry.environments(viewer=token)]
    states = registry.status(name, viewer=token)  # PromptNotFound for a name nobody knows
    env = pr.arg("env") or _default_environment(states, environments)
    if env is not None:
        _environment(pr, env, environments)
    chosen = pr.arg("range", DEFAULT_RANGE)
    if chosen not in RANGES:
        raise UsageError(f"range must be one of {', '.join(RANGES)}, not {chosen!r}")
    window, step = RANGES[chosen]
    now = _now()
    records: list[Any] = []
    try:
        with registry.git() as library:
            records = list(reversed(library.history(name)[0]))
    except RegistryError:
        pass  # released but no longer (or never) on the tracked branch: releases still show
    if not records and not states:
        raise PromptNotFound(name)
    runs: dict[str, list[str]] = {}
    for s in states:
        runs.setdefault(s.stable.digest, []).append(f"{s.environment} stable")
        if s.canary is not None:
            runs.setdefault(s.canary.digest, []).append(
                f"{s.environment} canary {s.canary_weight_bp / 100:g}%"
            )
    traffic = registry.recent_traffic(now - HOUR, prompt=name, viewer=token)
    protected = registry.serving.environments()
    may_act = {
        s.environment: pr.visitor.may_act(s.environment, protected.get(s.environment, False))
        for s in states
    }
    # Where a rollback has nothing to do (no canary, no earlier stable version), the page
    # says so instead of offering a button that can only fail.
    back_to = (
        rollback_targets(registry.history(name, viewer=token))
        if any(may_act[s.environment] and s.canary is None for s in states)
        else {}
    )
    releases = [
        {
            "state": s,
            "traffic": traffic.get((name, s.environment)),
            "health": health(traffic.get((name, s.environment))),
            "may_act": may_act[s.environment],
            "protected": protected.get(s.environment, False),
            "rollback_to": back_to.get(s.environment),
        }
        for s in states
    ]
    series = summary = None
    charts = []
    if env is not None:
        series = registry.metrics_series(
            name, env, start=now - timedelta(seconds=window), end=now, step=step, viewer=token
        )
        for key, title, value, fmt, ceiling, resolution in CHARTS:
            lines = _chart_lines(series, value)
            charts.append(
                {
                    "key": key,
                    "title": title,
                    "svg": line_chart(
                        title,
                        lines,
                        series.start,
                        series.end,
                        series.step_seconds,  # whole hours where minute rows are gone
                        fmt,
                        ceiling=ceiling,
                        resolution=resolution,
                    ),
                    # Numbered as the chart numbers its lines: those with points.
                    "legend": list(enumerate(line for line in lines if line.points)),
                }
            )
        # The window's figures per version and variant come with the series (the same
        # rows): reading them again for a summary would double the page's time.
        summary = [s.total for s in series.series if s.total.count]
    state_here = next((s for s in states if s.environment == env), None)
    rollout_here = _rollout(pr, name, env)
    analysis = _analysis(pr, name, env, state_here, rollout_here)
    labels = [r.label for r in records]
    diff = _diff(pr, name, labels)
    samples = _samples(pr, name, labels, states)
    history = registry.history(name, env, limit=15, viewer=token) if states else []
    data = lambda: {  # noqa: E731 - built for ?format=json only (the series' points are many)
        "prompt": name,
        "environment": env,
        "range": chosen,
        "releases": [{**r["state"].to_json(), "health": r["health"].to_json()} for r in releases],
        "versions": [_record_json(r, runs) for r in records],
        "series": series.to_json() if series else None,
        "summary": [v.to_json() for v in summary] if summary is not None else None,
        "analysis": analysis["data"],
        "rollout": rollout_here.to_json() if rollout_here else None,
        "history": [e.to_json() for e in history],
    }
    context = {
        "name": name,
        "env": env,
        "environments": environments,
        "range": chosen,
        "ranges": list(RANGES),
        "releases": releases,
        "records": records,
        "runs": runs,
        "series": series,
        "summary": summary,
        "charts": charts,
        "analysis": analysis,
        "rollout": rollout_here,
        "diff": diff,
        "samples": samples,
        "history": history,
        "done": pr.arg("done"),
        "description": samples["version"].prompt.description if samples["version"] else None,
    }
    return Page("prompt.html", context, data)


def _record_json(record: Any, runs: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "version": record.number,
        "label": record.label,
        "digest": record.digest,
        "commit": record.commit.to_json(),
        "runs": runs.get(record.digest, []),
    }


def _rollout(pr: PageRequest, name: str, env: str | None) -> Any:
    """The newest rollout of the prompt in `env`, or None (none, or rollouts not offered)."""
    from promptctl.registry.errors import NotFound

    find = getattr(pr.registry, "rollout", None)
    if env is None or not callable(find):
        return None
    try:
        return find(name, env, viewer=pr.visitor.token)
    except NotFound:
        return None


def _analysis(
    pr: PageRequest, name: str, env: str | None, state: ReleaseState | None, rollout: Any
) -> dict[str, Any]:
    """The canary analysis table: `Registry.analyze` (registry.analysis) over the canary's
    current step, else the last analysis a live rollout's controller recorded."""
    analyse = getattr(pr.registry, "analyze", None)
    if env is None or state is None or state.canary is None:
        return {"available": True, "data": None, "source": None}
    if callable(analyse):
        try:
            report = analyse(name, env, viewer=pr.visitor.token)
        except RegistryError as exc:
            return {"available": True, "data": None, "source": str(exc)}
        since = report.since.strftime("%Y-%m-%d %H:%M UTC")
        return {
            "available": True,
            "data": report.to_json(),
            "source": f"analysed now, over the calls since {since} (the current step's start)",
        }
    if rollout is not None and rollout.live and rollout.last_analysis:
        checked = rollout.last_checked_at
        when = checked.strftime("%Y-%m-%d %H:%M:%S UTC") if checked else "unknown"
        return {
            "available": True,
            "data": rollout.last_analysis,
            "source": f"the rollout controller's last look, at {when}",
        }
    return {
        "available": callable(getattr(pr.registry, "rollout", None)),
        "data": None,
        "source": None,
    }


def _diff(pr: PageRequest, name: str, labels: list[str]) -> dict[str, Any]:
    """The diff the page's form asks for (default: the newest version against the one
    before)."""
    old_ref = pr.arg("from") or (labels[1] if len(labels) > 1 else "")
    new_ref = pr.arg("to") or (labels[0] if labels else "")
    if not old_ref or not new_ref:
        return {"from": old_ref, "to": new_ref, "result": None}
    with pr.registry.git():
        result = pr.registry.diff(name, old_ref, new_ref)
    return {"from": old_ref, "to": new_ref, "result": result}


def _samples(
    pr: PageRequest, name: str, labels: list[str], states: list[ReleaseState]
) -> dict[str, Any]:
    """Each sample of a version rendered (default: the newest version, else the stable one)."""
    ref = pr.arg("sample") or (labels[0] if labels else (states[0].stable.digest if states else ""))
    if not ref:
        return {"ref": "", "version": None, "rendered": []}
    version = pr.registry.find_version(name, ref, viewer=pr.visitor.token)
    rendered = []
    for sample in version.prompt.samples:
        try:
            out = version.render(sample, limits=pr.registry.settings.render_limits)
            rendered.append({"inputs": to_json_text(sample), "result": out, "error": None})
        except RegistryError as exc:
            rendered.append({"inputs": to_json_text(sample), "result": None, "error": str(exc)})
    return {"ref": ref, "version": version, "rendered": rendered}


# -- audit log ------------------------------------------------------------------------------


def audit(pr: PageRequest) -> Page:
    """Every release action, newest first, by prompt, environment, actor and time."""
    registry, token = pr.registry, pr.visitor.token
    environments = [e.name for e in registry.environments(viewer=token)]
    env = pr.arg("env") or None
    if env is not None:
        _environment(pr, env, environments)
    before = pr.arg("before")
    if before and not before.isdigit():
        raise UsageError(f"before must be a log entry id, not {before!r}")
    limit = pr.arg("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise UsageError(f"limit must be a number from 1 to 1000, not {limit!r}")
    query = AuditQuery(
        prompt=pr.arg("prompt") or None,
        environment=env,
        actor=pr.arg("actor") or None,
        since=parse_time(pr.arg("since") or None),
        until=parse_time(pr.arg("until") or None),
        before=int(before) if before else None,
        limit=int(limit),
    )
    entries: list[LogEntry] = registry.audit_log(query, viewer=token)
    older = None
    if len(entries) == query.limit:
        params = {k: v for k, v in pr.query.items() if k not in ("before", "format") and v}
        params["before"] = str(entries[-1].id)
        older = params
    context = {
        "entries": entries,
        "environments": environments,
        "filters": {
            "prompt": pr.arg("prompt"),
            "env": pr.arg("env"),
            "actor": pr.arg("actor"),
            "since": pr.arg("since"),
            "until": pr.arg("until"),
        },
        "older": older,
    }
    return Page("audit.html", context, {"entries": [e.to_json() for e in entries]})


# -- rollout --------------------------------------------------------------------------------


def rollout(pr: PageRequest) -> Page:
    """One release's rollout: its state, its analysis and its decision timeline.

    Rollout policies and the controller (issue 17) are not part of this version; the page
    shows what exists (the release, the analysis when offered, the log) and says so.
    """
    registry, token = pr.registry, pr.visitor.token
    env = pr.request.path_params["env"]
    name = pr.request.path_params["name"]
    environments = [e.name for e in registry.environments(viewer=token)]
    _environment(pr, env, environments)
    states = registry.status(name, env, viewer=token)
    if not states:
        registry.history(name, env, limit=1, viewer=token)  # PromptNotFound if unknown
    state = states[0] if states else None
    timeline = registry.history(name, env, limit=200, viewer=token) if state else []
    current = _rollout(pr, name, env)
    analysis = _analysis(pr, name, env, state, current)
    protected = registry.serving.environments().get(env, False)
    context = {
        "name": name,
        "env": env,
        "state": state,
        "timeline": timeline,
        "analysis": analysis,
        "rollout": current,
        "next_action": current.next_action(_now()) if current else None,
        "rollouts_available": callable(getattr(registry, "rollout", None)),
        "may_act": pr.visitor.may_act(env, protected),
    }
    data = {
        "prompt": name,
        "environment": env,
        "release": state.to_json() if state else None,
        "rollout": current.to_json() if current else None,
        "analysis": analysis["data"],
        "timeline": [e.to_json() for e in timeline],
    }
    return Page("rollout.html", context, data)


# -- webhooks -------------------------------------------------------------------------------


def webhooks(pr: PageRequest) -> Page:
    """Webhook subscriptions and their recent deliveries (admin), when this version has them."""
    from promptctl.registry.errors import InsufficientScope

    visitor = pr.visitor
    if visitor.tokens_on and visitor.token is not None and visitor.token.scope != "admin":
        raise InsufficientScope(visitor.token.name, visitor.token.scope, "admin")
    service = getattr(pr.registry, "webhooks", None)
    if service is None or not hasattr(service, "list") or not hasattr(service, "deliveries"):
        return Page("webhooks.html", {"available": False}, {"available": False})
    subscriptions = service.list()
    recent = {s.id: service.deliveries(s.id, limit=10) for s in subscriptions}
    data = {
        "available": True,
        "subscriptions": [
            {**s.to_json(), "deliveries": [d.to_json() for d in recent[s.id]]}
            for s in subscriptions
        ],
    }
    context = {"available": True, "subscriptions": subscriptions, "deliveries": recent}
    return Page("webhooks.html", context, data)
