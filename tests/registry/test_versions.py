"""Versions in repositories built with the `git` command: digests, numbering and references."""

from __future__ import annotations

import re

import pytest

from promptctl.registry.errors import (
    ConfigError,
    PromptNotFound,
    RepositoryError,
    VersionNotFound,
)
from promptctl.registry.prompts.versions import digest_of

CHAT = """\
---
description: Greet a user
input:
  user: string
samples:
  - {{user: Ada}}
---
{{% message "system" %}}{body}{{% include "partials/tone.j2" %}}{{% endmessage %}}
{{% message "user" %}}Hello, I am {{{{ user }}}}.{{% endmessage %}}
"""


def chat(body: str) -> str:
    return CHAT.format(body=body)


def _build_history(repo) -> None:
    repo.commit("first greeting", {
        "prompts/greet.prompt": chat("Be kind. "),
        "prompts/partials/tone.j2": "Warm tone.",
    })
    repo.git("tag", "v1-tag")
    repo.commit("unrelated readme", {"README.md": "docs\n"})
    repo.commit("sharper greeting", {"prompts/greet.prompt": chat("Be brief. ")})


def _build_feature(repo) -> None:
    _build_history(repo)
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("feature draft", {"prompts/greet.prompt": chat("Draft. ")})
    repo.commit("feature final", {"prompts/greet.prompt": chat("Final. ")})
    repo.git("checkout", "-q", "main")
    repo.commit("main moves on", {"prompts/other.prompt": "Other."})


@pytest.fixture
def history(built_repo):
    """main: v1 (c1), an unrelated commit (c2), v2 (c3); tagged v1-tag at c1."""
    return built_repo("versions-history", _build_history)


def test_versions_are_numbered_in_the_order_they_appear_on_the_branch(history, make_library):
    records, index = make_library(history).history("greet")
    assert [r.label for r in records] == ["v1", "v2"]
    assert [r.commit.summary for r in records] == ["first greeting", "sharper greeting"]
    assert records[0].commit.author == "Test Author"
    assert records[0].commit.email == "author@example.com"
    assert index.branch == "main"


def test_a_commit_that_leaves_a_prompt_alone_makes_no_version(history, make_library):
    library = make_library(history)
    records, index = library.history("greet")
    assert len(index.events["greet"]) == 2
    assert library.get("greet", "HEAD~1").number == 1


def test_a_version_records_where_it_first_appeared(history, make_library):
    version = make_library(history).get("greet", "HEAD")
    assert version.number == 2
    assert version.label == "v2"
    assert version.first_commit.summary == "sharper greeting"
    assert version.commit.sha == history.git("rev-parse", "HEAD")
    assert version.commit.sha[:10] in version.source


def test_digest_is_sha256_hex_and_shown_as_twelve_characters(history, make_library):
    version = make_library(history).get("greet", "v1")
    assert re.fullmatch(r"[0-9a-f]{64}", version.digest)
    assert version.short_digest == version.digest[:12]


def test_equal_content_gives_an_equal_digest_whatever_the_prompt_or_commit(git_repo, make_library):
    text = chat("Same. ")
    git_repo.commit("a", {"prompts/a.prompt": text, "prompts/partials/tone.j2": "t"})
    git_repo.commit("b", {"prompts/b.prompt": text})
    library = make_library(git_repo)
    assert library.get("a", "HEAD~1").digest == library.get("b", "HEAD").digest
    assert library.get("a", "HEAD~1").digest == library.get("a", "HEAD").digest


def test_a_different_partial_gives_a_different_digest(git_repo, make_library):
    git_repo.commit("a", {"prompts/a.prompt": chat("x"), "prompts/partials/tone.j2": "one"})
    git_repo.commit("b", {"prompts/partials/tone.j2": "two"})
    library = make_library(git_repo)
    assert library.get("a", "HEAD~1").digest != library.get("a", "HEAD").digest


def test_changing_a_partial_makes_a_new_version_of_every_prompt_including_it_transitively(
    git_repo, make_library
):
    git_repo.commit("prompts", {
        "prompts/direct.prompt": '{% include "partials/inner.j2" %}',
        "prompts/indirect.prompt": 'Top. {% include "partials/outer.j2" %}',
        "prompts/other.prompt": "Nothing included.",
        "prompts/partials/outer.j2": 'Outer. {% include "partials/inner.j2" %}',
        "prompts/partials/inner.j2": "Inner one.",
    })
    git_repo.commit("change the inner partial", {"prompts/partials/inner.j2": "Inner two."})
    library = make_library(git_repo)
    assert [r.label for r in library.history("direct")[0]] == ["v1", "v2"]
    assert [r.label for r in library.history("indirect")[0]] == ["v1", "v2"]
    assert [r.label for r in library.history("other")[0]] == ["v1"]
    latest = library.get("indirect", "v2")
    assert latest.first_commit.summary == "change the inner partial"
    assert sorted(latest.partials) == ["partials/inner.j2", "partials/outer.j2"]
    assert latest.render({}).text == "Top. Outer. Inner two."


def test_a_partial_that_starts_being_included_later_is_tracked_from_then_on(git_repo, make_library):
    git_repo.commit("one", {"prompts/a.prompt": "A.", "prompts/partials/p.j2": "P1"})
    git_repo.commit("include it", {"prompts/a.prompt": 'A. {% include "partials/p.j2" %}'})
    git_repo.commit("change it", {"prompts/partials/p.j2": "P2"})
    library = make_library(git_repo)
    assert [r.label for r in library.history("a")[0]] == ["v1", "v2", "v3"]
    assert library.get("a", "v3").render({}).text == "A. P2"


def test_a_revert_returns_to_the_earlier_version_number(history, make_library):
    history.git("revert", "--no-edit", "HEAD")
    library = make_library(history)
    records, index = library.history("greet")
    assert [r.label for r in records] == ["v1", "v2"]
    assert [e.number for e in index.events["greet"]] == [1, 2, 1]
    assert index.current_digest("greet") == records[0].digest
    assert library.get("greet", "HEAD").label == "v1"


def test_a_prompt_removed_and_restored_keeps_its_version_number(history, make_library):
    text = (history.path / "prompts/greet.prompt").read_text()
    history.remove("prompts/greet.prompt")
    history.commit("remove")
    library = make_library(history)
    with pytest.raises(PromptNotFound):
        library.get("greet", "HEAD")
    assert library.history("greet")[1].current_digest("greet") is None
    history.commit("restore", {"prompts/greet.prompt": text})
    records, index = library.history("greet")
    assert [e.number for e in index.events["greet"]] == [1, 2, None, 2]
    assert library.get("greet", "HEAD").number == 2


def test_a_rename_keeps_the_digest_and_the_history(history, make_library):
    history.git("mv", "prompts/greet.prompt", "prompts/welcome.prompt")
    history.commit("rename greet to welcome")
    library = make_library(history)
    old = library.get("greet", "HEAD~1")
    new = library.get("welcome", "HEAD")
    assert new.digest == old.digest
    assert new.number == old.number == 2  # the renamed file goes on with greet's versions
    assert library.list("HEAD") == ["welcome"]


def test_the_index_follows_new_commits_on_the_branch(history, make_library):
    library = make_library(history)
    assert len(library.history("greet")[0]) == 2
    history.commit("third", {"prompts/greet.prompt": chat("Be bold. ")})
    assert [r.label for r in library.history("greet")[0]] == ["v1", "v2", "v3"]


# -- branches and merges -------------------------------------------------------------


@pytest.fixture
def feature(built_repo):
    """`history`, then branch `feature` with two changes to greet; main moves on meanwhile."""
    return built_repo("versions-feature", _build_feature)


def test_a_version_only_on_a_feature_branch_has_a_digest_but_no_number(feature, make_library):
    library = make_library(feature)
    version = library.get("greet", "feature")
    assert version.number is None
    assert version.label == version.digest[:12]
    assert version.first_commit is None
    assert [r.label for r in library.history("greet")[0]] == ["v1", "v2"]


def test_a_merge_numbers_the_merged_content_along_first_parent_history(feature, make_library):
    draft_sha = feature.git("rev-parse", "feature~1")
    feature.git("merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    library = make_library(feature)
    records, _ = library.history("greet")
    assert [r.label for r in records] == ["v1", "v2", "v3"]
    assert records[-1].commit.summary == "merge feature"
    assert library.get("greet", "feature").number == 3
    # The draft never reached main's first-parent history: it stays unnumbered.
    assert library.get("greet", draft_sha).number is None
    assert library.get("other", "HEAD").number == 1


def test_the_second_parent_of_a_merge_is_not_walked(feature, make_library):
    feature.git("merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    library = make_library(feature)
    assert library.get("greet", "HEAD^2~1").number is None
    assert library.get("greet", "HEAD^2").number == 3
    assert library.get("greet", "HEAD~1").number == 2


def test_a_fast_forward_merge_numbers_every_commit_it_brings(history, make_library):
    history.git("checkout", "-q", "-b", "feature")
    history.commit("draft", {"prompts/greet.prompt": chat("Draft. ")})
    history.commit("final", {"prompts/greet.prompt": chat("Final. ")})
    history.git("checkout", "-q", "main")
    history.git("merge", "-q", "--ff-only", "feature")
    records, _ = make_library(history).history("greet")
    assert [r.commit.summary for r in records] == [
        "first greeting", "sharper greeting", "draft", "final",
    ]


def test_a_feature_branch_that_reverts_itself_adds_no_version_when_merged(history, make_library):
    history.git("checkout", "-q", "-b", "feature")
    history.commit("try", {"prompts/greet.prompt": chat("Try. ")})
    history.git("revert", "--no-edit", "HEAD")
    history.git("checkout", "-q", "main")
    history.commit("main", {"README.md": "more docs\n"})
    history.git("merge", "-q", "--no-ff", "feature", "-m", "merge")
    assert [r.label for r in make_library(history).history("greet")[0]] == ["v1", "v2"]


def test_another_tracked_branch_numbers_its_own_history(feature, make_library):
    library = make_library(feature, branch="feature")
    records, index = library.history("greet")
    assert index.branch == "feature"
    assert [r.commit.summary for r in records] == [
        "first greeting", "sharper greeting", "feature draft", "feature final",
    ]


# -- references ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "number"),
    [
        ("v1", 1),
        ("v2", 2),
        ("HEAD", 2),
        ("HEAD~1", 1),
        ("HEAD~2", 1),
        ("HEAD^", 1),
        ("main", 2),
        ("v1-tag", 1),
        ("annotated", 2),
    ],
)
def test_every_reference_form_names_the_expected_version(history, make_library, ref, number):
    history.git("tag", "-a", "annotated", "-m", "release notes")
    version = make_library(history).get("greet", ref)
    assert version.number == number


def test_a_commit_sha_full_or_short_names_the_version_at_that_commit(history, make_library):
    sha = history.git("rev-parse", "HEAD~2")
    library = make_library(history)
    assert library.get("greet", sha).number == 1
    assert library.get("greet", sha[:8]).number == 1


def test_a_digest_prefix_of_seven_or_more_characters_names_a_version(history, make_library):
    library = make_library(history)
    digest = library.get("greet", "v1").digest
    assert library.get("greet", digest[:7]).number == 1
    assert library.get("greet", digest).number == 1
    assert library.get("greet", digest[:10].upper()).number == 1


def test_a_short_digest_prefix_is_not_a_version_reference(history, make_library):
    digest = make_library(history).get("greet", "v1").digest
    with pytest.raises(VersionNotFound):
        make_library(history).get("greet", digest[:6])


def _two_texts_sharing_a_digest_prefix() -> tuple[str, str, str]:
    seen: dict[str, str] = {}
    counter = 0
    while True:
        text = f"Version {counter}\n"
        prefix = digest_of(text.encode(), [])[:7]
        if prefix in seen:
            return seen[prefix], text, prefix
        seen[prefix] = text
        counter += 1


def test_an_ambiguous_digest_prefix_names_the_candidates(git_repo, make_library):
    first, second, prefix = _two_texts_sharing_a_digest_prefix()
    git_repo.commit("one", {"prompts/a.prompt": first})
    git_repo.commit("two", {"prompts/a.prompt": second})
    library = make_library(git_repo)
    with pytest.raises(VersionNotFound) as caught:
        library.get("a", prefix)
    assert str(caught.value) == (
        f"prompt 'a' has no version '{prefix}' (ambiguous digest prefix: v1, v2)"
    )
    assert library.get("a", library.get("a", "v2").digest[:12]).number == 2


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("v9", "prompt 'greet' has no version 'v9' (it has v1..v2)"),
        ("v0", "prompt 'greet' has no version 'v0' (it has v1..v2)"),
        ("nope", "prompt 'greet' has no version 'nope' (not a vN number, a digest prefix"),
        ("deadbee", "prompt 'greet' has no version 'deadbee' (not a vN number"),
        ("HEAD~40", "prompt 'greet' has no version 'HEAD~40'"),
        ("main..HEAD", "prompt 'greet' has no version 'main..HEAD'"),
    ],
)
def test_an_unknown_reference_is_a_clear_version_not_found(history, make_library, ref, message):
    with pytest.raises(VersionNotFound) as caught:
        make_library(history).get("greet", ref)
    assert str(caught.value).startswith(message)


def test_a_prompt_absent_at_a_revision_is_prompt_not_found(history, make_library):
    history.commit("add later", {"prompts/later.prompt": "Later."})
    library = make_library(history)
    with pytest.raises(PromptNotFound, match="unknown prompt 'later' at "):
        library.get("later", "v1-tag")
    with pytest.raises(VersionNotFound, match="it has no versions yet"):
        library.get("missing", "v1")


def test_an_invalid_prompt_name_is_refused(history, make_library):
    with pytest.raises(ConfigError, match="invalid prompt name 'gr eet'"):
        make_library(history).get("gr eet")


def test_includes_are_read_from_the_same_commit_as_the_prompt(history, make_library):
    history.commit("new tone", {"prompts/partials/tone.j2": "Cold tone."})
    history.write("prompts/partials/tone.j2", "Uncommitted tone.")
    library = make_library(history)
    system = {ref: library.get("greet", ref).render({"user": "Ada"}).messages[0].content
              for ref in ("v1", "v2", "HEAD", None)}
    assert system == {
        "v1": "Be kind. Warm tone.",
        "v2": "Be brief. Warm tone.",
        "HEAD": "Be brief. Cold tone.",
        None: "Be brief. Uncommitted tone.",
    }


def test_an_include_written_with_a_dot_or_slash_prefix_renders_the_same_partial(
    git_repo, make_library
):
    git_repo.commit("prompts", {
        "prompts/dot.prompt": '{% include "./partials/p.j2" %}',
        "prompts/slash.prompt": '{% include "/partials/p.j2" %}',
        "prompts/partials/p.j2": "Partial.",
    })
    library = make_library(git_repo)
    for name in ("dot", "slash"):
        version = library.get(name, "v1")
        assert list(version.partials) == ["partials/p.j2"]
        assert version.render({}).text == "Partial."


# -- working tree, empty, detached, bare, missing branch ---------------------------------


def test_without_a_reference_the_working_tree_is_read(history, make_library):
    history.write("prompts/greet.prompt", chat("Uncommitted. "))
    library = make_library(history)
    version = library.get("greet")
    assert version.source == "working tree"
    assert version.commit is None
    assert version.number is None
    assert version.label == version.digest[:12]
    history.write("prompts/greet.prompt", chat("Be kind. "))
    assert make_library(history).get("greet").label == "v1"


def test_ignored_files_in_the_working_tree_are_not_prompts(history, make_library):
    history.commit("ignore drafts", {".gitignore": "prompts/drafts/\n"})
    history.write("prompts/drafts/wip.prompt", "Work in progress.")
    history.write("prompts/fresh.prompt", "Fresh.")
    assert make_library(history).list() == ["fresh", "greet"]


def test_an_empty_repository_lists_working_tree_prompts_without_numbers(git_repo, make_library):
    library = make_library(git_repo)
    assert library.list() == []
    git_repo.write("prompts/draft.prompt", "Draft {{ x }}")
    library = make_library(git_repo)
    assert library.list() == ["draft"]
    assert library.get("draft").number is None
    with pytest.raises(RepositoryError, match="no commits yet"):
        library.history("draft")
    with pytest.raises(RepositoryError, match="no commits yet"):
        library.get("draft", "v1")
    with pytest.raises(VersionNotFound, match="'HEAD'"):
        library.get("draft", "HEAD")


def test_a_detached_head_reads_its_working_tree_and_numbers_from_the_branch(
    history, make_library
):
    history.git("checkout", "-q", "--detach", "HEAD~2")
    library = make_library(history)
    assert library.get("greet").number == 1
    assert library.get("greet", "HEAD").number == 1
    assert library.get("greet", "main").number == 2
    assert [r.label for r in library.history("greet")[0]] == ["v1", "v2"]


def test_a_missing_tracked_branch_gives_a_clear_message(make_git_repo, make_library):
    repo = make_git_repo("trunk-repo", branch="trunk")
    repo.commit("one", {"prompts/a.prompt": "A."})
    repo.git("branch", "release")
    library = make_library(repo, branch="main")  # named, so not guessed from the repository
    with pytest.raises(RepositoryError) as caught:
        library.history("a")
    assert str(caught.value) == (
        "tracked branch 'main' does not exist (local branches: release, trunk); "
        "set 'branch' in promptctl.toml, --branch or PROMPTCTL_BRANCH"
    )
    with pytest.raises(RepositoryError, match="tracked branch 'main' does not exist"):
        library.get("a", "v1")
    assert library.get("a", "HEAD").number is None
    assert make_library(repo, branch="trunk").get("a", "HEAD").number == 1


def test_a_bare_repository_reads_head_and_its_committed_config(history, tmp_path, make_library):
    history.commit("layout", {"promptctl.toml": 'branch = "main"\nroot = "prompts"\n'})
    bare = tmp_path / "bare.git"
    history.git("clone", "-q", "--bare", str(history.path), str(bare))
    library = make_library(bare)
    assert library.store.workdir is None
    assert library.list() == ["greet"]
    version = library.get("greet")
    assert version.commit.sha == history.git("rev-parse", "HEAD")
    assert version.number == 2
    assert library.get("greet", "HEAD~3").number == 1
    assert [r.label for r in library.history("greet")[0]] == ["v1", "v2"]


def test_a_folder_that_is_not_a_repository_is_a_repository_error(tmp_path, make_library):
    with pytest.raises(RepositoryError, match="not inside a git repository"):
        make_library(tmp_path)
