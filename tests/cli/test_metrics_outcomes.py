"""`promptctl metrics` on how calls ended: prices without configuration, budgets, invalid
outputs, truncations, error types and the traces of flagged calls."""

from __future__ import annotations

import re
import uuid

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.metrics import MetricsService
from promptctl.registry.metrics.prices import price_book
from promptctl.registry.releases.serving import ServingCache

TRIAGE = "support/triage"
BUDGET = "budget: {output_tokens: 250, cost_usd: 0.01}\n"


@pytest.fixture
def ingest(repo, database_url):
    """Store events as a server with no price configuration would."""

    def send(events: list[dict]) -> None:
        registry = Registry(Settings(repo=repo.path, database_url=database_url))
        cache = ServingCache(registry.releases)
        cache.load_all()
        result = MetricsService(registry.database, cache=cache).ingest(events)
        registry.close()
        assert result.rejected == 0, result.results

    return send


@pytest.fixture
def versions(repo, run, json_of) -> tuple[str, str]:
    """v3 stable, and v4 (the same prompt with a budget, answering longer) as canary."""
    path = repo.path / "prompts" / "support" / "triage.prompt"
    text = path.read_text().replace("owner: support-team\n", "owner: support-team\n" + BUDGET)
    assert BUDGET in text
    repo.commit("a budget for triage", {"prompts/support/triage.prompt": text})
    stable = json_of(run("promote", f"{TRIAGE}@HEAD~1", "--env", "staging", "--json"))
    canary = json_of(run("promote", TRIAGE, "--env", "staging", "--canary", "50", "--json"))
    return stable["stable"]["digest"], canary["canary"]["digest"]


def event(digest: str, **changes) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "prompt": TRIAGE,
        "env": "staging",
        "digest": digest,
        "latency_ms": 400.0,
        "input_tokens": 1000,
        "output_tokens": 200,
        **changes,
    }


def test_longer_answers_show_their_cost_per_call_in_dollars_without_price_configuration(
    run, json_of, ingest, versions, monkeypatch
):
    monkeypatch.delenv("PROMPTCTL_PRICES", raising=False)
    stable, canary = versions
    # The incident: the new version answers 35 % longer. No event carries a cost.
    ingest(
        [event(stable) for _ in range(20)] + [event(canary, output_tokens=270) for _ in range(20)]
    )

    price = price_book().price("gpt-4o-mini")
    assert price is not None  # from genai-prices' data, not from this test
    before = (1000 * price.input + 200 * price.output) / 1e6
    after = (1000 * price.input + 270 * price.output) / 1e6

    data = json_of(run("metrics", TRIAGE, "--env", "staging", "--json"))
    rows = {v["variant"]: v for v in data["versions"]}
    assert rows["stable"]["cost_usd"]["mean"] == pytest.approx(before)
    assert rows["canary"]["cost_usd"]["mean"] == pytest.approx(after)
    assert rows["canary"]["output_tokens"]["mean"] == pytest.approx(270)
    assert data["prices"]["source"].startswith("genai-prices ")
    assert data["prices"]["as_of"] is not None

    human = run("metrics", TRIAGE, "--env", "staging")
    assert human.exit_code == 0, human.output
    found = re.search(
        r"Cost per call v4 vs v3: \$([\d.]+) vs \$([\d.]+) \(\+\$([\d.]+), \+([\d.]+)%\)",
        human.stdout,
    )
    assert found, human.stdout
    shown_after, shown_before, shown_change, percent = map(float, found.groups())
    assert shown_after == pytest.approx(after, rel=0.01)
    assert shown_before == pytest.approx(before, rel=0.01)
    assert shown_change == pytest.approx(after - before, rel=0.01)
    assert percent == pytest.approx((after - before) / before * 100, abs=0.05)
    assert "Costs not sent with events: genai-prices " in human.stdout
    assert "prices as of " in human.stdout


def test_a_version_over_its_budget_is_flagged(run, json_of, ingest, versions):
    stable, canary = versions
    ingest([event(stable, output_tokens=400) for _ in range(5)])
    ingest([event(canary, output_tokens=300) for _ in range(5)])  # budget: 250

    data = json_of(run("metrics", TRIAGE, "--env", "staging", "--json"))
    rows = {v["variant"]: v for v in data["versions"]}
    assert rows["stable"]["budget"] is None  # v3 declares none: never flagged
    budget = rows["canary"]["budget"]
    assert budget["output_tokens"] == 250
    assert budget["cost_usd"] == 0.01
    assert budget["exceeded"] == ["output_tokens"]

    human = run("metrics", TRIAGE, "--env", "staging")
    assert "Over budget: v4 canary: mean output tokens 300 > 250" in human.stdout
    assert "Over budget: v3" not in human.stdout


def test_invalid_outputs_truncations_and_error_types_per_version(
    run, json_of, ingest, versions, monkeypatch
):
    monkeypatch.setenv("PROMPTCTL_TRACE_URL_TEMPLATE", "https://traces.example/t/{trace_id}")
    stable, canary = versions
    ingest([event(stable, output_valid=True, finish_reason="stop") for _ in range(10)])
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    ingest(
        [event(canary, output_valid=True, finish_reason="stop") for _ in range(6)]
        + [event(canary, output_valid=False, finish_reason="stop", trace_id=trace)]
        + [event(canary, output_valid=False, finish_reason="length")]
        + [event(canary, error=True, error_type="timeout") for _ in range(3)]
        + [event(canary, error_type="rate_limit")]  # an error type marks the call failed
    )

    data = json_of(run("metrics", TRIAGE, "--env", "staging", "--json"))
    rows = {v["variant"]: v for v in data["versions"]}
    assert rows["stable"]["outputs"] == {"checked": 10, "invalid": 0, "invalid_rate": 0.0}
    assert rows["stable"]["error_types"] == []
    canary_row = rows["canary"]
    assert canary_row["outputs"]["checked"] == 8
    assert canary_row["outputs"]["invalid_rate"] == pytest.approx(2 / 8)
    assert canary_row["finish_reasons"] == {
        "reported": 8,
        "truncated": 1,
        "truncation_rate": pytest.approx(1 / 8),
    }
    assert canary_row["errors"] == 4
    assert canary_row["error_types"] == [
        {"type": "timeout", "count": 3},
        {"type": "rate_limit", "count": 1},
    ]
    (flagged,) = canary_row["failing_traces"]
    assert flagged["trace_id"] == trace
    assert flagged["reason"] == "invalid_output"
    assert flagged["url"] == f"https://traces.example/t/{trace}"

    human = run("metrics", TRIAGE, "--env", "staging")
    lines = human.stdout.splitlines()
    assert lines[1].split()[-2:] == ["INVALID", "TRUNCATED"]
    canary_line = next(line for line in lines if line.startswith("v4 "))
    assert canary_line.split()[-2:] == ["25.0%", "12.5%"]
    assert "Errors of v4 canary: timeout 3, rate_limit 1" in human.stdout
