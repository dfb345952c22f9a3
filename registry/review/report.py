"""Review of a prompt change between two revisions, for a pull-request comment.

Compares the prompt trees of `base` and `head` (they need not be related: a base that is
not an ancestor still compares as trees), including every prompt that changes only
because a partial it includes changed, and names the changes that break callers: between
base and head (the exit code gates on these), and against what serves in each
environment today (the rules of the release gate, `registry.prompts.contract`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptctl.registry.errors import RegistryError
from promptctl.registry.prompts.contract import Conflict, conflicts
from promptctl.registry.prompts.diff import PromptDiff, diff_versions, unified
from promptctl.registry.prompts.library import PromptLibrary, PromptVersion, Snapshot
from promptctl.registry.prompts.lint import ERROR, Finding, lint_version
from promptctl.registry.prompts.rendering import Rendered
from promptctl.registry.review.costs import CallCost, budget_findings, budget_of, estimate
from promptctl.registry.review.frontmatter import KeyChange, key_changes
from promptctl.registry.review.policies import PolicyReview, review_policies
from promptctl.registry.review.releases import ReleaseLookup, Serving

if TYPE_CHECKING:
    from promptctl.registry.metrics.prices import PriceBook
    from promptctl.registry.prompts.budget import Budget

RENAME_SIMILARITY = 0.75


@dataclass
class SampleResult:
    """One sample rendered by the base and the head version, and the difference."""

    index: int  # 1-based, as authors count them
    variables: dict[str, Any]
    before: str
    after: str
    diff: str  # unified diff of the two renderings; '' when they are the same

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "variables": self.variables,
            "changed": self.changed,
            "diff": self.diff,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class EnvironmentVerdict:
    """What runs a prompt in one environment today, and whether the head version breaks it.

    `breaking` holds the release gate's findings against every version serving there (or a
    removal or rename while released); `unknown` names serving versions whose content could
    not be read, so `compatible` is None rather than a guess.
    """

    serving: Serving
    breaking: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    same: bool = False  # the head version is what serves there (stable or canary)

    @property
    def environment(self) -> str:
        return self.serving.environment

    @property
    def compatible(self) -> bool | None:
        if self.breaking:
            return False
        return None if self.unknown else True

    def to_json(self) -> dict[str, Any]:
        return {
            **self.serving.to_json(),
            "compatible": self.compatible,
            "same_as_head": self.same,
            "breaking": self.breaking,
            "conflicts": [c.to_json() for c in self.conflicts],
            "unknown": self.unknown,
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
    cost_before: CallCost | None = None
    cost_after: CallCost | None = None
    budget: Budget | None = None  # the head version's declared budget
    over_budget: list[str] = field(default_factory=list)
    lint: list[Finding] = field(default_factory=list)
    samples: list[SampleResult] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)
    environments: list[EnvironmentVerdict] | None = None  # None: releases unknown
    error: str | None = None

    @property
    def front_matter(self) -> list[KeyChange]:
        return key_changes(self.diff.front_matter)

    @property
    def tokens_before(self) -> int | None:
        return self.cost_before.input_tokens if self.cost_before else None

    @property
    def tokens_after(self) -> int | None:
        return self.cost_after.input_tokens if self.cost_after else None

    @property
    def tokenizer(self) -> str:
        cost = self.cost_after or self.cost_before
        return cost.tokenizer if cost else ""

    @property
    def lint_errors(self) -> int:
        return sum(1 for f in self.lint if f.severity == ERROR) + (1 if self.error else 0)

    def to_json(self) -> dict[str, Any]:
        def side(v: PromptVersion | None) -> dict[str, Any] | None:
            if v is None:
                return None
            return {
                "version": v.number,
                "label": v.label,
                "digest": v.digest,
                "path": v.prompt.path,
            }

        diff = self.diff.to_json()
        budget = self.budget
        return {
            "prompt": self.name,
            "change": self.change,
            "renamed_from": self.old_name,
            "old": side(self.old),
            "new": side(self.new),
            "via_partials": self.via_partials,
            "front_matter": [c.to_json() for c in self.front_matter],
            "variables": diff["variables"],
            "body_diff": diff["body"],
            "partial_diffs": diff["partials"],
            "tokens": {
                "before": self.tokens_before,
                "after": self.tokens_after,
                "tokenizer": self.tokenizer,
            },
            "cost": {
                "before": self.cost_before.to_json() if self.cost_before else None,
                "after": self.cost_after.to_json() if self.cost_after else None,
            },
            "budget": (
                None if budget is None else {**budget.to_json(), "exceeded": self.over_budget}
            ),
            "lint": [f.to_json() for f in self.lint],
            "samples": [s.to_json() for s in self.samples],
            "breaking": self.breaking,
            "environments": None
            if self.environments is None
            else [e.to_json() for e in self.environments],
            "error": self.error,
        }


@dataclass(frozen=True)
class Outcome:
    """Whether the review passes, as the result line says and the exit code agrees."""

    passed: bool
    exit_code: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "exit_code": self.exit_code, "text": self.text}


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
    prices: PriceBook | None = None
    rollout: PolicyReview | None = None  # None: promptctl.toml's [rollout] is unchanged

    @property
    def lint_errors(self) -> int:
        """The prompts' lint errors, and the head's rollout policy problems (lint's too)."""
        policies = len(self.rollout.problems) if self.rollout else 0
        return sum(p.lint_errors for p in self.prompts) + policies

    @property
    def breaking(self) -> list[tuple[str, str]]:
        return [(p.name, b) for p in self.prompts for b in p.breaking]

    @property
    def environments(self) -> list[str]:
        """Every environment a changed prompt runs in, in the order the releases list them."""
        seen: dict[str, None] = {}
        for p in self.prompts:
            for verdict in p.environments or []:
                seen.setdefault(verdict.environment)
        return list(seen)

    @property
    def releases_known(self) -> bool:
        return any(p.environments is not None for p in self.prompts)

    def exit_code(self, *, allow_breaking: bool) -> int:
        return self.outcome(allow_breaking=allow_breaking).exit_code

    def outcome(self, *, allow_breaking: bool) -> Outcome:
        """The verdict: lint errors fail; breaking changes fail unless allowed."""
        lint = f"{self.lint_errors} lint error(s)" if self.lint_errors else ""
        count = len(self.breaking)
        breaking = f"{count} breaking change(s)" if count else ""
        if lint:
            also = f" and {breaking}" if breaking else ""
            return Outcome(False, 1, f"❌ fails: {lint}{also}.")
        if breaking and not allow_breaking:
            return Outcome(False, 1, f"❌ fails: {breaking} (accept with --allow-breaking).")
        if breaking:
            return Outcome(True, 0, f"✅ passes ({breaking} allowed by --allow-breaking).")
        return Outcome(True, 0, "✅ passes: no lint errors, no breaking changes.")

    def to_json(self, *, allow_breaking: bool = False) -> dict[str, Any]:
        outcome = self.outcome(allow_breaking=allow_breaking)
        return {
            "base": {"ref": self.base, "commit": self.base_sha},
            "head": {"ref": self.head, "commit": self.head_sha},
            "base_is_ancestor": self.base_is_ancestor,
            "result": outcome.to_json(),
            "exit_code": outcome.exit_code,
            "summary": {
                "added": sum(p.change == "added" for p in self.prompts),
                "removed": sum(p.change == "removed" for p in self.prompts),
                "renamed": sum(p.change == "renamed" for p in self.prompts),
                "changed": sum(p.change == "changed" for p in self.prompts),
                "unchanged": self.unchanged,
                "lint_errors": self.lint_errors,
                "breaking": len(self.breaking),
            },
            "environments": self.environments if self.releases_known else None,
            "prompts": [p.to_json() for p in self.prompts],
            "prices": None if self.prices is None else self.prices.to_json(),
            "rollout_policies": None if self.rollout is None else self.rollout.to_json(),
            "notes": self.notes,
        }


def review(
    library: PromptLibrary,
    base: str,
    head: str,
    releases: ReleaseLookup | None = None,
    prices: PriceBook | None = None,
) -> ReviewReport:
    """Compare the prompts of two revisions (with what serves where, and model prices)."""
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
        reviews.append(_review_prompt(name, kind, before, after, old_name, releases, prices))
    head_prompts = [n for n, v in new.items() if isinstance(v, PromptVersion)]
    return ReviewReport(
        base,
        head,
        base_snap.commit,
        head_snap.commit,
        ancestor,
        reviews,
        notes,
        unchanged,
        prices,
        review_policies(library, base, head, head_prompts),
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
    prices: PriceBook | None,
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
    inputs = _sample_inputs(before, after)
    old_texts = _renderings(before, inputs, own=after is None)
    new_texts = _renderings(after, inputs, own=True)
    if before is not None:
        result.cost_before = estimate(before, _rendered(old_texts), prices)
    if after is not None:
        result.cost_after = estimate(after, _rendered(new_texts), prices)
        result.lint = lint_version(after)
        result.budget = budget_of(after)
        result.over_budget = budget_findings(result.cost_before, result.cost_after, result.budget)
    if before is not None and after is not None:
        result.samples = [
            SampleResult(
                index + 1,
                variables,
                old,
                new,
                unified(
                    old,
                    new,
                    f"sample {index + 1} @ {before.label}",
                    f"sample {index + 1} @ {after.label}",
                ),
            )
            for index, (variables, old, new) in enumerate(
                zip(inputs, _shown(old_texts), _shown(new_texts), strict=True)
            )
        ]
    serving = releases(old_name or name) if releases else None
    if serving is not None:
        result.environments = [_verdict(result, row) for row in serving]
    result.breaking = _breaking(result)
    return result


def _sample_inputs(before: PromptVersion | None, after: PromptVersion | None) -> list[dict]:
    """The sample inputs both versions are rendered with: the head's, else the base's."""
    if after is not None and after.prompt.samples:
        return list(after.prompt.samples)
    return list(before.prompt.samples) if before is not None else []


def _renderings(
    version: PromptVersion | None, inputs: list[dict[str, Any]], *, own: bool
) -> list[Rendered | RegistryError]:
    """Render each input; the base gets only the variables it declares (`own` False), so a
    new optional variable in the head does not hide the real change."""
    if version is None:
        return []
    declared = version.prompt.inputs
    out: list[Rendered | RegistryError] = []
    for sample in inputs:
        variables = (
            sample
            if own or declared is None
            else {k: v for k, v in sample.items() if k in declared}
        )
        try:
            out.append(version.render(variables))
        except RegistryError as exc:
            out.append(exc)
    return out


def _rendered(renderings: list[Rendered | RegistryError]) -> list[tuple[int, Rendered]]:
    return [(i + 1, r) for i, r in enumerate(renderings) if isinstance(r, Rendered)]


def _shown(renderings: list[Rendered | RegistryError]) -> list[str]:
    return [_text(r) if isinstance(r, Rendered) else f"(does not render: {r})" for r in renderings]


def _text(rendered: Rendered) -> str:
    if rendered.messages is not None:
        return "\n\n".join(f"[{m.role}]\n{m.content}" for m in rendered.messages)
    return rendered.text or ""


def _verdict(review: PromptReview, serving: Serving) -> EnvironmentVerdict:
    """Judge the head version against what serves in one environment, as the gate would."""
    verdict = EnvironmentVerdict(serving, unknown=list(serving.unread))
    new = review.new
    if review.change == "removed":
        verdict.breaking.append(f"'{review.name}' is removed but released here")
        return verdict
    if review.change == "renamed":
        verdict.breaking.append(
            f"'{review.old_name}' is renamed to '{review.name}' but released here "
            "under its old name"
        )
        return verdict
    if new is None:  # the head version does not load: nothing to judge
        verdict.unknown = [described for described, _ in serving.versions] + verdict.unknown
        return verdict
    verdict.same = any(v.digest == new.digest for _, v in serving.versions)
    verdict.conflicts = conflicts(new, serving.versions)
    verdict.breaking = [str(c) for c in verdict.conflicts]
    return verdict


def _breaking(review: PromptReview) -> list[str]:
    """Name the changes that break callers of the prompt: a removed or renamed prompt that
    is released, and what the diff found by the rules of `contract` (which the release gate
    applies too)."""
    out: list[str] = []
    old, new = review.old, review.new
    released = [e.environment for e in (review.environments or [])]
    if review.change in ("removed", "renamed") and released:
        verb = "removed" if review.change == "removed" else f"renamed to '{review.name}'"
        out.append(
            f"'{review.old_name or review.name}' is {verb} but released in {', '.join(released)}"
        )
    if old is None or new is None:
        return out
    return out + [str(conflict.incompatibility) for conflict in review.diff.breaking]
