"""Input declarations and the validation of variables against them before rendering."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptctl.registry.errors import VariablesInvalid

INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object")


@dataclass(frozen=True)
class InputSpec:
    """One declared variable."""

    name: str
    type: str | None = None
    description: str | None = None
    enum: tuple[Any, ...] | None = None
    default: Any = None
    has_default: bool = False
    required: bool = True
    items: InputSpec | None = None
    properties: Mapping[str, InputSpec] | None = None  # an object's declared keys

    def to_dict(self) -> dict[str, Any]:
        """Return the declaration in the shape it is written in front matter."""
        out: dict[str, Any] = {}
        if self.type:
            out["type"] = self.type
        if self.description:
            out["description"] = self.description
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.has_default:
            out["default"] = self.default
        if self.items is not None:
            out["items"] = self.items.to_dict()
        if self.properties is not None:
            out["properties"] = {k: v.to_dict() for k, v in self.properties.items()}
        out["required"] = self.required
        return out


def _is_type(kind: str, value: Any) -> bool:
    # bool is a subclass of int in Python; JSON callers mean them as different types.
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    return True


def check_value(spec: InputSpec, value: Any, *, check_enum: bool = True) -> str | None:
    """Return what is wrong with `value` for `spec`, or None when it fits."""
    if spec.type and not _is_type(spec.type, value):
        return f"expected {spec.type}, got {_json_type(value)}"
    if check_enum and spec.enum is not None and not any(_same(value, v) for v in spec.enum):
        allowed = ", ".join(json.dumps(v, default=str) for v in spec.enum)
        return f"{json.dumps(value, default=str)} is not one of {allowed}"
    if spec.items is not None and isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = check_value(spec.items, item)
            if problem:
                return f"item {index}: {problem}"
    if spec.properties is not None and isinstance(value, Mapping):
        return _check_properties(spec.properties, value)
    return None


def _check_properties(properties: Mapping[str, InputSpec], value: Mapping[str, Any]) -> str | None:
    """An object with declared properties: each checked, none missing, none undeclared."""
    for key in value:
        if key not in properties:
            declared = ", ".join(sorted(properties)) or "none"
            return f"key {json.dumps(key, default=str)} is not declared (declared: {declared})"
    for key, spec in properties.items():
        if key in value:
            problem = check_value(spec, value[key])
            if problem:
                return f"key '{key}': {problem}"
        elif spec.required and not spec.has_default:
            return f"key '{key}' is required"
    return None


def _same(a: Any, b: Any) -> bool:
    """Compare values as JSON does: `true` is not `1` (Python says True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if _is_type(kind, value):
            return kind
    return type(value).__name__


def validate_variables(
    name: str,
    inputs: dict[str, InputSpec] | None,
    given: Mapping[str, Any],
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """Check variables against the declarations and return them with defaults filled in.

    A prompt without an `input` section accepts any variables. With one, a variable it
    does not declare is left out of the values (see `undeclared`), so one caller can serve
    a stable and a canary that differ by an optional variable; with `strict` (the prompt's
    `strict: true`) it is an error instead.
    """
    if inputs is None:
        return dict(given)
    problems = []
    values: dict[str, Any] = {}
    if strict:
        for key in undeclared(inputs, given):
            declared = ", ".join(sorted(inputs)) or "none"
            problems.append(f"'{key}' is not declared (declared: {declared})")
    for key, spec in inputs.items():
        if key in given:
            problem = check_value(spec, given[key])
            if problem:
                problems.append(f"'{key}': {problem}")
            else:
                values[key] = given[key]
        elif spec.has_default:
            values[key] = spec.default
        elif spec.required:
            problems.append(f"'{key}' is required")
    if problems:
        raise VariablesInvalid(name, problems)
    return values


def undeclared(inputs: Mapping[str, InputSpec] | None, given: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the names among `given` that `inputs` does not declare, in the order given
    (none when there is no `input` section: such a prompt takes any variables)."""
    if inputs is None:
        return ()
    return tuple(str(key) for key in given if key not in inputs)


def coerce_text(spec: InputSpec | None, raw: str) -> Any:
    """Turn a command-line string into the declared type (JSON for arrays and objects)."""
    kind = spec.type if spec else None
    if kind in (None, "string"):
        return raw
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw  # left as a string, so validation names the type that was expected
    return value
