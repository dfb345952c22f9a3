"""Review of a change to the rollout policies: promptctl.toml's `[rollout]` table at base and
head, compared policy by policy in the file's own vocabulary (steps in percent, minutes,
guard tolerances as written), and the prompts whose effective policy changes with it.

A prompt's effective policy is the one a `promptctl rollout start` without `--policy`
would snapshot (`PolicyBook.choose`: the first matching glob of `[rollout.prompts]`, else
`rollout.default`, else the built-in default). It changes when the glob or default that
picks it changes, or when the policy it picks is edited. A head whose `[rollout]` table is
invalid lists its problems (file, line, field), which fail the review as lint errors do.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal

from promptctl.registry.analysis import METRICS
from promptctl.registry.errors import InvalidPolicy
from promptctl.registry.releases.routing import format_percent
from promptctl.registry.rollouts.policy import (
    CONFIG_FILE,
    DEFAULT_POLICY,
    Policy,
    PolicyBook,
    config_text,
    policy_problems,
    read_policies,
)

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary

Change = Literal["added", "removed", "changed"]
MAX_PROMPTS = 200  # prompts listed by name; a count says how many more


@dataclass(frozen=True)
class KeyDiff:
    """One setting of a policy at base and head (None: not there)."""

    key: str
    before: str | None
    after: str | None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class PolicyChange:
    """A policy added, removed or edited, with the settings that differ."""

    name: str
    change: Change
    keys: tuple[KeyDiff, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "change": self.change,
            "keys": [k.to_json() for k in self.keys],
        }


@dataclass(frozen=True)
class PromptPolicy:
    """A prompt whose effective policy differs between base and head, and why."""

    prompt: str
    before: str
    after: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "before": self.before, "after": self.after, "why": self.why}


@dataclass
class PolicyReview:
    """What the change does to rollout policies."""

    policies: list[PolicyChange] = field(default_factory=list)
    default: tuple[str, str] | None = None  # (base, head) when `rollout.default` changed
    globs: list[KeyDiff] = field(default_factory=list)  # [rollout.prompts] entries
    prompts: list[PromptPolicy] = field(default_factory=list)
    more_prompts: int = 0  # affected prompts beyond those listed
    problems: list[InvalidPolicy] = field(default_factory=list)  # the head's

    def to_json(self) -> dict[str, Any]:
        return {
            "file": CONFIG_FILE,
            "policies": [p.to_json() for p in self.policies],
            "default": None
            if self.default is None
            else {"before": self.default[0], "after": self.default[1]},
            "prompt_globs": [g.to_json() for g in self.globs],
            "prompts": [p.to_json() for p in self.prompts],
            "more_prompts": self.more_prompts,
            "problems": [
                {"path": p.path, "line": p.line, "field": p.field, "problem": p.problem}
                for p in self.problems
            ],
        }


def review_policies(
    library: PromptLibrary, base: str, head: str, prompts: list[str]
) -> PolicyReview | None:
    """Compare the `[rollout]` tables of two revisions; None when they are the same.

    `prompts` are the head's prompt names, whose effective policy is compared.
    """
    before_text, after_text = config_text(library, base), config_text(library, head)
    if _section(before_text) == _section(after_text):
        return None
    result = PolicyReview(problems=policy_problems(after_text))
    before = _book(before_text)
    after = None if result.problems else read_policies(after_text)
    if before is None or after is None:
        return result  # an invalid side: its problems say what to fix, nothing to compare
    for name in sorted(set(before.policies) | set(after.policies)):
        old, new = before.policies.get(name), after.policies.get(name)
        keys = _diff(settings(old) if old else {}, settings(new) if new else {})
        if keys:
            change: Change = "added" if old is None else "removed" if new is None else "changed"
            result.policies.append(PolicyChange(name, change, keys))
    if before.default != after.default:
        result.default = (before.default, after.default)
    result.globs = list(_diff(dict(before.prompts), dict(after.prompts), sort=False))
    edited = {p.name for p in result.policies}
    affected = []
    for prompt in sorted(prompts):
        old_name, new_name = before.choose(prompt).name, after.choose(prompt).name
        if old_name != new_name:
            affected.append(PromptPolicy(prompt, old_name, new_name, _why(before, after, prompt)))
        elif new_name in edited:
            affected.append(PromptPolicy(prompt, old_name, new_name, f"policy {new_name} changed"))
    result.prompts = affected[:MAX_PROMPTS]
    result.more_prompts = len(affected) - len(result.prompts)
    return result


def settings(policy: Policy) -> dict[str, str]:
    """A policy's settings as promptctl.toml writes them, one key each (every guard metric
    listed, `off` when the policy drops it)."""
    out = {
        "steps": ", ".join(format_percent(bp) for bp in policy.steps_bp),
        "min_calls": str(policy.min_calls),
        "min_minutes": f"{policy.min_seconds / 60:g}",
        "max_minutes": f"{policy.max_seconds / 60:g}",
        "on_inconclusive": policy.on_inconclusive,
        "alpha": f"{policy.alpha:g}",
    }
    guards = {g.metric: g for g in policy.guards}
    for metric in METRICS:
        guard = guards.get(metric)
        if guard is None:
            out[f"guards.{metric}"] = "off"
            continue
        tolerance = guard.tolerance
        text = f'"{100 * tolerance.value:g}%"' if tolerance.relative else f"{tolerance.value:g}"
        text += ", required" if guard.required else ""
        out[f"guards.{metric}"] = f"{text}, min_count {guard.min_count}"
    return out


def _section(text: str | None) -> Any:
    """The `[rollout]` table as data (the raw text when it is not valid TOML)."""
    if text is None:
        return None
    try:
        return tomllib.loads(text).get("rollout")
    except tomllib.TOMLDecodeError:
        return text


def _book(text: str | None) -> PolicyBook | None:
    try:
        return read_policies(text)
    except InvalidPolicy:
        return None


def _diff(old: dict[str, str], new: dict[str, str], *, sort: bool = True) -> tuple[KeyDiff, ...]:
    keys = list(dict.fromkeys([*old, *new]))
    if sort:
        keys.sort()
    return tuple(KeyDiff(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def _why(before: PolicyBook, after: PolicyBook, prompt: str) -> str:
    """Which rule picks the prompt's policy at head (and at base)."""
    return f"{_rule(after, prompt)} (was {_rule(before, prompt)})"


def _rule(book: PolicyBook, prompt: str) -> str:
    glob = next((g for g, _ in book.prompts if fnmatchcase(prompt, g)), None)
    if glob is not None:
        return f"[rollout.prompts] {glob!r}"
    return "rollout.default" if book.default != DEFAULT_POLICY else "the built-in default"
