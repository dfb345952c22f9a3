"""Prompt files parsed once (registry/prompts/parsed_cache.py): what a warm `list` shows is
what a library that parses every file shows, a changed or renamed file is never read stale,
and a damaged cache file costs nothing but a parse."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from promptctl.cli.main import cli
from promptctl.registry.errors import RegistryError
from promptctl.registry.prompts.library import PromptLibrary

CHAT = """---
description: Triage a ticket
model: gpt-4o-mini
params: {temperature: 0.2}
input:
  ticket: {type: string, description: the text}
  tier: {type: string, enum: [free, pro], default: free}
---
{% message "system" %}You triage. {% include "partials/tone.j2" %}{% endmessage %}
{% message "user" %}{{ ticket }} ({{ tier }}){% endmessage %}
"""


def listed(library: PromptLibrary) -> dict[str, object]:
    return {
        name: str(v) if isinstance(v, RegistryError) else v.to_json()
        for name, v in library.load_all().items()
    }


def cache_files(repo) -> list[Path]:
    return sorted((repo.path / ".git" / "promptctl").glob("parsed-*.sqlite3"))


def test_a_warm_list_shows_what_parsing_every_file_shows(git_repo):
    git_repo.commit("one", {
        "prompts/triage.prompt": CHAT,
        "prompts/plain.prompt": "Just text.\n",
        "prompts/partials/tone.j2": "Be kind.",
        "prompts/broken.prompt": "---\nmodel: [unclosed\n---\nBody\n",
    })  # fmt: skip
    git_repo.write("prompts/copy.prompt", CHAT)  # the same bytes under another name

    uncached = listed(PromptLibrary(git_repo.path, persistent=False))
    cold = listed(PromptLibrary(git_repo.path))
    assert len(cache_files(git_repo)) == 1
    warm = listed(PromptLibrary(git_repo.path))

    assert cold == uncached
    assert warm == uncached
    assert warm["copy"]["path"] == "prompts/copy.prompt"
    assert warm["triage"]["path"] == "prompts/triage.prompt"
    assert warm["triage"]["inputs"]["tier"]["enum"] == ["free", "pro"]
    assert "broken.prompt" in warm["broken"]  # a bad file is parsed, and refused, every time


def test_an_edited_file_is_parsed_again(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": "---\nmodel: gpt-4o\n---\nHello\n"})
    assert PromptLibrary(git_repo.path).get("p").prompt.model == "gpt-4o"
    git_repo.write("prompts/p.prompt", "---\nmodel: gpt-4o-mini\n---\nHello\n")
    assert PromptLibrary(git_repo.path).get("p").prompt.model == "gpt-4o-mini"
    assert PromptLibrary(git_repo.path).get("p", "v1").prompt.model == "gpt-4o"


def test_a_damaged_cache_file_is_replaced_and_list_still_answers(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": CHAT, "prompts/partials/tone.j2": "Kind."})
    runner = CliRunner()
    first = runner.invoke(cli, ["--repo", str(git_repo.path), "list", "--json"])
    assert first.exit_code == 0, first.output
    [cache] = cache_files(git_repo)
    cache.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)

    again = runner.invoke(cli, ["--repo", str(git_repo.path), "list", "--json"])
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    # The damaged file is gone; the next command makes a good one and reads from it.
    third = runner.invoke(cli, ["--repo", str(git_repo.path), "list", "--json"])
    assert third.stdout == first.stdout
    assert [p.name for p in cache_files(git_repo)] == [cache.name]
    assert cache.read_bytes()[:16] == b"SQLite format 3\x00"


def test_caches_made_by_other_code_are_removed(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": "Text.\n"})
    folder = git_repo.path / ".git" / "promptctl"
    folder.mkdir(parents=True)
    stale = folder / "parsed-0123456789abcdef.sqlite3"
    stale.write_bytes(b"")
    PromptLibrary(git_repo.path).get("p")
    assert not stale.exists()
    assert len(cache_files(git_repo)) == 1
