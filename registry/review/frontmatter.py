"""Front-matter changes as a reviewer reads them: each changed key's values in full, as YAML.

A value that fits on one line on both sides is shown inline (`gpt-4o-mini` → `gpt-4o`); any
other is a unified diff of the key's YAML, with the whole key as context when it is short,
so nothing is cut until both sides look alike.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml

from promptctl.registry.prompts.diff import FieldChange

INLINE_WIDTH = 80  # a one-line value longer than this reads better as a diff
FULL_CONTEXT_LINES = 40  # a key this long or shorter is diffed with all its lines shown
CONTEXT = 5


class _Dumper(yaml.SafeDumper):
    """Safe YAML that writes multi-line strings as literal blocks, as authors write them."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


@dataclass(frozen=True)
class KeyChange:
    """One changed front-matter key: its values as YAML, inline or as a diff."""

    key: str
    old: Any  # None when the key is absent on that side
    new: Any

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        return "removed" if self.new is None else "changed"

    @property
    def old_inline(self) -> str | None:
        return _inline(self.old)

    @property
    def new_inline(self) -> str | None:
        return _inline(self.new)

    @property
    def inline(self) -> bool:
        """Both sides (those present) fit on one line."""
        sides = [(v, _inline(v)) for v in (self.old, self.new) if v is not None]
        return all(text is not None for _, text in sides)

    def yaml(self, value: Any) -> str:
        """The key with this value as block YAML ('' for an absent side)."""
        if value is None:
            return ""
        return yaml.dump(
            {self.key: value},
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=100,
        )

    @property
    def diff(self) -> str:
        """A unified diff of the key's YAML: every line of it when short, else hunks."""
        old, new = self.yaml(self.old).splitlines(), self.yaml(self.new).splitlines()
        longest = max(len(old), len(new))
        full = longest <= FULL_CONTEXT_LINES
        found = difflib.unified_diff(old, new, lineterm="", n=longest if full else CONTEXT)
        lines = list(found)[2:]  # the ---/+++ header names nothing a reader needs
        if full:
            lines = [line for line in lines if not line.startswith("@@")]
        return "\n".join(lines) + "\n" if lines else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "change": self.kind,
            "old": self.old,
            "new": self.new,
            "old_yaml": self.yaml(self.old),
            "new_yaml": self.yaml(self.new),
            "diff": self.diff,
        }


def key_changes(changes: list[FieldChange]) -> list[KeyChange]:
    """Return the diff's changed keys, ready to show."""
    return [KeyChange(c.key, c.old, c.new) for c in changes]


def _inline(value: Any) -> str | None:
    """The value as one line of flow YAML, or None when it does not fit on one."""
    if value is None:
        return None
    text = yaml.dump(
        value,
        Dumper=_Dumper,
        default_flow_style=True,
        sort_keys=False,
        allow_unicode=True,
        width=10**9,
    )
    text = text.removesuffix("\n...\n").rstrip("\n")
    if "\n" in text or len(text) > INLINE_WIDTH:
        return None
    return text
