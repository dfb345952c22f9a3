"""`promote --canary` refuses a version that breaks callers of stable unless
`--allow-breaking`; `history` shows what was let through; `diff --env` names the same."""

from __future__ import annotations

import json

import pytest

TRIAGE = "support/triage"
AUDIENCE_REQUIRED = "against v3 (stable): new required variable 'audience' without a default"


@pytest.fixture
def v4(repo) -> str:
    """triage v4: a required `audience` (the samples send it, so lint passes)."""
    path = repo.path / "prompts" / "support" / "triage.prompt"
    text = path.read_text()
    text = text.replace(
        "  tags: {type: array, items: string, default: []}\n",
        "  tags: {type: array, items: string, default: []}\n  audience: {type: string}\n",
    )
    text = text.replace("tier: pro}", "tier: pro, audience: ops}")
    text = text.replace("tags: [outage]}", "tags: [outage], audience: dev}")
    text = text.replace("Tier: {{ tier }}.", "Tier: {{ tier }}. For {{ audience }}.")
    repo.commit("triage needs an audience", {"prompts/support/triage.prompt": text})
    return "v4"


def test_a_breaking_canary_is_refused_in_one_line_naming_what_breaks(run, fails, v4):
    assert run("promote", f"{TRIAGE}@v3", "--env", "staging").exit_code == 0
    line = fails(
        run("promote", f"{TRIAGE}@{v4}", "--env", "staging", "--canary", "10"),
        f"{TRIAGE}@v4 cannot start as canary in staging: {AUDIENCE_REQUIRED}",
    )
    assert line.endswith("(--allow-breaking to release it anyway)")
    status = json.loads(run("status", TRIAGE, "--env", "staging", "--json").stdout)
    assert status[0]["canary"] is None


def test_allow_breaking_starts_it_and_history_shows_what_was_let_through(run, v4):
    run("promote", f"{TRIAGE}@v3", "--env", "staging")
    started = run(
        "promote", f"{TRIAGE}@{v4}", "--env", "staging", "--canary", "10", "--allow-breaking",
        "--reason", "callers send audience",
    )
    assert started.exit_code == 0, started.output
    assert "canary v4" in started.stdout
    text = run("history", TRIAGE, "--env", "staging").stdout
    assert f"callers send audience [allowed breaking: {AUDIENCE_REQUIRED}" in text
    [entry, _] = json.loads(run("history", TRIAGE, "--env", "staging", "--json").stdout)
    assert entry["allowed_breaking"][0].startswith(AUDIENCE_REQUIRED)


def test_diff_env_names_the_incompatibilities_the_gate_would_find(run, v4):
    run("promote", f"{TRIAGE}@v3", "--env", "staging")
    text = run("diff", TRIAGE, "--env", "staging", v4).stdout
    assert f"  ! breaking {AUDIENCE_REQUIRED}: callers do not send it yet" in text.splitlines()
    data = json.loads(run("diff", TRIAGE, "--env", "staging", v4, "--json").stdout)
    assert [(b["against"], b["code"], b["variable"]) for b in data["breaking"]] == [
        ("v3 (stable)", "required-variable", "audience")
    ]
