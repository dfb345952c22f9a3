"""A version reference matched against released versions, for when git cannot answer.

A server keeps serving while its clone is unreadable, so `vN` and digest prefixes are also
looked up in what is released (its snapshots). The rules are the library's own: `vN` is
a version number, 7 to 64 hex characters a digest prefix, and a prefix that fits two
versions names neither. A git revision can only be resolved by git.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promptctl.registry.errors import PromptNotFound, RevisionNotFound, VersionNotFound

# The library's patterns, so that git and the snapshots read a reference the same way.
from promptctl.registry.prompts.library import _HEX as DIGEST_PREFIX
from promptctl.registry.prompts.library import _VERSION_NUMBER as VERSION_NUMBER
from promptctl.registry.prompts.library import Snapshot
from promptctl.registry.prompts.promptversion import PromptVersion

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary


def match_released(name: str, ref: str, versions: Iterable[PromptVersion]) -> PromptVersion | None:
    """Return the released version `ref` names (`vN` or a digest prefix), or None."""
    number = VERSION_NUMBER.match(ref)
    if number:
        wanted = int(number.group(1))
        matches = {v.digest: v for v in versions if v.number == wanted}
    elif DIGEST_PREFIX.match(ref):
        prefix = ref.lower()
        matches = {v.digest: v for v in versions if v.digest.startswith(prefix)}
    else:
        return None
    if len(matches) > 1:
        labels = ", ".join(v.label for v in matches.values())
        raise VersionNotFound(name, ref, f"ambiguous digest prefix: {labels}")
    return next(iter(matches.values()), None)


@dataclass(frozen=True)
class DigestSearch:
    """A version looked up by its exact digest in git, and what git has instead.

    `at_commit` is the digest the asked commit gives the prompt when that differs (None
    when the commit is unknown or lacks the prompt); `has` is the prompt's current version
    on the tracked branch (`v4 (6d9a12345678)`), and `tip` that branch's commit.
    """

    version: PromptVersion | None
    branch: str
    tip: str | None = None
    has: str | None = None
    at_commit: str | None = None


def find_digest(
    library: PromptLibrary,
    name: str,
    digest: str,
    commit: str | None = None,
    ref: str | None = None,
) -> DigestSearch:
    """Find the version of `name` whose digest is `digest`: at `commit` (a full sha) when
    git has that commit, else where the tracked branch first has it.

    `ref` is what the user asked for: a git revision names the source as library.get()
    would (`my-branch@1a2b3c4d5e`, kept with a preview's snapshot).
    """
    branch = library.layout.branch
    at_commit = None
    if commit is not None:
        revision = ref and not (VERSION_NUMBER.match(ref) or DIGEST_PREFIX.match(ref))
        try:
            snapshot = Snapshot(library.store, library.layout, commit, ref if revision else None)
        except RevisionNotFound:
            snapshot = None
        if snapshot is not None:
            try:
                version = library.load(snapshot, name)
            except PromptNotFound:
                version = None
            if version is not None and version.digest == digest:
                return DigestSearch(version, branch)
            at_commit = version.digest if version is not None else None
    tip = library.tracked_tip()
    index = library.index_or_none(name)
    record = index.record_for(name, digest) if index else None
    if record is not None:
        version = library.load(library.snapshot(record.commit.sha), name)
        return DigestSearch(version, branch, tip)
    current = index.current_digest(name) if index else None
    now = index.record_for(name, current) if index and current else None
    has = f"{now.label} ({now.digest[:12]})" if now else None
    return DigestSearch(None, branch, tip, has, at_commit)
