"""Callers cannot choose message roles the prompt does not allow, and `input` constrains
the shape of objects and array items."""

from __future__ import annotations

import pytest

from promptctl.registry.errors import InvalidPromptFile, TemplateError, VariablesInvalid
from promptctl.registry.prompts.promptfile import parse_prompt_file
from promptctl.registry.prompts.promptversion import version_from_files

LOOP = "{% for t in history %}{% message t.role %}{{ t.content }}{% endmessage %}{% endfor %}"


def version(text: str):
    return version_from_files(
        "chat", digest="0" * 64, root="prompts", relpath="chat.prompt",
        files={"chat.prompt": text}, source="test",
    )


def turns(*roles: str) -> dict:
    return {"history": [{"role": r, "content": f"as {r}"} for r in roles]}


def test_roles_from_data_default_to_user_and_assistant():
    rendered = version(LOOP).render(turns("user", "assistant", "user"))
    assert [m.role for m in rendered.messages] == ["user", "assistant", "user"]


def test_a_caller_cannot_add_a_system_message_through_data():
    with pytest.raises(TemplateError) as caught:
        version(LOOP).render(turns("user", "system"))
    assert str(caught.value) == (
        "prompts/chat.prompt:1: message role 'system' comes from data and is not allowed "
        "(allowed: user, assistant; a prompt allows more with 'roles:' in its front matter)"
    )


def test_a_literal_role_is_the_authors_choice_and_always_allowed():
    text = '{% message "system" %}Rules.{% endmessage %}' + LOOP
    rendered = version(text).render(turns("user"))
    assert [m.role for m in rendered.messages] == ["system", "user"]


def test_front_matter_roles_replace_the_default_allow_list():
    text = "---\nroles: [user, assistant, tool]\n---\n" + LOOP
    assert [m.role for m in version(text).render(turns("tool")).messages] == ["tool"]
    with pytest.raises(TemplateError, match="'system' comes from data"):
        version(text).render(turns("system"))


def test_roles_must_be_a_non_empty_list_of_names():
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file("prompts/chat.prompt", "---\nroles: []\n---\nHi.\n")
    assert str(caught.value) == (
        "prompts/chat.prompt:2: roles must be a non-empty list of role names (field 'roles')"
    )


SHAPED = """---
input:
  history:
    type: array
    items:
      type: object
      properties:
        role: {type: string, enum: [user, assistant]}
        content: string
        lang: {type: string, default: en}
---
""" + LOOP


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ([{"role": "system", "content": "x"}], "key 'role': \"system\" is not one of"),
        ([{"role": "user"}], "key 'content' is required"),
        ([{"role": "user", "content": 3}], "key 'content': expected string, got integer"),
        ([{"role": "user", "content": "x", "as": 1}], 'key "as" is not declared'),
        (["user"], "expected object, got string"),
    ],
)
def test_input_declares_the_shape_of_array_items_and_object_keys(history, problem):
    with pytest.raises(VariablesInvalid) as caught:
        version(SHAPED).render({"history": history})
    assert f"invalid variables for 'chat': 'history': item 0: {problem}" in str(caught.value)


def test_a_well_shaped_value_renders_and_optional_keys_may_be_left_out():
    rendered = version(SHAPED).render({"history": [{"role": "user", "content": "hi"}]})
    assert rendered.to_json() == {"messages": [{"role": "user", "content": "hi"}], "ignored": []}


def test_properties_belong_to_objects_only_and_are_declarations():
    with pytest.raises(InvalidPromptFile, match="properties is only allowed with type: object"):
        parse_prompt_file("p.prompt", "---\ninput:\n  x: {type: string, properties: {}}\n---\n")
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(
            "p.prompt", "---\ninput:\n  x:\n    type: object\n    properties: {a: {typ: 1}}\n---\n"
        )
    assert caught.value.field == "input.x.properties.a.typ"
    assert caught.value.line == 5


def test_declared_properties_show_in_the_declaration():
    spec = parse_prompt_file("p.prompt", SHAPED).inputs["history"]
    assert spec.to_dict()["items"]["properties"]["role"] == {
        "type": "string", "enum": ["user", "assistant"], "required": True,
    }
