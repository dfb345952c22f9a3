"""The JSON-before-prose incident, end to end against a live server.

support/classify v1 answers with the JSON its output schema (a file in the repository)
describes. v2 asks the model to explain itself first, and the model starts its answers
with a sentence before the JSON: every downstream parser breaks. With v2 as a canary, the
client's `prompt.parse` raises OutputInvalid on v2's answers naming the rule, the events it
sends say output_valid=false for v2 only, and `promptctl metrics` shows the invalid-output
rate of v2 only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from client_kit import run_promptctl
from support import serving

from promptctl import OutputInvalid, PromptClient
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

NAME = "support/classify"
ENV = "staging"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}
SCHEMA = {
    "type": "object",
    "required": ["category", "urgent"],
    "properties": {
        "category": {"type": "string", "enum": ["billing", "outage", "other"]},
        "urgent": {"type": "boolean"},
    },
    "additionalProperties": False,
}
EXPLAIN = "Explain your reasoning before you answer."


def classify(extra: str = "") -> str:
    return (
        "---\n"
        "model: gpt-4o-mini\n"
        "params: {max_tokens: 200}\n"
        "input:\n"
        "  ticket: string\n"
        "output: {format: json, schema: schemas/classify.json}\n"
        "samples:\n"
        "  - {ticket: I was charged twice}\n"
        "---\n"
        '{% message "system" %}Classify the support ticket as JSON with a category '
        f"and whether it is urgent. {extra}{{% endmessage %}}\n"
        '{% message "user" %}{{ ticket }}{% endmessage %}\n'
    )


def stand_in_model(messages: list[dict[str, str]]) -> str:
    """What the model answers: JSON, after a sentence when the prompt asks it to explain."""
    ticket = messages[-1]["content"]
    answer = json.dumps({"category": "billing", "urgent": "twice" in ticket})
    if EXPLAIN in messages[0]["content"]:
        return f"The customer mentions a charge, so this is billing.\n{answer}"
    return answer


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """support/classify v1 (JSON answers) and v2 (explains first), one schema file."""
    path = tmp_path / "repo"
    (path / "prompts" / "support").mkdir(parents=True)
    (path / "prompts" / "schemas").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")},
        **GIT_IDENTITY,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (path / "prompts" / "schemas" / "classify.json").write_text(json.dumps(SCHEMA, indent=2))
    prompt = path / "prompts" / "support" / "classify.prompt"
    prompt.write_text(classify())
    git("add", "-A")
    git("commit", "-q", "-m", "classify v1")
    prompt.write_text(classify(EXPLAIN))
    git("commit", "-q", "-am", "classify v2: explain the reasoning")
    return path


@dataclass
class Served:
    """The service over the story's repository and database, as the tests reach it."""

    url: str
    repo: Path
    database_url: str

    def promptctl(self, *args: str) -> str:
        return run_promptctl(self.repo, self.database_url, *args)


@pytest.fixture
def server(repo: Path, migrated_database_url: str) -> Iterator[Served]:
    """The service, in this process, with v1 stable and v2 as a 50 % canary in staging."""
    run_promptctl(repo, migrated_database_url, "promote", f"{NAME}@v1", "--env", ENV)
    run_promptctl(
        repo,
        migrated_database_url,
        "promote",
        f"{NAME}@v2",
        "--env",
        ENV,
        "--canary",
        "50",
        "--yes",
    )
    app = create_app(ServerSettings(repo=repo, database_url=migrated_database_url))
    with serving(app) as url:
        yield Served(url, repo, migrated_database_url)


def serve_tickets(client: PromptClient, count: int) -> dict[str, list[Any]]:
    """Classify `count` tickets, each for its own user; per version label, what parse gave."""
    outcomes: dict[str, list[Any]] = {}
    for number in range(count):
        prompt = client.get(NAME, key=f"user-{number}")
        with client.track(prompt) as call:
            messages = prompt.render(ticket=f"ticket {number}: I was charged twice")
            answer = stand_in_model(messages)
            call.record(input_tokens=40, output_tokens=20, finish_reason="stop")
            try:
                outcome: Any = prompt.parse(answer)
            except OutputInvalid as exc:
                outcome = exc
            assert call.output_valid is (not isinstance(outcome, OutputInvalid))
        outcomes.setdefault(prompt.label, []).append(outcome)
    return outcomes


def test_prose_before_json_fails_parse_and_shows_on_that_version_only(server: Served):
    client = PromptClient(server.url, environment=ENV, flush_interval=0.1)
    try:
        outcomes = serve_tickets(client, 40)
        assert client.flush()
    finally:
        client.close()

    assert set(outcomes) == {"v1", "v2"}  # both variants served
    assert outcomes["v1"] == [{"category": "billing", "urgent": True}] * len(outcomes["v1"])
    for failure in outcomes["v2"]:
        assert isinstance(failure, OutputInvalid)
        assert (failure.rule, failure.pointer, failure.offset) == ("prose-before-json", "", 0)
        assert "text before the JSON ('The customer mentions a charge" in str(failure)
        assert str(failure).startswith(f"{NAME}@v2: output invalid at the top level")

    shown = json.loads(server.promptctl("metrics", NAME, "--env", ENV, "--json"))
    rates = {v["version"]: v["outputs"] for v in shown["versions"]}
    assert rates[1] == {"checked": len(outcomes["v1"]), "invalid": 0, "invalid_rate": 0.0}
    assert rates[2] == {
        "checked": len(outcomes["v2"]),
        "invalid": len(outcomes["v2"]),
        "invalid_rate": 1.0,
    }
    table = server.promptctl("metrics", NAME, "--env", ENV)
    assert "INVALID" in table.upper()


def test_parse_outside_a_tracked_call_records_nothing(server: Served):
    with PromptClient(server.url, environment=ENV) as client:
        prompt = next(
            p for p in (client.get(NAME, key=f"k{n}") for n in range(50)) if p.label == "v2"
        )
        with pytest.raises(OutputInvalid) as raised:
            prompt.parse(stand_in_model(prompt.render(ticket="down")))
        assert raised.value.rule == "prose-before-json"
        other = next(
            p for p in (client.get(NAME, key=f"k{n}") for n in range(50)) if p.label == "v1"
        )
        # A call tracking v1 is not marked by parsing v2's answer inside it.
        with client.track(other) as call:
            with pytest.raises(OutputInvalid):
                prompt.parse("no JSON here")
            assert call.output_valid is None
            other.parse('{"category": "other", "urgent": false}')
            assert call.output_valid is True


def test_importing_the_client_leaves_the_validator_unloaded_until_parse(
    server: Served,
):
    probe = (
        "import sys\n"
        "from promptctl import PromptClient\n"
        "loaded = 'jsonschema_rs' in sys.modules\n"
        f"client = PromptClient({server.url!r}, environment={ENV!r})\n"
        f"prompt = client.get({NAME!r}, key='a')\n"
        "before = 'jsonschema_rs' in sys.modules\n"
        'prompt.parse(\'{"category": "other", "urgent": false}\')\n'
        "print(loaded, before, 'jsonschema_rs' in sys.modules)\n"
        "client.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False", "True"]
