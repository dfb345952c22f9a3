"""Prompt files: front matter, body, and errors that name the file, line and field."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptctl.registry.errors import InvalidPromptFile
from promptctl.registry.prompts.promptfile import parse_prompt_file
from promptctl.registry.prompts.variables import InputSpec

PATH = "prompts/support/triage.prompt"

TRIAGE = """\
---
description: Triage a support ticket
model: gpt-4o-mini
params: {temperature: 0.2, max_tokens: 400}
input:
  ticket: {type: string, description: raw ticket text}
  tier: {type: string, enum: [free, pro, enterprise], default: free}
  labels: {type: array, items: string, default: []}
output: {format: json}
tags: [support]
owner: support-team
x-review: {team: prompts, sla_days: 2}
samples:
  - {ticket: "I was charged twice", tier: pro}
---
{% message "system" %}You triage tickets.{% endmessage %}
{% message "user" %}{{ ticket }}{% endmessage %}
"""


def test_front_matter_fields_are_parsed_into_the_prompt_file():
    prompt = parse_prompt_file(PATH, TRIAGE)
    assert prompt.description == "Triage a support ticket"
    assert prompt.model == "gpt-4o-mini"
    assert prompt.params == {"temperature": 0.2, "max_tokens": 400}
    assert prompt.samples == [{"ticket": "I was charged twice", "tier": "pro"}]
    assert prompt.front_matter["output"] == {"format": "json"}
    assert prompt.front_matter["tags"] == ["support"]


def test_unknown_front_matter_keys_are_kept_untouched():
    prompt = parse_prompt_file(PATH, TRIAGE)
    assert prompt.front_matter["owner"] == "support-team"
    assert prompt.front_matter["x-review"] == {"team": "prompts", "sla_days": 2}


def test_body_starts_after_the_closing_line_and_knows_its_file_line():
    prompt = parse_prompt_file(PATH, TRIAGE)
    assert prompt.body.startswith('{% message "system" %}')
    assert prompt.body_line == 16
    assert prompt.padded_body().splitlines()[15] == prompt.body.splitlines()[0]


def test_input_declarations_become_specs_with_required_unless_defaulted():
    inputs = parse_prompt_file(PATH, TRIAGE).inputs
    assert inputs is not None
    assert inputs["ticket"] == InputSpec("ticket", type="string", description="raw ticket text")
    assert inputs["ticket"].required is True
    assert inputs["tier"].enum == ("free", "pro", "enterprise")
    assert inputs["tier"].default == "free"
    assert inputs["tier"].required is False
    assert inputs["labels"].items == InputSpec("labels", type="string")


def test_type_name_shorthand_declares_a_typed_variable():
    prompt = parse_prompt_file(PATH, "---\ninput:\n  ticket: string\n  n:\n---\n{{ ticket }}\n")
    assert prompt.inputs == {
        "ticket": InputSpec("ticket", type="string"),
        "n": InputSpec("n"),
    }


def test_file_without_front_matter_is_a_text_prompt_whose_whole_content_is_the_body():
    text = "Summarise this:\n{{ article }}\n---\nnot front matter\n"
    prompt = parse_prompt_file(PATH, text)
    assert prompt.front_matter == {}
    assert prompt.inputs is None
    assert prompt.body == text
    assert prompt.body_line == 1


def test_empty_front_matter_gives_no_keys_and_no_input_section():
    prompt = parse_prompt_file(PATH, "---\n---\nbody\n")
    assert prompt.front_matter == {}
    assert prompt.inputs is None
    assert prompt.body == "body\n"


def test_an_empty_input_section_declares_no_variables():
    prompt = parse_prompt_file(PATH, "---\ninput:\n---\nbody\n")
    assert prompt.inputs == {}


def test_windows_line_endings_and_a_byte_order_mark_are_accepted():
    prompt = parse_prompt_file(PATH, "\ufeff---\r\ndescription: crlf\r\n---\r\nbody\r\n".encode())
    assert prompt.description == "crlf"
    assert prompt.body.strip() == "body"


def test_line_of_finds_a_field_or_its_nearest_parent():
    prompt = parse_prompt_file(PATH, TRIAGE)
    assert prompt.line_of("input.tier") == 7
    assert prompt.line_of("input.tier.enum") == 7
    assert prompt.line_of("samples[0]") == 14
    assert prompt.line_of("nothing.here") == 1


@pytest.mark.parametrize(
    ("text", "line", "field", "detail"),
    [
        pytest.param(
            "---\ndescription: a\nmodel: gpt: 4\n---\nb\n", 3, None, "bad YAML", id="bad-yaml"
        ),
        pytest.param(
            "---\ndescription: a\n\tmodel: x\n---\nb\n", 3, None, "bad YAML", id="tab-indent"
        ),
        pytest.param(
            "---\ndescription: a\nbody without a closing line\n",
            1,
            None,
            "never closed",
            id="unclosed",
        ),
        pytest.param(
            "---\n- a list\n- not a mapping\n---\nb\n", 2, None, "must be a mapping", id="list"
        ),
        pytest.param("---\njust words\n---\nb\n", 2, None, "must be a mapping", id="scalar"),
        pytest.param(
            "---\ndescription: a\nmodel: x\ndescription: b\n---\nb\n",
            4,
            "description",
            "duplicate key 'description'",
            id="duplicate-key",
        ),
        pytest.param(
            "---\ninput:\n  x: string\n  x: integer\n---\nb\n",
            4,
            "input.x",
            "duplicate key 'x'",
            id="duplicate-nested-key",
        ),
        pytest.param(
            "---\ndescription: a\nparams: 3\n---\nb\n", 3, "params", "must be a mapping",
            id="params-not-mapping",
        ),
        pytest.param(
            "---\ninput: [a, b]\n---\nb\n", 2, "input", "must be a mapping", id="input-list"
        ),
        pytest.param("---\ntags: support\n---\nb\n", 2, "tags", "must be a list", id="tags-str"),
        pytest.param("---\ntags: [a, 1]\n---\nb\n", 2, "tags", "strings", id="tags-not-strings"),
        pytest.param("---\nmodel: [a]\n---\nb\n", 2, "model", "must be a string", id="model"),
        pytest.param(
            "---\nsamples: {a: 1}\n---\nb\n", 2, "samples", "must be a list", id="samples-mapping"
        ),
        pytest.param(
            "---\nsamples:\n  - {a: 1}\n  - 3\n---\nb\n",
            4,
            "samples[1]",
            "each sample must be a mapping",
            id="sample-not-mapping",
        ),
    ],
)
def test_malformed_front_matter_is_reported_with_file_line_and_field(text, line, field, detail):
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(PATH, text)
    error = caught.value
    assert error.path == PATH
    assert error.line == line
    assert error.field == field
    assert detail in error.detail
    assert str(error).startswith(f"{PATH}:{line}: ")


@pytest.mark.parametrize(
    ("declaration", "field", "detail"),
    [
        pytest.param("{type: str}", "input.x.type", "unknown type 'str'", id="unknown-type"),
        pytest.param("{type: string, kind: a}", "input.x.kind", "unknown key 'kind'", id="key"),
        pytest.param("{1: a, kind: b}", "input.x.1", "unknown key '1'", id="mixed-key-types"),
        pytest.param("{enum: []}", "input.x.enum", "non-empty list", id="empty-enum"),
        pytest.param("{enum: a}", "input.x.enum", "non-empty list", id="enum-not-list"),
        pytest.param(
            "{type: integer, enum: [1, two]}", "input.x.enum", "expected integer", id="enum-type"
        ),
        pytest.param(
            "{type: integer, default: nope}", "input.x.default", "expected integer", id="default"
        ),
        pytest.param(
            "{type: string, enum: [a], default: b}",
            "input.x.default",
            "is not one of",
            id="default-outside-enum",
        ),
        pytest.param(
            "{type: string, items: string}", "input.x.items", "only allowed with type: array",
            id="items-without-array",
        ),
        pytest.param(
            "{type: array, items: {type: string, enum: [a]}, default: [b]}",
            "input.x.default",
            "item 0",
            id="default-item",
        ),
        pytest.param("{required: maybe}", "input.x.required", "true or false", id="required"),
        pytest.param("{description: 5}", "input.x.description", "must be a string", id="desc"),
        pytest.param("[1, 2]", "input.x", "mapping or a type name", id="declaration-list"),
    ],
)
def test_bad_input_declarations_name_the_field_and_its_line(declaration, field, detail):
    text = f"---\ndescription: d\ninput:\n  x: {declaration}\n---\n{{{{ x }}}}\n"
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(PATH, text)
    assert caught.value.line == 4
    assert caught.value.field == field
    assert detail in caught.value.detail


@pytest.mark.parametrize("name", ["_private", "my-var", "2fast"])
def test_variable_names_must_be_identifiers_not_starting_with_underscore(name):
    with pytest.raises(InvalidPromptFile, match="must be an identifier") as caught:
        parse_prompt_file(PATH, f"---\ninput:\n  {name}: string\n---\nb\n")
    assert caught.value.line == 3


def test_binary_and_non_utf8_files_are_refused_as_prompts():
    with pytest.raises(InvalidPromptFile, match="binary file"):
        parse_prompt_file(PATH, b"\x00\x01binary")
    with pytest.raises(InvalidPromptFile, match="not valid UTF-8") as caught:
        parse_prompt_file(PATH, b"line one\nline two \xff\n")
    assert caught.value.line == 2


_keys = st.sampled_from(
    ["type", "enum", "default", "items", "required", "description", "input", "samples", "x", 1]
)
_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)
_front_matter = st.fixed_dictionaries(
    {"input": st.dictionaries(st.sampled_from(["a", "b", "_c", 2]), _values, max_size=3)},
    optional={"samples": st.lists(_values, max_size=2), "tags": _values, "params": _values},
)


@settings(max_examples=75, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_front_matter)
def test_any_front_matter_either_parses_or_raises_invalid_prompt_file(front):
    text = "---\n" + yaml.safe_dump(front) + "---\nbody\n"
    try:
        prompt, error = parse_prompt_file(PATH, text), None
    except InvalidPromptFile as exc:
        prompt, error = None, exc
    if error is not None:
        assert error.path == PATH
        assert error.line is not None
    else:
        assert set(prompt.inputs or {}) <= {"a", "b"}
