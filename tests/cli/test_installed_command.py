"""The installed `promptctl` executable, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def executable() -> list[str]:
    beside = Path(sys.executable).parent / "promptctl"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("promptctl")
    return [found] if found else [sys.executable, "-m", "promptctl.cli.main"]


def run(executable: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*executable, *args], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )


def test_the_installed_command_renders_a_prompt_from_the_repository_in_the_environment(
    executable, repo
):
    result = subprocess.run(
        [*executable, "render", "support/triage@v2", "--var", "ticket=Where is my refund?",
         "--json"],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={**os.environ, "PROMPTCTL_REPO": str(repo.path)},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["label"] == "v2"
    assert data["messages"][1] == {"role": "user", "content": "Where is my refund?"}


def test_the_installed_command_fails_with_one_line_and_exit_1(executable, repo):
    result = run(executable, "--repo", str(repo.path), "show", "support/triage@v9")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: prompt 'support/triage' has no version 'v9' (it has v1..v3)\n"
    )
