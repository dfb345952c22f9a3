"""The git layer over repositories whose commits and branches are made with pygit2 directly."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pygit2
import pytest

from promptctl.registry.errors import (
    HistoryUnreadable,
    ObjectMissing,
    RepositoryError,
    RepositoryUnreadable,
    RevisionNotFound,
)
from promptctl.registry.prompts.gitstore import CommitInfo, GitStore
from promptctl.registry.prompts.library import PromptLibrary

EPOCH = 1_700_000_000


class PygitRepo:
    """Builds commits straight into the object database with create_commit, no working tree."""

    def __init__(self, path: Path, *, bare: bool = True) -> None:
        self.repo = pygit2.init_repository(str(path), bare=bare, initial_head="main")
        self.path = path
        self.files: dict[str, dict[str, str]] = {}
        self.clock = EPOCH

    def _tree(self, files: dict[str, str]) -> pygit2.Oid:
        builder = self.repo.TreeBuilder()
        folders: dict[str, dict[str, str]] = {}
        for path, text in files.items():
            head, _, rest = path.partition("/")
            if rest:
                folders.setdefault(head, {})[rest] = text
            else:
                blob = self.repo.create_blob(text.encode())
                builder.insert(head, blob, pygit2.GIT_FILEMODE_BLOB)
        for name, content in folders.items():
            builder.insert(name, self._tree(content), pygit2.GIT_FILEMODE_TREE)
        return builder.write()

    def commit(
        self,
        message: str,
        changes: dict[str, str | None],
        *,
        branch: str = "main",
        merge: str | None = None,
        author: str = "Ada Lovelace",
        offset: int = 120,
    ) -> str:
        """Commit `changes` (None removes a file) on `branch`; `merge` adds a second parent."""
        files = dict(self.files.get(branch, {}))
        for path, text in changes.items():
            if text is None:
                files.pop(path, None)
            else:
                files[path] = text
        self.clock += 60
        signature = pygit2.Signature(author, "ada@example.com", self.clock, offset)
        parents = []
        ref = self.repo.branches.local.get(branch)
        if ref is not None:
            parents.append(ref.target)
        if merge is not None:
            parents.append(self.repo.branches.local[merge].target)
        oid = self.repo.create_commit(
            f"refs/heads/{branch}", signature, signature, message, self._tree(files), parents
        )
        self.files[branch] = files
        return str(oid)

    def branch(self, name: str, start: str = "main") -> None:
        self.repo.branches.local.create(name, self.repo[self.repo.branches.local[start].target])
        self.files[name] = dict(self.files[start])


@pytest.fixture
def pygit_repo(tmp_path: Path) -> PygitRepo:
    return PygitRepo(tmp_path / "built.git")


def test_commit_info_is_a_frozen_value_with_author_time_zone_and_summary(pygit_repo):
    sha = pygit_repo.commit("Add greet\n\nLonger body.", {"prompts/greet.prompt": "Hi"})
    info = GitStore(pygit_repo.path).commit_info(sha)
    assert isinstance(info, CommitInfo)
    assert (info.sha, info.author, info.email, info.summary) == (
        sha, "Ada Lovelace", "ada@example.com", "Add greet",
    )
    assert info.time.utcoffset() == timedelta(minutes=120)
    assert info.time.timestamp() == EPOCH + 60
    assert info.short == sha[:10]
    # JSON says every time in UTC (the same instant): the author's offset stays in `time`.
    committed_at = info.to_json()["committed_at"]
    assert committed_at.endswith("+00:00")
    assert datetime.fromisoformat(committed_at).timestamp() == EPOCH + 60
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.author = "someone else"  # type: ignore[misc]


def test_revisions_resolve_to_commit_shas_as_plain_strings(pygit_repo):
    first = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    second = pygit_repo.commit("two", {"prompts/a.prompt": "2"})
    repo = pygit_repo.repo
    repo.references.create("refs/tags/light", pygit2.Oid(hex=first))
    signature = pygit2.Signature("Ada Lovelace", "ada@example.com", EPOCH, 0)
    repo.create_tag("heavy", pygit2.Oid(hex=first), pygit2.enums.ObjectType.COMMIT, signature, "m")
    store = GitStore(pygit_repo.path)
    resolved = {rev: store.resolve(rev) for rev in ("HEAD", "main", "HEAD~1", "light", "heavy")}
    assert resolved == {
        "HEAD": second, "main": second, "HEAD~1": first, "light": first, "heavy": first,
    }
    assert all(type(sha) is str for sha in resolved.values())
    assert store.resolve(first[:7]) == first


@pytest.mark.parametrize("rev", ["nope", "HEAD~5", "main..HEAD", "HEAD@{bad", "", "0" * 40])
def test_an_unknown_or_malformed_revision_is_revision_not_found(pygit_repo, rev):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    with pytest.raises(RevisionNotFound, match="unknown git revision"):
        GitStore(pygit_repo.path).resolve(rev)


def test_a_repository_without_commits_says_so(tmp_path):
    PygitRepo(tmp_path / "empty.git")
    store = GitStore(tmp_path / "empty.git")
    assert not store.has_commits()
    assert store.branch_tip("main") is None
    assert store.head_description() == "an unborn branch (no commits yet)"
    with pytest.raises(RevisionNotFound, match="the repository has no commits yet"):
        store.resolve("HEAD")


def test_a_missing_folder_is_a_repository_error(tmp_path):
    with pytest.raises(RepositoryError, match="not inside a git repository"):
        GitStore(tmp_path / "nowhere")


def test_branches_and_tips_come_from_pygit2_branches(pygit_repo):
    first = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    pygit_repo.branch("feature")
    tip = pygit_repo.commit("feature work", {"prompts/a.prompt": "f"}, branch="feature")
    store = GitStore(pygit_repo.path)
    assert store.branches() == ["feature", "main"]
    assert store.branch_tip("feature") == tip
    assert store.branch_tip("main") == first
    assert store.branch_tip("gone") is None
    assert store.is_ancestor(first, tip)
    assert not store.is_ancestor(tip, first)


def test_files_at_lists_the_files_below_the_root_only(pygit_repo):
    sha = pygit_repo.commit("files", {
        "prompts/a.prompt": "A",
        "prompts/deep/b.prompt": "B",
        "README.md": "docs",
    })
    store = GitStore(pygit_repo.path)
    files = store.files_at(sha, "prompts")
    assert sorted(files) == ["a.prompt", "deep/b.prompt"]
    assert store.read_blob(files["deep/b.prompt"]) == b"B"
    assert store.files_at(sha, "missing") == {}
    assert store.blob_at(sha, "README.md") is not None
    assert store.blob_at(sha, "prompts") is None


def test_a_bare_repository_built_with_pygit2_numbers_and_renders_versions(pygit_repo):
    body = "---\ninput:\n  who: string\n---\nHello {{ who }}, {% include 'partials/p.j2' %}"
    pygit_repo.commit("v1", {"prompts/hi.prompt": body, "prompts/partials/p.j2": "welcome."})
    pygit_repo.commit("docs", {"docs/readme.md": "nothing to do with prompts"})
    pygit_repo.commit("v2", {"prompts/partials/p.j2": "good to see you."})
    library = PromptLibrary(pygit_repo.path)
    assert library.list() == ["hi"]
    records, _ = library.history("hi")
    assert [(r.label, r.commit.summary) for r in records] == [("v1", "v1"), ("v2", "v2")]
    assert library.get("hi").render({"who": "Ada"}).text == "Hello Ada, good to see you."
    assert library.get("hi", "v1").render({"who": "Ada"}).text == "Hello Ada, welcome."


def test_a_merge_commit_built_with_pygit2_numbers_along_first_parents(pygit_repo):
    pygit_repo.commit("base", {"prompts/a.prompt": "base"})
    pygit_repo.branch("feature")
    pygit_repo.commit("feature one", {"prompts/a.prompt": "one"}, branch="feature")
    pygit_repo.commit("feature two", {"prompts/a.prompt": "two"}, branch="feature")
    pygit_repo.commit("main side", {"prompts/b.prompt": "b"})
    library = PromptLibrary(pygit_repo.path)
    assert library.get("a", "feature").number is None
    pygit_repo.commit("merge feature", {"prompts/a.prompt": "two"}, merge="feature")
    library = PromptLibrary(pygit_repo.path)
    records, index = library.history("a")
    assert [(r.label, r.commit.summary) for r in records] == [
        ("v1", "base"), ("v2", "merge feature"),
    ]
    assert library.get("a", "feature").number == 2
    assert library.get("a", "feature~1").number is None
    assert len(index.events["a"]) == 2


def test_the_tracked_branch_can_be_any_branch_made_with_pygit2(pygit_repo):
    pygit_repo.commit("base", {"prompts/a.prompt": "base"})
    pygit_repo.branch("release")
    pygit_repo.commit("release fix", {"prompts/a.prompt": "fixed"}, branch="release")
    assert [r.label for r in PromptLibrary(pygit_repo.path).history("a")[0]] == ["v1"]
    records, _ = PromptLibrary(pygit_repo.path, branch="release").history("a")
    assert [r.commit.summary for r in records] == ["base", "release fix"]


def test_user_identity_comes_from_the_isolated_git_config(pygit_repo):
    assert GitStore(pygit_repo.path).user_identity() == "Test Author <author@example.com>"


# -- bad or missing objects answer our errors, never pygit2's ---------------------------

BAD_SHAS = ["0" * 40, "deadbeef" * 5, "not-hex", ""]


def _drop_object(repo: PygitRepo, oid: str) -> None:
    """Delete a loose object, as a damaged or shallow clone lacks it."""
    (repo.path / "objects" / oid[:2] / oid[2:]).unlink()


@pytest.mark.parametrize("sha", BAD_SHAS)
def test_commit_info_of_an_unknown_or_malformed_sha_is_revision_not_found(pygit_repo, sha):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    with pytest.raises(RevisionNotFound, match="unknown git revision"):
        GitStore(pygit_repo.path).commit_info(sha)


def test_commit_info_of_a_blob_id_is_revision_not_found(pygit_repo):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    store = GitStore(pygit_repo.path)
    blob = store.files_at(store.resolve("HEAD"), "prompts")["a.prompt"]
    with pytest.raises(RevisionNotFound, match=blob):
        store.commit_info(blob)


@pytest.mark.parametrize("blob", BAD_SHAS)
def test_reading_an_unknown_or_malformed_blob_is_object_missing(pygit_repo, blob):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    with pytest.raises(ObjectMissing, match="the repository has no blob"):
        GitStore(pygit_repo.path).read_blob(blob)


def test_reading_a_commit_as_a_blob_is_object_missing(pygit_repo):
    sha = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    with pytest.raises(ObjectMissing, match=f"no blob '{sha}'"):
        GitStore(pygit_repo.path).read_blob(sha)


def test_a_blob_missing_from_the_object_database_is_a_repository_error(pygit_repo):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    store = GitStore(pygit_repo.path)
    blob = store.files_at(store.resolve("HEAD"), "prompts")["a.prompt"]
    _drop_object(pygit_repo, blob)
    with pytest.raises(RepositoryError, match=f"no blob '{blob}'"):
        GitStore(pygit_repo.path).read_blob(blob)


def test_a_tree_missing_from_the_object_database_is_a_repository_error(pygit_repo):
    pygit_repo.commit("one", {"prompts/team/a.prompt": "1"})
    store = GitStore(pygit_repo.path)
    prompts = pygit_repo.repo.revparse_single("HEAD:prompts")
    team = str(prompts["team"].id)
    _drop_object(pygit_repo, team)
    with pytest.raises(ObjectMissing, match=f"no tree '{team}'"):
        GitStore(pygit_repo.path).files_at(store.resolve("HEAD"), "prompts")


@pytest.mark.parametrize("sha", BAD_SHAS)
def test_is_ancestor_with_an_unknown_or_malformed_sha_is_revision_not_found(pygit_repo, sha):
    tip = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    store = GitStore(pygit_repo.path)
    with pytest.raises(RevisionNotFound, match="unknown git revision"):
        store.is_ancestor(sha, tip)
    with pytest.raises(RevisionNotFound, match="unknown git revision"):
        store.is_ancestor(tip, sha)


@pytest.mark.parametrize("sha", BAD_SHAS)
def test_files_and_blobs_at_an_unknown_sha_are_revision_not_found(pygit_repo, sha):
    pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    store = GitStore(pygit_repo.path)
    with pytest.raises(RevisionNotFound):
        store.files_at(sha, "prompts")
    with pytest.raises(RevisionNotFound):
        store.blob_at(sha, "prompts/a.prompt")
    with pytest.raises(RevisionNotFound):
        list(store.first_parent_changes(sha, "prompts"))


def test_a_history_with_a_missing_commit_is_history_unreadable(pygit_repo):
    first = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    middle = pygit_repo.commit("two", {"prompts/a.prompt": "2"})
    tip = pygit_repo.commit("three", {"prompts/a.prompt": "3"})
    _drop_object(pygit_repo, middle)
    store = GitStore(pygit_repo.path)
    with pytest.raises(HistoryUnreadable, match=f"cannot read the history of commit {tip}"):
        list(store.first_parent_changes(tip, "prompts"))
    with pytest.raises(HistoryUnreadable, match=tip):
        store.is_ancestor(first, tip)


@pytest.mark.parametrize("removed", ["", "objects"])
def test_a_repository_that_went_away_while_open_is_unreadable_not_missing(pygit_repo, removed):
    """Every read says the repository cannot be read (a 503), never that a branch, revision
    or object does not exist, and no OSError gets out."""
    sha = pygit_repo.commit("one", {"prompts/a.prompt": "1"})
    blob = str(pygit2.hash(b"1"))
    store = GitStore(pygit_repo.path)  # opened, nothing read yet: pygit2 keeps what it read
    shutil.rmtree(pygit_repo.path / removed)
    reads = {
        "branch_tip": lambda: store.branch_tip("main"),
        "resolve": lambda: store.resolve("main"),
        "commit_info": lambda: store.commit_info(sha),
        "files_at": lambda: store.files_at(sha, "prompts"),
        "blob_at": lambda: store.blob_at(sha, "prompts/a.prompt"),
        "read_blob": lambda: store.read_blob(blob),
        "first_parent_changes": lambda: list(store.first_parent_changes(sha, "prompts")),
    }
    for name, read in reads.items():
        with pytest.raises(RepositoryUnreadable, match="cannot read the git repository") as caught:
            read()
        assert caught.value.status == 503, name
        assert caught.value.retry_after, name
