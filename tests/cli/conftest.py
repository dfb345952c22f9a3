"""CLI fixtures: one chain, each link built per test on tmp_path.

    repo -> settings -> registry -> runner (promptctl, run)

`repo` holds a history built with `git`. `settings` are what `promptctl --repo <repo>`
runs with: no database option, so a command that needs the release database would use the
default one beside the repository. `promptctl(*args)` runs the command, in-process with
click's runner, on the registry's repository; `run(*args)` does the same on this test's
release database at the newest migration (`migrated_database_url`: SQLite, or a PostgreSQL
schema of its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from promptctl.cli.main import cli
from promptctl.registry.core import Registry, Settings

TRIAGE = """\
---
description: Triage a support ticket
model: gpt-4o-mini
params: {{temperature: 0.2}}
input:
  ticket: {{type: string, description: raw ticket text}}
  tier: {{type: string, enum: [free, pro, enterprise], default: free}}
  urgent: {{type: boolean, default: false}}
  tags: {{type: array, items: string, default: []}}
owner: support-team
samples:
  - {{ticket: "I was charged twice", tier: pro}}
  - {{ticket: "The site is down", urgent: true, tags: [outage]}}
---
{{% message "system" %}}
{opening}
Tier: {{{{ tier }}}}.
{{% if urgent %}}
URGENT.
{{% endif %}}
{{% include "partials/tone.j2" %}}

{{% for tag in tags %}}#{{{{ tag }}}} {{% endfor %}}
{{% endmessage %}}
{{% message "user" %}}{{{{ ticket }}}}{{% endmessage %}}
"""

SUMMARIZE = "Summarise in one line:\n{{ article }}\n"


def triage(opening: str) -> str:
    return TRIAGE.format(opening=opening)


def _build_prompt_repo(repo) -> None:
    repo.commit("add triage and summarize", {
        "prompts/support/triage.prompt": triage("You triage tickets."),
        "prompts/partials/tone.j2": "Be kind.\n",
        "prompts/summarize.prompt": SUMMARIZE,
    })
    repo.git("tag", "release-1")
    repo.commit("brief tone", {"prompts/partials/tone.j2": "Be brief.\n"})
    repo.commit("sharper triage", {"prompts/support/triage.prompt": triage("Triage now.")})


@pytest.fixture
def repo(built_repo):
    """support/triage v1..v3 (v2 changes only the partial) and summarize v1; tag release-1.

    It is this test's `git_repo`, holding a fresh copy of a history built with `git`.
    """
    return built_repo("cli-prompt-repo", _build_prompt_repo)


@pytest.fixture
def settings(repo) -> Settings:
    """What `promptctl --repo <repo>` runs with."""
    return Settings(repo=repo.path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def promptctl(runner: CliRunner, registry: Registry) -> Callable[..., Result]:
    """Run `promptctl --repo <the registry's repository> ARGS` (or another repository given
    as repo=)."""

    def invoke(*args: str, repo: Any = None) -> Result:
        path = registry.settings.repo if repo is None else getattr(repo, "path", repo)
        return runner.invoke(cli, ["--repo", str(path), *args])

    return invoke


@pytest.fixture
def run(promptctl, migrated_database_url: str) -> Callable[..., Result]:
    """Run promptctl on this test's release database, at the newest migration."""

    def invoke(*args: str) -> Result:
        return promptctl("--database-url", migrated_database_url, *args)

    return invoke


@pytest.fixture
def json_of() -> Callable[[Result], Any]:
    """Parse a successful --json result's stdout."""

    def parse(result: Result) -> Any:
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        return json.loads(result.stdout)

    return parse


@pytest.fixture
def fails() -> Callable[[Result, str], str]:
    """Check a failure: exit 1, one `error:` line on stderr, no traceback; return the line."""

    def check(result: Result, expected: str) -> str:
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        assert "Traceback" not in result.stderr
        assert expected in lines[0], lines[0]
        return lines[0]

    return check
