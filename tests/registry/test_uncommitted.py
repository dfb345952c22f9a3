"""Which of a prompt's files differ from HEAD in the working tree, and the facade's
warning when a promotion of HEAD leaves such edits behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.releases.actions import Promote

PROMPT = 'Hello {{ name }}.\n{% include "partials/a.j2" %}\n'


@pytest.fixture
def repo(git_repo):
    git_repo.commit("greet", {
        "prompts/greet.prompt": PROMPT,
        "prompts/partials/a.j2": "A.\n",
        "prompts/partials/b.j2": "B.\n",
        "prompts/other.prompt": "Other.\n",
    })
    return git_repo


@pytest.fixture
def registry(repo, migrated_database_url) -> Iterator[Registry]:
    registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
    yield registry
    registry.close()


def test_a_clean_working_tree_has_nothing_uncommitted(repo, make_library):
    assert make_library(repo).uncommitted("greet") == []


def test_the_prompt_and_the_partials_it_includes_are_compared(repo, make_library):
    repo.write("prompts/partials/a.j2", "A!\n")
    repo.write("prompts/partials/b.j2", "B!\n")  # not included: not greet's
    repo.write("prompts/other.prompt", "Another.\n")
    assert make_library(repo).uncommitted("greet") == ["prompts/partials/a.j2"]
    repo.write("prompts/greet.prompt", PROMPT + "Bye.\n")
    assert make_library(repo).uncommitted("greet") == [
        "prompts/greet.prompt",
        "prompts/partials/a.j2",
    ]


def test_a_partial_newly_included_or_a_deleted_file_counts(repo, make_library):
    repo.write("prompts/greet.prompt", PROMPT + '{% include "partials/c.j2" %}\n')
    repo.write("prompts/partials/c.j2", "C.\n")
    assert make_library(repo).uncommitted("greet") == [
        "prompts/greet.prompt",
        "prompts/partials/c.j2",
    ]
    repo.remove("prompts/partials/c.j2")
    repo.remove("prompts/greet.prompt")
    assert make_library(repo).uncommitted("greet") == ["prompts/greet.prompt"]


def test_a_bare_repository_has_no_working_tree_to_compare(repo, tmp_path, make_library):
    bare = tmp_path / "bare.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    assert make_library(bare).uncommitted("greet") == []


def test_promoting_head_with_uncommitted_edits_warns_and_promotes_head(repo, registry):
    committed = registry.library.get("greet", "HEAD").digest
    repo.write("prompts/partials/a.j2", "A!\n")
    promotion = registry.promote(Promote(prompt="greet", environment="staging"))
    sha = repo.git("rev-parse", "HEAD")[:10]
    assert promotion.warnings == (
        f"prompts/partials/a.j2 has uncommitted changes; promoting HEAD (commit {sha})",
    )
    assert promotion.state.stable.digest == committed


def test_promoting_another_reference_or_from_an_environment_does_not_warn(repo, registry):
    repo.write("prompts/greet.prompt", PROMPT + "Bye.\n")
    by_ref = registry.promote(Promote(prompt="greet", environment="staging", ref="v1"))
    assert by_ref.warnings == ()
    from_env = Promote(prompt="greet", environment="development", source="staging")
    assert registry.promote(from_env).warnings == ()
