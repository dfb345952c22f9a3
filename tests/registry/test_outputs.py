"""Output contracts: schema files as part of a version, lint of hostile or broken schemas,
and parsing answers against a version's schema."""

from __future__ import annotations

import json
import sys

import pytest

from promptctl.registry.errors import InvalidPromptFile
from promptctl.registry.prompts import outputs
from promptctl.registry.prompts.lint import ERROR, WARNING, lint_library, lint_version
from promptctl.registry.prompts.outputs import OutputContractUnusable, OutputInvalid
from promptctl.registry.prompts.promptfile import parse_prompt_file
from promptctl.registry.prompts.promptversion import version_from_document, version_from_files
from promptctl.registry.releases.documents import version_document

SCHEMA = {
    "type": "object",
    "required": ["category", "items"],
    "properties": {
        "category": {"type": "string", "enum": ["billing", "outage"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {"n": {"type": "integer"}}}},
}


def prompt_text(output: str = "{format: json, schema: schemas/t.json}", extra: str = "") -> str:
    return f"---\noutput: {output}\n{extra}---\nClassify.\n"


def write(git_repo, text: str, schema: object | str | None = SCHEMA) -> None:
    git_repo.write("prompts/t.prompt", text)
    if schema is not None:
        body = schema if isinstance(schema, str) else json.dumps(schema, indent=2)
        git_repo.write("prompts/schemas/t.json", body)


def findings_of(git_repo, make_library) -> list[tuple[str, int, str, str, str]]:
    found = lint_library(make_library(git_repo), ["t"])
    return [(f.path, f.line, f.severity, f.code, f.message) for f in found]


# -- a schema file is part of the version ------------------------------------------------


def test_a_schema_file_change_alone_makes_a_new_version(git_repo, make_library):
    write(git_repo, prompt_text())
    git_repo.commit("v1")
    git_repo.write("prompts/schemas/t.json", json.dumps({**SCHEMA, "required": ["category"]}))
    git_repo.commit("v2: only the schema")
    library = make_library(git_repo)
    records, _ = library.history("t")
    assert [r.number for r in records] == [1, 2]
    v1, v2 = library.get("t", "v1"), library.get("t", "v2")
    assert v1.digest == records[0].digest  # loading and numbering agree
    assert v2.digest == records[1].digest
    assert v1.prompt.output_schema == SCHEMA
    assert v2.prompt.output_schema["required"] == ["category"]
    assert v1.schema_file == "schemas/t.json"
    assert "schemas/t.json" in v1.files()


def test_a_schema_file_changed_in_the_working_tree_is_uncommitted(git_repo, make_library):
    write(git_repo, prompt_text())
    git_repo.commit("v1")
    git_repo.write("prompts/schemas/t.json", json.dumps({"type": "object"}))
    assert make_library(git_repo).uncommitted("t") == ["prompts/schemas/t.json"]


def test_snapshots_and_documents_carry_the_schema_without_git(git_repo, make_library):
    write(git_repo, prompt_text())
    git_repo.commit("v1")
    version = make_library(git_repo).get("t", "v1")
    rebuilt = version_from_files(
        "t",
        digest=version.digest,
        root="prompts",
        relpath=version.relpath,
        files=version.files(),
        source="snapshot",
    )
    assert rebuilt.prompt.output_schema == SCHEMA
    from_document = version_from_document(version_document(version), "server")
    assert from_document.prompt.output_schema == SCHEMA
    assert from_document.parse_output('{"category": "billing", "items": []}') == {
        "category": "billing",
        "items": [],
    }


# -- lint: schemas as hostile input ---------------------------------------------------------


def test_a_missing_schema_file_is_an_error_naming_the_path(git_repo, make_library):
    write(git_repo, prompt_text(), schema=None)
    assert findings_of(git_repo, make_library) == [
        (
            "prompts/t.prompt",
            2,
            ERROR,
            "output-schema",
            "schema file 'prompts/schemas/t.json' does not exist in this commit "
            "(field 'output.schema')",
        )
    ]


def test_a_schema_file_missing_from_the_commit_linted_is_an_error(git_repo, make_library):
    write(git_repo, prompt_text(), schema=None)
    git_repo.commit("prompt without its schema")
    write(git_repo, prompt_text())  # in the working tree only
    found = lint_library(make_library(git_repo), ["t"], rev="HEAD")
    assert [(f.code, f.severity) for f in found] == [("output-schema", ERROR)]
    assert lint_library(make_library(git_repo), ["t"]) == []


def test_a_schema_file_that_is_not_json_is_an_error_at_its_line(git_repo, make_library):
    write(git_repo, prompt_text(), schema='{\n  "type": "object",\n  oops\n}')
    [(path, line, severity, code, message)] = findings_of(git_repo, make_library)
    assert (path, line, severity, code) == ("prompts/schemas/t.json", 3, ERROR, "output-schema")
    assert message.startswith("not valid JSON: Expecting property name")


@pytest.mark.parametrize(
    ("schema", "field", "message"),
    [
        (
            {"type": "object", "properties": {"x": {"type": "strin"}}},
            "properties.x.type",
            '"strin" is not a JSON Schema type',
        ),
        ({"type": "object", "required": "x"}, "required", "not valid JSON Schema"),
        (
            {"$ref": "https://schemas.example/triage.json"},
            "$ref",
            "points outside the schema",
        ),
        ({"$ref": "other.json#/x"}, "$ref", "points outside the schema"),
        ({"$schema": "https://evil.example/meta"}, "$schema", "unknown $schema"),
        ({"$ref": "#/$defs/missing"}, "(schema)", "not usable"),
    ],
    ids=["bad type", "bad required", "remote ref", "file ref", "unknown draft", "dangling"],
)
def test_an_invalid_schema_file_is_an_error_naming_the_field(
    git_repo, make_library, schema, field, message
):
    write(git_repo, prompt_text(), schema=schema)
    [(path, _, severity, code, text)] = findings_of(git_repo, make_library)
    assert (path, severity, code) == ("prompts/schemas/t.json", ERROR, "output-schema")
    assert message in text
    assert text.endswith(f"(field '{field}')")


def test_an_inline_schema_error_points_at_its_front_matter_line(git_repo, make_library):
    output = (
        "\n  format: json\n  schema:\n    type: object\n    properties:\n"
        "      score:\n        type: [integer, nul]"
    )
    write(git_repo, prompt_text(output), schema=None)
    [(path, line, severity, code, text)] = findings_of(git_repo, make_library)
    assert (path, line, severity, code) == ("prompts/t.prompt", 8, ERROR, "output-schema")
    assert '["integer", "nul"] is not a JSON Schema type (string, number' in text
    assert text.endswith("(field 'output.schema.properties.score.type')")


def test_draft_07_schemas_are_checked_against_their_own_meta_schema(git_repo, make_library):
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "definitions": {"x": {"type": "string"}},
    }
    write(git_repo, prompt_text(), schema=draft7)
    assert findings_of(git_repo, make_library) == []


def test_schemas_are_bounded_in_size_and_nesting(git_repo, make_library):
    deep: dict = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    write(git_repo, prompt_text(), schema=deep)
    [finding] = findings_of(git_repo, make_library)
    assert "nested deeper than 32 levels" in finding[4]
    huge = {"type": "object", "description": "x" * (outputs.MAX_SCHEMA_BYTES + 1)}
    write(git_repo, prompt_text(), schema=huge)
    [finding] = findings_of(git_repo, make_library)
    assert "over the limit of 65,536" in finding[4]


@pytest.mark.parametrize(
    ("output", "message", "field"),
    [
        (
            "{format: json, schema: 42}",
            "must be a JSON Schema mapping or the path",
            "output.schema",
        ),
        ("{format: json, schema: /etc/passwd}", "relative path to a file below", "output.schema"),
        (
            "{format: json, schema: ../outside.json}",
            "relative path to a file below",
            "output.schema",
        ),
        (
            "{format: text, schema: {type: object}}",
            "needs format: json, not 'text'",
            "output.format",
        ),
        ("{format: [json]}", "output.format must be a string", "output.format"),
        ("{schema: {type: object, x: 2021-01-01}}", "date value", "output.schema.x"),
    ],
)
def test_a_malformed_output_section_is_refused_at_its_field(output, message, field):
    with pytest.raises(InvalidPromptFile) as raised:
        parse_prompt_file("prompts/t.prompt", prompt_text(output))
    assert message in raised.value.detail
    assert (raised.value.field, raised.value.line) == (field, 2)


def test_an_unknown_output_key_is_a_warning(git_repo, make_library):
    write(git_repo, prompt_text("{format: json, shema: {type: object}}"), schema=None)
    assert findings_of(git_repo, make_library) == [
        (
            "prompts/t.prompt",
            2,
            WARNING,
            "output-unknown-key",
            "unknown key 'shema' in output (known: format, schema)",
        )
    ]


def test_a_broken_schema_blocks_a_promotion_through_lint(git_repo, make_library):
    write(git_repo, prompt_text(), schema={"type": 12})
    git_repo.commit("broken schema")
    version = make_library(git_repo).get("t", "v1")
    assert [f.code for f in lint_version(version) if f.severity == ERROR] == ["output-schema"]


# -- parsing answers -------------------------------------------------------------------------


@pytest.fixture
def version(git_repo, make_library):
    write(git_repo, prompt_text())
    git_repo.commit("v1")
    return make_library(git_repo).get("t", "v1")


@pytest.mark.parametrize(
    ("answer", "rule", "pointer", "offset", "detail"),
    [
        (
            'Sure! Here it is: {"category": "billing", "items": []}',
            "prose-before-json",
            "",
            0,
            "text before the JSON ('Sure! Here it is:'); the JSON starts at offset 18",
        ),
        (
            '```json\n{"category": "billing", "items": []}\n```',
            "prose-before-json",
            "",
            0,
            "text before the JSON ('```json')",
        ),
        ('  {"category": "billing", "items": [] ', "not-json", "", 38, "not valid JSON"),
        (
            '{"category": "billing", "items": []}\nHope this helps!',
            "text-after-json",
            "",
            37,
            "text after the JSON value",
        ),
        ("   ", "empty", "", 0, "the answer is empty"),
        ("The category is billing.", "not-json", "", 0, "not valid JSON"),
        ('{"items": []}', "required", "/category", None, '"category" is a required property'),
        (
            '{"category": "billing", "items": [{"n": 1}, {"n": "2"}]}',
            "type",
            "/items/1/n",
            None,
            'is not of type "integer"',
        ),
        ('{"category": "refund", "items": []}', "enum", "/category", None, "is not one of"),
        (
            '{"category": "billing", "items": [], "x/y": 1}',
            "additionalProperties",
            "",
            None,
            "'x/y' was unexpected",
        ),
        ('{"category": NaN, "items": []}', "not-json", "", 0, "NaN is not JSON"),
    ],
    ids=[
        "prose",
        "fence",
        "truncated",
        "trailing",
        "empty",
        "no json",
        "required",
        "type",
        "enum",
        "additional",
        "nan",
    ],
)
def test_parse_names_the_pointer_and_the_rule(version, answer, rule, pointer, offset, detail):
    with pytest.raises(OutputInvalid) as raised:
        version.parse_output(answer)
    error = raised.value
    assert (error.rule, error.pointer, error.offset) == (rule, pointer, offset)
    assert detail in error.detail
    assert str(error).startswith("t@v1: output invalid")
    assert error.error_type == "invalid_output"


def test_parse_returns_the_value_and_compiles_once_per_version(version):
    before = outputs.VALIDATORS.compiled
    answer = '\n{"category": "outage", "items": [{"n": 3}]}\n'
    for _ in range(5):
        assert version.parse_output(answer) == {"category": "outage", "items": [{"n": 3}]}
    assert outputs.VALIDATORS.compiled - before <= 1  # once, unless cached by an earlier test


def test_parse_without_a_schema_checks_json_only(git_repo, make_library):
    write(git_repo, "plain\n", schema=None)
    git_repo.commit("v1")
    assert make_library(git_repo).get("t", "v1").parse_output("[1, 2]") == [1, 2]


def test_parse_refuses_a_version_whose_contract_it_cannot_check(git_repo, make_library):
    write(git_repo, prompt_text("{format: text}"), schema=None)
    write(git_repo, prompt_text(), schema=None)
    git_repo.write("prompts/other.prompt", prompt_text("{format: text}"))
    git_repo.commit("v1")
    library = make_library(git_repo)
    with pytest.raises(OutputContractUnusable, match="schemas/t.json' is missing"):
        library.get("t", "v1").parse_output("{}")
    with pytest.raises(OutputContractUnusable, match="declares output format 'text'"):
        library.get("other", "v1").parse_output("{}")


def test_parse_without_the_validator_says_what_to_install(version, monkeypatch):
    monkeypatch.setattr(outputs, "VALIDATORS", outputs._ValidatorCache(4))
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)
    with pytest.raises(ImportError, match=r"pip install 'promptctl\[outputs\]'"):
        version.parse_output('{"category": "billing", "items": []}')
