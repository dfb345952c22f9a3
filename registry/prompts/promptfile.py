"""Prompt files: YAML front matter between `---` lines, then a Jinja2 body.

Parsing keeps every front-matter key (teams add their own) and remembers the file line of
every field, so an error can say `prompts/x.prompt:7: ... (field 'input.tier.enum')`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError

from promptctl.registry.errors import FileTooLarge, InvalidPromptFile
from promptctl.registry.prompts.budget import Budget, parse_budget
from promptctl.registry.prompts.layout import ENGINES
from promptctl.registry.prompts.outputs import check_output_section
from promptctl.registry.prompts.variables import INPUT_TYPES, InputSpec, check_value

# Bounds on hostile files: prompts are small, and every one is parsed by lint, promote and
# the server. A rendered output has its own limit (render_limits).
MAX_PROMPT_FILE_BYTES = 262_144
MAX_PARTIAL_BYTES = 262_144
MAX_VERSION_BYTES = 1_048_576  # a prompt with every partial it includes
MAX_FRONT_MATTER_CHARS = 65_536
MAX_FRONT_MATTER_DEPTH = 20

_INPUT_KEYS = {"type", "description", "enum", "default", "items", "properties", "required"}
# Roles a `{% message %}` block may take from data (`{% message turn.role %}`) unless the
# front matter's `roles:` says otherwise; a literal role written in the template is the
# author's choice and always allowed. A caller can thus never add a system message.
DEFAULT_DATA_ROLES = ("user", "assistant")
# Known keys and the Python types their values must have; others pass through untouched.
_KNOWN_KEYS: dict[str, tuple[type, ...]] = {
    "description": (str,),
    "model": (str,),
    "params": (dict,),
    "input": (dict,),
    "output": (dict,),
    "tags": (list,),
    "samples": (list,),
    "roles": (list,),
    "strict": (bool,),
    "budget": (dict,),
    "template": (str,),
}
_TYPE_NAMES = {str: "a string", dict: "a mapping", list: "a list", bool: "true or false"}


@dataclass(frozen=True)
class PromptFile:
    """A parsed prompt file. `body_line` is the file line on which the body starts.

    `output_schema` is the declared output JSON Schema, inline or read from its file by
    whoever loads the version with its files (None until then, or when it is missing or
    not JSON: lint says why); `budget` is the parsed `budget` section.
    """

    path: str
    text: str
    front_matter: dict[str, Any]
    body: str
    body_line: int
    inputs: dict[str, InputSpec] | None
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    budget: Budget | None = field(default=None, compare=False)
    output_schema: dict[str, Any] | bool | None = field(default=None, compare=False, repr=False)

    @property
    def model(self) -> str | None:
        return self.front_matter.get("model")

    @property
    def params(self) -> dict[str, Any]:
        return self.front_matter.get("params") or {}

    @property
    def description(self) -> str | None:
        return self.front_matter.get("description")

    @property
    def data_roles(self) -> tuple[str, ...]:
        """The roles a message block may take from data: `roles:`, else user and assistant."""
        roles = self.front_matter.get("roles")
        return tuple(roles) if roles else DEFAULT_DATA_ROLES

    @property
    def engine(self) -> str | None:
        """The template engine the front matter names (`template:`), or None: the
        repository's default applies."""
        return self.front_matter.get("template")

    @property
    def strict(self) -> bool:
        """`strict: true`: a variable the prompt does not declare is an error, not ignored."""
        return self.front_matter.get("strict") is True

    @property
    def output_format(self) -> str | None:
        """`output.format` (`json` when a schema is declared without one)."""
        output = self.front_matter.get("output") or {}
        if output.get("format") is None and output.get("schema") is not None:
            return "json"
        return output.get("format")

    @property
    def samples(self) -> list[dict[str, Any]]:
        return self.front_matter.get("samples") or []

    def line_of(self, field_path: str) -> int:
        """Return the file line of a front-matter field, or of its nearest parent."""
        while field_path:
            if field_path in self.lines:
                return self.lines[field_path]
            field_path = field_path.rpartition(".")[0]
        return 1

    def padded_body(self) -> str:
        """Return the body preceded by blank lines so template line numbers are file lines."""
        return "\n" * (self.body_line - 1) + self.body


def parse_prompt_file(path: str, data: bytes | str) -> PromptFile:
    """Parse a prompt file; raise InvalidPromptFile naming the file, line and field."""
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise FileTooLarge(path, len(data), MAX_PROMPT_FILE_BYTES, "prompt")
    text = decode_text(path, data)
    front_text, body, fm_line, body_line = _split_front_matter(path, text)
    if front_text is None:
        return PromptFile(path, text, {}, body, body_line, None)
    front, lines = _load_yaml(path, front_text, fm_line)
    _check_known_keys(path, front, lines)
    inputs = _parse_inputs(path, front.get("input"), lines) if "input" in front else None
    _check_samples(path, front, lines)
    check_output_section(path, front.get("output"), lines)
    budget = parse_budget(path, front.get("budget"), lines)
    output = front.get("output") or {}
    inline = output.get("schema") if isinstance(output.get("schema"), dict | bool) else None
    return PromptFile(
        path, text, front, body, body_line, inputs, lines, budget=budget, output_schema=inline
    )


def check_version_size(prompt_path: str, prompt_size: int, partials: list[tuple[str, int]]) -> None:
    """Refuse a partial over its limit, or a version (prompt and partials) over its own."""
    for path, size in partials:
        if size > MAX_PARTIAL_BYTES:
            raise FileTooLarge(path, size, MAX_PARTIAL_BYTES, "partial")
    total = prompt_size + sum(size for _, size in partials)
    if total > MAX_VERSION_BYTES:
        raise InvalidPromptFile(
            prompt_path,
            f"with its partials the prompt is {total:,} bytes, over the limit of "
            f"{MAX_VERSION_BYTES:,}",
        )


def decode_text(path: str, data: bytes | str) -> str:
    """Decode a file as UTF-8 (a BOM is dropped), or raise InvalidPromptFile."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if b"\x00" in data:
        raise InvalidPromptFile(path, "binary file (contains NUL bytes), not a text prompt")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidPromptFile(path, "not valid UTF-8 text", line=line) from exc


def _split_front_matter(path: str, text: str) -> tuple[str | None, str, int, int]:
    """Return (front matter text, body, first front-matter line, first body line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return None, text, 0, 1
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n").rstrip() in ("---", "..."):
            front = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            return front, body, 2, index + 2
    raise InvalidPromptFile(path, "front matter opened with '---' is never closed", line=1)


class _FrontMatterLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases, and with a nesting limit.

    Aliases are how a few hundred bytes of YAML expand into gigabytes (a "billion laughs"
    bomb); front matter has no need of them. Nesting is capped because composing is
    recursive.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed", event.start_mark
            )
        if getattr(event, "anchor", None):
            raise ComposerError(
                None, None, f"anchors (&{event.anchor}) are not allowed", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_FRONT_MATTER_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_FRONT_MATTER_DEPTH} levels",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# libyaml's loader, when PyYAML has it: about ten times faster, which `list` and `lint` of
# a thousand prompts feel. It cannot refuse aliases or deep nesting as it composes, so it
# only takes text that can have neither (see _plainly_shallow); the rest goes to ours.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _loader_for(text: str) -> Any:
    if _FAST_LOADER is not None and _plainly_shallow(text):
        return _FAST_LOADER(text)
    return _FrontMatterLoader(text)


def _plainly_shallow(text: str) -> bool:
    """Tell whether YAML text can have no anchor, alias or tag, and no nesting deeper than
    the limit: no `&`, `*` or `!` at all, and indentation plus brackets well within it."""
    if "&" in text or "*" in text or "!" in text:
        return False
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    indent = max((len(line) - len(line.lstrip(" -")) for line in text.splitlines()), default=0)
    # Each block level takes at least one column of indentation (or a "- ").
    return indent + deepest < MAX_FRONT_MATTER_DEPTH


def _load_yaml(path: str, front_text: str, first_line: int) -> tuple[dict[str, Any], dict]:
    if len(front_text) > MAX_FRONT_MATTER_CHARS:
        raise InvalidPromptFile(
            path,
            f"front matter of {len(front_text):,} characters is over the limit of "
            f"{MAX_FRONT_MATTER_CHARS:,}",
            line=first_line,
        )
    loader = _loader_for(front_text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        lines: dict[str, int] = {}
        _index_lines(path, node, "", first_line, lines)
        value = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark else first_line
        raise InvalidPromptFile(
            path, f"bad YAML in front matter: {exc.problem}", line=line
        ) from exc
    except yaml.YAMLError as exc:
        raise InvalidPromptFile(path, f"bad YAML in front matter: {exc}", line=first_line) from exc
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        raise InvalidPromptFile(
            path, "front matter must be a mapping of keys to values", line=first_line
        )
    return value, lines


def _index_lines(path: str, node: yaml.Node, prefix: str, first: int, out: dict) -> None:
    """Record the line of every mapping key; reject duplicate keys PyYAML would hide."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{prefix}.{key}" if prefix else key
            line = first + key_node.start_mark.line
            if key in seen:
                raise InvalidPromptFile(path, f"duplicate key '{key}'", line=line, field=dotted)
            seen.add(key)
            out[dotted] = line
            _index_lines(path, value_node, dotted, first, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            dotted = f"{prefix}[{index}]"
            out[dotted] = first + item.start_mark.line
            _index_lines(path, item, dotted, first, out)


def _check_known_keys(path: str, front: dict[str, Any], lines: dict[str, int]) -> None:
    for key, types in _KNOWN_KEYS.items():
        if key in front and front[key] is not None and not isinstance(front[key], types):
            raise InvalidPromptFile(
                path, f"'{key}' must be {_TYPE_NAMES[types[0]]}", line=lines.get(key), field=key
            )
    tags = front.get("tags") or []
    if any(not isinstance(tag, str) for tag in tags):
        raise InvalidPromptFile(path, "tags must be strings", line=lines.get("tags"), field="tags")
    engine = front.get("template")
    if engine is not None and engine not in ENGINES:
        raise InvalidPromptFile(
            path,
            f"template '{engine}' is not an engine (known: {', '.join(ENGINES)})",
            line=lines.get("template"),
            field="template",
        )
    roles = front.get("roles")
    if roles is not None and (not roles or any(not isinstance(r, str) or not r for r in roles)):
        raise InvalidPromptFile(
            path,
            "roles must be a non-empty list of role names",
            line=lines.get("roles"),
            field="roles",
        )


def _parse_inputs(path: str, raw: Any, lines: dict[str, int]) -> dict[str, InputSpec]:
    if raw is None:
        return {}
    specs = {}
    for name, decl in raw.items():
        field_path = f"input.{name}"
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise InvalidPromptFile(
                path,
                f"variable name '{name}' must be an identifier not starting with '_'",
                line=lines.get(field_path),
                field=field_path,
            )
        specs[name] = _parse_spec(path, name, decl, field_path, lines)
    return specs


def _parse_spec(
    path: str, name: str, decl: Any, field_path: str, lines: dict[str, int]
) -> InputSpec:
    def fail(detail: str, sub: str = "") -> InvalidPromptFile:
        where = f"{field_path}.{sub}" if sub else field_path
        return InvalidPromptFile(
            path, detail, line=lines.get(where, lines.get(field_path)), field=where
        )

    if decl is None:
        return InputSpec(name)
    if isinstance(decl, str):  # shorthand `ticket: string`
        decl = {"type": decl}
    if not isinstance(decl, dict):
        raise fail("an input declaration must be a mapping or a type name")
    unknown = sorted(set(decl) - _INPUT_KEYS, key=str)  # YAML keys may be ints or null
    if unknown:
        raise fail(
            f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_INPUT_KEYS))})", unknown[0]
        )
    kind = decl.get("type")
    if kind is not None and kind not in INPUT_TYPES:
        raise fail(f"unknown type '{kind}' (allowed: {', '.join(INPUT_TYPES)})", "type")
    enum = decl.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise fail("enum must be a non-empty list", "enum")
    if "description" in decl and not isinstance(decl["description"], str | None):
        raise fail("description must be a string", "description")
    required = decl.get("required", "default" not in decl)
    if not isinstance(required, bool):
        raise fail("required must be true or false", "required")
    items = None
    if "items" in decl:
        if kind != "array":
            raise fail("items is only allowed with type: array", "items")
        items = _parse_spec(path, name, decl["items"], f"{field_path}.items", lines)
    properties = None
    if "properties" in decl:
        if kind != "object":
            raise fail("properties is only allowed with type: object", "properties")
        if not isinstance(decl["properties"], dict):
            raise fail("properties must be a mapping of key names to declarations", "properties")
        properties = {
            str(key): _parse_spec(path, str(key), sub, f"{field_path}.properties.{key}", lines)
            for key, sub in decl["properties"].items()
        }
    spec = InputSpec(
        name=name,
        type=kind,
        description=decl.get("description"),
        enum=tuple(enum) if enum is not None else None,
        default=decl.get("default"),
        has_default="default" in decl,
        required=required,
        items=items,
        properties=properties,
    )
    if spec.enum is not None:
        for value in spec.enum:
            problem = check_value(spec, value, check_enum=False)
            if problem:
                raise fail(f"enum value {value!r}: {problem}", "enum")
    if spec.has_default:
        problem = check_value(spec, spec.default)
        if problem:
            raise fail(f"default {spec.default!r}: {problem}", "default")
    return spec


def _check_samples(path: str, front: dict[str, Any], lines: dict[str, int]) -> None:
    for index, sample in enumerate(front.get("samples") or []):
        if not isinstance(sample, dict):
            raise InvalidPromptFile(
                path,
                "each sample must be a mapping of variable names to values",
                line=lines.get(f"samples[{index}]"),
                field=f"samples[{index}]",
            )
