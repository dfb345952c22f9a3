"""The rollout API's actions through the app: every verb reaches the rollout, not the release
route with the same last path segment (`/v1/prompts/{name}/abort`, `/promote`)."""

from __future__ import annotations

import pytest

PROMPT = "support/triage"


@pytest.fixture
def rolling(client, promote):
    """A rollout of support/triage in staging at its first step (the built-in policy)."""
    promote(PROMPT, "staging", "HEAD~1")
    started = client.post(f"/v1/prompts/{PROMPT}/rollout", json={"env": "staging"})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    return client


@pytest.mark.parametrize(("verb", "status"), [("abort", "aborted"), ("promote", "completed")])
def test_abort_and_promote_reach_the_rollout(rolling, verb, status):
    answer = rolling.post(f"/v1/prompts/{PROMPT}/rollout/{verb}", json={"env": "staging"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == status


@pytest.mark.parametrize(("verb", "status"), [("pause", "paused")])
def test_pause_reaches_the_rollout(rolling, verb, status):
    answer = rolling.post(f"/v1/prompts/{PROMPT}/rollout/{verb}", json={"env": "staging"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == status
