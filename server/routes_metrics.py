"""Metrics API: event ingest, quality scores and per-version summaries.

The decisions are the registry's metrics service's; this module turns HTTP into calls.
Ingest bodies are parsed here rather than by a pydantic model: a batch answers each event
on its own (a bad event never fails its batch), and at tens of thousands of events a
second the generic request validation and response encoding would cost more than the
database does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from promptctl.registry.errors import Forbidden, RegistryError
from promptctl.registry.metrics.events import BatchResult, batch_items
from promptctl.server.deps import AppContext, ContextDep
from promptctl.server.openapi import answers
from promptctl.server.problems import MalformedJSON
from promptctl.server.schemas import BatchResultShape, CanaryAnalysisShape, MetricsSummaryShape

if TYPE_CHECKING:
    from promptctl.registry.auth import TokenInfo

router = APIRouter(prefix="/v1", tags=["metrics"])
# Documented, never validated: ingest encodes its answer itself (see the module's note).
BATCH_ANSWERS = answers(
    BatchResultShape, 400, 401, 403, 413, 415, 422, 503, description="Every item's fate, in order"
)
SCOPE = "metrics:write"

# The request bodies for /docs; the checks themselves are registry.metrics.parse_event's.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event_id", "prompt", "env", "digest", "latency_ms"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string", "maxLength": 128, "description": "Idempotency key."},
        "prompt": {"type": "string"},
        "env": {"type": "string"},
        "digest": {"type": "string", "description": "The full digest of the version served."},
        "ts": {
            "type": ["string", "number"],
            "description": "ISO 8601 (UTC without offset) or Unix seconds; default: received.",
        },
        "latency_ms": {"type": "number", "minimum": 0},
        "input_tokens": {"type": "integer", "minimum": 0},
        "output_tokens": {"type": "integer", "minimum": 0},
        "cost_usd": {"type": "number", "minimum": 0, "description": "Else from the prices."},
        "quality": {"type": "number", "minimum": 0, "maximum": 1},
        "error": {"type": "boolean", "default": False},
        "variant": {"enum": ["stable", "canary"], "description": "Else from the release."},
        "model": {"type": "string", "description": "For pricing; else the front matter's."},
        "attributes": {"type": "object"},
        "error_type": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "Why the call failed (timeout, rate_limit, ...); implies error.",
        },
        "output_valid": {"type": "boolean", "description": "Met the output contract."},
        "finish_reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "description": "The provider's; length or max_tokens count as truncated.",
        },
        "trace_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
_SCORE_SCHEMA = {
    "type": "object",
    "required": ["event_id", "quality"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string"},
        "quality": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


def _body(key: str, item: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {key: {"type": "array", "items": item}}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _authorizer(token: TokenInfo | None) -> Callable[[str], str | None] | None:
    """Per environment: why this token may not write metrics there, or None."""
    if token is None:
        return None

    def check(environment: str) -> str | None:
        try:
            token.check(SCOPE, environment)
        except Forbidden as exc:
            return str(exc)
        return None

    return check


def _encode(result: BatchResult) -> bytes:
    answer = result.to_json()
    try:
        return orjson.dumps(answer)
    except TypeError:  # text orjson refuses (a lone surrogate): answered as before
        return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(body: bytes) -> Any:
    """Decode a batch with orjson; what it refuses and the json module reads (NaN,
    integers past 64 bits, lone surrogates) is read by the json module, so each such
    event is still answered on its own, as before."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


async def _batch(
    request: Request,
    ctx: AppContext,
    key: str,
    run: Callable[..., BatchResult],
) -> Response:
    token = ctx.authorize(request, SCOPE)
    body = await request.body()
    authorize = _authorizer(token)

    def work() -> tuple[BatchResult, bytes]:
        # Decode, store and encode in one trip to the thread pool (one hop, not three).
        try:
            decoded = _decode(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8: ValueErrors
            raise MalformedJSON(str(exc)) from exc
        result = run(batch_items(decoded, key), authorize=authorize)
        return result, _encode(result)

    try:
        result, answer = await run_in_threadpool(work)
    except (MalformedJSON, RegistryError):  # the problem handler answers
        ctx.telemetry.count("ingest_batches_refused_total")
        raise
    prefix = "ingest_scores" if key == "scores" else "ingest_events"
    ctx.telemetry.count(f"{prefix}_accepted_total", result.accepted)
    ctx.telemetry.count(f"{prefix}_duplicate_total", result.duplicate)
    ctx.telemetry.count(f"{prefix}_rejected_total", result.rejected)
    return Response(answer, media_type="application/json")


@router.post(
    "/metrics",
    summary="Push a batch of metric events",
    description=(
        'Body: `{"events": [...]}` (at most `max_batch`). Answers every event in order: '
        "`accepted`, `duplicate` (its event_id is stored already) or `rejected` with a "
        "`reason`; the valid events of a batch are stored even when others are rejected."
    ),
    openapi_extra=_body("events", _EVENT_SCHEMA),
    **BATCH_ANSWERS,
)
async def ingest(request: Request, ctx: ContextDep) -> Response:
    return await _batch(request, ctx, "events", ctx.registry.metrics.ingest)


@router.post(
    "/metrics/scores",
    summary="Attach quality scores to stored events",
    description=(
        'Body: `{"scores": [{"event_id": ..., "quality": 0.8}]}`. A score is `accepted` '
        "once per event; an event that already has a quality answers `duplicate`."
    ),
    openapi_extra=_body("scores", _SCORE_SCHEMA),
    **BATCH_ANSWERS,
)
async def scores(request: Request, ctx: ContextDep) -> Response:
    return await _batch(request, ctx, "scores", ctx.registry.metrics.score)


@router.get(
    "/prompts/{name:path}/metrics",
    summary="Metrics per version and variant",
    **answers(MetricsSummaryShape, 400, 401, 403, 404, 422, 503),
)
def summary(
    name: str,
    request: Request,
    ctx: ContextDep,
    env: str,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Count, error rate, latency p50/p95/p99, mean cost and tokens, and mean quality with
    its 95 % confidence interval, per version and variant over [since, until)."""
    token = ctx.authorize(request, "read", env)
    return ctx.registry.metrics_summary(name, env, since, until, viewer=token).to_json()


@router.get(
    "/prompts/{name:path}/analysis",
    summary="The running canary judged against stable",
    **answers(CanaryAnalysisShape, 400, 401, 403, 404, 409, 422, 503),
)
def analysis(
    name: str,
    request: Request,
    ctx: ContextDep,
    env: str,
    since: str | None = None,
) -> dict[str, Any]:
    """Per guard metric (error rate, successful calls' latency, cost and tokens per call,
    quality, invalid-output and truncation rates): both arms, the difference with its
    anytime-valid interval and a verdict (pass, fail, inconclusive, no data), and the
    overall verdict with its reasons. The window starts where the canary's current
    weight step started (or at `since`) and ends now. 409 when no canary runs."""
    token = ctx.authorize(request, "read", env)
    return ctx.registry.analyze(name, env, since=since, viewer=token).to_json()
