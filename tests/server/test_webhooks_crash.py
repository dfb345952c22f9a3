"""A server killed (SIGKILL) right after a promote committed and before its webhook was
delivered: after a restart the delivery arrives, the same message byte for byte."""

from __future__ import annotations

import os
import threading

import httpx
import pytest
from sqlalchemy import select
from support import ServeProcess, promptctl_command, wait_until
from webhook_receiver import Receiver

from promptctl.registry.core import Registry, Settings
from promptctl.registry.store.models import WebhookAttempt

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_delivery_cut_by_a_killed_server_arrives_after_the_restart(repo, migrated_database_url):
    registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
    env = {
        **os.environ,
        "PROMPTCTL_WEBHOOK_INTERVAL": "0.05",
        # An attempt may take 5 s; its lease (2 x 5 + 5 s) is how long a claim by a dead
        # server holds the delivery before another one sends it again.
        "PROMPTCTL_WEBHOOK_TIMEOUT": "5",
    }
    command = [
        *promptctl_command(),
        "--repo",
        str(repo.path),
        "--database-url",
        migrated_database_url,
        "serve",
        "--port",
        "0",
    ]
    with Receiver() as receiver:
        receiver.hold = threading.Event()  # the first request gets no answer
        hook = registry.webhooks.add(receiver.url, ["release.*"])
        first = ServeProcess(command, env=env)
        second: ServeProcess | None = None
        try:
            base = first.wait_started()
            promoted = httpx.post(
                f"{base}/v1/prompts/{TRIAGE}/promote",
                json={"env": "staging", "ref": "v2"},
                timeout=30,
            )
            assert promoted.status_code == 200, promoted.text  # committed
            assert receiver.arrived.wait(30), "the delivery was never attempted"
            first.kill()  # before the receiver answered: not delivered

            [delivery] = registry.webhooks.deliveries(hook.subscription.id)
            assert delivery.status == "pending"
            assert [(a.number, a.outcome) for a in delivery.attempts] == [(1, None)]
            cut = receiver.received[0]
            held, receiver.hold = receiver.hold, None
            held.set()

            second = ServeProcess(command, env=env)
            second.wait_started()
            wait_until(lambda: len(receiver.received) >= 2, timeout=60, what="the redelivery")
            [delivery] = wait_until(
                lambda: [
                    d
                    for d in registry.webhooks.deliveries(hook.subscription.id)
                    if d.status == "delivered"
                ],
                timeout=30,
            )
        finally:
            first.kill()
            if second is not None:
                second.stop()
    again = receiver.received[1]
    assert again.body == cut.body
    assert again.message_id == cut.message_id == delivery.message_id
    event = again.verified(hook.secret)
    assert (event["type"], event["data"]["to"]["label"]) == ("release.promoted", "v2")
    assert len(receiver.received) == 2
    with registry.database.session() as session:
        outcomes = session.scalars(select(WebhookAttempt.outcome).order_by(WebhookAttempt.id))
        assert list(outcomes) == [None, "delivered"]
    registry.close()
