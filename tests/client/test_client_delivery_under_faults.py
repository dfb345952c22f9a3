"""The fault test: events tracked while the real server is killed and restarted all arrive,
each exactly once."""

from __future__ import annotations

import threading
import time

import pytest
from client_kit import CANARY_PROMPT, ENV, ServerProcess, wait_until
from sqlalchemy import create_engine, func, select

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
    restart = threading.Thread(target=lambda: (time.sleep(0.5), server.start()))
    with PromptClient(
        server.url, environment=ENV, timeout=5, flush_interval=0.05, ttl=1
    ) as prompts:
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
                restart.start()  # same port, same database, after a moment
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
