"""Webhooks in the registry, on SQLite and PostgreSQL: the outbox written with each release
action, what a subscription receives, the order of deliveries, retries and their schedule,
failing subscriptions, signatures checked by the standardwebhooks library, Slack messages,
and refused input (URL, events, the SSRF guard)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from webhook_receiver import Receiver

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import (
    EnvironmentNotFound,
    InvalidWebhook,
    UnknownEventType,
    WebhookNotFound,
    WebhookTargetRefused,
)
from promptctl.registry.store.models import ReleaseLog, WebhookDelivery, WebhookEvent, utcnow
from promptctl.registry.webhooks.dispatcher import Outcome, RetryPolicy
from promptctl.registry.webhooks.payloads import slack_text
from promptctl.registry.webhooks.targets import guarded_target

ACTOR = "alice <alice@example.com>"


def greeting(number: int) -> str:
    return (
        "---\ndescription: Greet\ninput:\n  name: {type: string}\nsamples:\n  - {name: Ada}\n"
        f"---\nHello {{{{ name }}}}, greeting {number}.\n"
    )


def _build(repo) -> None:
    for number in (1, 2, 3):
        repo.commit(
            f"greet {number}",
            {"prompts/greet.prompt": greeting(number), "prompts/other.prompt": greeting(10)},
        )


@pytest.fixture
def registry(built_repo, migrated_database_url) -> Iterator[Registry]:
    """greet v1..v3 and other v1, over this test's database."""
    repo = built_repo("webhook-greetings", _build)
    registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
    yield registry
    registry.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiving:
        yield receiving


def promote(registry: Registry, ref: str, env: str = "staging", **options) -> None:
    version = registry.library.get("greet", ref)
    registry.releases.promote(version, env, actor=ACTOR, confirmed=True, **options)


def count(registry: Registry, model) -> int:
    with registry.database.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_every_release_action_writes_its_event_in_the_same_transaction(registry, receiver):
    hook = registry.webhooks.add(receiver.url, ["release.*"], actor=ACTOR)
    releases = registry.releases
    promote(registry, "v1", reason="first")
    promote(registry, "v2", canary_bp=1000)
    releases.ramp("greet", "staging", 5000, actor=ACTOR)
    releases.complete("greet", "staging", actor=ACTOR)
    promote(registry, "v3", canary_bp=2000)
    releases.abort("greet", "staging", actor=ACTOR)
    releases.rollback("greet", "staging", actor=ACTOR, reason="bad tone")

    assert registry.webhook_dispatcher.run_due() == 7
    events = [r.verified(hook.secret) for r in receiver.received]
    assert [e["type"] for e in events] == [
        "release.promoted",
        "release.canary_started",
        "release.canary_ramped",
        "release.canary_completed",
        "release.canary_started",
        "release.canary_aborted",
        "release.rolled_back",
    ]
    log = list(reversed(registry.releases.history("greet", "staging")))
    assert [e["data"] for e in events] == [entry.to_json() for entry in log]
    ramp = events[2]["data"]
    assert (ramp["from_weight"], ramp["to_weight"], ramp["to"]["label"]) == (10, 50, "v2")
    assert events[6]["data"]["reason"] == "bad tone"
    assert all(e["id"] == r.message_id for e, r in zip(events, receiver.received, strict=True))
    assert all(e["id"].startswith("msg_") and e["timestamp"] for e in events)


def test_an_action_that_fails_after_writing_its_event_leaves_neither(registry, monkeypatch):
    registry.webhooks.add("http://127.0.0.1:9/hook", ["*"], actor=ACTOR)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away mid-action")

    monkeypatch.setattr("promptctl.registry.releases.service.written_state", broken)
    with pytest.raises(RuntimeError):
        promote(registry, "v1")
    assert (count(registry, ReleaseLog), count(registry, WebhookEvent)) == (0, 0)
    assert count(registry, WebhookDelivery) == 0


def test_no_subscription_no_event_and_filters_choose_who_receives_what(registry):
    promote(registry, "v1")
    assert count(registry, WebhookEvent) == 0

    hooks = registry.webhooks
    everything = hooks.add("http://127.0.0.1:9/a", ["*"])
    production = hooks.add("http://127.0.0.1:9/b", ["release.*"], environment="production")
    others = hooks.add("http://127.0.0.1:9/c", ["release.promoted"], prompt="oth*")
    canaries = hooks.add("http://127.0.0.1:9/d", ["release.canary_started"])
    promote(registry, "v2")
    promote(registry, "v3", env="production")
    promote(registry, "v1", env="production", canary_bp=100)
    registry.releases.promote(
        registry.library.get("other", "v1"), "staging", actor=ACTOR, confirmed=True
    )
    registry.set_protected("staging", True)

    def types(hook) -> list[str]:
        return [d.type for d in reversed(hooks.deliveries(hook.subscription.id))]

    assert types(everything) == [
        "release.promoted",
        "release.promoted",
        "release.canary_started",
        "release.promoted",
        "environment.protected",
    ]
    assert types(production) == ["release.promoted", "release.canary_started"]
    assert types(others) == ["release.promoted"]
    assert hooks.deliveries(others.subscription.id)[0].prompt == "other"
    assert types(canaries) == ["release.canary_started"]
    assert [s.pending for s in hooks.list()] == [5, 2, 1, 1]


def test_deliveries_of_one_release_go_out_in_log_order_even_across_retries(registry):
    hook = registry.webhooks.add("http://127.0.0.1:9/hook", ["release.*"])
    promote(registry, "v1")
    promote(registry, "v2")
    promote(registry, "v1", env="production")
    dispatcher = registry.webhook_dispatcher
    first = dispatcher.claim(10)
    # The head of each release only: greet@staging's second promotion waits for its first.
    assert [(c.type, json.loads(c.body)["data"]["environment"]) for c in first] == [
        ("release.promoted", "staging"),
        ("release.promoted", "production"),
    ]
    failed = Outcome(False, 503, 2.0, "HTTP 503")
    for claim in first:
        dispatcher.record(claim, failed)
    later = utcnow() + timedelta(days=2)
    retried = dispatcher.claim(10, now=later)
    assert [c.delivery_id for c in retried] == [c.delivery_id for c in first]
    assert [c.number for c in retried] == [2, 2]
    staging = next(c for c in retried if c.delivery_id == first[0].delivery_id)
    dispatcher.record(staging, Outcome(True, 200, 1.0))
    [after] = dispatcher.claim(10, now=later)
    assert json.loads(after.body)["data"]["to"]["label"] == "v2"
    log = registry.webhooks.deliveries(hook.subscription.id)
    oldest = log[-1]
    assert [(a.number, a.outcome, a.status_code) for a in oldest.attempts] == [
        (1, "failed", 503),
        (2, "delivered", 200),
    ]


def test_a_delivery_gives_up_after_its_attempts_and_the_subscription_is_marked_failing(
    registry,
):
    hook = registry.webhooks.add("http://127.0.0.1:9/hook", ["release.*"])
    dispatcher = registry.webhook_dispatcher
    policy = dispatcher.policy
    promote(registry, "v1")
    moment = utcnow()
    for attempt in range(1, policy.max_attempts + 1):
        moment += timedelta(days=1)
        [claim] = dispatcher.claim(1, now=moment)
        assert claim.number == attempt
        dispatcher.record(claim, Outcome(False, 500, 1.0, "HTTP 500: boom"), now=moment)
        status = registry.webhooks.get(hook.subscription.id).status
        assert status == ("failing" if attempt >= 5 else "active")
    assert dispatcher.claim(1, now=moment + timedelta(days=30)) == []
    [delivery] = registry.webhooks.deliveries(hook.subscription.id)
    assert (delivery.status, len(delivery.attempts)) == ("failed", policy.max_attempts)
    subscription = registry.webhooks.get(hook.subscription.id)
    assert (subscription.last_error, subscription.pending) == ("HTTP 500: boom", 0)

    promote(registry, "v2")
    [claim] = dispatcher.claim(1, now=moment)
    dispatcher.record(claim, Outcome(True, 204, 1.0), now=moment)
    healthy = registry.webhooks.get(hook.subscription.id)
    assert (healthy.status, healthy.consecutive_failures) == ("active", 0)


def test_a_failing_subscription_is_logged_without_its_url_path(registry, caplog):
    # A Slack incoming-webhook URL is itself the credential: logs name only its origin.
    url = "https://hooks.slack.com/services/T000/B000/sekr1tpath?token=abc"
    hook = registry.webhooks.add(url, ["release.*"], format="slack")
    dispatcher = registry.webhook_dispatcher
    promote(registry, "v1")
    moment = utcnow()
    with caplog.at_level("WARNING", logger="promptctl.webhooks"):
        for _ in range(5):
            moment += timedelta(days=1)
            [claim] = dispatcher.claim(1, now=moment)
            dispatcher.record(claim, Outcome(False, 500, 1.0, "HTTP 500: boom"), now=moment)
    assert registry.webhooks.get(hook.subscription.id).status == "failing"
    assert "https://hooks.slack.com" in caplog.text
    assert "sekr1tpath" not in caplog.text
    assert "token=abc" not in caplog.text


def test_the_retry_schedule_backs_off_exponentially_over_about_a_day():
    policy = RetryPolicy()
    schedule = policy.schedule()
    assert len(schedule) == policy.max_attempts - 1
    assert schedule[:4] == [30, 120, 480, 1920]
    assert schedule[-1] == 8 * 3600
    assert 20 * 3600 <= sum(schedule) <= 30 * 3600
    drawn = [policy.delay(3) for _ in range(200)]
    assert min(drawn) >= 480 * 0.8
    assert max(drawn) <= 480 * 1.2
    assert len(set(drawn)) > 1  # jitter: a burst of retries spreads out


def test_a_receiver_verifies_deliveries_with_the_standardwebhooks_library(registry, receiver):
    hook = registry.webhooks.add(receiver.url, ["release.*"])
    assert hook.secret.startswith("whsec_")
    assert all(hook.secret != s.to_json().get("secret") for s in registry.webhooks.list())
    promote(registry, "v1")
    registry.webhook_dispatcher.run_due()
    [received] = receiver.received
    event = received.verified(hook.secret)
    assert event["data"]["to"]["label"] == "v1"
    other = registry.webhooks.add(receiver.url, ["release.*"])
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        received.verified(other.secret)


def test_a_slack_subscription_posts_a_readable_message(registry, receiver):
    registry.webhooks.add(receiver.url, ["release.*"], format="slack")
    promote(registry, "v1")
    promote(registry, "v2", canary_bp=1250, reason="new tone")
    registry.webhook_dispatcher.run_due()
    texts = [json.loads(r.body)["text"] for r in receiver.received]
    assert texts == [
        "*greet* in *staging*: v1 is stable (was nothing) (by alice <alice@example.com>)",
        "*greet* in *staging*: v2 started as canary at 12.5% (stable v1) "
        "(by alice <alice@example.com>) — new tone",
    ]
    assert slack_text({"type": "rollout.advanced", "data": {"prompt": "p", "environment": "e"}})


def test_a_test_message_is_sent_once_and_logged(registry, receiver):
    hook = registry.webhooks.add(receiver.url, ["release.*"])
    delivery = registry.webhooks.test(hook.subscription.id)
    assert (delivery.type, delivery.status) == ("webhook.test", "delivered")
    assert receiver.received[0].verified(hook.secret)["type"] == "webhook.test"
    receiver.status = 500
    failed = registry.webhooks.test(hook.subscription.id)
    assert (failed.status, failed.attempts[0].status_code) == ("failed", 500)
    assert registry.webhook_dispatcher.run_due() == 0  # a test message is never retried
    with pytest.raises(WebhookNotFound):
        registry.webhooks.test(999)


@pytest.mark.parametrize(
    ("url", "events", "field", "says"),
    [
        ("ftp://example.com/x", ["*"], "url", "'ftp'"),
        ("example.com/hook", ["*"], "url", "http(s)"),
        ("http:///nohost", ["*"], "url", "host"),
        ("http://example.com/", ["release.promotd"], "events", "did you mean 'release.promoted'"),
        ("http://example.com/", ["deploy.*"], "events", "unknown event type 'deploy.*'"),
        ("http://example.com/", [], "events", "at least one"),
    ],
)
def test_bad_subscriptions_are_refused_naming_the_field(registry, url, events, field, says):
    with pytest.raises(InvalidWebhook) as refused:
        registry.webhooks.add(url, events)
    assert refused.value.field == field
    assert says in str(refused.value)
    assert registry.webhooks.list() == []


def test_an_unknown_environment_or_format_is_refused(registry):
    with pytest.raises(EnvironmentNotFound):
        registry.webhooks.add("http://example.com/", ["*"], environment="prodution")
    with pytest.raises(InvalidWebhook, match="format"):
        registry.webhooks.add("http://example.com/", ["*"], format="teams")
    with pytest.raises(UnknownEventType):
        registry.webhooks.add("http://example.com/", ["release.*", "nope"])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0.0.0.0/", "private"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/", "loopback"),
        # IPv6 forms that carry an IPv4 address a relay or tunnel would reach: 6to4
        # (2002:AABB:CCDD::) and Teredo (the client address inverted in the last 32 bits).
        ("http://[2002:7f00:1::]/", "loopback"),
        ("http://[2002:a9fe:a9fe::1]/", "link-local"),
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "private"),
    ],
)
def test_the_ssrf_guard_refuses_targets_inside_the_network(url, why):
    with pytest.raises(WebhookTargetRefused, match=why):
        guarded_target(url, guarded=True)
    assert guarded_target(url, guarded=False).url == url


def test_the_ssrf_guard_lets_public_addresses_through():
    assert guarded_target("https://93.184.216.34/hook", guarded=True).url == (
        "https://93.184.216.34/hook"
    )
