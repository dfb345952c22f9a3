"""A version reference matched against released versions, for when git cannot answer.

A server keeps serving while its clone is unreadable, so `vN` and digest prefixes are also
looked up in what is released (its snapshots). The rules are the library's own: `vN` is
a version number, 7 to 64 hex characters a digest prefix, and a prefix that fits two
versions names neither. A git revision can only be resolved by git.
"""

from __future__ import annotations

from collections.abc import Iterable

from promptctl.registry.errors import VersionNotFound

# The library's patterns, so that git and the snapshots read a reference the same way.
from promptctl.registry.prompts.library import _HEX as DIGEST_PREFIX
from promptctl.registry.prompts.library import _VERSION_NUMBER as VERSION_NUMBER
from promptctl.registry.prompts.promptversion import PromptVersion


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
