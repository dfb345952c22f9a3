"""`promptctl webhook`: send release events to other systems (Standard Webhooks, or Slack).

Subscriptions live in the release database, or on the server when one is configured
(PROMPTCTL_SERVER, with an admin token): the same commands either way.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import click

from promptctl.cli.main import JSON_OPTION, Options, cli, pass_options
from promptctl.cli.output import emit_json, table
from promptctl.cli.remote import RemoteBackend
from promptctl.registry.core import Registry
from promptctl.registry.webhooks.values import (
    DELIVERED,
    Delivery,
    NewSubscription,
    Subscription,
)


class Webhooks(Protocol):
    """What the commands need, from the local database or from a server."""

    def add(self, url: str, events: list[str], **filters: Any) -> NewSubscription: ...
    def list(self) -> list[Subscription]: ...
    def remove(self, subscription_id: int) -> Subscription: ...
    def test(self, subscription_id: int) -> Delivery: ...
    def deliveries(self, subscription_id: int, limit: int) -> list[Delivery]: ...


class LocalWebhooks:
    """The subscriptions of the local release database (a server there sends them)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def add(self, url: str, events: list[str], **filters: Any) -> NewSubscription:
        return self.registry.webhooks.add(url, events, actor=self.registry.actor(), **filters)

    def list(self) -> list[Subscription]:
        return self.registry.webhooks.list()

    def remove(self, subscription_id: int) -> Subscription:
        return self.registry.webhooks.remove(subscription_id)

    def test(self, subscription_id: int) -> Delivery:
        return self.registry.webhooks.test(subscription_id)

    def deliveries(self, subscription_id: int, limit: int) -> list[Delivery]:
        return self.registry.webhooks.deliveries(subscription_id, limit)


class RemoteWebhooks(RemoteBackend):
    """The subscriptions of a server, through its API (an admin token)."""

    def add(self, url: str, events: list[str], **filters: Any) -> NewSubscription:
        body = {"url": url, "events": events, **filters}
        body["env"] = body.pop("environment", None)
        return NewSubscription.from_json(self._call("POST", "/v1/webhooks", json=body))

    def list(self) -> list[Subscription]:
        return [Subscription.from_json(s) for s in self._call("GET", "/v1/webhooks")]

    def remove(self, subscription_id: int) -> Subscription:
        # Every write to the API says it is JSON (a guard against cross-site requests).
        removed = self._call("DELETE", f"/v1/webhooks/{subscription_id}", json={})
        return Subscription.from_json(removed)

    def test(self, subscription_id: int) -> Delivery:
        answer = self._call("POST", f"/v1/webhooks/{subscription_id}/test", json={})
        return Delivery.from_json(answer)

    def deliveries(self, subscription_id: int, limit: int) -> list[Delivery]:
        path = f"/v1/webhooks/{subscription_id}/deliveries"
        return [Delivery.from_json(d) for d in self._call("GET", path, params={"limit": limit})]


def webhooks_of(options: Options) -> Webhooks:
    """The server's subscriptions when one is configured, else the local database's."""
    if options.server:
        return RemoteWebhooks(
            options.server, options.token, options.registry.actor(), timeout=options.timeout
        )
    return LocalWebhooks(options.registry)


@cli.group("webhook")
def webhook_group() -> None:
    """Send release events to other systems: signed JSON (Standard Webhooks) or Slack.

    Events are written with the release action itself and sent by the server, with retries
    over about a day; the delivery log shows every attempt.
    """


@webhook_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    "events",
    required=True,
    multiple=True,
    help="Event types or patterns, comma-separated or repeated: release.*, rollout.*, "
    "release.promoted, *.",
)
@click.option("--env", "environment", default=None, help="Only events of this environment.")
@click.option("--prompt", default=None, help="Only events of prompts matching this glob.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["standard", "slack"]),
    default="standard",
    show_default=True,
    help="standard: signed JSON events; slack: messages for a Slack incoming webhook.",
)
@click.option("--description", default=None, help="What it is for.")
@JSON_OPTION
@pass_options
def webhook_add(
    options: Options,
    url: str,
    events: tuple[str, ...],
    environment: str | None,
    prompt: str | None,
    format_: str,
    description: str | None,
    as_json: bool,
) -> None:
    """Subscribe URL to events; print the signing secret, shown only now."""
    patterns = [p.strip() for given in events for p in given.split(",") if p.strip()]
    created = webhooks_of(options).add(
        url,
        patterns,
        environment=environment,
        prompt=prompt,
        format=format_,
        description=description,
    )
    if as_json:
        emit_json(created.to_json())
        return
    click.echo(created.secret)
    click.echo(
        f"webhook {created.subscription.id} added: {_what(created.subscription)}; the secret "
        "above signs its deliveries and is shown only now",
        err=True,
    )


@webhook_group.command("list")
@JSON_OPTION
@pass_options
def webhook_list(options: Options, as_json: bool) -> None:
    """List subscriptions (never their secrets)."""
    subscriptions = webhooks_of(options).list()
    if as_json:
        emit_json([s.to_json() for s in subscriptions])
        return
    if not subscriptions:
        click.echo("No webhooks ('promptctl webhook add URL --events release.*').")
        return
    table(
        ["ID", "URL", "EVENTS", "ENV", "PROMPT", "FORMAT", "STATUS", "PENDING"],
        [
            [
                s.id,
                s.url,
                ",".join(s.events),
                s.environment or "*",
                s.prompt or "*",
                s.format,
                s.status if s.status == "active" else f"failing ({s.last_error or '?'})",
                s.pending,
            ]
            for s in subscriptions
        ],
    )


@webhook_group.command("remove")
@click.argument("subscription_id", metavar="ID", type=int)
@JSON_OPTION
@pass_options
def webhook_remove(options: Options, subscription_id: int, as_json: bool) -> None:
    """Remove a subscription, its pending deliveries and its log."""
    removed = webhooks_of(options).remove(subscription_id)
    if as_json:
        emit_json(removed.to_json())
        return
    click.echo(f"removed webhook {removed.id} ({removed.url})")


@webhook_group.command("test")
@click.argument("subscription_id", metavar="ID", type=int)
@JSON_OPTION
@pass_options
def webhook_test(options: Options, subscription_id: int, as_json: bool) -> None:
    """Send a test event now and say how it went (exit 1 when it was not delivered)."""
    delivery = webhooks_of(options).test(subscription_id)
    attempt = delivery.attempts[-1] if delivery.attempts else None
    if as_json:
        emit_json(delivery.to_json())
    elif delivery.status == DELIVERED and attempt is not None:
        click.echo(f"delivered: HTTP {attempt.status_code} in {attempt.duration_ms:g} ms")
    else:
        error = attempt.error if attempt is not None else "no attempt was made"
        click.echo(f"error: not delivered: {error}", err=True)
    if delivery.status != DELIVERED:
        sys.exit(1)


@webhook_group.command("deliveries")
@click.argument("subscription_id", metavar="ID", type=int)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@JSON_OPTION
@pass_options
def webhook_deliveries(options: Options, subscription_id: int, limit: int, as_json: bool) -> None:
    """Show a subscription's delivery log, newest first: status, attempts, status code,
    duration, and when a pending one is tried next."""
    deliveries = webhooks_of(options).deliveries(subscription_id, limit)
    if as_json:
        emit_json([d.to_json() for d in deliveries])
        return
    if not deliveries:
        click.echo(f"No deliveries for webhook {subscription_id} yet.")
        return
    rows = []
    for d in deliveries:
        last = d.attempts[-1] if d.attempts else None
        when = d.next_attempt_at if d.status == "pending" else d.finished_at
        note = last.error if last is not None and last.error else ""
        if d.status == "pending" and when is not None:
            note = f"next try {when:%Y-%m-%d %H:%M:%S}" + (f"; {note}" if note else "")
        rows.append(
            [
                d.id,
                d.type,
                f"{d.prompt}@{d.environment}" if d.prompt else (d.environment or ""),
                d.status,
                len(d.attempts),
                last.status_code if last is not None and last.status_code else "-",
                f"{last.duration_ms:g} ms" if last is not None and last.duration_ms else "-",
                f"{d.created_at:%Y-%m-%d %H:%M:%S}",
                note,
            ]
        )
    table(
        ["ID", "EVENT", "RELEASE", "STATUS", "ATTEMPTS", "CODE", "DURATION", "CREATED", "NOTE"],
        rows,
    )


def _what(subscription: Subscription) -> str:
    scope = [f"environment {subscription.environment}"] if subscription.environment else []
    scope += [f"prompts {subscription.prompt}"] if subscription.prompt else []
    where = f" of {' and '.join(scope)}" if scope else ""
    events = ",".join(subscription.events)
    return f"sends {events}{where} to {subscription.url} ({subscription.format})"
