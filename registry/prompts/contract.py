"""A version's contract with its callers, and the changes to it that break them.

The contract is what a caller relies on: the variables a version takes (which it requires,
their types and allowed values, whether it refuses the ones it does not declare), whether
it renders to chat messages or text, and its declared `output` (the format, and in the
answers' JSON Schema a property dropped, newly required or given another type).
`incompatibilities(old, new)` names every way `new` breaks a caller written for `old`, or
served in one environment alongside it (a canary and its stable get the same calls).

These rules are written once: `review` reports them as breaking changes between base and
head, the release service refuses a canary with any of them against what serves (unless
the release allows breaking), and `diff --env` shows them against what runs there.

Variables a version does not declare are ignored when it renders, unless the prompt says
`strict: true`; so removing a variable breaks no caller of a tolerant prompt, and only a
strict one turns the variables it does not declare into errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from promptctl.registry.prompts.promptversion import PromptVersion
from promptctl.registry.prompts.variables import InputSpec

# The kinds of change, in the order they are reported.
REQUIRED = "required-variable"  # a new variable it requires, without a default
BECAME_REQUIRED = "became-required"  # a variable it declared as optional is now required
TYPE_CHANGED = "type-changed"  # a shared variable's type changed
ENUM_NARROWED = "enum-narrowed"  # a shared variable lost allowed values (or gained an enum)
REMOVED = "variable-removed"  # a strict prompt no longer declares a variable
BECAME_STRICT = "became-strict"  # it now refuses what it does not declare
REFUSED_BY_OLD = "refused-by-old"  # a new variable the old, strict version refuses
OUTPUT_CHANGED = "output-changed"  # the declared output format
OUTPUT_SCHEMA_REMOVED = "output-schema-removed"  # answers are no longer checked at all
OUTPUT_PROPERTY_REMOVED = "output-property-removed"  # a property of the answers dropped
OUTPUT_NEWLY_REQUIRED = "output-newly-required"  # answers must now have a property
OUTPUT_TYPE_CHANGED = "output-type-changed"  # a property (or the answer) has another type
KIND_CHANGED = "kind-changed"  # chat messages <-> text

CODES = (
    REQUIRED,
    BECAME_REQUIRED,
    TYPE_CHANGED,
    ENUM_NARROWED,
    REMOVED,
    BECAME_STRICT,
    REFUSED_BY_OLD,
    OUTPUT_CHANGED,
    OUTPUT_SCHEMA_REMOVED,
    OUTPUT_PROPERTY_REMOVED,
    OUTPUT_NEWLY_REQUIRED,
    OUTPUT_TYPE_CHANGED,
    KIND_CHANGED,
)
_MAX_SCHEMA_DEPTH = 32  # how deep two schemas are compared
# Places compared at most: a schema holds at most outputs.MAX_SCHEMA_NODES values, so only
# $refs that fan out (each level naming the next twice) reach it, and they would otherwise
# make the walk exponential in a schema of a few lines.
_MAX_SCHEMA_PLACES = 5_000


@dataclass(frozen=True)
class Incompatibility:
    """One way a version breaks callers of another; `variable` is None for the whole prompt.

    A variable inside another is named by its path: `customer.plan` (a key of an object),
    `tags[]` (the items of an array).
    """

    code: str
    message: str
    variable: str | None = None

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "variable": self.variable, "message": self.message}


@dataclass(frozen=True)
class Conflict:
    """An incompatibility of a version with one that serves: `against` says which
    (`v6 (stable)`)."""

    against: str
    incompatibility: Incompatibility

    def __str__(self) -> str:
        return f"against {self.against}: {self.incompatibility}"

    def to_json(self) -> dict[str, Any]:
        return {"against": self.against, **self.incompatibility.to_json()}


def incompatibilities(old: PromptVersion, new: PromptVersion) -> list[Incompatibility]:
    """Name what in `new` breaks a caller written for `old`, or served alongside it."""
    out: list[Incompatibility] = []
    old_inputs, new_inputs = old.prompt.inputs, new.prompt.inputs
    if new_inputs is not None:  # without an `input` section a version takes anything
        old_strict = old.prompt.strict and old_inputs is not None
        new_strict = new.prompt.strict
        if new_strict and not old_strict:
            out.append(
                Incompatibility(
                    BECAME_STRICT,
                    "the prompt became strict: callers passing variables it does not "
                    "declare get an error",
                )
            )
        out.extend(
            _declarations(
                old_inputs or {}, new_inputs, old_strict=old_strict, new_strict=new_strict
            )
        )
    out.extend(_output(old, new))
    if old.is_chat != new.is_chat:
        out.append(
            Incompatibility(
                KIND_CHANGED, f"the prompt now renders to {'messages' if new.is_chat else 'text'}"
            )
        )
    order = {code: index for index, code in enumerate(CODES)}
    return sorted(out, key=lambda i: order[i.code])  # stable: variables stay sorted per code


def conflicts(new: PromptVersion, serving: Iterable[tuple[str, PromptVersion]]) -> list[Conflict]:
    """The incompatibilities of `new` with each version that serves (described, version)."""
    return [
        Conflict(described, found)
        for described, version in serving
        if version.digest != new.digest
        for found in incompatibilities(version, new)
    ]


def _needed(spec: InputSpec) -> bool:
    """A caller must send it: required, and no default stands in."""
    return spec.required and not spec.has_default


def _declarations(
    old: Mapping[str, InputSpec],
    new: Mapping[str, InputSpec],
    *,
    old_strict: bool,
    new_strict: bool,
    parent: str | None = None,
) -> list[Incompatibility]:
    """Compare two sets of declarations: a prompt's variables, or an object's keys (which
    always refuse what they do not declare)."""
    out: list[Incompatibility] = []
    for name in sorted(set(old) | set(new)):
        path = name if parent is None else f"{parent}.{name}"
        what = f"variable '{name}'" if parent is None else f"key '{name}' of '{parent}'"
        if name not in old:
            if _needed(new[name]):
                out.append(
                    Incompatibility(
                        REQUIRED,
                        f"new required {what} without a default: callers do not send it yet",
                        path,
                    )
                )
            elif old_strict:
                out.append(
                    Incompatibility(
                        REFUSED_BY_OLD,
                        f"new {what} is refused by the old version, which does "
                        "not declare it: while both serve, callers sending it get an error",
                        path,
                    )
                )
        elif name not in new:
            if new_strict:
                out.append(
                    Incompatibility(
                        REMOVED,
                        f"{what} was removed: callers still passing it get an error",
                        path,
                    )
                )
        elif old[name] != new[name]:
            out.extend(_spec(path, old[name], new[name]))
    return out


def _spec(path: str, old: InputSpec, new: InputSpec) -> list[Incompatibility]:
    """Compare one variable's two declarations, and what they declare inside it."""
    out: list[Incompatibility] = []
    if old.type != new.type and new.type is not None:
        out.append(
            Incompatibility(
                TYPE_CHANGED,
                f"variable '{path}' changed type from {old.type or 'any'} to {new.type}",
                path,
            )
        )
    if _needed(new) and not _needed(old):
        out.append(Incompatibility(BECAME_REQUIRED, f"variable '{path}' became required", path))
    if new.enum is not None:
        dropped = [v for v in (old.enum or ()) if v not in new.enum]
        if dropped:
            values = ", ".join(map(str, dropped))
            out.append(
                Incompatibility(
                    ENUM_NARROWED, f"variable '{path}' no longer accepts {values}", path
                )
            )
        elif old.enum is None:
            allowed = ", ".join(map(str, new.enum))
            out.append(
                Incompatibility(
                    ENUM_NARROWED, f"variable '{path}' now accepts only {allowed}", path
                )
            )
    if new.items is not None and old.type == new.type:
        if old.items is None:
            out.extend(_spec(f"{path}[]", InputSpec(path), new.items))
        elif old.items != new.items:
            out.extend(_spec(f"{path}[]", old.items, new.items))
    if new.properties is not None and old.properties is None and old.type == new.type:
        keys = ", ".join(sorted(new.properties)) or "none"
        out.append(
            Incompatibility(
                TYPE_CHANGED, f"variable '{path}' now accepts only the keys {keys}", path
            )
        )
    if new.properties is not None and old.type == new.type:
        # Keys are checked like variables of a strict prompt: an object refuses the keys
        # it does not declare. An object that declared none accepted any.
        out.extend(
            _declarations(
                old.properties or {},
                new.properties,
                old_strict=old.properties is not None,
                new_strict=True,
                parent=path,
            )
        )
    return out


def _output(old: PromptVersion, new: PromptVersion) -> list[Incompatibility]:
    """What in `new`'s output contract breaks code that parses `old`'s answers.

    A schema where there was none is a new contract, not a change: nobody relied on more.
    Schemas are compared resolved (inline or from their file), so moving a schema into a
    file changes nothing.
    """
    old_format, new_format = old.prompt.output_format, new.prompt.output_format
    if old_format != new_format:
        return [
            Incompatibility(
                OUTPUT_CHANGED,
                "the output format or schema changed: parsers of its answers may break",
            )
        ]
    old_schema, new_schema = old.prompt.output_schema, new.prompt.output_schema
    if old_schema is None or old_schema == new_schema:
        return []
    if new_schema is None:
        return [
            Incompatibility(
                OUTPUT_SCHEMA_REMOVED,
                "the output schema was removed: its answers are no longer checked",
            )
        ]
    walk = _SchemaWalk(old_schema, new_schema)
    out = walk.compare(old_schema, new_schema, "", 0)
    if walk.places > _MAX_SCHEMA_PLACES:
        out.append(
            Incompatibility(
                OUTPUT_CHANGED,
                "the output schemas are too intricate to compare in full (their $refs fan "
                f"out past {_MAX_SCHEMA_PLACES:,} places): check the change by hand",
            )
        )
    return out


class _SchemaWalk:
    """One comparison of two output schemas, bounded in the places it visits."""

    def __init__(self, old_root: Any, new_root: Any) -> None:
        self.old_root, self.new_root = old_root, new_root
        self.places = 0
        # The pairs of schemas being compared on the way here: meeting one again is a
        # schema that refers to itself, already being compared at a shorter path.
        self.open: set[tuple[int, int]] = set()

    def compare(self, old: Any, new: Any, path: str, depth: int) -> list[Incompatibility]:
        """Compare one place of the two schemas (`path` names it: `customer.plan`,
        `items[]`; '' is the whole answer)."""
        old, new = _resolved(old, self.old_root), _resolved(new, self.new_root)
        if depth > _MAX_SCHEMA_DEPTH or not isinstance(old, dict) or not isinstance(new, dict):
            return []
        pair = (id(old), id(new))
        if pair in self.open:
            return []
        self.places += 1
        if self.places > _MAX_SCHEMA_PLACES:
            return []
        self.open.add(pair)
        try:
            return _place(self, old, new, path, depth)
        finally:
            self.open.discard(pair)


def _place(
    walk: _SchemaWalk, old: dict[str, Any], new: dict[str, Any], path: str, depth: int
) -> list[Incompatibility]:
    out: list[Incompatibility] = []
    where = f"output property '{path}'" if path else "the output"
    old_types, new_types = _types(old), _types(new)
    if old_types and old_types != new_types:
        before, after = "/".join(sorted(old_types)), "/".join(sorted(new_types)) or "any"
        out.append(
            Incompatibility(OUTPUT_TYPE_CHANGED, f"{where} changed type from {before} to {after}")
        )
        return out
    old_props, new_props = _properties(old), _properties(new)
    for name in sorted(set(old_props) | set(new_props)):
        inner = f"{path}.{name}" if path else name
        if name not in new_props:
            out.append(
                Incompatibility(
                    OUTPUT_PROPERTY_REMOVED,
                    f"output property '{inner}' was removed: code reading it breaks",
                )
            )
        elif name in old_props:
            out.extend(walk.compare(old_props[name], new_props[name], inner, depth + 1))
    for name in sorted(_required(new) - _required(old)):
        inner = f"{path}.{name}" if path else name
        out.append(
            Incompatibility(
                OUTPUT_NEWLY_REQUIRED,
                f"output property '{inner}' is newly required: answers without it fail to parse",
            )
        )
    old_items, new_items = old.get("items"), new.get("items")
    if isinstance(old_items, dict) and isinstance(new_items, dict):
        out.extend(walk.compare(old_items, new_items, f"{path}[]", depth + 1))
    return out


def _resolved(schema: Any, root: Any) -> Any:
    """Follow local `$ref`s (`#/$defs/x`) to the schema they name; others stay as they are."""
    for _ in range(_MAX_SCHEMA_DEPTH):
        if not isinstance(schema, dict) or not isinstance(schema.get("$ref"), str):
            return schema
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return schema
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                return schema
        schema = target
    return schema


def _types(schema: dict[str, Any]) -> frozenset[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset([kind])
    if isinstance(kind, list):
        return frozenset(k for k in kind if isinstance(k, str))
    return frozenset()


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    found = schema.get("properties")
    return found if isinstance(found, dict) else {}


def _required(schema: dict[str, Any]) -> set[str]:
    found = schema.get("required")
    return {r for r in found if isinstance(r, str)} if isinstance(found, list) else set()
