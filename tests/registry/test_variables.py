"""Validating variables against input declarations before a prompt renders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptctl.registry.errors import VariablesInvalid
from promptctl.registry.prompts.variables import (
    INPUT_TYPES,
    InputSpec,
    coerce_text,
    undeclared,
    validate_variables,
)

INPUTS = {
    "ticket": InputSpec("ticket", type="string"),
    "tier": InputSpec(
        "tier", type="string", enum=("free", "pro"), default="free", has_default=True,
        required=False,
    ),
    "retries": InputSpec("retries", type="integer", required=False),
    "tags": InputSpec("tags", type="array", items=InputSpec("tags", type="string"), required=False),
}


def problems_of(inputs, given, *, strict=False):
    with pytest.raises(VariablesInvalid) as caught:
        validate_variables("support/triage", inputs, given, strict=strict)
    return caught.value.problems


def test_declared_defaults_are_filled_in_and_given_values_kept():
    values = validate_variables("support/triage", INPUTS, {"ticket": "help"})
    assert values == {"ticket": "help", "tier": "free"}


def test_a_missing_required_variable_is_named():
    assert problems_of(INPUTS, {}) == ["'ticket' is required"]


def test_an_undeclared_variable_is_left_out_and_named():
    given_values = {"ticket": "t", "tone": "warm", "mood": "calm"}
    values = validate_variables("support/triage", INPUTS, given_values)
    assert values == {"ticket": "t", "tier": "free"}
    assert undeclared(INPUTS, given_values) == ("tone", "mood")


def test_strict_refuses_an_undeclared_variable_and_lists_the_declared_ones():
    problems = problems_of(INPUTS, {"ticket": "t", "tone": "warm"}, strict=True)
    assert problems == ["'tone' is not declared (declared: retries, tags, ticket, tier)"]


def test_every_problem_is_reported_at_once_in_the_message():
    with pytest.raises(VariablesInvalid) as caught:
        validate_variables("support/triage", INPUTS, {"tier": "gold", "extra": 1}, strict=True)
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("invalid variables for 'support/triage': ")


def test_a_value_outside_the_enum_lists_the_allowed_values():
    assert problems_of(INPUTS, {"ticket": "t", "tier": "gold"}) == [
        "'tier': \"gold\" is not one of \"free\", \"pro\""
    ]


@pytest.mark.parametrize(
    ("kind", "value", "got"),
    [
        ("integer", True, "boolean"),
        ("integer", 1.5, "number"),
        ("integer", "3", "string"),
        ("number", False, "boolean"),
        ("boolean", 1, "integer"),
        ("boolean", "true", "string"),
        ("string", 7, "integer"),
        ("string", None, "null"),
        ("array", "a,b", "string"),
        ("object", [1], "array"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_and_bool_is_not_a_number(kind, value, got):
    inputs = {"v": InputSpec("v", type=kind)}
    assert problems_of(inputs, {"v": value}) == [f"'v': expected {kind}, got {got}"]


def test_numbers_accept_integers_and_floats():
    inputs = {"v": InputSpec("v", type="number")}
    assert validate_variables("p", inputs, {"v": 2}) == {"v": 2}
    assert validate_variables("p", inputs, {"v": 2.5}) == {"v": 2.5}


@pytest.mark.parametrize(("enum", "value"), [((0, 1, 2), True), ((True,), 1), ((0,), False)])
def test_an_untyped_enum_does_not_confuse_booleans_with_integers(enum, value):
    inputs = {"v": InputSpec("v", enum=enum)}
    assert "is not one of" in problems_of(inputs, {"v": value})[0]


def test_array_items_are_checked_one_by_one():
    problems = problems_of(INPUTS, {"ticket": "t", "tags": ["ok", 3]})
    assert problems == ["'tags': item 1: expected string, got integer"]
    values = validate_variables("p", INPUTS, {"ticket": "t", "tags": ["a", "b"]})
    assert values["tags"] == ["a", "b"]


def test_an_optional_variable_without_default_is_simply_absent():
    values = validate_variables("p", INPUTS, {"ticket": "t"})
    assert "retries" not in values


def test_a_prompt_without_input_section_accepts_any_variables():
    assert validate_variables("p", None, {"anything": [1, {"x": None}]}) == {
        "anything": [1, {"x": None}]
    }


def test_an_empty_input_section_ignores_every_variable_or_refuses_them_when_strict():
    assert validate_variables("p", {}, {"x": 1}) == {}
    assert undeclared({}, {"x": 1}) == ("x",)
    assert problems_of({}, {"x": 1}, strict=True) == ["'x' is not declared (declared: none)"]


def test_a_prompt_without_input_section_ignores_nothing():
    assert undeclared(None, {"anything": 1}) == ()


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("string", "42", "42"),
        (None, "42", "42"),
        ("integer", "42", 42),
        ("number", "2.5", 2.5),
        ("boolean", "yes", True),
        ("boolean", "off", False),
        ("boolean", "maybe", "maybe"),
        ("array", '["a", 1]', ["a", 1]),
        ("object", '{"k": 1}', {"k": 1}),
        ("integer", "not json", "not json"),
    ],
)
def test_command_line_text_is_coerced_to_the_declared_type(kind, raw, value):
    assert coerce_text(InputSpec("v", type=kind), raw) == value


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _specs(draw):
    kind = draw(st.none() | st.sampled_from(INPUT_TYPES))
    enum = draw(st.none() | st.lists(_json, min_size=1, max_size=3).map(tuple))
    items = None
    if kind == "array":
        item_type = st.sampled_from(INPUT_TYPES)
        items = draw(st.none() | st.builds(InputSpec, st.just("item"), item_type))
    has_default = draw(st.booleans())
    return InputSpec(
        "v",
        type=kind,
        enum=enum,
        default=draw(_json) if has_default else None,
        has_default=has_default,
        required=draw(st.booleans()),
        items=items,
    )


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _specs(), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _json, max_size=4),
    st.booleans(),
)
def test_validation_never_raises_anything_but_variables_invalid(inputs, given_values, strict):
    try:
        values = validate_variables("p", inputs, given_values, strict=strict)
        problems = []
    except VariablesInvalid as exc:
        values, problems = None, exc.problems
    if values is None:
        assert problems
        return
    ignored = undeclared(inputs, given_values)
    assert set(ignored) == set(given_values) - set(inputs)
    if strict:
        assert not ignored
    assert set(values) >= set(given_values) - set(ignored)
    assert set(values) <= set(inputs)
