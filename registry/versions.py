"""Versions: content digests over a prompt and its partials, and numbering along history.

A version is the prompt file plus every partial it includes, transitively. Its digest
is SHA-256 over that content in a canonical order, so equal content gives an equal
digest whatever the commit. Versions are numbered v1, v2, ... in the order they first
appear on the tracked branch's first-parent history.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.gitstore import CommitInfo, GitStore
from registry.layout import Layout
from registry.rendering import referenced_names

SHORT = 12
_DIGEST_MAGIC = b"promptctl-version-1\0"


def normalize_include(name: str) -> str:
    """Return an include name as a normalised path below the prompt root."""
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def includes_in(data: bytes) -> list[str]:
    """Return the normalised include names found in a file's bytes."""
    text = data.decode("utf-8", errors="replace")
    return [normalize_include(n) for n in referenced_names(text)]


def dependency_closure(relpath: str, includes_of: Callable[[str], list[str] | None]) -> list[str]:
    """Return the sorted partial paths a file includes, transitively (missing ones too)."""
    seen: set[str] = set()
    pending = [relpath]
    while pending:
        current = pending.pop()
        for name in includes_of(current) or []:
            if name != relpath and name not in seen:
                seen.add(name)
                pending.append(name)
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
    """Every prompt's numbered versions along the tracked branch, built in one walk."""

    branch: str
    tip: str
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


def build_index(store: GitStore, layout: Layout, branch: str, tip: str) -> VersionIndex:
    """Walk the first-parent history from `tip` once and number every prompt's versions.

    Only prompts whose file, or a partial in their include closure, changed in a commit
    are looked at again; parsed includes and digests are cached by blob id.
    """
    index = VersionIndex(branch=branch, tip=tip)
    files: dict[str, str] = {}
    includes_cache: dict[str, list[str]] = {}
    digest_cache: dict[tuple, str] = {}
    closures: dict[str, list[str]] = {}
    dependents: dict[str, set[str]] = {}
    current: dict[str, str | None] = {}

    def includes_of(relpath: str) -> list[str] | None:
        blob = files.get(relpath)
        if blob is None:
            return None
        found = includes_cache.get(blob)
        if found is None:
            found = includes_cache[blob] = includes_in(store.read_blob(blob))
        return found

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
            affected |= dependents.get(change.relpath, set())
        for name in sorted(affected):
            relpath = layout.relpath_of(name)
            for old in closures.pop(name, []):
                dependents.get(old, set()).discard(name)
            blob = files.get(relpath)
            digest: str | None = None
            if blob is not None:
                closure = dependency_closure(relpath, includes_of)
                closures[name] = closure
                for partial in closure:
                    dependents.setdefault(partial, set()).add(name)
                key = (blob, tuple((p, files.get(p)) for p in closure))
                digest = digest_cache.get(key)
                if digest is None:
                    partials = [
                        (p, store.read_blob(files[p]) if p in files else None) for p in closure
                    ]
                    digest = digest_cache[key] = digest_of(store.read_blob(blob), partials)
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
