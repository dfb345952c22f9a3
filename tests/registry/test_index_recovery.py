"""A version index damaged past its header (truncated, or pages overwritten) is built again
when a prompt's rows fail to read, and the question is answered, never refused."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from promptctl.cli.main import cli
from promptctl.registry.prompts.index_store import IndexStore
from promptctl.registry.prompts.library import PromptLibrary

PROMPTS = 30


def history_of(repo) -> None:
    """Enough prompts and versions that the index spans many pages."""
    for rev in range(6):
        files = {
            f"prompts/p{n:02d}.prompt": f"---\ndescription: prompt {n}\n---\nRevision {rev}.\n"
            for n in range(PROMPTS)
            if (n + rev) % 3
        }
        repo.commit(f"revision {rev}", files)


def labels(library: PromptLibrary) -> dict[str, list[str]]:
    return {f"p{n:02d}": [r.label for r in library.history(f"p{n:02d}")[0]] for n in range(PROMPTS)}


def damage(path, how: str) -> None:
    data = path.read_bytes()
    page = 4096
    assert len(data) > 6 * page
    if how == "truncated":  # the pages after the header's tables cut off
        path.write_bytes(data[: len(data) // page // 2 * page])
    else:  # every page after the third overwritten
        path.write_bytes(data[: 3 * page] + b"\xa5" * (len(data) - 3 * page))


# A truncated file fails as it is opened (SQLite checks its tables' pages against its
# size); one with pages overwritten opens, and fails when a prompt's rows are read.
@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_a_damaged_index_is_built_again_and_history_answers(git_repo, how):
    history_of(git_repo)
    expected = labels(PromptLibrary(git_repo.path))
    store_path = IndexStore(*_store_args(git_repo)).path
    damage(store_path, how)
    if how == "overwritten":
        with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
            assert db.execute("SELECT value FROM meta WHERE key = 'tip'").fetchone()

    assert labels(PromptLibrary(git_repo.path)) == expected
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert labels(PromptLibrary(git_repo.path)) == expected


def test_list_and_log_answer_on_a_damaged_index(git_repo):
    history_of(git_repo)
    runner = CliRunner()
    before = runner.invoke(cli, ["--repo", str(git_repo.path), "list"])
    assert before.exit_code == 0, before.output
    store_path = IndexStore(*_store_args(git_repo)).path
    damage(store_path, "overwritten")
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'tip'").fetchone()

    after = runner.invoke(cli, ["--repo", str(git_repo.path), "list"])
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout
    log = runner.invoke(cli, ["--repo", str(git_repo.path), "log", "p01"])
    assert log.exit_code == 0, log.output
    assert "v4" in log.stdout


def _store_args(repo) -> tuple:
    library = PromptLibrary(repo.path)
    return library.store, library.layout, library.layout.branch
