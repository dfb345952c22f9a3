"""Webhook API: subscriptions, test messages and the delivery log (an `admin` token).

A subscription's secret is in the answer that creates it and in no other: the server keeps
it to sign deliveries and never returns it again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from promptctl.server.deps import ContextDep
from promptctl.server.openapi import answers
from promptctl.server.schemas import (
    NewWebhookShape,
    WebhookCreate,
    WebhookDeliveryShape,
    WebhookShape,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])
SubscriptionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The subscription's id.")]


@router.post(
    "/webhooks",
    status_code=201,
    summary="Subscribe a URL to events",
    **answers(
        NewWebhookShape, 400, 401, 403, 404, 413, 415, 422, 503,
        status=201, description="Created; the secret is shown only now",
    ),
)  # fmt: skip
def add_webhook(body: WebhookCreate, request: Request, ctx: ContextDep) -> dict[str, Any]:
    token = ctx.authorize(request, "admin")
    actor = f"token:{token.name}" if token is not None else "api (no token)"
    created = ctx.registry.webhooks.add(
        body.url,
        body.events,
        environment=body.env,
        prompt=body.prompt,
        format=body.format,
        description=body.description,
        actor=actor,
    )
    return created.to_json()


@router.get(
    "/webhooks", summary="Webhook subscriptions", **answers(list[WebhookShape], 401, 403, 503)
)
def list_webhooks(request: Request, ctx: ContextDep) -> list[dict[str, Any]]:
    ctx.authorize(request, "admin")
    return [s.to_json() for s in ctx.registry.webhooks.list()]


@router.get(
    "/webhooks/{subscription_id}",
    summary="One webhook subscription",
    **answers(WebhookShape, 401, 403, 404, 422, 503),
)
def get_webhook(
    subscription_id: SubscriptionId, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    return ctx.registry.webhooks.get(subscription_id).to_json()


@router.delete(
    "/webhooks/{subscription_id}",
    summary="Remove a webhook subscription, its pending deliveries and its log",
    **answers(WebhookShape, 401, 403, 404, 415, 422, 503, description="What was removed"),
)
def remove_webhook(
    subscription_id: SubscriptionId, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    return ctx.registry.webhooks.remove(subscription_id).to_json()


@router.post(
    "/webhooks/{subscription_id}/test",
    summary="Send a test event now",
    **answers(
        WebhookDeliveryShape, 401, 403, 404, 413, 415, 422, 503,
        description="The test delivery and its one attempt, delivered or not",
    ),
)  # fmt: skip
def test_webhook(
    subscription_id: SubscriptionId, request: Request, ctx: ContextDep
) -> dict[str, Any]:
    ctx.authorize(request, "admin")
    return ctx.registry.webhooks.test(subscription_id).to_json()


@router.get(
    "/webhooks/{subscription_id}/deliveries",
    summary="A subscription's delivery log",
    **answers(list[WebhookDeliveryShape], 401, 403, 404, 422, 503, description="Newest first"),
)
def webhook_deliveries(
    subscription_id: SubscriptionId,
    request: Request,
    ctx: ContextDep,
    limit: int = Query(default=50, ge=1, le=1000, description="At most this many deliveries."),
) -> list[dict[str, Any]]:
    ctx.authorize(request, "admin")
    return [d.to_json() for d in ctx.registry.webhooks.deliveries(subscription_id, limit)]
