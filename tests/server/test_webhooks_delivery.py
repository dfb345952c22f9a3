"""Webhooks through the API with the server's dispatcher running: a real receiver on
loopback, a receiver that is down for a while, one that hangs, the SSRF guard of a server
with tokens on a public interface, and two replicas on PostgreSQL sending each delivery
once, in log order."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support import wait_until
from webhook_receiver import Receiver

from promptctl.registry.core import Registry, Settings
from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
SUMMARY = "news/summary"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiving:
        yield receiving


@pytest.fixture
def fast(make_settings, open_client):
    """A client of an app whose dispatcher looks every 0.05 s and retries after 0.2 s."""

    def start(**overrides) -> TestClient:
        settings = make_settings(
            webhook_interval=0.05, webhook_retry_base=0.2, webhook_timeout=2.0, **overrides
        )
        return open_client(create_app(settings))

    return start


def subscribe(client: TestClient, url: str, **body) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, "events": ["release.*"], **body})
    assert response.status_code == 201, response.text
    return response.json()


def promote(client: TestClient, ref: str, env: str = "staging", name: str = TRIAGE) -> None:
    body = {"env": env, "ref": ref, "confirm": True}
    response = client.post(f"/v1/prompts/{name}/promote", json=body)
    assert response.status_code == 200, response.text


def test_a_promote_through_the_api_reaches_a_receiver_signed(fast, receiver):
    client = fast()
    hook = subscribe(client, receiver.url)
    assert hook["secret"].startswith("whsec_")
    listed = client.get("/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    assert hook["secret"] not in client.get(f"/v1/webhooks/{hook['id']}").text

    promote(client, "v2")
    wait_until(lambda: receiver.received, what="the delivery")
    event = receiver.received[0].verified(hook["secret"])
    assert (event["type"], event["data"]["to"]["label"]) == ("release.promoted", "v2")
    log = wait_until(
        lambda: [
            d
            for d in client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
            if d["status"] == "delivered"
        ]
    )
    assert log[0]["event_id"] == event["id"]
    assert log[0]["attempts"][0]["status_code"] == 200

    tested = client.post(f"/v1/webhooks/{hook['id']}/test", json={})
    assert (tested.status_code, tested.json()["status"]) == (200, "delivered")
    removed = client.request("DELETE", f"/v1/webhooks/{hook['id']}", json={})
    assert removed.json()["id"] == hook["id"]
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_a_receiver_down_for_a_while_gets_the_delivery_once_it_is_back(fast):
    client = fast()
    with Receiver(down=True) as receiver:
        hook = subscribe(client, receiver.url)
        promote(client, "v1")

        def attempts() -> list[dict]:
            [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
            return delivery["attempts"]

        failed = wait_until(lambda: len(attempts()) >= 2 and attempts(), what="two retries")
        assert failed[0]["outcome"] == "failed"
        assert "ConnectError" in failed[0]["error"]
        assert receiver.received == []
        receiver.up()
        wait_until(lambda: receiver.received, what="the delivery after the receiver is back")
        [delivery] = wait_until(
            lambda: [
                d
                for d in client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
                if d["status"] == "delivered"
            ]
        )
    assert delivery["attempts"][-1]["status_code"] == 200
    assert all(a["outcome"] == "failed" for a in delivery["attempts"][:-1])
    assert len(receiver.received) == 1
    assert receiver.received[0].verified(hook["secret"])["id"] == delivery["event_id"]


def test_a_receiver_answering_500_is_retried_and_then_delivered(fast):
    client = fast()
    with Receiver(status=500) as receiver:
        hook = subscribe(client, receiver.url)
        promote(client, "v1")
        wait_until(lambda: len(receiver.received) >= 2, what="a retry")
        receiver.status = 204
        wait_until(
            lambda: (
                client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()[0]["status"]
                == "delivered"
            )
        )
    ids = set(receiver.ids())
    assert len(ids) == 1  # every attempt is the same message
    codes = [
        a["status_code"]
        for a in client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()[0]["attempts"]
    ]
    assert codes[-1] == 204
    assert set(codes[:-1]) == {500}


def test_a_hanging_receiver_blocks_neither_release_actions_nor_other_subscriptions(fast):
    client = fast()
    with Receiver() as hanging, Receiver() as healthy:
        hanging.hold = threading.Event()
        subscribe(client, hanging.url)
        subscribe(client, healthy.url)
        promote(client, "v1")
        hanging.arrived.wait(15)
        assert hanging.received  # its request is open, unanswered
        promote(client, "v2")  # answered while the receiver hangs
        promote(client, "v1", env="production")
        wait_until(lambda: len(healthy.received) == 3, what="the healthy receiver's events")
        hanging.hold.set()


def test_bad_subscriptions_are_problems_naming_the_field(client, problem_of):
    def refused(body: dict, status: int = 422) -> str:
        return problem_of(client.post("/v1/webhooks", json=body), status)["detail"]

    assert "http(s)" in refused({"url": "file:///etc/passwd", "events": ["*"]})
    assert "did you mean 'release.promoted'" in refused(
        {"url": "http://example.com/", "events": ["release.promote"]}
    )
    assert "production" in refused(
        {"url": "http://example.com/", "events": ["*"], "env": "prodution"}, 404
    )
    problem_of(client.post("/v1/webhooks", json={"url": "http://example.com/"}), 422)
    problem_of(client.get("/v1/webhooks/0"), 422)
    problem_of(client.get("/v1/webhooks/77"), 404)
    problem_of(client.request("DELETE", "/v1/webhooks/77", json={}), 404)
    assert client.get("/v1/webhooks").json() == []


def test_a_server_with_tokens_on_a_public_interface_refuses_private_targets(
    make_settings, open_client, problem_of
):
    from promptctl.registry.auth import TokenService

    app = create_app(make_settings(tokens=True, host="0.0.0.0"))
    registry = app.state.ctx.registry
    secret, _ = TokenService(registry.database).create("ops", "admin")
    registry.serving.load_all()
    client = open_client(app)
    headers = {"Authorization": f"Bearer {secret}"}
    for url in ("http://127.0.0.1:8080/", "http://10.0.0.7/hook", "http://169.254.169.254/"):
        answer = client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=headers)
        detail = problem_of(answer, 422)["detail"]
        assert "PROMPTCTL_WEBHOOK_ALLOW_PRIVATE" in detail
    allowed = create_app(make_settings(tokens=True, host="0.0.0.0", webhook_allow_private=True))
    answer = open_client(allowed).post(
        "/v1/webhooks", json={"url": "http://10.0.0.7/hook", "events": ["*"]}, headers=headers
    )
    assert answer.status_code == 201, answer.text


def test_a_subscription_added_without_the_guard_is_refused_at_delivery(
    make_settings, open_client, receiver
):
    """Added from the CLI on the same database (no guard there), then sent by a guarded
    server: every attempt is refused and says why; nothing reaches the private target."""
    app = create_app(
        make_settings(tokens=True, host="0.0.0.0", webhook_interval=0.05, webhook_retry_base=0.1)
    )
    registry = app.state.ctx.registry
    settings = registry.settings
    local = Registry(Settings(repo=settings.repo, database_url=settings.database_url))
    hook = local.webhooks.add(receiver.url, ["release.*"])
    local.close()
    open_client(app)
    registry.releases.promote(
        registry.library.get(TRIAGE, "v1"), "staging", actor="test", confirmed=True
    )
    registry.webhook_dispatcher.wake()
    [delivery] = wait_until(
        lambda: [
            d for d in registry.webhooks.deliveries(hook.subscription.id) if len(d.attempts) >= 2
        ]
    )
    assert "loopback" in delivery.attempts[0].error
    assert receiver.received == []


@pytest.mark.postgres
def test_two_replicas_on_postgresql_send_each_delivery_once_in_log_order(
    database_url, make_settings, open_client, receiver
):
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database (SQLite: one process)")
    settings = make_settings(webhook_interval=0.02, webhook_workers=4)
    a = open_client(create_app(settings))
    b = open_client(create_app(settings))
    hook = subscribe(a, receiver.url, events=["*"])
    expected = 0
    for round_ in range(4):
        for env in ("development", "staging"):
            for name, ref in ((TRIAGE, f"v{round_ % 3 + 1}"), (SUMMARY, f"v{round_ % 2 + 1}")):
                client = a if expected % 2 else b
                body = {"env": env, "ref": ref, "confirm": True}
                answer = client.post(f"/v1/prompts/{name}/promote", json=body)
                expected += answer.status_code == 200
    wait_until(lambda: len(receiver.received) >= expected, timeout=30, what="every delivery")
    wait_until(
        lambda: all(
            d["status"] == "delivered"
            for d in a.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=100").json()
        )
    )
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == expected  # each delivery once
    events = [r.verified(hook["secret"]) for r in receiver.received]
    for name in (TRIAGE, SUMMARY):
        for env in ("development", "staging"):
            ids_in_order = [
                e["data"]["id"]
                for e in events
                if e["data"]["prompt"] == name and e["data"]["environment"] == env
            ]
            assert ids_in_order == sorted(ids_in_order), (name, env)
    attempts = [
        len(d["attempts"]) for d in a.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=100").json()
    ]
    assert set(attempts) == {1}
    assert json.loads(receiver.received[0].body)["type"].startswith("release.")
