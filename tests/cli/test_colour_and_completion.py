"""Colour (--color, NO_COLOR, coloured diffs on a terminal) and shell completion of prompt
names, environments and versions through click's completion protocol."""

from __future__ import annotations

import os
import subprocess

import pytest
from support import STARTUP_TIMEOUT, on_terminal, promptctl_command

TRIAGE = "support/triage"
ESC = "\x1b["
GREEN, RED, CYAN = "\x1b[32m", "\x1b[31m", "\x1b[36m"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR",)}
    return {**env, **extra}


def diff_command(repo) -> list[str]:
    return [*promptctl_command(), "--repo", str(repo.path), "diff", f"{TRIAGE}@v1", "v3"]


def test_a_diff_on_a_terminal_is_coloured(repo):
    code, shown = on_terminal(diff_command(repo), env=environment())

    assert code == 0, shown
    assert f"{RED}-You triage tickets." in shown
    assert f"{GREEN}+Triage now." in shown
    assert f"{CYAN}@@ " in shown


def test_no_color_and_color_never_keep_a_terminal_plain(repo):
    for env, extra in ((environment(NO_COLOR="1"), []), (environment(), ["--color", "never"])):
        code, shown = on_terminal([*diff_command(repo), *extra], env=env)
        assert code == 0, shown
        assert "-You triage tickets." in shown
        assert ESC not in shown


def test_a_piped_diff_is_plain_unless_color_always(repo):
    def run(*extra: str, **env: str) -> str:
        return subprocess.run(
            [*diff_command(repo), *extra],
            capture_output=True,
            text=True,
            env=environment(**env),
            timeout=STARTUP_TIMEOUT,
        ).stdout

    assert ESC not in run()
    assert f"{GREEN}+Triage now." in run("--color", "always")
    assert f"{GREEN}+Triage now." in run("--color", "always", NO_COLOR="1")  # the flag wins
    assert ESC in run(PROMPTCTL_COLOR="always")


def test_every_command_respects_color(promptctl):
    plain = promptctl("list")
    styled = promptctl("list", "--color", "always")

    assert ESC not in plain.stdout
    assert styled.stdout.startswith("\x1b[1mNAME")


# -- completion -------------------------------------------------------------------------------


@pytest.fixture
def complete(repo, migrated_database_url):
    """Ask the installed promptctl for bash completions of the words typed so far."""

    def ask(*words: str) -> list[str]:
        env = {
            **os.environ,
            "_PROMPTCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": " ".join(["promptctl", *words]),
            "COMP_CWORD": str(len(words)),
            "PROMPTCTL_DATABASE_URL": migrated_database_url,
        }
        result = subprocess.run(
            promptctl_command(),
            capture_output=True,
            text=True,
            env=env,
            cwd=repo.path,
            timeout=STARTUP_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        return [line.partition(",")[2] for line in result.stdout.splitlines() if line]

    return ask


def test_prompt_names_complete(complete):
    assert complete("show", "") == ["summarize", TRIAGE]
    assert complete("status", "su") == ["summarize", TRIAGE]
    assert complete("history", "support/") == [TRIAGE]
    assert complete("lint", "summarize", "sup") == [TRIAGE]


def test_versions_complete_after_name_at_and_as_references(complete):
    assert complete("show", f"{TRIAGE}@") == [f"{TRIAGE}@v3", f"{TRIAGE}@v2", f"{TRIAGE}@v1"]
    assert complete("promote", "summarize@v") == ["summarize@v1"]
    assert complete("diff", TRIAGE, "") == ["v3", "v2", "v1"]
    assert complete("rollback", TRIAGE, "--env", "staging", "--to", "v") == ["v3", "v2", "v1"]


def test_environments_complete_from_the_release_database(complete):
    assert complete("status", "--env", "") == ["development", "staging", "production"]
    assert complete("promote", TRIAGE, "--env", "p") == ["production"]
    assert complete("promote", TRIAGE, "--env", "staging", "--from", "st") == ["staging"]


def test_completion_without_a_repository_or_database_offers_nothing(complete, tmp_path):
    assert complete("--repo", str(tmp_path), "show", "") == []
    assert complete("--database-url", f"sqlite:///{tmp_path}/none.db", "status", "--env", "") == []
    assert not (tmp_path / "none.db").exists()
