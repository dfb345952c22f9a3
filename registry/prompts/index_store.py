"""The persistent version index: numbering worked out once, kept beside the repository.

Numbering versions means walking the tracked branch's whole first-parent history; on a
repository of 100,000 commits that takes a while. The walk's result (every prompt's
versions and events, the commits they name) and the state it ended in (each file below
the root, each prompt's partials and digest) are kept in one SQLite file under the git
directory: `<git dir>/promptctl/version-index-<key>.sqlite3`. There it is never committed,
never listed as a file of the working tree, is per clone (and per linked worktree), and
goes away with the clone; the release database stays in `.promptctl/` beside it.

- Keyed: the file's name hashes, and its `meta` table repeats, the repository, the root,
  pattern, branch and default engine, the rename threshold and the format. Anything else
  is a different index.
- Never trusted blindly: a file that cannot be read, has another format or key, or whose
  tip is not a first-parent ancestor of the branch now (history was rewritten) is thrown
  away and built again. So is one found damaged only when a prompt's rows are read (its
  header was fine): the question is answered from the index built again, not refused. A
  tip equal to the branch's is used as is; an ancestor is brought up to date by walking
  only the commits after it.
- Safe with concurrent processes: a new or updated index is written to a temporary file
  in the same folder and moved over the old one with os.replace (atomic), so a reader sees
  the old file or the new one, never half of either; two writers both write a correct
  file and the last one wins. Readers open the file read-only.
- Lazy: a warm `log NAME` reads that prompt's rows only; `list` reads each prompt's.

When the git directory cannot be written to, numbering still works, in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from promptctl.registry.errors import RegistryError
from promptctl.registry.prompts.gitstore import CommitInfo, GitStore, NotOnFirstParents
from promptctl.registry.prompts.layout import Layout
from promptctl.registry.prompts.versions import (
    RENAME_THRESHOLD,
    HistoryEvent,
    VersionIndex,
    VersionRecord,
    WalkState,
    walk_all,
)

FORMAT = 4
FOLDER = "promptctl"
# Every value is stored once and referred to by an integer: a prompt's name (`names`), a
# commit (`commits`, its sha as 20 bytes), a version's digest (32 bytes, in `versions`
# only). An event names its version by number, since a version's digest is the digest of
# every event with that number; its own digest is stored only where that ever fails to
# hold (never, as numbering works today). Versions are found by digest through the digest's
# first 8 bytes as an integer (`dkey`), compared in full after. Tables keyed by what is
# looked up are WITHOUT ROWID, so the key is not stored a second time in an index. On
# 100,000 commits and 1,000 prompts this is about a fifth of the text-column format.
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE commits (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE, author TEXT,
                      email TEXT, time INTEGER, offset INTEGER, summary TEXT);
CREATE TABLE events (name INTEGER, seq INTEGER, commit_id INTEGER, number INTEGER,
                     moved_from TEXT, path TEXT, digest BLOB,
                     PRIMARY KEY (name, seq)) WITHOUT ROWID;
CREATE TABLE versions (name INTEGER, number INTEGER, digest BLOB NOT NULL, dkey INTEGER,
                       commit_id INTEGER, path TEXT,
                       PRIMARY KEY (name, number)) WITHOUT ROWID;
CREATE INDEX versions_by_digest ON versions (name, dkey);
CREATE TABLE files (relpath TEXT PRIMARY KEY, blob TEXT NOT NULL);
CREATE TABLE closures (name TEXT PRIMARY KEY, partials TEXT NOT NULL);
CREATE TABLE current (name TEXT PRIMARY KEY, digest TEXT);
"""


def _digest_key(digest: str) -> int:
    """The integer a digest is looked up by: its first 8 bytes, signed as SQLite's are."""
    return int.from_bytes(bytes.fromhex(digest[:16]), "big", signed=True)


# Progress is worth showing when a walk is long; short ones stay silent.
_PROGRESS_AFTER_SECONDS = 1.0


class _Invalid(Exception):
    """The stored index cannot be used (read failure, other key or format, rewritten
    history): it is built again."""


class _PerName(dict):
    """A dict of prompt name -> rows that loads a prompt's rows on first access."""

    def __init__(self, load: Callable[[str], list[Any]]) -> None:
        super().__init__()
        self._load = load
        self._absent: set[str] = set()

    def _fill(self, name: str) -> None:
        if not dict.__contains__(self, name) and name not in self._absent:
            rows = self._load(name)
            if rows:
                dict.__setitem__(self, name, rows)
            else:
                self._absent.add(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self._fill(name)
        return dict.get(self, name, default)

    def __getitem__(self, name: str) -> Any:
        self._fill(name)
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._fill(name)
        return dict.__contains__(self, name)

    def setdefault(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self._fill(name)
        self._absent.discard(name)
        return dict.setdefault(self, name, default)

    def __setitem__(self, name: str, value: Any) -> None:
        self._absent.discard(name)
        dict.__setitem__(self, name, value)


# The commit's columns, last in a row (the sha as stored: 20 bytes).
_WITH_COMMIT = "c.sha, c.author, c.email, c.time, c.offset, c.summary"


class _StoredIndex(VersionIndex):
    """An index read from the stored file: a prompt's records are read when first asked
    for, and one version of a prompt not read yet is looked up alone (what `list` asks of
    each of a thousand prompts with thousands of versions)."""

    one_version: Callable[..., list[VersionRecord]] | None = None

    def record_for(self, name: str, digest: str) -> VersionRecord | None:
        if self.one_version is None or dict.__contains__(self.versions, name):
            return super().record_for(name, digest)
        found = self._by_digest.get((name, digest))
        if found is None:
            rows = self.one_version(name, digest)
            found = rows[0] if rows else None
        return found


class IndexStore:
    """The persistent version index of one repository, layout and branch."""

    def __init__(self, store: GitStore, layout: Layout, branch: str) -> None:
        self.store = store
        self.layout = layout
        self.branch = branch
        self.key = {
            "format": FORMAT,
            "repository": os.path.realpath(store.git_dir),
            "root": layout.root,
            "pattern": layout.pattern,
            "branch": branch,
            "template": layout.template,
            "threshold": RENAME_THRESHOLD,
        }
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.path = store.git_dir / FOLDER / f"version-index-{digest[:16]}.sqlite3"
        self._connection: sqlite3.Connection | None = None
        self._commits: dict[str, CommitInfo] = {}
        # The tip the lazily read rows are at, and whether a read failure may build the
        # index again there (not while an update reads them: it starts over itself).
        self._tip: str | None = None
        self._may_rebuild = False
        self._rebuilt: VersionIndex | None = None
        self._progress: Callable[[int, int], None] | None = None

    # -- the one entry point ---------------------------------------------------------------

    def index(self, tip: str, progress: Callable[[int, int], None] | None = None) -> VersionIndex:
        """Return the index at `tip`: stored, brought up to date, or built (and stored)."""
        self._progress = progress
        try:
            stored_tip = self._open()
        except _Invalid:
            stored_tip = None
        if stored_tip == tip:
            return self._lazy_index(tip)
        if stored_tip is not None:
            try:
                return self._update(stored_tip, tip, progress)
            except (_Invalid, NotOnFirstParents):
                pass  # the branch was rewritten or the file is damaged: start over
        return self._build(tip)

    def _build(self, tip: str) -> VersionIndex:
        """Walk the whole history to `tip`, store the index and return it."""
        self.close()
        index, state = walk_all(self.store, self.layout, self.branch, tip, progress=self._progress)
        with contextlib.suppress(OSError, sqlite3.Error):
            self._write_full(index, state)
        return index

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- reading ---------------------------------------------------------------------------

    def _open(self) -> str | None:
        """Open the stored file read-only and return its tip, or raise _Invalid."""
        self.close()
        if not self.path.is_file():
            raise _Invalid("no index yet")
        try:
            connection = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise _Invalid(str(exc)) from exc
        stored = json.loads(meta.get("key", "null"))
        if stored != self.key or not meta.get("tip"):
            connection.close()
            raise _Invalid("another key or format")
        self._connection = connection
        return meta["tip"]

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._connection is None:
            return []
        try:
            return self._connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _Invalid(f"{self.path} cannot be read ({exc})") from exc

    def _rows(self, read: Callable[[], list[Any]]) -> list[Any] | None:
        """Read rows from the stored file; on a read failure build the index again at the
        tip being served (when allowed) and return None: the caller answers from it."""
        if self._rebuilt is None:
            try:
                return read()
            except _Invalid:
                if not self._may_rebuild or self._tip is None:
                    raise
                self._rebuilt = self._build(self._tip)
        return None

    def _commit_of(self, row: tuple) -> CommitInfo:
        """The commit of a row that ends with the commit's columns (_WITH_COMMIT)."""
        raw, author, email, stamp, offset, summary = row[-6:]
        sha = bytes(raw).hex()
        found = self._commits.get(sha)
        if found is None:
            tz = timezone(timedelta(minutes=offset))
            found = CommitInfo(sha, author, email, datetime.fromtimestamp(stamp, tz), summary)
            self._commits[sha] = found
        return found

    def _load_versions(self, name: str, digest: str | None = None) -> list[VersionRecord]:
        records = self._rows(lambda: self._read_versions(name, digest))
        if records is None:
            assert self._rebuilt is not None
            records = self._rebuilt.versions.get(name, [])
            return [r for r in records if digest is None or r.digest == digest]
        return records

    def _load_events(self, name: str) -> list[HistoryEvent]:
        events = self._rows(lambda: self._read_events(name))
        if events is None:
            assert self._rebuilt is not None
            return list(self._rebuilt.events.get(name, []))
        return events

    def _read_versions(self, name: str, digest: str | None = None) -> list[VersionRecord]:
        where = "n.name = ?" + (" AND v.dkey = ?" if digest is not None else "")
        # One digest is found through its index: without statistics SQLite would rather
        # walk the primary key (for ORDER BY), every version of the prompt, thousands of
        # rows for each of a thousand prompts `list` asks about.
        by_digest = " INDEXED BY versions_by_digest" if digest is not None else ""
        rows = self._query(
            f"SELECT v.number, v.digest, v.path, {_WITH_COMMIT} FROM names n"
            f" JOIN versions v{by_digest} ON v.name = n.id JOIN commits c ON c.id = v.commit_id"
            f" WHERE {where} ORDER BY v.number",
            (name,) if digest is None else (name, _digest_key(digest)),
        )
        records = [
            VersionRecord(name, r[0], bytes(r[1]).hex(), self._commit_of(r), r[2]) for r in rows
        ]
        if digest is not None:
            records = [r for r in records if r.digest == digest]
        return records

    def _read_events(self, name: str) -> list[HistoryEvent]:
        rows = self._query(
            "SELECT coalesce(e.digest, v.digest), e.number, e.moved_from, e.path,"
            f" {_WITH_COMMIT} FROM names n JOIN events e ON e.name = n.id"
            " LEFT JOIN versions v ON v.name = e.name AND v.number = e.number"
            " JOIN commits c ON c.id = e.commit_id WHERE n.name = ? ORDER BY e.seq",
            (name,),
        )
        return [
            HistoryEvent(self._commit_of(r), bytes(r[0]).hex() if r[0] is not None else None,
                         r[1], r[2], r[3])
            for r in rows
        ]  # fmt: skip

    def _lazy_index(self, tip: str) -> VersionIndex:
        self._tip, self._may_rebuild, self._rebuilt = tip, True, None
        index = _StoredIndex(branch=self.branch, tip=tip)
        index.versions = _PerName(self._load_versions)
        index.events = _PerName(self._load_events)
        index.one_version = self._load_versions
        return index

    def _state(self) -> WalkState:
        files = dict(self._query("SELECT relpath, blob FROM files"))
        closures = {n: json.loads(p) for n, p in self._query("SELECT name, partials FROM closures")}
        current = dict(self._query("SELECT name, digest FROM current"))
        return WalkState(files, closures, current)

    # -- writing ---------------------------------------------------------------------------

    def _update(
        self, stored_tip: str, tip: str, progress: Callable[[int, int], None] | None
    ) -> VersionIndex:
        """Walk from the stored tip to `tip` and store the rows that changed."""
        try:
            state = self._state()
            index = self._lazy_index(stored_tip)
            self._may_rebuild = False  # a failure below starts over from scratch instead
            index, state = walk_all(
                self.store,
                self.layout,
                self.branch,
                tip,
                index=index,
                state=state,
                since=stored_tip,
                progress=progress,
            )
        except RegistryError as exc:
            if isinstance(exc, NotOnFirstParents):
                raise
            raise _Invalid(str(exc)) from exc
        changed = list(dict.keys(index.events))
        # Read every changed prompt's rows before the file is replaced under us.
        for name in changed:
            index.versions.get(name)
        # The other prompts' rows are read later, as they were at the stored tip and are
        # at `tip`: a read failure then builds the index again at `tip`.
        self._tip, self._may_rebuild = tip, True
        with contextlib.suppress(OSError, sqlite3.Error):
            self._write_update(index, state, changed)
        return index

    @contextlib.contextmanager
    def _writing(self, copy_from: Path | None) -> Iterator[sqlite3.Connection]:
        """A new file in the index's folder (a copy of `copy_from`, or empty), moved over
        the index when the block ends without error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".version-index-", dir=self.path.parent)
        os.close(handle)
        try:
            if copy_from is not None:
                shutil.copyfile(copy_from, temp)
            connection = sqlite3.connect(temp)
            try:
                connection.execute("PRAGMA journal_mode = OFF")
                connection.execute("PRAGMA synchronous = OFF")
                if copy_from is None:
                    connection.executescript(_SCHEMA)
                yield connection
                connection.commit()
            finally:
                connection.close()
            os.replace(temp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _write_full(self, index: VersionIndex, state: WalkState) -> None:
        with self._writing(None) as db:
            self._write_names(db, index, list(index.events))
            self._write_state(db, index, state)
        self._remove_other_formats()

    def _remove_other_formats(self) -> None:
        """Delete index files an older (or newer) promptctl wrote beside this one: their
        name hashes their format, so nothing reads them again and they would stay."""
        for other in self.path.parent.glob("version-index-*.sqlite3"):
            if other == self.path:
                continue
            try:
                with contextlib.closing(
                    sqlite3.connect(f"file:{other}?mode=ro", uri=True)
                ) as connection:
                    row = connection.execute("SELECT value FROM meta WHERE key = 'key'").fetchone()
                stored = json.loads(row[0]) if row else {}
            except (sqlite3.Error, ValueError):
                continue  # not ours to judge: perhaps being written
            if isinstance(stored, dict) and stored.get("format") != FORMAT:
                with contextlib.suppress(OSError):
                    other.unlink()

    def _write_update(self, index: VersionIndex, state: WalkState, names: list[str]) -> None:
        source = self.path
        with self._writing(source) as db:
            stale = "(SELECT id FROM names WHERE name = ?)"
            for name in names:
                db.execute(f"DELETE FROM events WHERE name = {stale}", (name,))
                db.execute(f"DELETE FROM versions WHERE name = {stale}", (name,))
            self._write_names(db, index, names)
            for table in ("files", "closures", "current"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            self._write_state(db, index, state)

    def _write_names(self, db: sqlite3.Connection, index: VersionIndex, names: list[str]) -> None:
        commit_ids: dict[str, int] = {
            bytes(sha).hex(): id for id, sha in db.execute("SELECT id, sha FROM commits")
        }
        next_id = iter(range(max(commit_ids.values(), default=0) + 1, sys.maxsize))
        new_commits: list[tuple] = []

        def commit_id(commit: CommitInfo) -> int:
            found = commit_ids.get(commit.sha)
            if found is None:
                found = commit_ids[commit.sha] = next(next_id)
                new_commits.append(
                    (
                        found,
                        bytes.fromhex(commit.sha),
                        commit.author,
                        commit.email,
                        int(commit.time.timestamp()),
                        int((commit.time.utcoffset() or timedelta()).total_seconds() // 60),
                        commit.summary,
                    )
                )
            return found

        db.executemany("INSERT OR IGNORE INTO names (name) VALUES (?)", [(n,) for n in names])
        name_ids = dict(db.execute("SELECT name, id FROM names"))
        event_rows, version_rows = [], []
        for name in names:
            name_id = name_ids[name]
            digests: dict[int, str] = {}
            for record in index.versions.get(name, []):
                digests[record.number] = record.digest
                version_rows.append(
                    (
                        name_id,
                        record.number,
                        bytes.fromhex(record.digest),
                        _digest_key(record.digest),
                        commit_id(record.commit),
                        record.path,
                    )
                )
            for seq, event in enumerate(index.events.get(name, [])):
                own = event.digest is not None and digests.get(event.number) != event.digest
                event_rows.append(
                    (
                        name_id,
                        seq,
                        commit_id(event.commit),
                        event.number,
                        event.moved_from,
                        event.path,
                        bytes.fromhex(event.digest) if own else None,
                    )
                )
        db.executemany("INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?)", new_commits)
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", event_rows)
        db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)", version_rows)

    def _write_state(self, db: sqlite3.Connection, index: VersionIndex, state: WalkState) -> None:
        db.executemany("INSERT INTO files VALUES (?, ?)", list(state.files.items()))
        db.executemany(
            "INSERT INTO closures VALUES (?, ?)",
            [(n, json.dumps(p)) for n, p in state.closures.items()],
        )
        db.executemany("INSERT INTO current VALUES (?, ?)", list(state.current.items()))
        db.execute("DELETE FROM meta")
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("key", json.dumps(self.key)), ("tip", index.tip), ("written", str(time.time()))],
        )


def terminal_progress() -> Callable[[int, int], None] | None:
    """A progress line on stderr while a long walk runs, when stderr is a terminal."""
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    started = time.monotonic()
    shown = False

    def report(done: int, total: int) -> None:
        nonlocal shown
        if not shown and time.monotonic() - started < _PROGRESS_AFTER_SECONDS and done < total:
            return
        if not shown and done >= total:
            return  # finished before it was worth a line
        shown = True
        end = "\n" if done >= total else ""
        stream.write(f"\rnumbering versions: {done:,}/{total:,} commits{end}")
        stream.flush()

    return report
