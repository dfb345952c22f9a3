"""Semantic diff of two versions of a prompt: front matter, variables, body and partials."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from promptctl.registry.prompts.contract import Conflict, incompatibilities
from promptctl.registry.prompts.promptversion import PromptVersion

_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    """A front-matter key whose value differs (`old`/`new` is None when absent)."""

    key: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass
class PromptDiff:
    """What changed between two versions of one prompt."""

    name: str
    old: PromptVersion | None
    new: PromptVersion | None
    front_matter: list[FieldChange] = field(default_factory=list)
    variables_added: list[str] = field(default_factory=list)
    variables_removed: list[str] = field(default_factory=list)
    variables_changed: list[str] = field(default_factory=list)
    body: str = ""
    partials: dict[str, str] = field(default_factory=dict)
    # What in `new` breaks callers of `old` (registry.prompts.contract); against what runs
    # in an environment, when the diff is of what promoting there would change.
    breaking: list[Conflict] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        if self.old is None or self.new is None:
            return self.old is self.new
        return self.old.digest == self.new.digest

    def to_json(self) -> dict[str, Any]:
        def side(v: PromptVersion | None) -> dict[str, Any] | None:
            if v is None:
                return None
            return {
                "version": v.number,
                "label": v.label,
                "digest": v.digest,
                "source": v.source,
            }

        return {
            "prompt": self.name,
            "old": side(self.old),
            "new": side(self.new),
            "unchanged": self.unchanged,
            "front_matter": [c.to_json() for c in self.front_matter],
            "variables": {
                "added": self.variables_added,
                "removed": self.variables_removed,
                "changed": self.variables_changed,
            },
            "body": self.body,
            "partials": self.partials,
            "breaking": [c.to_json() for c in self.breaking],
        }


def diff_versions(name: str, old: PromptVersion | None, new: PromptVersion | None) -> PromptDiff:
    """Compare two versions of a prompt (either may be None: added or removed)."""
    result = PromptDiff(name, old, new)
    old_fm = old.prompt.front_matter if old else {}
    new_fm = new.prompt.front_matter if new else {}
    for key in sorted(set(old_fm) | set(new_fm), key=_key_order):
        before, after = old_fm.get(key, _MISSING), new_fm.get(key, _MISSING)
        if before != after:
            result.front_matter.append(
                FieldChange(
                    key,
                    None if before is _MISSING else before,
                    None if after is _MISSING else after,
                )
            )
    old_inputs = (old.prompt.inputs or {}) if old else {}
    new_inputs = (new.prompt.inputs or {}) if new else {}
    result.variables_added = sorted(set(new_inputs) - set(old_inputs))
    result.variables_removed = sorted(set(old_inputs) - set(new_inputs))
    result.variables_changed = sorted(
        k for k in set(old_inputs) & set(new_inputs) if old_inputs[k] != new_inputs[k]
    )
    old_label = f"{name}@{old.label}" if old else "/dev/null"
    new_label = f"{name}@{new.label}" if new else "/dev/null"
    result.body = unified(
        old.prompt.body if old else "", new.prompt.body if new else "", old_label, new_label
    )
    old_parts = old.partials if old else {}
    new_parts = new.partials if new else {}
    for relpath in sorted(set(old_parts) | set(new_parts)):
        before, after = old_parts.get(relpath) or "", new_parts.get(relpath) or ""
        if before != after:
            result.partials[relpath] = unified(before, after, f"a/{relpath}", f"b/{relpath}")
    if old is not None and new is not None:
        result.breaking = [Conflict(old.label, found) for found in incompatibilities(old, new)]
    return result


def unified(old: str, new: str, old_label: str, new_label: str) -> str:
    """Return a unified diff of two texts ('' when they are equal)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


_ORDER = ["description", "model", "params", "input", "output", "tags", "samples"]


def _key_order(key: str) -> tuple[int, str]:
    return (_ORDER.index(key) if key in _ORDER else len(_ORDER), key)
