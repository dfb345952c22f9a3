"""Prompt files parsed once: a file's parse kept by its bytes, beside the version index.

Parsing front matter (YAML, then every field checked) is most of what `list` spends on a
repository of a thousand prompts. A file whose bytes were parsed before, by any command,
at any commit or in the working tree, is read back instead, from
`<git dir>/promptctl/parsed-<code>.sqlite3`:

- Keyed by the SHA-256 of the file's bytes, as git keys a blob by its content: a file
  whose bytes are unchanged is not parsed again, and nothing else can change a parse but
  the path in it, which is set again on the way out.
- `<code>` hashes the source of the modules that parse (this package and the errors), so
  a new promptctl, or an edit of them, starts a new file and removes the others: a parse
  never outlives the rules that made it.
- Only files that parse are kept: a bad file is parsed, and its error raised, every time.
- Bounded: past MAX_ENTRIES the oldest entries go (one that is still used is parsed and
  kept again).
- Never in the way: a file that cannot be opened, written or read (another process
  holding it past the busy timeout, a read-only git directory) is skipped, and one that
  SQLite finds damaged is deleted, to be made again by the next command.

The entries are pickles, trusted as the repository's hooks are: whoever can write the git
directory can already run code there.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import cache, cached_property
from pathlib import Path

from promptctl.registry import errors
from promptctl.registry.prompts.promptfile import PromptFile, parse_prompt_file

FOLDER = "promptctl"
MAX_ENTRIES = 20_000
_BUSY_SECONDS = 0.5
_SCHEMA = """
CREATE TABLE IF NOT EXISTS parsed (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE,
                                   prompt BLOB NOT NULL);
"""


@cache
def code_fingerprint() -> str:
    """Hash the source of the modules whose code decides what a parse holds."""
    h = hashlib.sha256(b"promptctl-parsed-1\0")
    here = Path(__file__).resolve().parent
    for source in [*sorted(here.glob("*.py")), Path(errors.__file__).resolve()]:
        with contextlib.suppress(OSError):
            h.update(source.name.encode() + b"\0" + source.read_bytes())
    return h.hexdigest()[:16]


class ParsedCache:
    """Parses of prompt files by content: in a file under the git directory, or (with
    no folder) in this process only."""

    def __init__(self, git_dir: Path | None) -> None:
        self.git_dir = git_dir
        self._connection: sqlite3.Connection | None = None
        self._opened = False
        self._pending: dict[bytes, bytes] = {}
        self._batch = 0
        self._lock = threading.Lock()

    @cached_property
    def path(self) -> Path | None:
        """The cache file (named on first use: naming it reads the parsing code)."""
        if self.git_dir is None:
            return None
        return self.git_dir / FOLDER / f"parsed-{code_fingerprint()}.sqlite3"

    def parse(self, path: str, data: bytes) -> PromptFile:
        """Return the parse of a prompt file's bytes, as parse_prompt_file would."""
        if self.path is None:
            return parse_prompt_file(path, data)
        sha = hashlib.sha256(data).digest()
        stored = self._read(sha)
        if stored is not None:
            with contextlib.suppress(Exception):  # not ours any more: parse it again
                found = pickle.loads(stored)
                if isinstance(found, PromptFile):
                    return replace(found, path=path)
        prompt = parse_prompt_file(path, data)
        self._pending[sha] = pickle.dumps(prompt, protocol=pickle.HIGHEST_PROTOCOL)
        if not self._batch:
            self.flush()
        return prompt

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Keep the parses made in this block, and write them in one transaction at its end."""
        self._batch += 1
        try:
            yield
        finally:
            self._batch -= 1
            if not self._batch:
                self.flush()

    def flush(self) -> None:
        """Write the parses made since the last flush."""
        if not self._pending:
            return
        rows, self._pending = list(self._pending.items()), {}
        with self._lock:
            db = self._open()
            if db is None:
                return
            try:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO parsed (sha, prompt) VALUES (?, ?)", rows
                    )
                    db.execute(
                        "DELETE FROM parsed WHERE id <= (SELECT max(id) FROM parsed) - ?",
                        (MAX_ENTRIES,),
                    )
            except sqlite3.Error as exc:
                self._failed(exc)

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.flush()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _read(self, sha: bytes) -> bytes | None:
        with self._lock:
            db = self._open()
            if db is None:
                return None
            try:
                row = db.execute("SELECT prompt FROM parsed WHERE sha = ?", (sha,)).fetchone()
            except sqlite3.Error as exc:
                self._failed(exc)
                return None
        return row[0] if row else None

    def _open(self) -> sqlite3.Connection | None:
        """The connection, opened (and the file made) on first use; None when unusable."""
        if self._opened or self.path is None:
            return self._connection
        self._opened = True
        fresh = not self.path.is_file()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, check_same_thread=False)
        except (OSError, sqlite3.Error):
            return None
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._connection = db
            self._failed(exc)
            return None
        self._connection = db
        if fresh:
            self._remove_others()
        return db

    def _failed(self, exc: sqlite3.Error) -> None:
        """Stop using the file for this process; delete it when SQLite finds it damaged
        (not merely busy), so the next command starts a good one."""
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None
        damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.OperationalError
        )
        if damaged and self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(f"{self.path}{suffix}").unlink()

    def _remove_others(self) -> None:
        """Delete the caches other code made: nothing reads them again."""
        assert self.path is not None
        for other in self.path.parent.glob("parsed-*.sqlite3*"):
            if not other.name.startswith(self.path.name):
                with contextlib.suppress(OSError):
                    other.unlink()
