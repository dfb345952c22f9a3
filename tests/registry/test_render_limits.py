"""Rendering is bounded: hostile templates stop at a limit, named, and real prompts render."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptctl.registry.errors import RenderLimitExceeded, TemplateError
from promptctl.registry.prompts.render_limits import RenderLimits
from promptctl.registry.prompts.rendering import (
    compile_body,
    has_message_blocks,
    make_environment,
    render_compiled,
)

PATH = "prompts/bomb.prompt"
# Short enough for the suite; the defaults are checked separately below.
FAST = RenderLimits(timeout_seconds=0.2, max_output_chars=10_000, max_value_chars=100_000)


def render(body: str, variables: dict | None = None, limits: RenderLimits = FAST):
    env = make_environment(lambda _: None, lambda relpath: f"prompts/{relpath}")
    template = compile_body(env, body, repo_path=PATH)
    return render_compiled(
        template, variables or {}, chat=has_message_blocks(body), repo_path=PATH, limits=limits
    )


VALUE_BOMBS = {
    "exponent": "{{ (9**200000000) > 1 }}",
    "string repeat": "{{ 'a' * 10**9 }}",
    "list repeat": "{{ ([1] * 10**9)|length }}",
    "product growth": "{% set n = namespace(v=10) %}{% for i in range(40) %}"
    "{% set n.v = n.v * n.v %}{% endfor %}{{ n.v > 1 }}",
    "doubling with ~": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling with +": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "center filter": "{{ 'a'|center(1000000000) }}",
    "indent filter": "{{ ('x\n' * 1000)|indent(100000) }}",
    "replace filter": "{{ ('a' * 1000)|replace('a', 'b' * 10000) }}",
    "join of big items": "{{ ([('x' * 90000)] * 100)|join('') }}",
    "str.ljust": "{{ 'a'.ljust(1000000000) }}",
    "str.zfill": "{{ '1'.zfill(1000000000) }}",
    "str.replace": "{{ ('a' * 1000).replace('a', 'b' * 10000) }}",
    "str.format width": "{{ '{:>1000000000}'.format(1) }}",
    "printf width": "{{ '%1000000000d' % 1 }}",
    "printf star width": "{{ '%*d' % (1000000000, 1) }}",
    "format filter": "{{ '%1000000000d'|format(1) }}",
}


@pytest.mark.parametrize("body", VALUE_BOMBS.values(), ids=VALUE_BOMBS.keys())
def test_a_growing_value_stops_at_the_value_limit(body):
    with pytest.raises(RenderLimitExceeded) as caught:
        render(body)
    assert caught.value.limit == "max_value_chars"
    assert caught.value.path == PATH
    assert "render limit 'max_value_chars'" in str(caught.value)


TIME_BOMBS = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "loops over data": "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}"
    "{% endfor %}{% endfor %}",
    "branching macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
}


@pytest.mark.parametrize("body", TIME_BOMBS.values(), ids=TIME_BOMBS.keys())
def test_repeated_work_stops_at_the_time_limit(body):
    with pytest.raises(RenderLimitExceeded) as caught:
        render(body, {"xs": list(range(2000))})
    assert caught.value.limit == "timeout_seconds"
    assert "took longer than the limit of 0.2 s" in str(caught.value)


OUTPUT_BOMBS = {
    "literal text in a loop": "{% for i in range(100000) %}" + "x" * 60 + "{% endfor %}",
    "expressions in a loop": "{% for i in range(100000) %}{{ i }}{% endfor %}",
    "one message too long": '{% message "user" %}{% for i in range(200) %}{{ "y" * 100 }}'
    "{% endfor %}{% endmessage %}",
}


@pytest.mark.parametrize("body", OUTPUT_BOMBS.values(), ids=OUTPUT_BOMBS.keys())
def test_output_stops_at_the_output_limit(body):
    with pytest.raises(RenderLimitExceeded) as caught:
        render(body)
    assert caught.value.limit == "max_output_chars"


def test_text_built_in_a_message_block_counts_while_it_is_built():
    body = (
        '{% message "user" %}{% for i in range(100000) %}{{ "y" * 1000 }}{% endfor %}'
        "{% endmessage %}"
    )
    with pytest.raises(RenderLimitExceeded) as caught:
        render(body)
    assert caught.value.limit == "max_value_chars"
    assert "rendering produced more than 100,000 characters" in str(caught.value)


def test_compiling_a_folding_bomb_runs_none_of_it():
    env = make_environment(lambda _: None, lambda relpath: relpath)
    template = compile_body(env, "{{ 9 ** 200000000 }}{{ 'a' * 10**9 }}", repo_path=PATH)
    assert template is not None  # compiled without evaluating either expression


def test_the_error_names_the_line_of_the_template():
    with pytest.raises(RenderLimitExceeded) as caught:
        render("first line\nsecond {{ 'a' * 10**9 }}")
    assert caught.value.line == 2
    assert str(caught.value).startswith(f"{PATH}:2: ")


def test_templates_cannot_mutate_their_variables():
    with pytest.raises(TemplateError, match="unsafe"):
        render("{% set x = [1] %}{{ x.extend(x) }}")


def test_ordinary_templates_render_as_before_within_the_limits():
    rendered = render(
        "Hello {{ name }}: {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ '%05d' % 42 }} "
        "{{ '{:>6}'.format('hi') }} {{ 'x'|center(5) }}|"
        "{% for i in range(3) %}{{ i ~ '-' }}{% endfor %} {{ ['a', 'b']|join(',') }} "
        "{{ ('a' + 'b')|upper }} {{ '  pad  '.strip() }}",
        {"name": "Ada"},
    )
    assert rendered.text == "Hello Ada: 1024 ababab 00042     hi   x  |0-1-2- a,b AB pad"


def test_limits_are_settings_a_tighter_one_applies():
    small = RenderLimits(timeout_seconds=1, max_output_chars=20, max_value_chars=1000)
    assert render("{{ 'x' * 20 }}", limits=small).text == "x" * 20
    with pytest.raises(RenderLimitExceeded, match="passed the limit of 20 characters"):
        render("{{ 'x' * 21 }}", limits=small)


def test_the_default_limits_stop_a_bomb_too():
    with pytest.raises(RenderLimitExceeded):
        render("{{ 'a' * 10**9 }}", limits=RenderLimits())


_GROWTH = st.sampled_from(
    [
        "{{{{ 'ab' * {n} }}}}",
        "{{{{ 'ab'|center({n}) }}}}",
        "{{{{ 'a'.ljust({n}) }}}}",
        "{{{{ ('x' * 10)|replace('x', 'y' * {n}) }}}}",
        "{{{{ '%{n}d' % 1 }}}}",
        "{{% for i in range({n}) %}}ab{{% endfor %}}",
        "{{% set ns = namespace(s='a') %}}{{% for i in range({n} % 40) %}}"
        "{{% set ns.s = ns.s ~ ns.s %}}{{% endfor %}}{{{{ ns.s }}}}",
    ]
)


@settings(max_examples=60, deadline=None)
@given(pattern=_GROWTH, n=st.integers(min_value=0, max_value=10**12))
def test_any_growth_either_fits_the_limits_or_is_refused(pattern, n):
    body = pattern.format(n=n)
    assert _outcome(body) in ("refused", "fits")


def _outcome(body: str) -> str:
    try:
        rendered = render(body)
    except RenderLimitExceeded:
        return "refused"
    except TemplateError as exc:  # range() over Jinja's own bound is refused before it runs
        return "refused" if "MAX_RANGE" in str(exc) else f"failed: {exc}"
    size = len(rendered.text or "")
    return "fits" if size <= FAST.max_output_chars else f"{size} characters"
