"""Versions: content digests over a prompt and its partials, and numbering along history.

A version is the prompt file plus every partial it includes, transitively. Its digest
is SHA-256 over that content in a canonical order, so equal content gives an equal
digest whatever the commit. Versions are numbered v1, v2, ... in the order they first
appear on the tracked branch's first-parent history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from promptctl.registry.prompts.gitstore import CommitInfo, GitStore
from promptctl.registry.prompts.layout import Layout
from promptctl.registry.prompts.outputs import schema_ref_in
from promptctl.registry.prompts.promptversion import normalize_include
from promptctl.registry.prompts.rendering import referenced_names

_DIGEST_MAGIC = b"promptctl-version-1\0"


def includes_in(data: bytes) -> list[str]:
    """Return the normalised include names found in a file's bytes."""
    text = data.decode("utf-8", errors="replace")
    return [normalize_include(n) for n in referenced_names(text)]


def dependency_closure(
    relpath: str,
    includes_of: Callable[[str], list[str] | None],
    schema: str | None = None,
) -> list[str]:
    """Return the sorted partial paths a file includes, transitively (missing ones too),
    and the output schema file it names (`schema`), which is part of the version too."""
    seen: set[str] = set()
    pending = [relpath]
    while pending:
        current = pending.pop()
        for name in includes_of(current) or []:
            if name != relpath and name not in seen:
                seen.add(name)
                pending.append(name)
    if schema is not None and schema != relpath:
        seen.add(schema)
    return sorted(seen)


def digest_of(main: bytes, partials: list[tuple[str, bytes | None]]) -> str:
    """Return the version digest of a prompt file and its (sorted) partials.

    The prompt's own path is left out so renaming a prompt keeps its content's digest;
    partial paths are in, because the include statement names them.
    """
    h = hashlib.sha256(_DIGEST_MAGIC)
    h.update(b"\0%d\0" % len(main) + main)
    for path, data in partials:
        h.update(path.encode() + b"\0")
        if data is None:
            h.update(b"-\0")
        else:
            h.update(b"%d\0" % len(data) + data)
    return h.hexdigest()


@dataclass(frozen=True)
class VersionRecord:
    """A numbered version and the commit where it first appeared on the tracked branch."""

    name: str
    number: int
    digest: str
    commit: CommitInfo

    @property
    def label(self) -> str:
        return f"v{self.number}"


@dataclass(frozen=True)
class HistoryEvent:
    """A commit on the tracked branch where a prompt's content changed, or it was removed."""

    commit: CommitInfo
    digest: str | None
    number: int | None


@dataclass
class VersionIndex:
    """Every prompt's numbered versions along the tracked branch, built in one walk.

    `names` is None when the index covers every prompt, else the prompts it covers.
    """

    branch: str
    tip: str
    names: frozenset[str] | None = None
    versions: dict[str, list[VersionRecord]] = field(default_factory=dict)
    events: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    _by_digest: dict[tuple[str, str], VersionRecord] = field(default_factory=dict)

    def record_for(self, name: str, digest: str) -> VersionRecord | None:
        return self._by_digest.get((name, digest))

    def by_number(self, name: str, number: int) -> VersionRecord | None:
        records = self.versions.get(name, [])
        return records[number - 1] if 0 < number <= len(records) else None

    def by_digest_prefix(self, name: str, prefix: str) -> list[VersionRecord]:
        prefix = prefix.lower()
        return [r for r in self.versions.get(name, []) if r.digest.startswith(prefix)]

    def current_digest(self, name: str) -> str | None:
        events = self.events.get(name)
        return events[-1].digest if events else None

    def covers(self, name: str) -> bool:
        """Tell whether this index numbered `name` (an index of some prompts may not)."""
        return self.names is None or name in self.names


def build_index(
    store: GitStore, layout: Layout, branch: str, tip: str, names: Iterable[str] | None = None
) -> VersionIndex:
    """Walk the first-parent history from `tip` once and number prompts' versions.

    With `names`, only those prompts are numbered: the walk then looks up just their files
    and partials in each commit, far cheaper than following every prompt. Both ways give
    the same numbers, events and commits for a prompt.
    """
    if names is not None:
        return _build_for(store, layout, branch, tip, sorted(set(names)))
    return _build_all(store, layout, branch, tip)


class _Contents:
    """Blob bytes, include lists and digests, cached by blob id (a blob never changes)."""

    def __init__(self, store: GitStore) -> None:
        self.store = store
        self._data: dict[str, bytes] = {}
        self._includes: dict[str, list[str]] = {}
        self._pieces: dict[tuple[str, str | None], bytes] = {}
        self._digests: dict[tuple, str] = {}
        self._schemas: dict[str, str | None] = {}

    def data(self, blob: str) -> bytes:
        found = self._data.get(blob)
        if found is None:
            found = self._data[blob] = self.store.read_blob(blob)
        return found

    def schema(self, blob: str) -> str | None:
        """The output schema file a prompt blob names (a dependency, like a partial)."""
        if blob not in self._schemas:
            self._schemas[blob] = schema_ref_in(self.data(blob))
        return self._schemas[blob]

    def includes(self, blob: str) -> list[str]:
        found = self._includes.get(blob)
        if found is None:
            found = self._includes[blob] = includes_in(self.data(blob))
        return found

    def digest(self, blob: str, partials: tuple[tuple[str, str | None], ...]) -> str:
        """Return digest_of() for a prompt blob and its (sorted) partials' blobs."""
        key = (blob, partials)
        found = self._digests.get(key)
        if found is None:
            # The same bytes, in the same order, that digest_of() feeds the hash.
            h = hashlib.sha256(_DIGEST_MAGIC)
            main = self.data(blob)
            h.update(b"\0%d\0" % len(main) + main)
            for piece in partials:
                h.update(self._piece(piece))
            found = self._digests[key] = h.hexdigest()
        return found

    def _piece(self, partial: tuple[str, str | None]) -> bytes:
        found = self._pieces.get(partial)
        if found is None:
            path, blob = partial
            if blob is None:
                found = path.encode() + b"\0-\0"
            else:
                data = self.data(blob)
                found = path.encode() + b"\0%d\0" % len(data) + data
            self._pieces[partial] = found
        return found


def _closure(
    relpath: str,
    includes_of: Callable[[str], list[str] | None],
    reach: dict[str, frozenset[str]],
    schema: str | None = None,
) -> list[str]:
    """Return dependency_closure(relpath, includes_of, schema), reusing each partial's
    reach from `reach`.

    What a file reaches is what each file it includes reaches, plus those files; `reach`
    memoises that per partial while the files stay the same (one commit of a walk).
    """
    found: set[str] = set()
    for name in includes_of(relpath) or []:
        reached = reach.get(name)
        if reached is None:
            reached = reach[name] = frozenset([name, *dependency_closure(name, includes_of)])
        found |= reached
    if schema is not None:
        found.add(schema)
    found.discard(relpath)
    return sorted(found)


def _build_all(store: GitStore, layout: Layout, branch: str, tip: str) -> VersionIndex:
    """Number every prompt. Only prompts whose file, or a partial in their include
    closure, changed in a commit are looked at again."""
    index = VersionIndex(branch=branch, tip=tip)
    contents = _Contents(store)
    files: dict[str, str] = {}
    closures: dict[str, list[str]] = {}
    dependents: dict[str, set[str]] = {}
    current: dict[str, str | None] = {}

    def includes_of(relpath: str) -> list[str] | None:
        blob = files.get(relpath)
        return None if blob is None else contents.includes(blob)

    for sha, changes in store.first_parent_changes(tip, layout.root):
        affected: set[str] = set()
        for change in changes:
            if change.blob is None:
                files.pop(change.relpath, None)
            else:
                files[change.relpath] = change.blob
            name = layout.name_of(change.relpath)
            if name is not None:
                affected.add(name)
            found = dependents.get(change.relpath)
            if found:
                affected |= found
        reach: dict[str, frozenset[str]] = {}  # valid while `files` stays as it is
        for name in sorted(affected):
            relpath = layout.relpath_of(name)
            for old in closures.pop(name, []):
                dependents.get(old, set()).discard(name)
            blob = files.get(relpath)
            digest: str | None = None
            if blob is not None:
                closure = _closure(relpath, includes_of, reach, contents.schema(blob))
                closures[name] = closure
                for partial in closure:
                    dependents.setdefault(partial, set()).add(name)
                digest = contents.digest(blob, tuple((p, files.get(p)) for p in closure))
            if digest == current.get(name):
                continue
            current[name] = digest
            _record(index, store, name, sha, digest)
    return index


def _build_for(
    store: GitStore, layout: Layout, branch: str, tip: str, names: list[str]
) -> VersionIndex:
    """Number only `names`: in each commit that changed the root, look up the files each
    one was made of last time (its own file and its closure) and redo it when one moved."""
    index = VersionIndex(branch=branch, tip=tip, names=frozenset(names))
    contents = _Contents(store)
    relpaths = {name: layout.relpath_of(name) for name in names}
    # The blob of each file a prompt was made of when last computed (None: missing).
    made_of: dict[str, dict[str, str | None]] = {n: {relpaths[n]: None} for n in names}
    current: dict[str, str | None] = {}
    for sha, blob_in_commit in store.first_parent_lookups(tip, layout.root):
        blobs: dict[str, str | None] = {}

        def blob_of(relpath: str, blobs: dict = blobs, lookup: Callable = blob_in_commit):
            if relpath not in blobs:
                blobs[relpath] = lookup(relpath)
            return blobs[relpath]

        def includes_of(relpath: str, blob_of: Callable = blob_of) -> list[str] | None:
            blob = blob_of(relpath)
            return None if blob is None else contents.includes(blob)

        reach: dict[str, frozenset[str]] = {}
        for name in names:
            if all(blob_of(p) == b for p, b in made_of[name].items()):
                continue
            relpath = relpaths[name]
            blob = blob_of(relpath)
            digest: str | None = None
            if blob is None:
                made_of[name] = {relpath: None}
            else:
                closure = _closure(relpath, includes_of, reach, contents.schema(blob))
                partials = tuple((p, blob_of(p)) for p in closure)
                made_of[name] = {relpath: blob, **dict(partials)}
                digest = contents.digest(blob, partials)
            if digest == current.get(name):
                continue
            current[name] = digest
            _record(index, store, name, sha, digest)
    return index


def _record(index: VersionIndex, store: GitStore, name: str, sha: str, digest: str | None) -> None:
    info = store.commit_info(sha)
    number = None
    if digest is not None:
        record = index.record_for(name, digest)
        if record is None:
            records = index.versions.setdefault(name, [])
            record = VersionRecord(name, len(records) + 1, digest, info)
            records.append(record)
            index._by_digest[(name, digest)] = record
        number = record.number
    index.events.setdefault(name, []).append(HistoryEvent(info, digest, number))
