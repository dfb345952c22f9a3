"""What the client reads from disk: its cache of release documents and the bundle an
application ships. Nothing read here stops an application: a missing or broken file is a
warning naming the file and what is wrong, and the client goes on with what else it has.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from promptctl.client._entries import ReleaseEntry
from promptctl.registry.releases.bundle import bundle_problem

log = logging.getLogger("promptctl.client")


class Unusable(Exception):
    """A file the client reads is not what it should be (the message says how)."""


def describe(exc: BaseException) -> str:
    """What is wrong, in words, for a warning about a file."""
    if isinstance(exc, Unusable):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}" if exc.args else "a missing field"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"truncated or not JSON: {exc.msg}, line {exc.lineno} column {exc.colno}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, TypeError | AttributeError | ValueError):
        return f"wrong shape ({exc})"
    return f"{type(exc).__name__}: {exc}"


class DiskCache:
    """Release documents on disk, so a restarted application still has its prompts."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._reported: set[Path] = set()  # broken files already warned about
        self._save_failing = False

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> DiskCache | None:
        """The cache in `directory`, created if need be; None, with one warning, when the
        directory cannot be created or written to."""
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            why = "it is a file" if path.is_file() else describe(exc)
            log.warning(
                "promptctl: cache_dir %s cannot be used (%s); going on without a disk cache "
                "and without an event spool",
                path,
                why,
            )
            return None
        return cls(path)

    def _path(self, environment: str, name: str) -> Path:
        return self.directory / environment / (name.replace("/", "__") + ".json")

    def save(self, entry: ReleaseEntry) -> None:
        path = self._path(entry.environment, entry.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"etag": entry.etag, "release": entry.document}))
            temporary.replace(path)  # atomic: a crash never leaves half a file
        except OSError as exc:
            if not self._save_failing:  # once until a save works again, not once a fetch
                log.warning("promptctl: cannot write the disk cache at %s: %s", path, exc)
            self._save_failing = True
        else:
            self._save_failing = False
            self._reported.discard(path)

    def load(self, environment: str, name: str) -> ReleaseEntry | None:
        """The cached release of `name`, or None; a broken file is skipped with a warning."""
        path = self._path(environment, name)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            entry = ReleaseEntry.from_document(data["release"], data.get("etag"), "disk")
            if (entry.name, entry.environment) != (name, environment):
                raise ValueError(f"it holds {entry.name!r} in {entry.environment!r}")
        except FileNotFoundError:
            return None
        except Exception as exc:  # whatever is in the file, the application goes on
            if path not in self._reported:
                self._reported.add(path)
                log.warning(
                    "promptctl: disk cache file %s is broken (%s); skipped", path, describe(exc)
                )
            return None
        entry.stale = True
        return entry


def load_bundle(path: str | os.PathLike[str], environment: str) -> dict[str, ReleaseEntry]:
    """Read a bundle written by `promptctl bundle`: {prompt: entry} of what is usable in it.

    Never raises. A bundle that cannot be used at all (missing, unreadable, truncated, not
    a bundle, for another environment) is one warning naming the file and the problem, and
    no entries; releases of the wrong shape in a good bundle are one warning naming them,
    and the others are kept.
    """
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
        problem = bundle_problem(data, environment)
        if problem is not None:
            raise Unusable(problem)
        releases = data["releases"]
    except Exception as exc:
        why = "the file does not exist" if isinstance(exc, FileNotFoundError) else describe(exc)
        log.warning("promptctl: bundle %s cannot be used (%s); going on without it", path, why)
        return {}
    entries: dict[str, ReleaseEntry] = {}
    broken: list[str] = []
    for name, document in releases.items():
        try:
            entry = ReleaseEntry.from_document(document, None, "bundle")
            if (entry.name, entry.environment) != (name, environment):
                raise ValueError(f"it holds {entry.name!r} in {entry.environment!r}")
        except Exception as exc:
            broken.append(f"{name} ({describe(exc)})")
        else:
            entries[name] = entry
    if broken:
        log.warning(
            "promptctl: bundle %s: skipped %d release(s) that cannot be read: %s; "
            "using the other %d",
            path,
            len(broken),
            "; ".join(broken[:5]) + ("; …" if len(broken) > 5 else ""),
            len(entries),
        )
    return entries
