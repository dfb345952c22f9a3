"""Review of a prompt change between two revisions, for a pull-request comment.

Compares the prompt trees of `base` and `head` (they need not be related: a base that is
not an ancestor still compares as trees), including every prompt that changes only
because a partial it includes changed, and names the changes that break callers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptctl.registry.errors import RegistryError
from promptctl.registry.prompts.diff import PromptDiff, diff_versions
from promptctl.registry.prompts.library import PromptLibrary, PromptVersion, Snapshot
from promptctl.registry.prompts.lint import ERROR, Finding, lint_version
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.prompts.tokencount import count_tokens, describe

RENAME_SIMILARITY = 0.75

# name -> [{"environment", "stable", "canary", "weight", "metrics"}], or None when unknown
ReleaseLookup = Callable[[str], list[dict[str, Any]] | None]


@dataclass
class SampleChange:
    """A sample whose rendering differs between base and head."""

    index: int
    variables: dict[str, Any]
    before: str
    after: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "variables": self.variables,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class PromptReview:
    """Everything a reviewer needs about one prompt."""

    name: str
    change: str  # added, removed, renamed, changed
    old: PromptVersion | None
    new: PromptVersion | None
    diff: PromptDiff
    old_name: str | None = None
    via_partials: list[str] = field(default_factory=list)
    tokens_before: int | None = None
    tokens_after: int | None = None
    tokenizer: str = ""
    lint: list[Finding] = field(default_factory=list)
    samples: list[SampleChange] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)
    releases: list[dict[str, Any]] | None = None
    error: str | None = None

    @property
    def lint_errors(self) -> int:
        return sum(1 for f in self.lint if f.severity == ERROR) + (1 if self.error else 0)

    def to_json(self) -> dict[str, Any]:
        def side(v: PromptVersion | None) -> dict[str, Any] | None:
            return (
                None if v is None else {"label": v.label, "digest": v.digest, "path": v.prompt.path}
            )

        diff = self.diff.to_json()
        return {
            "name": self.name,
            "change": self.change,
            "old_name": self.old_name,
            "old": side(self.old),
            "new": side(self.new),
            "via_partials": self.via_partials,
            "front_matter": diff["front_matter"],
            "variables": diff["variables"],
            "body_diff": diff["body"],
            "partial_diffs": diff["partials"],
            "tokens": {
                "before": self.tokens_before,
                "after": self.tokens_after,
                "tokenizer": self.tokenizer,
            },
            "lint": [f.to_json() for f in self.lint],
            "samples": [s.to_json() for s in self.samples],
            "breaking": self.breaking,
            "releases": self.releases,
            "error": self.error,
        }


@dataclass
class ReviewReport:
    """The review of one change: its prompts, and whether it may merge."""

    base: str
    head: str
    base_sha: str | None
    head_sha: str | None
    base_is_ancestor: bool
    prompts: list[PromptReview]
    notes: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def lint_errors(self) -> int:
        return sum(p.lint_errors for p in self.prompts)

    @property
    def breaking(self) -> list[tuple[str, str]]:
        return [(p.name, b) for p in self.prompts for b in p.breaking]

    def exit_code(self, *, allow_breaking: bool) -> int:
        if self.lint_errors:
            return 1
        return 1 if self.breaking and not allow_breaking else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "base": {"ref": self.base, "commit": self.base_sha},
            "head": {"ref": self.head, "commit": self.head_sha},
            "base_is_ancestor": self.base_is_ancestor,
            "summary": {
                "added": sum(p.change == "added" for p in self.prompts),
                "removed": sum(p.change == "removed" for p in self.prompts),
                "renamed": sum(p.change == "renamed" for p in self.prompts),
                "changed": sum(p.change == "changed" for p in self.prompts),
                "unchanged": self.unchanged,
                "lint_errors": self.lint_errors,
                "breaking": len(self.breaking),
            },
            "prompts": [p.to_json() for p in self.prompts],
            "notes": self.notes,
        }


def review(
    library: PromptLibrary, base: str, head: str, releases: ReleaseLookup | None = None
) -> ReviewReport:
    """Compare the prompts of two revisions."""
    base_snap = library.snapshot(base)
    head_snap = library.snapshot(head)
    notes: list[str] = []
    ancestor = True
    if base_snap.commit and head_snap.commit:
        ancestor = library.store.is_ancestor(base_snap.commit, head_snap.commit)
        if not ancestor:
            notes.append(
                f"{base} is not an ancestor of {head}: the report compares the two "
                "trees as they are, so it also shows changes made on the base since"
            )
    old = _load_all(library, base_snap)
    new = _load_all(library, head_snap)
    if not old and not new:
        notes.append(f"no prompts under '{library.layout.root or '.'}' in {base} or {head}")
    removed = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    renames = _pair_renames(old, new, removed, added)
    reviews: list[PromptReview] = []
    unchanged = 0
    for name in sorted(set(old) | set(new)):
        if name in renames.values():
            continue  # reported under its new name
        before, after = old.get(name), new.get(name)
        old_name = next((o for n, o in renames.items() if n == name), None)
        if old_name is not None:
            before = old[old_name]
        # A moved file keeps its digest (the path is not hashed), yet the move is a change.
        if old_name is None and _same(before, after):
            unchanged += 1
            continue
        kind = (
            "renamed"
            if old_name
            else "added"
            if before is None
            else "removed"
            if after is None
            else "changed"
        )
        reviews.append(_review_prompt(name, kind, before, after, old_name, releases))
    return ReviewReport(
        base, head, base_snap.commit, head_snap.commit, ancestor, reviews, notes, unchanged
    )


def _load_all(
    library: PromptLibrary, snapshot: Snapshot
) -> dict[str, PromptVersion | RegistryError]:
    out: dict[str, PromptVersion | RegistryError] = {}
    for name in snapshot.names():
        try:
            out[name] = library.load(snapshot, name)
        except RegistryError as exc:  # unreadable or malformed: reported, never a traceback
            out[name] = exc
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, PromptVersion) and isinstance(b, PromptVersion):
        return a.digest == b.digest
    if isinstance(a, RegistryError) and isinstance(b, RegistryError):
        return str(a) == str(b)
    return False


def _pair_renames(old: dict, new: dict, removed: list[str], added: list[str]) -> dict[str, str]:
    """Return {new name: old name} for prompts that moved (same content, or nearly)."""
    pairs: dict[str, str] = {}
    free = [r for r in removed if isinstance(old[r], PromptVersion)]
    for name in added:
        candidate = new[name]
        if not isinstance(candidate, PromptVersion):
            continue
        best, best_ratio = None, RENAME_SIMILARITY
        for gone in free:
            if old[gone].digest == candidate.digest:
                best, best_ratio = gone, 1.0
                break
            matcher = difflib.SequenceMatcher(None, old[gone].prompt.text, candidate.prompt.text)
            if matcher.quick_ratio() >= best_ratio and (ratio := matcher.ratio()) >= best_ratio:
                best, best_ratio = gone, ratio
        if best is not None:
            pairs[name] = best
            free.remove(best)
    return pairs


def _review_prompt(
    name: str,
    kind: str,
    before: Any,
    after: Any,
    old_name: str | None,
    releases: ReleaseLookup | None,
) -> PromptReview:
    error = None
    if isinstance(after, RegistryError):
        error, after = str(after), None
    if isinstance(before, RegistryError):
        before = None
    result = PromptReview(
        name,
        kind,
        before,
        after,
        diff_versions(name, before, after),
        old_name=old_name,
        error=error,
    )
    if before is not None and after is not None and not result.diff.body:
        result.via_partials = sorted(result.diff.partials)
    model = (after or before).prompt.model if (after or before) else None
    result.tokenizer = describe(model)
    if before is not None:
        result.tokens_before = _tokens(before)
    if after is not None:
        result.tokens_after = _tokens(after)
        result.lint = lint_version(after)
    if before is not None and after is not None:
        result.samples = _sample_changes(before, after)
    lookup_name = old_name or name
    result.releases = releases(lookup_name) if releases else None
    result.breaking = _breaking(result)
    return result


def _tokens(version: PromptVersion) -> int:
    """Tokens of the prompt as sent: its first sample rendered, else its template text."""
    text = None
    if version.prompt.samples:
        try:
            text = _text(version.render(version.prompt.samples[0]))
        except RegistryError:
            text = None
    if text is None:
        text = version.prompt.body + "".join(t for t in version.partials.values() if t)
    return count_tokens(text, version.prompt.model)


def _text(rendered: Rendered) -> str:
    if rendered.messages is not None:
        return "\n\n".join(f"[{m.role}]\n{m.content}" for m in rendered.messages)
    return rendered.text or ""


def _render_or_error(version: PromptVersion, variables: dict[str, Any]) -> str:
    try:
        return _text(version.render(variables))
    except RegistryError as exc:
        return f"(does not render: {exc})"


def _sample_changes(before: PromptVersion, after: PromptVersion) -> list[SampleChange]:
    samples = after.prompt.samples or before.prompt.samples
    changes = []
    old_inputs = before.prompt.inputs
    for index, sample in enumerate(samples):
        # The same input as the base version would get it: variables it does not declare
        # yet are left out, so a new optional variable does not hide the real change.
        old_sample = sample if old_inputs is None else {
            k: v for k, v in sample.items() if k in old_inputs}
        old_text = _render_or_error(before, old_sample)
        new_text = _render_or_error(after, sample)
        if old_text != new_text:
            changes.append(SampleChange(index + 1, sample, old_text, new_text))
    return changes


def _breaking(review: PromptReview) -> list[str]:
    """Name the changes that break callers of the prompt: a removed or renamed prompt that
    is released, and what the diff found by the rules of `contract` (which the release gate
    applies too)."""
    out: list[str] = []
    old, new = review.old, review.new
    released = [r["environment"] for r in (review.releases or [])]
    if review.change in ("removed", "renamed") and released:
        verb = "removed" if review.change == "removed" else f"renamed to '{review.name}'"
        out.append(
            f"'{review.old_name or review.name}' is {verb} but released in {', '.join(released)}"
        )
    if old is None or new is None:
        return out
    return out + [str(conflict.incompatibility) for conflict in review.diff.breaking]
