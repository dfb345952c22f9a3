"""The one module that talks to pygit2.

It hands out plain values (`CommitInfo`, hex ids, bytes) and turns every pygit2 error into
a registry error, so no library type or exception crosses into the rest of the code. A
repository that cannot be read any more (its clone deleted, moved or made unreadable while
in use) is RepositoryUnreadable, a 503, never a missing revision or object, nor an OSError.
It passes 500 lines because all of git (reading, history, fetching the remote) must stay
behind this one wall.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import pygit2

from promptctl.registry.errors import (
    FetchFailed,
    HistoryUnreadable,
    NotARepository,
    ObjectMissing,
    RegistryError,
    RepositoryError,
    RepositoryUnreadable,
    RevisionNotFound,
)

_BLOB_MODES = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
# What pygit2 raises for an id that is unknown (KeyError), malformed, ambiguous or of the
# wrong kind (its ValueErrors are GitErrors too), or unreadable (GitError).
_LOOKUP_ERRORS = (KeyError, ValueError, pygit2.GitError)
_Object = TypeVar("_Object", bound=pygit2.Object)
# Where a fetch from a URL or path (not a configured remote) keeps the remote's branches.
URL_REMOTE = "promptctl"
# libgit2 waits for a silent remote forever by default; a fetch holds the registry's git
# lock, so it must give up (milliseconds; set once per process, see _bound_network_waits).
_CONNECT_TIMEOUT_MS = 10_000
_SERVER_TIMEOUT_MS = 60_000
# What libgit2 says when the remote cannot be reached at all.
_UNREACHABLE = (
    "failed to connect",
    "could not resolve",
    "timed out",
    "connection refused",
    "network is unreachable",
    "unsupported url protocol",
    "could not find repository",
    "not found",
    "does not appear to be a git repository",
)
_SCP_LIKE = re.compile(r"[\w.-]+@[\w.-]+:")
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _reads(method: _Method) -> _Method:
    """Guard a GitStore method that reads the repository (see `_reading`)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def walk(self: GitStore, *args: Any, **kwargs: Any) -> Any:
            with _reading(self):
                yield from method(self, *args, **kwargs)

        return walk  # type: ignore[return-value]

    @functools.wraps(method)
    def read(self: GitStore, *args: Any, **kwargs: Any) -> Any:
        with _reading(self):
            return method(self, *args, **kwargs)

    return read  # type: ignore[return-value]


@contextmanager
def _reading(store: GitStore) -> Iterator[None]:
    """Turn an OSError or GitError that escaped into RepositoryUnreadable, and a lookup that
    failed (RevisionNotFound, ObjectMissing, ...) too when the repository's folders are gone:
    with the clone away every object looks missing, and saying so would mislead."""
    try:
        yield
    except RepositoryUnreadable:
        raise
    except RegistryError as exc:
        gone = store.unreadable()
        if gone is None:
            raise
        raise gone from exc
    except (OSError, pygit2.GitError) as exc:
        raise RepositoryUnreadable(str(store.git_dir), str(exc)) from exc


class NotOnFirstParents(RepositoryError):
    """A commit a walk was to resume from is not on the tip's first-parent chain (history
    was rewritten): whoever resumes starts over instead. Never shown to a user."""

    def __init__(self, since: str, tip: str) -> None:
        super().__init__(f"commit {since[:10]} is not a first-parent ancestor of {tip[:10]}")


@dataclass(frozen=True)
class CommitInfo:
    """A commit as the registry shows it."""

    sha: str
    author: str
    email: str
    time: datetime
    summary: str

    @property
    def short(self) -> str:
        return self.sha[:10]

    def to_json(self) -> dict[str, str]:
        return {
            "sha": self.sha,
            "author": self.author,
            "email": self.email,
            # In UTC like every time in the JSON vocabulary; the author's offset is git's.
            "committed_at": self.time.astimezone(UTC).isoformat(),
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought: the remote as shown (credentials hidden), and the commit its
    branch points at (None when the remote has no such branch)."""

    remote: str
    tip: str | None


@dataclass(frozen=True)
class FileChange:
    """A file below the prompt root that a commit added, changed (blob set) or removed."""

    relpath: str
    blob: str | None


class GitStore:
    """Read access to one repository: revisions, trees, blobs and first-parent history."""

    def __init__(self, path: str | Path) -> None:
        try:
            found = pygit2.discover_repository(str(path))
        except (pygit2.GitError, OSError) as exc:
            raise RepositoryUnreadable(str(path), str(exc)) from exc
        if found is None:
            raise NotARepository(str(path))
        try:
            self._repo = pygit2.Repository(found)
        except (pygit2.GitError, OSError) as exc:
            raise RepositoryUnreadable(found, str(exc)) from exc
        self._infos: dict[str, CommitInfo] = {}
        # What must stay readable: the git folder, and the object database where it has one
        # (a linked worktree's objects live in the main repository's folder).
        objects = self.git_dir / "objects"
        self._folders = [self.git_dir, *([objects] if objects.is_dir() else [])]

    @property
    def workdir(self) -> Path | None:
        """The working tree's top folder, or None for a bare repository."""
        return Path(self._repo.workdir) if self._repo.workdir else None

    @property
    def git_dir(self) -> Path:
        return Path(self._repo.path)

    def unreadable(self) -> RepositoryUnreadable | None:
        """Why the repository cannot be read any more (a folder of it is gone or unreadable),
        or None while it can."""
        for folder in self._folders:
            if not os.access(folder, os.R_OK | os.X_OK):
                return RepositoryUnreadable(str(self.git_dir), f"'{folder}' is gone or unreadable")
        return None

    @_reads
    def has_commits(self) -> bool:
        """Tell whether HEAD points at a commit (false in a new, empty repository)."""
        return not (self._repo.is_empty or self._repo.head_is_unborn)

    @_reads
    def head_description(self) -> str:
        """Describe HEAD for messages: the branch name, or 'detached HEAD at <sha>'."""
        if self._repo.head_is_unborn:
            return "an unborn branch (no commits yet)"
        if self._repo.head_is_detached:
            return f"detached HEAD at {self._repo.head.target}"[:30]
        return self._repo.head.shorthand

    @_reads
    def branches(self) -> list[str]:
        return sorted(self._repo.branches.local)

    @_reads
    def branch_tip(self, branch: str) -> str | None:
        """Return the commit sha a local branch points at, or None when it does not exist."""
        ref = self._repo.branches.local.get(branch)
        tip = None
        if ref is not None:
            try:
                tip = str(ref.peel(pygit2.Commit).id)
            except _LOOKUP_ERRORS:
                tip = None
        if tip is None:  # with the repository gone, every branch looks missing
            gone = self.unreadable()
            if gone is not None:
                raise gone
        return tip

    @_reads
    def resolve(self, rev: str) -> str:
        """Return the commit sha a revision (`HEAD~2`, a tag, a branch, a sha) names."""
        if not self.has_commits() and rev.startswith("HEAD"):
            raise RevisionNotFound(rev, "the repository has no commits yet")
        try:
            obj = self._repo.revparse_single(rev)
            return str(obj.peel(pygit2.Commit).id)
        except _LOOKUP_ERRORS as exc:
            raise RevisionNotFound(rev) from exc

    def _commit(self, sha: str) -> pygit2.Commit:
        """Return the commit `sha` names, or raise RevisionNotFound."""
        try:
            return self._repo[sha].peel(pygit2.Commit)
        except _LOOKUP_ERRORS as exc:
            raise RevisionNotFound(sha) from exc

    @_reads
    def commit_info(self, sha: str) -> CommitInfo:
        """Return the author, time and summary of a commit."""
        info = self._infos.get(sha)
        if info is None:
            commit = self._commit(sha)
            author = commit.author
            tz = timezone(timedelta(minutes=author.offset))
            info = CommitInfo(
                sha=sha,
                author=author.name,
                email=author.email,
                time=datetime.fromtimestamp(author.time, tz),
                summary=commit.message.strip().splitlines()[0] if commit.message.strip() else "",
            )
            self._infos[sha] = info
        return info

    @_reads
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Tell whether `ancestor` is `descendant` or in its history."""
        if ancestor == descendant:
            return True
        older, newer = self._commit(ancestor).id, self._commit(descendant).id
        try:
            return self._repo.descendant_of(newer, older)
        except _LOOKUP_ERRORS as exc:
            raise HistoryUnreadable(descendant, str(exc)) from exc

    def _root_tree(self, sha: str, root: str) -> pygit2.Tree | None:
        return _subtree(self._commit(sha).tree, root)

    @_reads
    def files_at(self, sha: str, root: str) -> dict[str, str]:
        """Return {path below root: blob id} for every regular file below `root` at a commit."""
        tree = self._root_tree(sha, root)
        out: dict[str, str] = {}
        if tree is not None:
            self._collect(tree, "", out)
        return out

    def _collect(self, tree: pygit2.Tree, prefix: str, out: dict[str, str]) -> None:
        for entry in tree:
            path = f"{prefix}{entry.name}"
            if entry.filemode == pygit2.GIT_FILEMODE_TREE:
                self._collect(self._object(entry.id, pygit2.Tree, "tree"), f"{path}/", out)
            elif entry.filemode in _BLOB_MODES:
                out[path] = str(entry.id)

    @_reads
    def blob_at(self, sha: str, repo_path: str) -> str | None:
        """Return the blob id of a file at a commit, or None when there is none."""
        tree = self._commit(sha).tree
        try:
            entry = tree[repo_path]
        except _LOOKUP_ERRORS:
            gone = self.unreadable()
            if gone is not None:
                raise gone from None
            return None
        return str(entry.id) if entry.filemode in _BLOB_MODES else None

    @_reads
    def read_blob(self, blob_id: str) -> bytes:
        """Return a blob's content, or raise ObjectMissing."""
        return self._object(blob_id, pygit2.Blob, "blob").data

    def _object(self, oid: str | pygit2.Oid, kind: type[_Object], name: str) -> _Object:
        """Return the blob or tree `oid` names, or raise ObjectMissing."""
        try:
            obj = self._repo[oid]
        except _LOOKUP_ERRORS as exc:
            raise ObjectMissing(name, str(oid)) from exc
        if not isinstance(obj, kind):
            raise ObjectMissing(name, str(oid))
        return obj

    def _first_parent_chain(self, tip: str, since: str | None = None) -> list[pygit2.Commit]:
        """Return the commits along first parents from `tip`, oldest first; with `since`,
        only those after it (raise NotOnFirstParents when `since` is not among them)."""
        chain = []
        commit = self._commit(tip)
        while True:
            if since is not None and str(commit.id) == since:
                break
            chain.append(commit)
            if not commit.parent_ids:
                if since is not None:
                    raise NotOnFirstParents(since, tip)
                break
            try:
                commit = self._repo[commit.parent_ids[0]]
            except _LOOKUP_ERRORS as exc:
                raise HistoryUnreadable(tip, f"parent {commit.parent_ids[0]} is missing") from exc
        chain.reverse()
        return chain

    @_reads
    def first_parent_changes(
        self,
        tip: str,
        root: str,
        *,
        since: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[str, list[FileChange]]]:
        """Yield (commit sha, changes below root) oldest first along first parents from `tip`.

        Commits that leave the root untouched are skipped; comparing subtree ids first keeps
        a long history cheap when most commits touch other folders. With `since` (a commit
        on that chain), the walk starts after it, diffing from its files. `progress` is
        told (commits walked, commits in all) now and then.
        """
        chain = self._first_parent_chain(tip, since)
        previous: pygit2.Tree | None = None
        if since is not None:
            previous = _subtree(self._commit(since).tree, root)
        total = len(chain)
        for done, commit in enumerate(chain, 1):
            if progress is not None and (done % 2048 == 0 or done == total):
                progress(done, total)
            tree = _subtree(commit.tree, root)
            if tree is None and previous is None:
                continue
            if tree is not None and previous is not None and tree.id == previous.id:
                continue
            if previous is None:
                diff = tree.diff_to_tree(swap=True)
            elif tree is None:
                diff = previous.diff_to_tree()
            else:
                diff = previous.diff_to_tree(tree)
            changes = []
            for delta in diff.deltas:
                if delta.new_file.mode in _BLOB_MODES:
                    changes.append(FileChange(delta.new_file.path, str(delta.new_file.id)))
                else:
                    changes.append(FileChange(delta.old_file.path, None))
            previous = tree
            yield str(commit.id), changes

    @_reads
    def first_parent(self, sha: str) -> str | None:
        """Return a commit's first parent, or None for a root commit."""
        commit = self._commit(sha)
        return str(commit.parent_ids[0]) if commit.parent_ids else None

    @_reads
    def renames_in(self, sha: str, threshold: int) -> dict[str, tuple[str, int]]:
        """Return {new path: (old path, similarity %)} for the files a commit renamed or
        moved, compared with its first parent as `git log --follow` does: exact content
        first, then files at least `threshold` percent alike (git's own rename detection).
        """
        commit = self._commit(sha)
        if not commit.parent_ids:
            return {}
        parent = self._commit(str(commit.parent_ids[0]))
        try:
            diff = parent.tree.diff_to_tree(commit.tree)
            diff.find_similar(flags=pygit2.enums.DiffFind.FIND_RENAMES, rename_threshold=threshold)
        except _LOOKUP_ERRORS as exc:
            raise HistoryUnreadable(sha, str(exc)) from exc
        return {
            d.new_file.path: (d.old_file.path, d.similarity)
            for d in diff.deltas
            if d.status == pygit2.enums.DeltaStatus.RENAMED
        }

    @_reads
    def default_branch(self) -> tuple[str, str]:
        """Guess the branch that numbers versions: (branch, where the guess came from).

        The remote's default (`origin/HEAD`), else `main` when there is one, else the
        branch checked out, else `main`. A local `main` wins over the branch checked out so
        that working on a feature branch never numbers its unmerged versions.
        """
        ref = self._repo.references.get("refs/remotes/origin/HEAD")
        target = ref.target if ref is not None else None
        if isinstance(target, str) and target.startswith("refs/remotes/origin/"):
            return target.removeprefix("refs/remotes/origin/"), "origin/HEAD"
        if "main" in self._repo.branches.local:
            return "main", "the branch named main"
        if not self._repo.head_is_detached:
            try:
                head = self._repo.lookup_reference("HEAD").target
            except _LOOKUP_ERRORS:
                head = None
            if isinstance(head, str) and head.startswith("refs/heads/"):
                return head.removeprefix("refs/heads/"), "the branch checked out"
        return "main", "the default"

    @_reads
    def remote_branch_tip(self, branch: str, remote: str = "origin") -> str | None:
        """Return the commit `<remote>/<branch>` points at, or None."""
        ref = self._repo.references.get(f"refs/remotes/{remote}/{branch}")
        if ref is None:
            return None
        try:
            return str(ref.peel(pygit2.Commit).id)
        except _LOOKUP_ERRORS:
            return None

    @_reads
    def first_parent_lookups(
        self, tip: str, root: str
    ) -> Iterator[tuple[str, Callable[[str], str | None]]]:
        """Yield (commit sha, blob lookup) oldest first along first parents from `tip`.

        Only commits whose root folder differs from the previous one's are yielded (the
        commits first_parent_changes() yields). The lookup maps a path below the root to
        its blob id in that commit, or None when no regular file is there: following a few
        files this way is much cheaper than diffing every commit.
        """
        previous: pygit2.Oid | None = None
        for commit in self._first_parent_chain(tip):
            tree = _subtree(commit.tree, root)
            tree_id = tree.id if tree is not None else None
            if tree_id == previous:
                continue
            previous = tree_id
            yield str(commit.id), _blob_lookup(tree)

    @_reads
    def workdir_files(self, root: str) -> dict[str, Path]:
        """Return {path below root: file} for the working tree, leaving out ignored files."""
        top = self.workdir
        if top is None:
            return {}
        base = top / root if root else top
        out: dict[str, Path] = {}
        if not base.is_dir():
            return out
        # Plain strings while walking: pathlib per file costs more than the walk itself.
        top_prefix = len(os.path.join(top, ""))
        base_prefix = len(os.path.join(base, ""))
        for folder, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in files:
                full = os.path.join(folder, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                rel_top = full[top_prefix:].replace(os.sep, "/")
                if self._repo.path_is_ignored(rel_top):
                    continue
                out[full[base_prefix:].replace(os.sep, "/")] = Path(full)
        return out

    @_reads
    # -- following a remote (a server's clone) -----------------------------------------

    def remote_names(self) -> list[str]:
        """Return the names of the remotes configured in the repository."""
        return sorted(self._repo.remotes.names())

    def describe_remote(self, remote: str) -> str:
        """Show a remote as messages name it: `origin (its URL)`, or the URL; never a password."""
        if remote in self._repo.remotes.names():
            url = self._repo.remotes[remote].url or ""
            return f"{remote} ({redact_url(url)})" if url else remote
        return redact_url(remote)

    def fetch(self, remote: str, branch: str) -> Fetched:
        """Fetch every branch and tag of `remote`: a configured remote's name, or a URL or path.

        Uses pygit2's `Remote.fetch`. The remote's branches land in refs/remotes/<name>/
        (refs/remotes/promptctl/ for a URL or path) and its tags in refs/tags/, forced: the
        clone mirrors the remote. No local branch moves here (see set_branch). Credentials
        are the user and password in the URL (https://user:token@host/...), else the SSH
        agent's keys. Every failure is a FetchFailed saying whether the remote was
        unreachable, refused the credentials, or failed otherwise.
        """
        shown = self.describe_remote(remote)
        named = remote in self._repo.remotes.names()
        prefix = remote if named else URL_REMOTE
        try:
            if named:
                handle = self._repo.remotes[remote]
                url = handle.url or remote
            else:
                url = remote
                if _is_local_path(remote) and not Path(remote).exists():
                    raise FetchFailed(shown, "unreachable", "no repository at that path")
                handle = self._repo.remotes.create_anonymous(remote)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise FetchFailed(shown, "failed", _hide(str(exc), url)) from exc
        _bound_network_waits()
        refspecs = [f"+refs/heads/*:refs/remotes/{prefix}/*", "+refs/tags/*:refs/tags/*"]
        try:
            handle.fetch(
                refspecs,
                message=f"promptctl: fetch {redact_url(url)}",
                callbacks=_Credentials(url),
                prune=pygit2.enums.FetchPrune.NO_PRUNE,
            )
        except _CredentialsRejected as exc:
            raise FetchFailed(shown, "authentication", str(exc)) from exc
        except pygit2.GitError as exc:  # AuthError is one
            text = _hide(str(exc), url)
            problem = "authentication" if isinstance(exc, pygit2.AuthError) else "failed"
            if problem == "failed" and any(w in text.lower() for w in _UNREACHABLE):
                problem = "unreachable"
            raise FetchFailed(shown, problem, text) from exc
        except OSError as exc:
            raise FetchFailed(shown, "unreachable", str(exc)) from exc
        tracking = self._repo.references.get(f"refs/remotes/{prefix}/{branch}")
        tip = None
        if tracking is not None:
            try:
                tip = str(tracking.peel(pygit2.Commit).id)
            except _LOOKUP_ERRORS:
                tip = None
        return Fetched(shown, tip)

    def set_branch(self, branch: str, sha: str, message: str) -> None:
        """Point local `branch` at commit `sha` (creating it), even while HEAD is on it.

        Only the reference moves: a working tree, if any, stays as it was checked out.
        """
        oid = self._commit(sha).id
        name = f"refs/heads/{branch}"
        try:
            found = self._repo.references.get(name)
            if found is None:
                self._repo.references.create(name, oid, message=message)
            else:
                found.set_target(oid, message)
        except (ValueError, pygit2.GitError) as exc:
            raise RepositoryError(f"cannot move branch '{branch}' to {sha[:10]}: {exc}") from exc

    def user_identity(self) -> str | None:
        """Return git's `user.name <user.email>`, or None when it is not configured."""
        try:
            sig = self._repo.default_signature
        except (KeyError, pygit2.GitError):
            return None
        return f"{sig.name} <{sig.email}>"


def _subtree(tree: pygit2.Tree, root: str) -> pygit2.Tree | None:
    if not root:
        return tree
    try:
        obj = tree[root]
    except KeyError:
        return None
    return obj if isinstance(obj, pygit2.Tree) else None


def _blob_lookup(tree: pygit2.Tree | None) -> Callable[[str], str | None]:
    def blob_of(relpath: str) -> str | None:
        # Only plain relative paths name a file below the root ("../x", "." do not).
        if tree is None or not relpath or any(p in ("", ".", "..") for p in relpath.split("/")):
            return None
        try:
            entry = tree[relpath]
        except _LOOKUP_ERRORS:
            return None
        return str(entry.id) if entry.filemode in _BLOB_MODES else None

    return blob_of


class _CredentialsRejected(Exception):
    """The remote asked for credentials again (the ones given were refused), or for a kind
    we have none of."""


class _Credentials(pygit2.RemoteCallbacks):
    """Answers a remote's first request for credentials: the user and password in its URL,
    else the SSH agent's keys. Asked again, it gives up: libgit2 would replay the refused
    credentials many times over."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._asked = False

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.UserPass | pygit2.KeypairFromAgent:
        if self._asked:
            raise _CredentialsRejected("the remote refused the credentials")
        self._asked = True
        kinds = pygit2.enums.CredentialType
        parts = urlsplit(self._url) if "://" in self._url else None
        if allowed_types & kinds.USERPASS_PLAINTEXT and parts and parts.password is not None:
            return pygit2.UserPass(unquote(parts.username or ""), unquote(parts.password))
        if allowed_types & kinds.SSH_KEY:
            return pygit2.KeypairFromAgent(username_from_url or "git")
        raise _CredentialsRejected("the remote asks for credentials and the URL carries none")


def _bound_network_waits() -> None:
    """Give libgit2 connect and read timeouts unless this process set its own."""
    if not pygit2.settings.server_connect_timeout:
        pygit2.settings.server_connect_timeout = _CONNECT_TIMEOUT_MS
    if not pygit2.settings.server_timeout:
        pygit2.settings.server_timeout = _SERVER_TIMEOUT_MS


def _is_local_path(remote: str) -> bool:
    return "://" not in remote and not _SCP_LIKE.match(remote)


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***` (tokens travel in https URLs)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _hide(text: str, url: str) -> str:
    """`text` with the URL's password (if any) hidden, wherever libgit2 repeated it."""
    redacted = redact_url(url)
    if redacted == url:
        return text
    password = urlsplit(url).password or ""
    return text.replace(url, redacted).replace(password, "***") if password else text


def init_repository(path: str | Path, branch: str = "main") -> GitStore:
    """Create a new repository with `branch` as its initial branch."""
    try:
        pygit2.init_repository(str(path), initial_head=branch)
    except pygit2.GitError as exc:
        raise RepositoryError(f"cannot create a repository at '{path}': {exc}") from exc
    return GitStore(path)


def now_utc() -> datetime:
    return datetime.now(UTC)
