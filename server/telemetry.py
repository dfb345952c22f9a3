"""Counters for `/metrics` (Prometheus text format) and the ASGI middleware that feeds them.

Plain ASGI rather than BaseHTTPMiddleware: it sits on the resolve hot path, where every
microsecond shows in the benchmark.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptctl.server.call_metrics import CallMetrics
from promptctl.server.problems import PayloadTooLarge, transport_problem

LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Telemetry:
    """Request counts and latencies per route, named counters (ingest, cache), and the
    LLM calls applications report, per prompt version (`calls`)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(
            lambda: [0] * (len(LATENCY_BOUNDS) + 1)
        )
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, Callable[[], float]] = {}
        self.calls = CallMetrics()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency_buckets[route][bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum[route] += seconds

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format."""
        lines = [
            "# HELP promptctl_http_requests_total HTTP requests by route and status.",
            "# TYPE promptctl_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(
                f'promptctl_http_requests_total{{method="{method}",'
                f'route="{_escape(route)}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP promptctl_http_request_seconds Request latency by route.",
            "# TYPE promptctl_http_request_seconds histogram",
        ]
        for route, buckets in sorted(self.latency_buckets.items()):
            cumulative = 0
            label = f'route="{_escape(route)}"'
            for bound, n in zip((*LATENCY_BOUNDS, float("inf")), buckets, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    f'promptctl_http_request_seconds_bucket{{{label},le="{le}"}} {cumulative}'
                )
            lines.append(
                f"promptctl_http_request_seconds_sum{{{label}}} {self.latency_sum[route]:.6f}"
            )
            lines.append(f"promptctl_http_request_seconds_count{{{label}}} {cumulative}")
        for name, value in sorted(self.counters.items()):
            lines += [f"# TYPE promptctl_{name} counter", f"promptctl_{name} {value}"]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE promptctl_{name} gauge", f"promptctl_{name} {read()}"]
        lines += self.calls.render()
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class TelemetryMiddleware:
    """Times every HTTP request and records it under its route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.telemetry.observe(scope["method"], path, status, time.perf_counter() - start)


class BodyLimitMiddleware:
    """Refuses request bodies over the limit with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await transport_problem(PayloadTooLarge(self.limit))(scope, receive, send)
                return
        received = 0
        responded = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(self.limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge as exc:  # raised where no exception handler answered it
            if not responded:
                await transport_problem(exc)(scope, receive, send)


def gauge_reader(obj: Any, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(obj, attribute))
