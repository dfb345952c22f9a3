"""`promote` from a working tree whose prompt (or a partial it includes) differs from HEAD
promotes HEAD, as before, and says so: one line on stderr, and `warnings` with --json.

Run as a real subprocess, the way a person at a terminal meets it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support import promptctl_command

TRIAGE = "support/triage"
PROMPT = "prompts/support/triage.prompt"
PARTIAL = "prompts/partials/tone.j2"


@pytest.fixture
def promptctl(repo, migrated_database_url):
    """Run the installed `promptctl` on the test's repository and database."""
    executable = promptctl_command()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")}
        command = [*executable, "--repo", str(repo.path), "--database-url",
                   migrated_database_url, *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    return run


def head(repo) -> str:
    return repo.git("rev-parse", "HEAD")[:10]


def test_uncommitted_edits_to_the_prompt_are_named_and_head_is_promoted(repo, promptctl):
    edited = repo.path / PROMPT
    edited.write_text(edited.read_text().replace("Triage now.", "Triage at once."))
    result = promptctl("promote", TRIAGE, "--env", "staging")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"warning: {PROMPT} has uncommitted changes; promoting HEAD (commit {head(repo)})\n"
    )
    assert result.stdout.startswith(f"{TRIAGE}: v3 (")
    assert result.stdout.endswith(" is stable in staging\n")


def test_json_output_carries_the_same_warning(repo, promptctl):
    (repo.path / PARTIAL).write_text("Be very brief.\n")
    result = promptctl("promote", TRIAGE, "--env", "staging", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    warning = f"{PARTIAL} has uncommitted changes; promoting HEAD (commit {head(repo)})"
    assert data["warnings"] == [warning]
    assert data["stable"]["label"] == "v3"
    assert result.stderr == f"warning: {warning}\n"


def test_the_prompt_and_its_partials_are_named_together(repo, promptctl):
    for relpath, text in ((PROMPT, None), (PARTIAL, "Be curt.\n")):
        path = repo.path / relpath
        path.write_text(text or path.read_text() + "\n")
    result = promptctl("promote", TRIAGE, "--env", "staging", "--canary", "5")
    assert result.returncode == 1  # nothing stable there to start a canary beside
    assert "warning" not in result.stderr  # a refused promotion says only why
    result = promptctl("promote", TRIAGE, "--env", "staging")
    assert result.stderr == (
        f"warning: {PROMPT}, {PARTIAL} have uncommitted changes; promoting HEAD "
        f"(commit {head(repo)})\n"
    )


def test_a_clean_working_tree_or_another_reference_promotes_without_a_word(repo, promptctl):
    clean = promptctl("promote", TRIAGE, "--env", "staging", "--json")
    assert clean.returncode == 0, clean.stderr
    assert (clean.stderr, json.loads(clean.stdout)["warnings"]) == ("", [])
    (repo.path / PARTIAL).write_text("Be very brief.\n")
    other = promptctl("promote", f"{TRIAGE}@v2", "--env", "development")
    assert (other.returncode, other.stderr) == (0, "")
    # Another prompt's edits are not this one's: summarize includes no partial.
    summarize = promptctl("promote", "summarize", "--env", "staging")
    assert (summarize.returncode, summarize.stderr) == (0, "")
