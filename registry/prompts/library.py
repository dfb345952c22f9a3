"""The prompt library: prompts in a git repository at any revision or in the working tree.

`PromptLibrary` resolves version references, loads versions with their partials, renders
them and numbers them; `lint` and `diff` build on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from promptctl.registry.errors import (
    BranchNotFound,
    PromptNotFound,
    RegistryError,
    RepositoryError,
    RevisionNotFound,
    VersionNotFound,
)
from promptctl.registry.prompts.engines import JINJA2, declared_engine_in
from promptctl.registry.prompts.gitstore import GitStore
from promptctl.registry.prompts.index_store import IndexStore, terminal_progress
from promptctl.registry.prompts.layout import CONFIG_FILE, Layout, check_name, load_layout
from promptctl.registry.prompts.outputs import (
    declared_schema_ref,
    resolve_output_schema,
    schema_ref_in,
    schema_relpath,
)
from promptctl.registry.prompts.parsed_cache import ParsedCache
from promptctl.registry.prompts.promptfile import check_version_size, decode_text
from promptctl.registry.prompts.promptversion import PromptVersion, is_chat
from promptctl.registry.prompts.render_limits import DEFAULT_LIMITS, RenderLimits
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.prompts.versions import (
    VersionIndex,
    VersionRecord,
    build_index,
    defaulted_engine,
    dependency_closure,
    digest_of,
    includes_in,
    locate,
    pin,
)

# Prompt -> {digest: number} for every released version (the release database's).
ReleasedNumbers = Callable[[], Mapping[str, Mapping[str, int]]]

WORKTREE = "working tree"
_VERSION_NUMBER = re.compile(r"v(\d+)\Z")
_HEX = re.compile(r"[0-9a-fA-F]{7,64}\Z")


class Snapshot:
    """The files below the prompt root at one commit, or in the working tree."""

    def __init__(
        self, store: GitStore, layout: Layout, commit: str | None, label: str | None = None
    ) -> None:
        self.store = store
        self.layout = layout
        self.commit = commit
        self.label = label
        if commit is None:
            self._disk = store.workdir_files(layout.root)
            self._blobs: dict[str, str] = {}
        else:
            self._disk = {}
            self._blobs = store.files_at(commit, layout.root)
        self._cache: dict[str, bytes] = {}
        # (path, engine) -> what the file includes: partials are shared by many prompts.
        self._includes: dict[tuple[str, str], list[str] | None] = {}

    @property
    def where(self) -> str:
        """`working tree`, or the revision asked for and its commit (`my-branch@1a2b3c4d5e`)."""
        if self.commit is None:
            return WORKTREE
        if self.label and not self.commit.startswith(self.label.lower()):
            return f"{self.label}@{self.commit[:10]}"
        return f"commit {self.commit[:10]}"

    def relpaths(self) -> list[str]:
        return sorted(self._disk if self.commit is None else self._blobs)

    def read(self, relpath: str) -> bytes | None:
        if relpath in self._cache:
            return self._cache[relpath]
        data: bytes | None = None
        if self.commit is None:
            path = self._disk.get(relpath)
            if path is not None:
                data = path.read_bytes()
        else:
            blob = self._blobs.get(relpath)
            if blob is not None:
                data = self.store.read_blob(blob)
        if data is not None:
            self._cache[relpath] = data
        return data

    def includes(self, relpath: str, engine: str = JINJA2) -> list[str] | None:
        """Return what a file includes, read as `engine` reads it (None: no such file)."""
        key = (relpath, engine)
        if key not in self._includes:
            data = self.read(relpath)
            self._includes[key] = includes_in(data, engine) if data is not None else None
        return self._includes[key]

    def names(self) -> list[str]:
        """Return the names of every prompt in this snapshot."""
        out = []
        for relpath in self.relpaths():
            name = self.layout.name_of(relpath)
            if name is not None:
                out.append(name)
        return out

    def skipped(self) -> list[tuple[str, str]]:
        """Return (repository path, reason) for each file shaped like a prompt that is not
        one, because its name breaks the naming rule."""
        out = []
        for relpath in self.relpaths():
            reason = self.layout.skip_reason(relpath)
            if reason is not None:
                out.append((self.layout.repo_path(relpath), reason))
        return out


class PromptLibrary:
    """Prompts in one repository, laid out as its promptctl.toml (or options) say."""

    def __init__(
        self,
        path: str | Path,
        *,
        root: str | None = None,
        pattern: str | None = None,
        branch: str | None = None,
        template: str | None = None,
        limits: RenderLimits = DEFAULT_LIMITS,
        released: ReleasedNumbers | None = None,
        persistent: bool = True,
    ) -> None:
        self.store = GitStore(path)
        self.limits = limits
        # Where released versions' numbers come from (the release database), if anywhere.
        self.released = released
        self.persistent = persistent
        config_text = None
        workdir = self.store.workdir
        if workdir is None and self.store.has_commits():
            blob = self.store.blob_at(self.store.resolve("HEAD"), CONFIG_FILE)
            config_text = self.store.read_blob(blob).decode() if blob else None
        self.layout = load_layout(
            workdir,
            root=root,
            pattern=pattern,
            branch=branch,
            template=template,
            config_text=config_text,
        )
        # Where the tracked branch's name came from, when no configuration named it.
        self.branch_source: str | None = None
        if self.layout.branch_guessed:
            guess, self.branch_source = self.store.default_branch()
            self.layout = replace(self.layout, branch=guess)
        self._index: VersionIndex | None = None
        self._one: VersionIndex | None = None  # an index of a single prompt
        # Parses of prompt files by content, kept beside the version index when it is.
        self.parsed = ParsedCache(self.store.git_dir if persistent else None)

    # -- snapshots and references -------------------------------------------------

    def snapshot(self, rev: str | None = None) -> Snapshot:
        """Return the working tree (rev None; HEAD in a bare repository) or a commit's files."""
        if rev is None:
            if self.store.workdir is not None:
                return Snapshot(self.store, self.layout, None)
            rev = "HEAD"
        return Snapshot(self.store, self.layout, self.store.resolve(rev), label=rev)

    def tracked_tip(self) -> str | None:
        """The commit the tracked branch is at: the local branch, else `origin`'s."""
        branch = self.layout.branch
        return self.store.branch_tip(branch) or self.store.remote_branch_tip(branch)

    @property
    def branch_note(self) -> str | None:
        """`numbered on branch 'master' (guessed from the branch checked out)` when no
        configuration named the tracked branch, else None."""
        if not self.layout.branch_guessed:
            return None
        return (
            f"numbered on branch '{self.layout.branch}' (guessed from {self.branch_source}; "
            "set branch in promptctl.toml or PROMPTCTL_BRANCH to choose)"
        )

    def skipped(self, rev: str | None = None) -> list[tuple[str, str]]:
        """Return (path, reason) for files shaped like prompts that are not (bad names)."""
        return self.snapshot(rev).skipped()

    def index(self, name: str | None = None) -> VersionIndex:
        """Return the version index of the tracked branch, or raise a clear error.

        The index is kept beside the repository (see index_store) and brought up to date
        from the commit it was last built at, so after the first run a question costs a
        look-up. Where it cannot be kept (persistent=False), a name lets the library
        number that prompt only, following its own files through history, far cheaper than
        numbering every prompt; a second prompt numbers them all in one walk. Either way
        a prompt gets the same numbers, and released versions keep theirs (see `pin`).
        """
        tip = self.tracked_tip()
        if tip is None:
            raise self._missing_branch()
        if self._index is not None and self._index.tip == tip:
            return self._index
        one = self._one if self._one is not None and self._one.tip == tip else None
        if name is not None and one is not None and one.covers(name):
            return one
        if self.persistent:
            stored = IndexStore(self.store, self.layout, self.layout.branch)
            self._index = self._pinned(stored.index(tip, terminal_progress()))
            self._one = None
            return self._index
        if name is not None and one is None:
            self._one = self._pinned(
                build_index(self.store, self.layout, self.layout.branch, tip, [name])
            )
            return self._one
        self._index = self._pinned(build_index(self.store, self.layout, self.layout.branch, tip))
        self._one = None
        return self._index

    def _pinned(self, index: VersionIndex) -> VersionIndex:
        """Keep released versions at the numbers the release database gave them."""
        if self.released is not None:
            released = self.released()
            if released:
                pin(index, released)
        return index

    def index_or_none(self, name: str | None = None) -> VersionIndex | None:
        return self.index(name) if self.tracked_tip() is not None else None

    def _missing_branch(self) -> RepositoryError:
        if not self.store.has_commits():
            return RepositoryError(
                "the repository has no commits yet: commit your prompts to number versions"
            )
        return BranchNotFound(self.layout.branch, self.store.branches())

    def list(self, rev: str | None = None) -> list[str]:
        """Return the names of every prompt at a revision (default: the working tree)."""
        return self.snapshot(rev).names()

    def get(self, name: str, ref: str | None = None) -> PromptVersion:
        """Return the version a reference names: vN, a digest prefix or a git revision.

        With no reference: the working tree (HEAD in a bare repository).
        """
        check_name(name)
        if ref is None:
            return self.load(self.snapshot(None), name)
        number = _VERSION_NUMBER.match(ref)
        if number:
            index = self.index(name)
            record = index.by_number(name, int(number.group(1)))
            if record is None:
                count = len(index.versions.get(name, []))
                hint = f"it has v1..v{count}" if count else "it has no versions yet"
                raise VersionNotFound(name, ref, hint)
            return self._load_record(name, record)
        if _HEX.match(ref):
            index = self.index_or_none(name)
            matches = index.by_digest_prefix(name, ref) if index else []
            if len(matches) > 1:
                labels = ", ".join(r.label for r in matches)
                raise VersionNotFound(name, ref, f"ambiguous digest prefix: {labels}")
            if matches:
                return self._load_record(name, matches[0])
        try:
            snapshot = self.snapshot(ref)
        except RevisionNotFound as exc:
            raise VersionNotFound(
                name, ref, "not a vN number, a digest prefix or a git revision"
            ) from exc
        return self.load(snapshot, name)

    def _load_record(self, name: str, record: VersionRecord) -> PromptVersion:
        """Load a numbered version from the commit where it first appeared, from the path
        the file had there when that was before a move."""
        if record.path is None:
            return self.load(self.snapshot(record.commit.sha), name)
        located = locate(self.layout, record.path, name)
        if located is None:
            raise PromptNotFound(name, record.commit.short)
        layout, old_name = located
        snapshot = Snapshot(self.store, layout, record.commit.sha, label=record.label)
        version = self.load(snapshot, old_name, numbered=False)
        return replace(version, name=name, number=record.number, first_commit=record.commit)

    def load_all(self, rev: str | None = None) -> dict[str, PromptVersion | RegistryError]:
        """Load every prompt of one snapshot (default: the working tree), by name.

        A prompt that cannot be loaded maps to its error, so one bad file spoils no list.
        """
        snapshot = self.snapshot(rev)
        names = snapshot.names()
        index = None
        if len(names) > 1 and self.store.has_commits():
            # All of them are asked about: number them in one walk, looked up once.
            index = self.index_or_none()
        out: dict[str, PromptVersion | RegistryError] = {}
        with self.parsed.batch():
            for name in names:
                try:
                    out[name] = self.load(snapshot, name, index=index)
                except RegistryError as exc:
                    out[name] = exc
        return out

    def load(
        self,
        snapshot: Snapshot,
        name: str,
        *,
        numbered: bool = True,
        index: VersionIndex | None = None,
    ) -> PromptVersion:
        """Load one prompt and its partials from a snapshot.

        `numbered=False` skips finding the version's number in history (lint needs none);
        `index` is the version index to number it by, when the caller holds it already.
        """
        layout = snapshot.layout
        relpath = layout.relpath_of(name)
        data = snapshot.read(relpath)
        if data is None:
            where = WORKTREE if snapshot.commit is None else snapshot.commit[:10]
            raise PromptNotFound(name, where, snapshot.names())
        repo_path = layout.repo_path(relpath)
        prompt = self.parsed.parse(repo_path, data)
        engine = prompt.engine or layout.template
        # The schema file the front matter names: schema_ref_in(data) without parsing the
        # file again (it too looks only at files whose bytes say `schema`), so the digest
        # is the one numbering gives this version.
        ref = declared_schema_ref(prompt.front_matter) if b"schema" in data else None
        schema = schema_relpath("", ref) if ref is not None else None
        closure = dependency_closure(relpath, lambda p: snapshot.includes(p, engine), schema)
        partial_bytes = [(p, snapshot.read(p)) for p in closure]
        check_version_size(
            repo_path,
            len(data),
            [(layout.repo_path(p), len(b)) for p, b in partial_bytes if b is not None],
        )
        digest = digest_of(data, partial_bytes, defaulted_engine(prompt.engine, engine))
        partials = {
            p: decode_text(layout.repo_path(p), b) if b is not None else None
            for p, b in partial_bytes
        }
        if index is None and numbered and self.store.has_commits():
            index = self.index_or_none(name)
        record = index.record_for(name, digest) if index else None
        commit = self.store.commit_info(snapshot.commit) if snapshot.commit else None
        return PromptVersion(
            name=name,
            digest=digest,
            prompt=resolve_output_schema(prompt, partials),
            partials=partials,
            source=snapshot.where,
            commit=commit,
            number=record.number if record else None,
            first_commit=record.commit if record else None,
            relpath=relpath,
            root=layout.root,
            is_chat=is_chat(prompt, partials, engine),
            limits=self.limits,
            engine=engine,
        )

    def uncommitted(self, name: str) -> list[str]:
        """Return the files of a prompt (it and every partial it includes, at HEAD or in the
        working tree) whose working-tree content differs from HEAD, as repository paths.

        None in a bare repository or before the first commit: there is nothing to compare.
        """
        if self.store.workdir is None or not self.store.has_commits():
            return []
        relpath = self.layout.relpath_of(name)
        worktree, head = self.snapshot(None), self.snapshot("HEAD")
        paths = {relpath}
        for snapshot in (worktree, head):
            data = snapshot.read(relpath)
            schema = schema_ref_in(data) if data is not None else None
            declared = declared_engine_in(data) if data is not None else None
            engine = declared or self.layout.template
            paths |= set(
                dependency_closure(
                    relpath, lambda p, s=snapshot, e=engine: s.includes(p, e), schema
                )
            )
        return [
            self.layout.repo_path(path)
            for path in sorted(paths, key=lambda p: (p != relpath, p))
            if worktree.read(path) != head.read(path)
        ]

    def render(
        self, name: str, ref: str | None, variables: Mapping[str, Any]
    ) -> tuple[PromptVersion, Rendered]:
        version = self.get(name, ref)
        return version, version.render(variables)

    def history(self, name: str) -> tuple[list[VersionRecord], VersionIndex]:
        """Return a prompt's numbered versions on the tracked branch, oldest first."""
        check_name(name)
        index = self.index(name)
        records = index.versions.get(name)
        if not records:
            where = f"any commit of branch '{index.branch}'"
            raise PromptNotFound(name, where, self.list())
        return records, index
