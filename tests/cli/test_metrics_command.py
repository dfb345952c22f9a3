"""`promptctl metrics`: per-version figures from the release database, human and JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.metrics import MetricsService
from promptctl.registry.releases.serving import ServingCache

TRIAGE = "support/triage"


@pytest.fixture
def ingest(repo, database_url):
    """Store events as the server would (its cache sees the releases made so far)."""

    def send(events: list[dict]) -> None:
        registry = Registry(Settings(repo=repo.path, database_url=database_url))
        cache = ServingCache(registry.releases)
        cache.load_all()
        prices = {"gpt-4o-mini": type("Price", (), {"input": 0.15, "output": 0.6})()}
        result = MetricsService(registry.database, cache=cache, prices=prices).ingest(events)
        registry.close()
        assert result.rejected == 0, result.results

    return send


def event(digest: str, **changes) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "prompt": TRIAGE,
        "env": "staging",
        "digest": digest,
        "latency_ms": 400.0,
        "input_tokens": 1000,
        "output_tokens": 100,
        **changes,
    }


def released(run, json_of) -> tuple[str, str]:
    stable = json_of(run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging", "--json"))
    canary = json_of(run("promote", TRIAGE, "--env", "staging", "--canary", "20", "--json"))
    return stable["stable"]["digest"], canary["canary"]["digest"]


def test_metrics_shows_each_version_and_variant(run, json_of, ingest):
    stable, canary = released(run, json_of)
    ingest(
        [event(stable, quality=q) for q in (0.6, 0.8, 1.0)]
        + [event(canary, latency_ms=900.0), event(canary, latency_ms=3.0, error=True)]
    )
    data = json_of(run("metrics", TRIAGE, "--env", "staging", "--json"))
    rows = {(v["label"], v["variant"]): v for v in data["versions"]}
    assert sorted(rows) == [("v2", "stable"), ("v3", "canary")]
    assert rows[("v2", "stable")]["count"] == 3
    assert rows[("v2", "stable")]["quality"]["mean"] == pytest.approx(0.8)
    assert rows[("v3", "canary")]["error_rate"] == 0.5
    # The failed call's 3 ms never makes the canary look fast: latency is successful calls'.
    assert rows[("v3", "canary")]["latency_ms"]["p50"] == pytest.approx(900.0)
    assert rows[("v3", "canary")]["latency_ms"]["min"] == 900.0
    assert rows[("v3", "canary")]["latency_ms"]["count"] == 1

    human = run("metrics", TRIAGE, "--env", "staging")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert lines[0].startswith(f"{TRIAGE} in staging, ")
    assert lines[1].split()[:4] == ["VERSION", "VARIANT", "CALLS", "ERRORS"]
    assert lines[2].split()[:8] == ["v3", "canary", "2", "1", "(50.0%)", "900", "900", "900"]
    assert lines[3].split()[:5] == ["v2", "stable", "3", "0", "(0.0%)"]
    assert "0.80 [0.30, 1.00] n=3" in lines[3]
    assert "$0.00021" in lines[3]


def test_metrics_window_options(run, json_of, ingest):
    stable, _ = released(run, json_of)
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    ingest([event(stable), event(stable, ts=old)])
    recent = json_of(run("metrics", TRIAGE, "--env", "staging", "--since", "1d", "--json"))
    assert recent["versions"][0]["count"] == 1
    exact = run("metrics", TRIAGE, "--env", "staging", "--since", "2020-01-01T10:00:00Z")
    assert "Window in whole minutes" not in exact.stdout
    rounded = run("metrics", TRIAGE, "--env", "staging", "--since", "2020-01-01T10:00:27Z")
    assert "Window in whole minutes (rollups are per minute): --since 10:00:27 down." in (
        rounded.stdout
    )
    assert "Latency: successful calls only" in rounded.stdout
    week = json_of(run("metrics", TRIAGE, "--env", "staging", "--json"))
    assert week["versions"][0]["count"] == 2
    empty = run("metrics", TRIAGE, "--env", "staging", "--until", "3d")
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.startswith(f"No metrics for {TRIAGE} in staging from ")


def test_metrics_errors_are_one_line(run, json_of, fails):
    released(run, json_of)
    fails(run("metrics", TRIAGE, "--env", "qa"), "unknown environment 'qa'")
    fails(run("metrics", "nope", "--env", "staging"), "'nope' has never been released")
    fails(run("metrics", TRIAGE, "--env", "staging", "--since", "soon"), "'soon' is not a time")


def test_metrics_through_a_server_reads_its_api(
    run, json_of, ingest, promptctl, repo, database_url, monkeypatch
):
    from fastapi.testclient import TestClient

    from promptctl.cli import remote
    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    stable, _ = released(run, json_of)
    ingest([event(stable)])
    app = create_app(ServerSettings(repo=repo.path, database_url=database_url))
    with TestClient(app, base_url="http://promptctl.test") as client:

        # The CLI's remote backend talks to the app through the test client.
        monkeypatch.setattr(remote.httpx, "Client", lambda **options: client)
        result = promptctl(
            "--server", "http://promptctl.test", "metrics", TRIAGE, "--env", "staging"
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[2].split()[:3] == ["v2", "stable", "1"]
        missing = promptctl("--server", "http://promptctl.test", "metrics", TRIAGE, "--env", "qa")
        assert missing.exit_code == 1
        assert missing.stderr.startswith("error: server: unknown environment 'qa'")
