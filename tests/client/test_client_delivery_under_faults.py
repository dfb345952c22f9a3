"""The fault test: events tracked while the real server is killed and restarted all arrive,
each exactly once."""

from __future__ import annotations

import threading
import time

import pytest
from client_kit import CANARY_PROMPT, ENV, ServerProcess
from sqlalchemy import create_engine, func, select
from support import wait_until

from promptctl.client import PromptClient
from promptctl.registry.store.models import MetricEvent

TOTAL = 10_000
KILL_AFTER = 3_000  # events tracked before the server is killed
RESUME_AFTER = 7_000  # events tracked before the test waits for the restarted server


@pytest.mark.slow
def test_every_event_tracked_across_a_server_kill_and_restart_arrives_exactly_once(
    server: ServerProcess,
) -> None:
    ids: list[str] = []
    with PromptClient(
        server.url, environment=ENV, timeout=5, flush_interval=0.05, ttl=1
    ) as prompts:

        def come_back() -> None:
            # Down until the client has met the dead server, then back on the same port.
            wait_until(lambda: prompts.stats.send_failures >= 1, what="a failed send")
            server.start()

        restart = threading.Thread(target=come_back)
        for i in range(TOTAL):
            prompt = prompts.get(CANARY_PROMPT, key=f"user-{i % 997}")
            with prompts.track(prompt) as call:
                call.record(input_tokens=100 + i % 50, output_tokens=20)
            ids.append(call.event_id)
            if i % 100 == 99:
                time.sleep(0.01)  # an application's pace: delivery runs alongside
            if i + 1 == KILL_AFTER:
                wait_until(lambda: prompts.stats.events_sent >= 1_000, what="deliveries")
                server.kill()  # SIGKILL, batches in flight or not
                restart.start()  # same port, same database, once the client failed
            if i + 1 == RESUME_AFTER:
                restart.join()
        delivered = prompts.flush(timeout=45)
        stats = prompts.stats

    assert delivered, server.log()
    assert stats.send_failures >= 1  # the client did meet the dead server
    assert (stats.events_dropped, stats.events_rejected, stats.events_pending) == (0, 0, 0)
    assert stats.events_sent + stats.events_duplicate == TOTAL
    assert len(set(ids)) == TOTAL

    assert server.count(CANARY_PROMPT, ENV) == TOTAL
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            mine = (MetricEvent.prompt == CANARY_PROMPT, MetricEvent.environment == ENV)
            rows, distinct = connection.execute(
                select(func.count(), func.count(func.distinct(MetricEvent.event_id))).where(*mine)
            ).one()
            stored = set(connection.scalars(select(MetricEvent.event_id).where(*mine)))
    finally:
        engine.dispose()
    assert rows == distinct == TOTAL
    assert stored == set(ids)
