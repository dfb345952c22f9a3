"""Versions: content digests over a prompt and its partials, and numbering along history.

A version is the prompt file plus every partial it includes, transitively. Its digest
is SHA-256 over that content in a canonical order, so equal content gives an equal
digest whatever the commit. Versions are numbered v1, v2, ... in the order they first
appear on the tracked branch's first-parent history.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from promptctl.registry.prompts.engines import (
    JINJA2,
    MUSTACHE,
    PLAIN,
    declared_engine_in,
    mustache_partials,
)
from promptctl.registry.prompts.gitstore import CommitInfo, GitStore
from promptctl.registry.prompts.layout import Layout
from promptctl.registry.prompts.outputs import schema_ref_in
from promptctl.registry.prompts.promptversion import normalize_include
from promptctl.registry.prompts.rendering import referenced_names

_DIGEST_MAGIC = b"promptctl-version-1\0"


def includes_in(data: bytes, engine: str = JINJA2) -> list[str]:
    """Return the normalised names of the files a file's bytes include, read as `engine`
    reads them (a plain file includes nothing)."""
    if engine == PLAIN:
        return []
    text = data.decode("utf-8", errors="replace")
    names = mustache_partials(text) if engine == MUSTACHE else referenced_names(text)
    return [normalize_include(n) for n in names]


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


def digest_of(
    main: bytes, partials: list[tuple[str, bytes | None]], engine: str | None = None
) -> str:
    """Return the version digest of a prompt file and its (sorted) partials.

    The prompt's own path is left out so renaming a prompt keeps its content's digest;
    partial paths are in, because the include statement names them. `engine` is the
    engine the repository's default chose for a file that names none (jinja2 leaves it
    out, so digests from before engines existed stay as they were): the same bytes
    rendered another way are another version.
    """
    h = hashlib.sha256(_DIGEST_MAGIC)
    h.update(b"\0%d\0" % len(main) + main)
    for path, data in partials:
        h.update(path.encode() + b"\0")
        if data is None:
            h.update(b"-\0")
        else:
            h.update(b"%d\0" % len(data) + data)
    if engine is not None:
        h.update(_engine_piece(engine))
    return h.hexdigest()


def _engine_piece(engine: str) -> bytes:
    return b"\0engine\0" + engine.encode()


def defaulted_engine(declared: str | None, default: str) -> str | None:
    """The engine a digest records: the default when the file names none, unless jinja2."""
    return default if declared is None and default != JINJA2 else None


@dataclass(frozen=True)
class VersionRecord:
    """A numbered version and the commit where it first appeared on the tracked branch."""

    name: str
    number: int
    digest: str
    commit: CommitInfo
    # The repository path the file had there, when it was elsewhere (before a move).
    path: str | None = None

    @property
    def label(self) -> str:
        return f"v{self.number}"


@dataclass(frozen=True)
class HistoryEvent:
    """A commit on the tracked branch where a prompt's content changed, or it was removed,
    or where it moved: `moved_from` is then the repository path it had before."""

    commit: CommitInfo
    digest: str | None
    number: int | None
    moved_from: str | None = None
    # The repository path the file had at this commit, when it was elsewhere (a move).
    path: str | None = None


@dataclass
class VersionIndex:
    """Every prompt's numbered versions along the tracked branch, built in one walk.

    `names` is None when the index covers every prompt, else the prompts it covers.
    `versions` and `events` may be filled lazily, per prompt, from the persistent index.
    """

    branch: str
    tip: str
    names: frozenset[str] | None = None
    versions: dict[str, list[VersionRecord]] = field(default_factory=dict)
    events: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    _by_digest: dict[tuple[str, str], VersionRecord] = field(default_factory=dict)

    def record_for(self, name: str, digest: str) -> VersionRecord | None:
        found = self._by_digest.get((name, digest))
        if found is None and name not in self._indexed:
            self._index_name(name)
            found = self._by_digest.get((name, digest))
        return found

    @property
    def _indexed(self) -> set[str]:
        indexed = self.__dict__.get("_indexed_names")
        if indexed is None:
            indexed = self.__dict__["_indexed_names"] = set()
        return indexed

    def _index_name(self, name: str) -> None:
        """Index a prompt's records by digest (loaded lazily when the index is stored)."""
        self._indexed.add(name)
        for record in self.versions.get(name, []):
            self._by_digest[(name, record.digest)] = record

    def by_number(self, name: str, number: int) -> VersionRecord | None:
        return next((r for r in self.versions.get(name, []) if r.number == number), None)

    def by_digest_prefix(self, name: str, prefix: str) -> list[VersionRecord]:
        prefix = prefix.lower()
        return [r for r in self.versions.get(name, []) if r.digest.startswith(prefix)]

    def current_digest(self, name: str) -> str | None:
        events = self.events.get(name)
        return events[-1].digest if events else None

    def covers(self, name: str) -> bool:
        """Tell whether this index numbered `name` (an index of some prompts may not)."""
        return self.names is None or name in self.names

    def set_history(self, name: str, events: list[HistoryEvent]) -> None:
        """Number a prompt's versions again from its events, oldest first: each digest takes
        the next number where it first appears (pinned numbers aside, see `pin`)."""
        self.events[name] = events
        _renumber(self, name, {})


@dataclass
class WalkState:
    """What a walk of every prompt knows at its tip, so that a later walk can go on from
    there: each file below the root (its blob), each prompt's partials and digest."""

    files: dict[str, str] = field(default_factory=dict)
    closures: dict[str, list[str]] = field(default_factory=dict)
    current: dict[str, str | None] = field(default_factory=dict)


# The similarity (percent) from which a file deleted and one added in the same commit are
# one file moved: git's own default for `--follow` and `-M`.
RENAME_THRESHOLD = 50


def build_index(
    store: GitStore,
    layout: Layout,
    branch: str,
    tip: str,
    names: Iterable[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> VersionIndex:
    """Walk the first-parent history from `tip` once and number prompts' versions.

    With `names`, only those prompts are numbered: the walk then looks up just their files
    and partials in each commit, far cheaper than following every prompt. Both ways give
    the same numbers, events and commits for a prompt. Either way a prompt's history goes
    on across the commit that moved or renamed its file (see follow_moves).
    """
    if names is not None:
        wanted = sorted(set(names))
        index, order = _build_for(store, layout, branch, tip, wanted)
        follow_moves(index, store, layout, order, wanted)
        return index
    index, _state = walk_all(store, layout, branch, tip, progress=progress)
    return index


# Blobs whose bytes a walk keeps at once; what it derives from them is kept for good.
_DATA_CACHE = 4096


class _Contents:
    """Blob bytes, include lists and digests, cached by blob id (a blob never changes)."""

    def __init__(self, store: GitStore, default_engine: str = JINJA2) -> None:
        self.store = store
        self.default_engine = default_engine
        self._data: dict[str, bytes] = {}
        self._includes: dict[tuple[str, str], list[str]] = {}
        self._pieces: dict[tuple[str, str | None], bytes] = {}
        self._digests: dict[tuple, str] = {}
        self._schemas: dict[str, str | None] = {}
        self._declared: dict[str, str | None] = {}

    def data(self, blob: str) -> bytes:
        found = self._data.get(blob)
        if found is None:
            if len(self._data) >= _DATA_CACHE:  # a long walk reads far more than it needs
                self._data.clear()
            found = self._data[blob] = self.store.read_blob(blob)
        return found

    def schema(self, blob: str) -> str | None:
        """The output schema file a prompt blob names (a dependency, like a partial)."""
        if blob not in self._schemas:
            self._schemas[blob] = schema_ref_in(self.data(blob))
        return self._schemas[blob]

    def declared_engine(self, blob: str) -> str | None:
        if blob not in self._declared:
            self._declared[blob] = declared_engine_in(self.data(blob))
        return self._declared[blob]

    def engine(self, blob: str) -> str:
        """The engine a prompt blob renders with: its own `template:`, else the default."""
        return self.declared_engine(blob) or self.default_engine

    def includes(self, blob: str, engine: str = JINJA2) -> list[str]:
        found = self._includes.get((blob, engine))
        if found is None:
            found = self._includes[(blob, engine)] = includes_in(self.data(blob), engine)
        return found

    def digest(
        self, blob: str, partials: tuple[tuple[str, str | None], ...], engine: str | None = None
    ) -> str:
        """Return digest_of() for a prompt blob, its (sorted) partials' blobs and the
        engine the default chose (None when the file names one, or for jinja2)."""
        key = (blob, partials, engine)
        found = self._digests.get(key)
        if found is None:
            if len(self._digests) >= _DATA_CACHE * 4:  # reverts are recent, mostly
                self._digests.clear()
            # The same bytes, in the same order, that digest_of() feeds the hash.
            h = hashlib.sha256(_DIGEST_MAGIC)
            main = self.data(blob)
            h.update(b"\0%d\0" % len(main) + main)
            for piece in partials:
                h.update(self._piece(piece))
            if engine is not None:
                h.update(_engine_piece(engine))
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
    memoises that per partial while the files stay the same (one commit of a walk, one
    engine).
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


def walk_all(
    store: GitStore,
    layout: Layout,
    branch: str,
    tip: str,
    *,
    index: VersionIndex | None = None,
    state: WalkState | None = None,
    since: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[VersionIndex, WalkState]:
    """Number every prompt along the first parents of `tip`; with `index`, `state` and
    `since` (what an earlier walk ended with, at commit `since`), go on from there.

    Only prompts whose file, or a partial in their include closure, changed in a commit
    are looked at again. Prompts first seen in this walk follow moves (follow_moves).
    """
    if index is None:
        index = VersionIndex(branch=branch, tip=tip)
    index.tip = tip
    state = state or WalkState()
    contents = _Contents(store, layout.template)
    files, closures, current = state.files, state.closures, state.current
    dependents: dict[str, set[str]] = {}
    for name, closure in closures.items():
        for partial in closure:
            dependents.setdefault(partial, set()).add(name)
    order: dict[str, int] = {}
    new_names: list[str] = []

    def includes_of(engine: str, relpath: str) -> list[str] | None:
        blob = files.get(relpath)
        return None if blob is None else contents.includes(blob, engine)

    changes = store.first_parent_changes(tip, layout.root, since=since, progress=progress)
    for position, (sha, changed) in enumerate(changes):
        order[sha] = position
        affected: set[str] = set()
        for change in changed:
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
        reach: dict[str, dict[str, frozenset[str]]] = {}  # per engine, while `files` stays
        for name in sorted(affected):
            relpath = layout.relpath_of(name)
            for old in closures.pop(name, []):
                dependents.get(old, set()).discard(name)
            blob = files.get(relpath)
            digest: str | None = None
            if blob is not None:
                engine = contents.engine(blob)
                closure = _closure(
                    relpath,
                    functools.partial(includes_of, engine),
                    reach.setdefault(engine, {}),
                    contents.schema(blob),
                )
                closures[name] = closure
                for partial in closure:
                    dependents.setdefault(partial, set()).add(name)
                marker = defaulted_engine(contents.declared_engine(blob), layout.template)
                digest = contents.digest(blob, tuple((p, files.get(p)) for p in closure), marker)
            if digest == current.get(name):
                continue
            if name not in current and not index.events.get(name):
                new_names.append(name)
            current[name] = digest
            _record(index, store, name, sha, digest)
    follow_moves(index, store, layout, order, new_names)
    return index, state


def _build_for(
    store: GitStore, layout: Layout, branch: str, tip: str, names: list[str]
) -> tuple[VersionIndex, dict[str, int]]:
    """Number only `names`: in each commit that changed the root, look up the files each
    one was made of last time (its own file and its closure) and redo it when one moved.
    Return the index and the position of each commit it walked."""
    index = VersionIndex(branch=branch, tip=tip, names=frozenset(names))
    contents = _Contents(store, layout.template)
    relpaths = {name: layout.relpath_of(name) for name in names}
    # The blob of each file a prompt was made of when last computed (None: missing).
    made_of: dict[str, dict[str, str | None]] = {n: {relpaths[n]: None} for n in names}
    current: dict[str, str | None] = {}
    order: dict[str, int] = {}
    for position, (sha, blob_in_commit) in enumerate(store.first_parent_lookups(tip, layout.root)):
        order[sha] = position
        blobs: dict[str, str | None] = {}

        def blob_of(relpath: str, blobs: dict = blobs, lookup: Callable = blob_in_commit):
            if relpath not in blobs:
                blobs[relpath] = lookup(relpath)
            return blobs[relpath]

        def includes_of(engine: str, relpath: str, blob_of: Callable = blob_of) -> list[str] | None:
            blob = blob_of(relpath)
            return None if blob is None else contents.includes(blob, engine)

        reach: dict[str, dict[str, frozenset[str]]] = {}
        for name in names:
            if all(blob_of(p) == b for p, b in made_of[name].items()):
                continue
            relpath = relpaths[name]
            blob = blob_of(relpath)
            digest: str | None = None
            if blob is None:
                made_of[name] = {relpath: None}
            else:
                engine = contents.engine(blob)
                closure = _closure(
                    relpath,
                    functools.partial(includes_of, engine),
                    reach.setdefault(engine, {}),
                    contents.schema(blob),
                )
                partials = tuple((p, blob_of(p)) for p in closure)
                made_of[name] = {relpath: blob, **dict(partials)}
                marker = defaulted_engine(contents.declared_engine(blob), layout.template)
                digest = contents.digest(blob, partials, marker)
            if digest == current.get(name):
                continue
            current[name] = digest
            _record(index, store, name, sha, digest)
    return index, order


def _record(index: VersionIndex, store: GitStore, name: str, sha: str, digest: str | None) -> None:
    info = store.commit_info(sha)
    number = None
    if digest is not None:
        record = index.record_for(name, digest)
        if record is None:
            records = index.versions.setdefault(name, [])
            # Records are kept in number order, so the last one holds the highest.
            taken = records[-1].number if records else 0
            record = VersionRecord(name, taken + 1, digest, info)
            records.append(record)
            index._by_digest[(name, digest)] = record
        number = record.number
    index.events.setdefault(name, []).append(HistoryEvent(info, digest, number))


# -- following moves and renames ------------------------------------------------------------


def follow_moves(
    index: VersionIndex,
    store: GitStore,
    layout: Layout,
    order: dict[str, int],
    names: Iterable[str],
    threshold: int = RENAME_THRESHOLD,
) -> None:
    """Prepend to each of `names` the history its file had at another path, when the commit
    where it first appears here moved or renamed it (as `git log --follow` does: the same
    content, or content at least `threshold` percent alike, deleted there in that commit).

    A move inside the root continues the old prompt's events; a move of the root itself
    (or from anywhere else) walks the old path's history with the layout it then had.
    The commit of the move is marked on the event (`moved_from`), and the prompt's
    versions are numbered again over its whole life.
    """
    firsts = []
    for name in names:
        events = index.events.get(name)
        if events and events[0].digest is not None and events[0].moved_from is None:
            firsts.append((order.get(events[0].commit.sha, -1), name))
    renames: dict[str, dict[str, tuple[str, int]]] = {}
    for _, name in sorted(firsts):  # oldest first: a chain of moves joins up in order
        events = index.events[name]
        sha = events[0].commit.sha
        if sha not in renames:
            renames[sha] = store.renames_in(sha, threshold)
        moved = renames[sha].get(layout.repo_path(layout.relpath_of(name)))
        if moved is None:
            continue
        located = locate(layout, moved[0], name)
        if located is None:
            continue
        old_layout, old_name = located
        before = _history_before(index, store, old_layout, old_name, sha, order, layout)
        if not before:
            continue
        merged = [_unnumbered(e) for e in before]
        merged.append(replace(events[0], moved_from=moved[0]))
        merged.extend(events[1:])
        index.set_history(name, merged)


def locate(layout: Layout, old_path: str, name: str) -> tuple[Layout, str] | None:
    """Find the layout and name a moved file had: the same root (a rename), the root it
    had when the file kept its path below it (the root moved), or any root that makes
    the old path a prompt of the same pattern."""
    if layout.root == "" or old_path.startswith(layout.root + "/"):
        relpath = old_path[len(layout.root) + 1 :] if layout.root else old_path
        old_name = layout.name_of(relpath)
        if old_name is not None:
            return layout, old_name
    relpath = layout.relpath_of(name)
    if old_path == relpath:
        return replace(layout, root=""), name
    if old_path.endswith("/" + relpath):
        return replace(layout, root=old_path[: -len(relpath) - 1]), name
    parts = old_path.split("/")
    for cut in range(len(parts)):
        root, rest = "/".join(parts[:cut]), "/".join(parts[cut:])
        old_name = layout.name_of(rest)
        if old_name is not None:
            return replace(layout, root=root), old_name
    return None


def _history_before(
    index: VersionIndex,
    store: GitStore,
    old_layout: Layout,
    old_name: str,
    sha: str,
    order: dict[str, int],
    layout: Layout,
) -> list[HistoryEvent]:
    """The events a prompt had under its old path, before commit `sha` moved it."""
    position = order.get(sha, -1)
    old_path = old_layout.repo_path(old_layout.relpath_of(old_name))
    if old_layout.root == layout.root and index.names is None and old_name in index.events:
        events = [e for e in index.events[old_name] if order.get(e.commit.sha, -1) < position]
    else:
        parent = store.first_parent(sha)
        if parent is None:
            return []
        old = build_index(store, old_layout, index.branch, parent, [old_name])
        events = list(old.events.get(old_name, []))
    return [e if e.path else replace(e, path=old_path) for e in events]


def _unnumbered(event: HistoryEvent) -> HistoryEvent:
    return replace(event, number=None)


def _renumber(index: VersionIndex, name: str, pins: Mapping[str, int]) -> None:
    """Number a prompt's versions from its events: pinned digests keep their numbers, every
    other digest takes, where it first appears, the lowest number no other one has."""
    for key in [k for k in index._by_digest if k[0] == name]:
        del index._by_digest[key]
    taken = set(pins.values())
    numbers: dict[str, int] = {}
    records: list[VersionRecord] = []
    events: list[HistoryEvent] = []
    free = 1
    for event in index.events.get(name, []):
        digest = event.digest
        if digest is not None and digest not in numbers:
            if digest in pins:
                numbers[digest] = pins[digest]
            else:
                while free in taken:
                    free += 1
                numbers[digest] = free
                taken.add(free)
            records.append(VersionRecord(name, numbers[digest], digest, event.commit, event.path))
        number = numbers[digest] if digest is not None else None
        events.append(replace(event, number=number))
    index.events[name] = events
    records.sort(key=lambda r: r.number)
    index.versions[name] = records
    for record in records:
        index._by_digest[(name, record.digest)] = record
    index._indexed.add(name)


def pin(index: VersionIndex, released: Mapping[str, Mapping[str, int]]) -> None:
    """Keep every released version at the number the release database gave it.

    `released` maps a prompt to {digest: number} as the release snapshots hold them. A
    prompt whose numbering from git disagrees (its history now follows a move, so older
    versions appeared) is numbered again: released digests keep their numbers, the others
    take the free ones in the order they appeared. So `vN` of a released version means
    the same content for as long as the release database lives.
    """
    for name, pins in released.items():
        if not pins or not index.covers(name):
            continue
        numbers = {r.digest: r.number for r in index.versions.get(name, [])}
        if all(numbers.get(digest, number) == number for digest, number in pins.items()):
            continue  # git's numbering agrees with every release: nothing to do
        clean: dict[str, int] = {}
        for digest, number in sorted(pins.items(), key=lambda kv: kv[1]):
            # Only digests git knows; a number given twice keeps its first digest.
            if digest in numbers and number not in clean.values():
                clean[digest] = number
        _renumber(index, name, clean)
