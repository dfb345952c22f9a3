"""`promptctl analyze` and the verdict `promptctl status` shows beside a running canary,
locally and through a server."""

from __future__ import annotations

import random

import pytest

from promptctl.registry.analysis.simulation import BASELINE, ArmProfile
from promptctl.registry.core import Registry, Settings

TRIAGE = "support/triage"


@pytest.fixture
def send(repo, database_url):
    """Send seeded calls of each arm through the metrics service, as the server would."""

    def traffic(digests: dict[str, str], n: int, canary: ArmProfile = BASELINE) -> None:
        registry = Registry(Settings(repo=repo.path, database_url=database_url))
        rng = random.Random(4)
        events = []
        for arm, profile in (("stable", BASELINE), ("canary", canary)):
            for i, c in enumerate(profile.calls(rng, n)):
                event = {
                    "event_id": f"{arm}-{i}",
                    "prompt": TRIAGE,
                    "env": "staging",
                    "digest": digests[arm],
                    "latency_ms": c.latency_ms,
                    "error": c.error,
                }
                if c.cost_usd is not None:
                    event["cost_usd"] = c.cost_usd
                events.append(event)
        for start in range(0, len(events), 1000):
            assert registry.metrics.ingest(events[start : start + 1000]).rejected == 0
        registry.close()

    return traffic


def released(run, json_of) -> dict[str, str]:
    stable = json_of(run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging", "--json"))
    canary = json_of(run("promote", TRIAGE, "--env", "staging", "--canary", "50", "--json"))
    return {"stable": stable["stable"]["digest"], "canary": canary["canary"]["digest"]}


def test_a_failing_canary_is_judged_fail_with_its_reasons(run, json_of, send):
    failing = ArmProfile(error_rate=0.5, latency_median_ms=2400.0)
    send(released(run, json_of), 1_500, canary=failing)
    result = run("analyze", TRIAGE, "--env", "staging")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{TRIAGE} in staging: canary v3 at 50% against stable v2, ")
    assert lines[1].split()[:2] == ["METRIC", "STABLE"]
    rows = {line.split("  ")[0].strip(): line for line in lines[2:10]}
    assert "fail" in rows["error rate"]
    assert "fail" in rows["latency"]
    assert "no data" in rows["quality (optional)"]
    assert "Latency of successful calls (stable / canary): p50 " in result.stdout
    assert "Verdict: FAIL (1,500 stable calls, 1,500 canary calls)" in result.stdout
    assert "  - error rate: " in result.stdout

    data = json_of(run("analyze", TRIAGE, "--env", "staging", "--json"))
    assert data["verdict"] == "fail"
    assert data["calls"] == {"stable": 1500, "canary": 1500}
    by = {m["metric"]: m for m in data["metrics"]}
    assert by["error_rate"]["verdict"] == "fail"
    assert by["error_rate"]["low"] > 0.3
    # Failed calls are fast: mixed into latency they would hide the canary's 3x.
    assert by["latency"]["canary"] > 2 * by["latency"]["stable"]

    status = run("status", TRIAGE, "--env", "staging")
    assert status.exit_code == 0, status.output
    assert "v3 (" in status.stdout
    assert "[fail]" in status.stdout
    rows = json_of(run("status", TRIAGE, "--json"))
    assert {(r["environment"], r["analysis"]) for r in rows} == {("staging", "fail")}


def test_a_canary_without_traffic_is_no_data_and_status_says_so(run, json_of):
    released(run, json_of)
    result = run("analyze", TRIAGE, "--env", "staging")
    assert result.exit_code == 0, result.output
    assert "Verdict: NO DATA (0 stable calls, 0 canary calls)" in result.stdout
    assert "  - no data for stable or canary" in result.stdout
    assert "[no data]" in run("status", "--env", "staging").stdout


def test_no_canary_is_one_clear_line(run, json_of, fails):
    json_of(run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging", "--json"))
    fails(run("analyze", TRIAGE, "--env", "staging"), "'support/triage' has no canary in staging")
    fails(run("analyze", TRIAGE, "--env", "production"), "'support/triage' has no release in")
    fails(run("analyze", TRIAGE, "--env", "qa"), "unknown environment 'qa'")
    fails(run("analyze", TRIAGE, "--env", "staging", "--since", "soon"), "'soon' is not a time")
    rows = json_of(run("status", TRIAGE, "--json"))
    assert [r["analysis"] for r in rows] == [None]


def test_analyze_through_a_server_reads_its_api(
    run, json_of, send, promptctl, repo, database_url, monkeypatch
):
    from fastapi.testclient import TestClient

    from promptctl.cli import remote
    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    send(released(run, json_of), 300)
    local = json_of(run("analyze", TRIAGE, "--env", "staging", "--json"))
    app = create_app(ServerSettings(repo=repo.path, database_url=database_url))
    with TestClient(app, base_url="http://promptctl.test") as client:
        monkeypatch.setattr(remote.httpx, "Client", lambda **options: client)
        server = ("--server", "http://promptctl.test")
        remote_json = json_of(promptctl(*server, "analyze", TRIAGE, "--env", "staging", "--json"))
        assert remote_json["metrics"] == local["metrics"]
        assert remote_json["verdict"] == local["verdict"]
        human = promptctl(*server, "analyze", TRIAGE, "--env", "staging")
        assert human.exit_code == 0, human.output
        assert "Verdict: " in human.stdout
        status = json_of(promptctl(*server, "status", TRIAGE, "--json"))
        assert [r["analysis"] for r in status] == [local["verdict"]]


def test_the_table_columns_line_up_under_their_headers_without_colour(run, json_of, send):
    """The verdict cell is coloured on a terminal; piped, its columns still line up."""
    send(released(run, json_of), 300)
    result = run("analyze", TRIAGE, "--env", "staging")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header, rows = lines[1], lines[2:10]
    assert "\x1b[" not in result.stdout
    for column in ("LIMIT", "VERDICT", "CALLS S/C"):
        at = header.index(column)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), (column, rows)


def test_rollout_status_shows_the_controllers_look_as_analyze_shows_it(
    run, json_of, send, repo, database_url
):
    """Rates in points, relative changes in per cent, as `analyze` writes them."""
    run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging")
    started = json_of(run("rollout", "start", TRIAGE, "--env", "staging", "--json"))
    release = json_of(run("status", TRIAGE, "--env", "staging", "--json"))[0]
    digests = {"stable": release["stable"]["digest"], "canary": started["canary_digest"]}
    send(digests, 300, canary=ArmProfile(error_rate=0.5))
    registry = Registry(Settings(repo=repo.path, database_url=database_url))
    registry.run_rollouts()
    registry.close()

    result = run("rollout", "status", TRIAGE, "--env", "staging")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("METRIC"))
    assert header.split()[:3] == ["METRIC", "STABLE", "CANARY"]
    rows = {line.split("  ")[0]: line for line in lines[lines.index(header) + 1 :]}
    assert " pp [" in rows["error rate"]
    assert "fail" in rows["error rate"]
    assert "%" in rows["latency"]
