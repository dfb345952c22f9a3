"""Output contracts: what a version's answers must look like, and checking an answer.

Front matter declares it:

    output:
      format: json
      schema: {type: object, required: [category], properties: {...}}   # inline, or
      schema: schemas/triage.json     # a JSON file below the prompt root, like a partial

A schema file is read from the same commit as the prompt and is part of the version: its
bytes are in the digest (a schema change makes a new version) and in the snapshot stored
on promote, so serving and the client never need git to know a version's contract.

A schema is hostile input until checked: it is bounded in size and nesting, may refer
only to itself (`$ref: "#/$defs/..."`, never a URL or another file: validating never
touches the network), names a known draft in `$schema` (default 2020-12), and must be
valid against that draft's meta-schema. Lint reports every problem with the file and
field; `parse_output` checks a model's answer and raises OutputInvalid naming the JSON
pointer and the rule it broke.

The validator is jsonschema-rs, imported on first use (`pip install 'promptctl[outputs]'`;
the `cli` extra has it), compiled once per version digest.
"""

from __future__ import annotations

import json
import math
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptctl.registry.errors import InvalidPromptFile

if TYPE_CHECKING:
    from promptctl.registry.prompts.promptfile import PromptFile

JSON = "json"
OUTPUT_KEYS = ("format", "schema")
MAX_SCHEMA_BYTES = 65_536
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_NODES = 5_000
# A `pattern` runs against model output on every call: the backtracking engine jsonschema-rs
# uses for ECMA-262 patterns (lookaround and backreferences) gives up past this many steps
# instead of hanging the application on a catastrophic pattern.
REGEX_BACKTRACK_LIMIT = 100_000
DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The drafts whose meta-schemas jsonschema-rs carries; any other `$schema` would be fetched
# from the network, which a schema from a pull request must never make anyone do.
DRAFTS = {
    "https://json-schema.org/draft/2020-12/schema": "2020-12",
    "https://json-schema.org/draft/2019-09/schema": "2019-09",
    "http://json-schema.org/draft-07/schema": "draft-07",
    "http://json-schema.org/draft-06/schema": "draft-06",
    "http://json-schema.org/draft-04/schema": "draft-04",
}
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_INSTALL_HINT = "pip install 'promptctl[outputs]'"
_CACHE_SIZE = 256


class OutputInvalid(ValueError):
    """A model's answer breaks the version's output contract.

    `pointer` is the JSON pointer of the offending value ("" for the whole answer);
    `rule` names what was broken: `prose-before-json`, `text-after-json`, `not-json`,
    `empty`, or the JSON Schema keyword (`required`, `type`, `enum`, ...). `offset` is the
    character offset in the answer, when the problem is in its text.
    """

    error_type = "invalid_output"  # the label an event's error_type takes for it

    def __init__(
        self,
        pointer: str,
        rule: str,
        detail: str,
        *,
        offset: int | None = None,
        prompt: str | None = None,
    ) -> None:
        self.pointer = pointer
        self.rule = rule
        self.detail = detail
        self.offset = offset
        self.prompt = prompt
        where = f"at '{pointer}'" if pointer else "at the top level"
        if offset is not None:
            where += f", offset {offset}"
        about = f"{prompt}: " if prompt else ""
        super().__init__(f"{about}output invalid {where}: {detail} [{rule}]")


class OutputContractUnusable(RuntimeError):
    """A version's declared output contract cannot be used (lint reports why)."""


@dataclass(frozen=True)
class SchemaProblem:
    """One thing wrong with a declared schema: `field` is the front-matter field or the
    location inside a schema file (`output.schema`, `output.schema.properties.x`)."""

    path: str
    line: int | None
    field: str
    detail: str

    def __str__(self) -> str:
        location = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{location}: {self.detail} (field '{self.field}')"


# -- front matter ---------------------------------------------------------------------


def check_output_section(path: str, raw: Any, lines: Mapping[str, int]) -> None:
    """Refuse an `output` section of the wrong shape, naming the file, line and field."""
    if raw is None:
        return

    def fail(detail: str, where: str) -> InvalidPromptFile:
        return InvalidPromptFile(
            path, detail, line=lines.get(where, lines.get("output")), field=where
        )

    fmt = raw.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise fail("output.format must be a string such as 'json'", "output.format")
    if "schema" not in raw or raw["schema"] is None:
        return
    schema = raw["schema"]
    if fmt is not None and fmt != JSON:
        raise fail(f"an output schema needs format: json, not '{fmt}'", "output.format")
    if isinstance(schema, str):
        schema_relpath(path, schema, lines)
    elif isinstance(schema, dict | bool):
        problem = _json_problem(schema, "output.schema")
        if problem:
            where, detail = problem
            raise fail(detail, where)
    else:
        raise fail(
            "output.schema must be a JSON Schema mapping or the path of a .json file below "
            "the prompt root",
            "output.schema",
        )


def schema_relpath(path: str, ref: str, lines: Mapping[str, int] | None = None) -> str:
    """Return a schema file reference as a normalised path below the prompt root."""
    where = (lines or {}).get("output.schema")
    cleaned = ref.strip()
    normalised = posixpath.normpath(cleaned).removeprefix("./") if cleaned else ""
    if (
        not cleaned
        or cleaned.startswith("/")
        or "://" in cleaned
        or normalised in (".", "")
        or normalised.startswith("../")
        or normalised == ".."
    ):
        raise InvalidPromptFile(
            path,
            f"output.schema '{ref}' must be a relative path to a file below the prompt root",
            line=where,
            field="output.schema",
        )
    return normalised


def declared_schema_ref(front_matter: Mapping[str, Any]) -> str | None:
    """The raw `output.schema` file reference of a parsed front matter, if it names a file."""
    output = front_matter.get("output")
    if isinstance(output, dict) and isinstance(output.get("schema"), str):
        return output["schema"]
    return None


def schema_ref_in(data: bytes) -> str | None:
    """Return the schema file a prompt file's bytes name (normalised), cheaply, or None.

    Versions read this for every prompt blob in history, so a file that does not mention
    `schema` costs a substring search; the others parse their front matter only.
    """
    if b"schema" not in data:
        return None
    from promptctl.registry.prompts.promptfile import parse_prompt_file

    try:
        prompt = parse_prompt_file("", data)
    except InvalidPromptFile:
        return None  # loading the prompt reports it
    ref = declared_schema_ref(prompt.front_matter)
    return schema_relpath("", ref) if ref is not None else None


# -- resolving and checking a schema ---------------------------------------------------


def load_schema_file(repo_path: str, text: str) -> dict[str, Any] | bool:
    """Parse a schema file's text, or raise InvalidPromptFile naming the file and line."""
    size = len(text.encode())
    if size > MAX_SCHEMA_BYTES:
        raise InvalidPromptFile(
            repo_path,
            f"schema file of {size:,} bytes is over the limit of {MAX_SCHEMA_BYTES:,}",
            field="output.schema",
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidPromptFile(
            repo_path,
            f"not valid JSON: {exc.msg} (column {exc.colno})",
            line=exc.lineno,
            field="output.schema",
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidPromptFile(
            repo_path, f"not usable JSON: {exc or 'nested too deep'}", field="output.schema"
        ) from exc
    if not isinstance(value, dict | bool):
        raise InvalidPromptFile(
            repo_path,
            "a JSON Schema must be an object (or true/false)",
            line=1,
            field="output.schema",
        )
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def resolve_output_schema(prompt: PromptFile, files: Mapping[str, str | None]) -> PromptFile:
    """Return the prompt with `output_schema` set: inline, or read from `files` (the
    version's own files by path below the root). A schema that is missing or broken leaves
    it None; `schema_problems` says why."""
    from dataclasses import replace

    output = prompt.front_matter.get("output")
    if not isinstance(output, dict):
        return prompt
    schema = output.get("schema")
    if isinstance(schema, dict | bool):
        return replace(prompt, output_schema=schema)
    if not isinstance(schema, str):
        return prompt
    text = files.get(schema_relpath(prompt.path, schema))
    if text is None:
        return prompt
    try:
        loaded = load_schema_file(prompt.path, text)
    except InvalidPromptFile:
        return prompt
    return replace(prompt, output_schema=loaded)


def schema_problems(
    prompt: PromptFile, files: Mapping[str, str | None], root: str
) -> list[SchemaProblem]:
    """Every problem with a prompt's declared output schema (empty when there is none)."""
    output = prompt.front_matter.get("output")
    if not isinstance(output, dict) or output.get("schema") is None:
        return []
    schema = output["schema"]
    line = prompt.line_of("output.schema")
    if isinstance(schema, str):
        relpath = schema_relpath(prompt.path, schema)
        repo_path = f"{root}/{relpath}" if root else relpath
        text = files.get(relpath)
        if text is None:
            return [
                SchemaProblem(
                    prompt.path,
                    line,
                    "output.schema",
                    f"schema file '{repo_path}' does not exist in this commit",
                )
            ]
        try:
            loaded = load_schema_file(repo_path, text)
        except InvalidPromptFile as exc:
            return [SchemaProblem(exc.path, exc.line, "output.schema", exc.detail)]
        # A problem inside a schema file is named by its place in the schema.
        return [
            SchemaProblem(repo_path, None, field, detail) for field, detail in check_schema(loaded)
        ]
    return [
        SchemaProblem(prompt.path, prompt.line_of(field), field, detail)
        for field, detail in check_schema(schema, "output.schema")
    ]


def check_schema(schema: Any, base: str = "") -> list[tuple[str, str]]:
    """Return (field, problem) pairs for a schema: its shape, size, references, draft and
    meta-schema. `base` prefixes the field names (`output.schema` for an inline schema)."""
    problem = _json_problem(schema, base or "(schema)")
    if problem:
        return [problem]
    if not isinstance(schema, dict):
        return []  # true and false are schemas
    out: list[tuple[str, str]] = []
    declared = schema.get("$schema", DEFAULT_DRAFT)
    if not isinstance(declared, str) or declared.rstrip("#") not in DRAFTS:
        known = ", ".join(DRAFTS)
        out.append((_join(base, "$schema"), f"unknown $schema {declared!r} (known: {known})"))
    for field, ref in _references(schema, base):
        if not ref.startswith("#"):
            out.append(
                (
                    field,
                    f"$ref '{ref}' points outside the schema: only references within "
                    "it ('#/$defs/...') are allowed, so validating needs no network",
                )
            )
    if out:
        return out
    validator = _validator_module()
    try:
        validator.meta.validate(_without_draft_fragment(schema))
    except validator.ValidationError as exc:
        out.append((_join(base, *exc.instance_path), f"not valid JSON Schema: {_meta(exc)}"))
    except validator.ReferencingError as exc:
        out.append((_join(base, "$schema"), f"not valid JSON Schema: {exc}"))
    if out:
        return out
    try:
        _compile(schema)
    except validator.ValidationError as exc:
        out.append((base or "(schema)", f"not usable: {exc.message}"))
    return out


def _meta(error: Any) -> str:
    """The meta-schema's complaint, said plainly where its own wording is obscure."""
    path = [None, None, *error.instance_path]
    at = -1 if isinstance(path[-1], str) else -2  # `type: [string, nul]` points at an item
    if path[at] == "type" and path[at - 1] not in _NAMING:
        return f"{json.dumps(error.instance)} is not a JSON Schema type ({_TYPES})"
    return error.message


_NAMING = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_TYPES = "string, number, integer, boolean, object, array, null"


def _json_problem(value: Any, where: str) -> tuple[str, str] | None:
    """Refuse what JSON cannot hold (YAML dates, non-string keys), too deep or too big."""
    count = 0
    pending: list[tuple[Any, str, int]] = [(value, where, 1)]
    while pending:
        item, field, depth = pending.pop()
        count += 1
        if count > MAX_SCHEMA_NODES:
            return where, f"schema has more than {MAX_SCHEMA_NODES:,} values"
        if depth > MAX_SCHEMA_DEPTH:
            return field, f"schema nested deeper than {MAX_SCHEMA_DEPTH} levels"
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return field, f"key {key!r} must be a string"
                pending.append((sub, f"{field}.{key}", depth + 1))
        elif isinstance(item, list):
            for index, sub in enumerate(item):
                pending.append((sub, f"{field}[{index}]", depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            return field, f"{item} is not a JSON number"
        elif item is not None and not isinstance(item, str | int | float | bool):
            return field, f"{type(item).__name__} value {item!r} is not JSON"
    return None


def _references(schema: Any, base: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pending: list[tuple[Any, str]] = [(schema, base)]
    while pending:
        item, field = pending.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if key in _REF_KEYWORDS and isinstance(sub, str):
                    out.append((_join(field, key), sub))
                pending.append((sub, _join(field, key)))
        elif isinstance(item, list):
            pending.extend((sub, f"{field}[{i}]") for i, sub in enumerate(item))
    return sorted(out)


def _join(base: str, *parts: str | int) -> str:
    out = base
    for part in parts:
        step = f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
        out += step
    return out or "(schema)"


def _without_draft_fragment(schema: dict[str, Any]) -> dict[str, Any]:
    """`$schema` with a trailing '#' (as draft-07 documents write it) as the library knows it."""
    declared = schema.get("$schema")
    if isinstance(declared, str) and declared.endswith("#"):
        return {**schema, "$schema": declared.rstrip("#")}
    return schema


# -- validating answers -----------------------------------------------------------------


def _validator_module() -> Any:
    try:
        import jsonschema_rs
    except ImportError as exc:
        raise ImportError(
            f"validating output schemas needs jsonschema-rs: {_INSTALL_HINT}"
        ) from exc
    return jsonschema_rs


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"refusing to fetch '{uri}': output schemas may not refer outside")


def _compile(schema: dict[str, Any] | bool) -> Any:
    jsonschema_rs = _validator_module()
    if isinstance(schema, dict):
        schema = _without_draft_fragment(schema)
    return jsonschema_rs.validator_for(
        schema,
        retriever=_refuse_retrieval,
        pattern_options=jsonschema_rs.FancyRegexOptions(backtrack_limit=REGEX_BACKTRACK_LIMIT),
    )


class _ValidatorCache:
    """Compiled validators by version digest (a digest covers the schema), bounded LRU."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.compiled = 0  # how many schemas were compiled: tests prove the cache works

    def get(self, digest: str, schema: dict[str, Any] | bool, label: str) -> Any:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
                return found
        problems = [] if not isinstance(schema, dict) else check_schema(schema)
        if problems:
            field, detail = problems[0]
            raise OutputContractUnusable(
                f"{label}: its output schema is not usable ({field}: {detail}); "
                "`promptctl lint` reports it"
            )
        validator = _compile(schema)
        with self._lock:
            self._items[digest] = validator
            self.compiled += 1
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return validator


VALIDATORS = _ValidatorCache(_CACHE_SIZE)


def parse_output(
    text: str,
    *,
    digest: str,
    prompt: PromptFile,
    label: str,
) -> Any:
    """Parse a model's answer as the version's JSON and check it against its schema.

    Raise OutputInvalid naming the JSON pointer and rule broken; OutputContractUnusable
    when the version declares an output it cannot check (another format, a schema file
    missing from the version or not valid JSON Schema).
    """
    output = prompt.front_matter.get("output")
    declared = output if isinstance(output, dict) else {}
    fmt = declared.get("format")
    if fmt is not None and fmt != JSON:
        raise OutputContractUnusable(f"{label} declares output format '{fmt}', not json")
    value = _decode(text, label)
    schema = prompt.output_schema
    if schema is None and declared.get("schema") is not None:
        raise OutputContractUnusable(
            f"{label}: its output schema '{declared['schema']}' is missing from the version "
            "or not valid JSON; `promptctl lint` reports it"
        )
    if schema is None:
        return value
    validator = VALIDATORS.get(digest, schema, label)
    error = next(iter(validator.iter_errors(value)), None)
    if error is not None:
        raise _invalid(error, label)
    return value


def _decode(text: str, label: str) -> Any:
    if not isinstance(text, str):
        raise TypeError(f"parse takes the model's answer as str, not {type(text).__name__}")
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise OutputInvalid("", "empty", "the answer is empty", offset=0, prompt=label)
    try:
        value, end = _raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _not_json_or_prose(text, start, exc, label) from exc
    except (ValueError, RecursionError) as exc:
        raise OutputInvalid(
            "",
            "not-json",
            f"not usable JSON: {exc or 'nested too deep'}",
            offset=start,
            prompt=label,
        ) from exc
    rest = text[end:]
    if rest.strip():
        offset = end + len(rest) - len(rest.lstrip())
        raise OutputInvalid(
            "", "text-after-json", "text after the JSON value", offset=offset, prompt=label
        )
    return value


def _raw_decode(text: str, start: int) -> tuple[Any, int]:
    return json.JSONDecoder(parse_constant=_refuse_constant).raw_decode(text, start)


def _not_json_or_prose(
    text: str, start: int, exc: json.JSONDecodeError, label: str
) -> OutputInvalid:
    """Tell prose before a JSON value (a sentence, a Markdown fence) from broken JSON."""
    if text[start] in "{[":  # an object or array that breaks later is broken JSON
        return OutputInvalid(
            "", "not-json", f"not valid JSON: {exc.msg}", offset=exc.pos, prompt=label
        )
    positions = [p for p in (text.find("{", start + 1), text.find("[", start + 1)) if p > 0]
    for opening in sorted(positions):
        try:
            _raw_decode(text, opening)
        except (ValueError, RecursionError):
            continue
        preview = text[start:opening].strip()
        preview = preview if len(preview) <= 40 else preview[:37] + "..."
        return OutputInvalid(
            "",
            "prose-before-json",
            f"text before the JSON ({preview!r}); the JSON starts at offset {opening}",
            offset=start,
            prompt=label,
        )
    return OutputInvalid("", "not-json", f"not valid JSON: {exc.msg}", offset=exc.pos, prompt=label)


def _invalid(error: Any, label: str) -> OutputInvalid:
    path: list[str | int] = list(error.instance_path)
    rule = error.kind.name
    if rule == "required":
        missing = error.kind.as_dict().get("property")
        if isinstance(missing, str):
            path.append(missing)
    return OutputInvalid(_pointer(path), rule, error.message, prompt=label)


def _pointer(parts: list[str | int]) -> str:
    """RFC 6901: '~' and '/' in a key are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
