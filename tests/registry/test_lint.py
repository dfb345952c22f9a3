"""Lint: every kind of finding, located by file and line, errors apart from warnings."""

from __future__ import annotations

import pytest

from promptctl.registry.prompts.lint import ERROR, WARNING, Finding, lint_library, lint_version

CLEAN = """\
---
description: Clean
input:
  ticket: string
  tier: {type: string, enum: [free, pro], default: free}
samples:
  - {ticket: "refund please"}
  - {ticket: "it is down", tier: pro}
---
{% message "system" %}{% include "partials/tone.j2" %} Tier {{ tier }}.{% endmessage %}
{% message "user" %}{{ ticket }}{% endmessage %}
"""


def lint_one(git_repo, make_library, text: str, *, name: str = "p", partials=None) -> list:
    git_repo.write(f"prompts/{name}.prompt", text)
    for relpath, partial in (partials or {}).items():
        git_repo.write(f"prompts/{relpath}", partial)
    return lint_library(make_library(git_repo), [name])


def located(findings: list[Finding]) -> list[tuple[str, int, str, str]]:
    return [(f.path, f.line, f.severity, f.code) for f in findings]


def test_a_clean_prompt_has_no_findings(git_repo, make_library):
    findings = lint_one(
        git_repo, make_library, CLEAN, partials={"partials/tone.j2": "Be kind."}
    )
    assert findings == []


def test_bad_yaml_is_an_error_at_its_line(git_repo, make_library):
    text = "---\ndescription: ok\nmodel: gpt: 4\n---\nbody\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 3, ERROR, "invalid-file")]
    assert "bad YAML in front matter" in findings[0].message
    assert str(findings[0]).startswith("prompts/p.prompt:3: error: bad YAML")


def test_a_wrong_front_matter_shape_is_an_error_at_the_field(git_repo, make_library):
    text = "---\ndescription: ok\ninput:\n  n: {type: int}\n---\n{{ n }}\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 4, ERROR, "invalid-file")]
    assert "unknown type 'int'" in findings[0].message


def test_a_template_syntax_error_is_an_error_at_its_file_line(git_repo, make_library):
    text = "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\nfine\n{% if x %}\n{{ x }\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 9, ERROR, "template-syntax")]
    assert findings[0].message.startswith("template syntax error")


def test_a_syntax_error_in_a_partial_points_into_the_partial(git_repo, make_library):
    findings = lint_one(
        git_repo,
        make_library,
        'Intro {% include "partials/bad.j2" %}',
        partials={"partials/bad.j2": "one\ntwo\n{% for %}\n"},
    )
    assert located(findings) == [("prompts/partials/bad.j2", 3, ERROR, "template-syntax")]


def test_an_undeclared_variable_is_an_error_at_its_first_use(git_repo, make_library):
    text = "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n{{ x }}\n\n{{ y }} {{ y }}\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 9, ERROR, "undeclared-variable")]
    assert findings[0].message == "variable 'y' is used but not declared in 'input'"


def test_an_undeclared_variable_in_a_partial_points_into_the_partial(git_repo, make_library):
    text = (
        "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n"
        '{{ x }}{% include "partials/t.j2" %}\n'
    )
    findings = lint_one(
        git_repo, make_library, text, partials={"partials/t.j2": "\nTone: {{ tone }}"}
    )
    assert located(findings) == [("prompts/partials/t.j2", 2, ERROR, "undeclared-variable")]


def test_guarded_and_loop_bound_names_need_no_declaration(git_repo, make_library):
    text = (
        "---\ninput:\n  turns: {type: array, items: object}\nsamples:\n"
        "  - {turns: [{role: user, content: hi}]}\n---\n"
        '{% set greeting = "hi" %}\n'
        '{% message "system" %}{{ product | default("it") }}'
        "{% if extra is defined %}, extra{% endif %}{% endmessage %}\n"
        "{% for t in turns %}{% message t.role %}{{ greeting }} {{ t.content }}{% endmessage %}"
        "{% endfor %}\n"
    )
    findings = lint_one(git_repo, make_library, text)
    assert findings == []


def test_a_declared_but_unused_variable_is_a_warning_at_its_declaration(git_repo, make_library):
    text = (
        "---\ninput:\n  x: string\n  spare: {type: string, default: s}\nsamples:\n"
        "  - {x: a}\n---\n{{ x }}\n"
    )
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 4, WARNING, "unused-variable")]
    assert findings[0].message == "variable 'spare' is declared but never used"


def test_a_variable_used_only_in_a_partial_counts_as_used(git_repo, make_library):
    text = '---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n{% include "partials/x.j2" %}\n'
    findings = lint_one(git_repo, make_library, text, partials={"partials/x.j2": "{{ x }}"})
    assert findings == []


def test_a_missing_include_is_an_error_at_the_include_line(git_repo, make_library):
    text = (
        "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n"
        '{{ x }}\n{% include "partials/gone.j2" %}\n'
    )
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 8, ERROR, "missing-include")]
    assert findings[0].message == "included file 'partials/gone.j2' does not exist"


def test_a_dynamic_include_is_an_error_because_versions_could_not_cover_it(git_repo, make_library):
    text = "---\ninput:\n  which: string\nsamples:\n  - {which: a.j2}\n---\n\n{% include which %}\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 8, ERROR, "dynamic-include")]


def test_a_sample_failing_validation_is_an_error_at_the_sample(git_repo, make_library):
    text = "---\ninput:\n  n: integer\nsamples:\n  - {n: 1}\n  - {n: \"two\"}\n---\n{{ n }}\n"
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 6, ERROR, "sample-fails")]
    assert findings[0].message.startswith("sample 2: invalid variables for 'p'")
    assert "expected integer, got string" in findings[0].message


def test_a_sample_failing_to_render_is_an_error_naming_where_it_failed(git_repo, make_library):
    text = (
        "---\ninput:\n  n: integer\nsamples:\n  - {n: 5}\n  - {n: 0}\n---\n"
        '{% include "partials/div.j2" %}\n'
    )
    findings = lint_one(
        git_repo, make_library, text, partials={"partials/div.j2": "ok\n{{ 10 // n }}"}
    )
    assert located(findings) == [("prompts/p.prompt", 6, ERROR, "sample-fails")]
    assert "ZeroDivisionError" in findings[0].message
    assert findings[0].message.endswith("(prompts/partials/div.j2:2)")


def test_a_sample_with_text_outside_message_blocks_fails(git_repo, make_library):
    text = (
        "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n"
        'stray {% message "user" %}{{ x }}{% endmessage %}\n'
    )
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 5, ERROR, "sample-fails")]
    assert "text outside message blocks" in findings[0].message


def test_declared_inputs_without_samples_are_a_warning(git_repo, make_library):
    text = '---\ninput:\n  x: string\n---\n{% message "user" %}{{ x }}{% endmessage %}\n'
    findings = lint_one(git_repo, make_library, text)
    assert located(findings) == [("prompts/p.prompt", 1, WARNING, "no-samples")]


def test_variables_used_without_an_input_section_are_a_warning(git_repo, make_library):
    findings = lint_one(git_repo, make_library, "---\ndescription: d\n---\nHi {{ who }}\n")
    assert located(findings) == [("prompts/p.prompt", 4, WARNING, "no-input")]


def test_a_plain_text_prompt_without_front_matter_lints_clean(git_repo, make_library):
    assert lint_one(git_repo, make_library, "Summarise {{ article }}.\n") == []


def test_lint_checks_every_prompt_by_default_and_sorts_findings(git_repo, make_library):
    git_repo.write("prompts/b.prompt", "---\ninput: [x]\n---\n")
    git_repo.write("prompts/a.prompt", "{% if %}")
    git_repo.write("prompts/ok.prompt", "fine")
    findings = lint_library(make_library(git_repo))
    assert [(f.path, f.code, f.prompt) for f in findings] == [
        ("prompts/a.prompt", "template-syntax", "a"),
        ("prompts/b.prompt", "invalid-file", "b"),
    ]


def test_lint_at_a_revision_reads_that_commit_not_the_working_tree(git_repo, make_library):
    git_repo.commit("broken", {"prompts/p.prompt": "{{ oops }"})
    git_repo.commit("fixed", {"prompts/p.prompt": "{{ fine }}"})
    git_repo.write("prompts/p.prompt", "{% broken again")
    library = make_library(git_repo)
    assert [f.code for f in lint_library(library, rev="HEAD~1")] == ["template-syntax"]
    assert lint_library(library, rev="HEAD") == []
    assert [f.code for f in lint_library(library)] == ["template-syntax"]


def test_lint_version_lints_a_loaded_version_with_its_own_partials(git_repo, make_library):
    git_repo.commit("v1", {
        "prompts/p.prompt": CLEAN,
        "prompts/partials/tone.j2": "Be {{ mood }}.",
    })
    findings = lint_version(make_library(git_repo).get("p", "v1"))
    assert located(findings) == [("prompts/partials/tone.j2", 1, ERROR, "undeclared-variable")]


@pytest.mark.parametrize("severity", [ERROR, WARNING])
def test_a_finding_reads_as_path_line_severity_message_and_code(severity):
    finding = Finding("prompts/a.prompt", 7, severity, "code-x", "what is wrong", "a")
    assert str(finding) == f"prompts/a.prompt:7: {severity}: what is wrong [code-x]"
    assert finding.to_json() == {
        "path": "prompts/a.prompt",
        "line": 7,
        "severity": severity,
        "code": "code-x",
        "message": "what is wrong",
        "prompt": "a",
    }


def test_mustache_variables_are_judged_as_jinja2_ones(git_repo, make_library):
    # A text file of a mustache repository: its variables are its own, as in Jinja2.
    git_repo.write("promptctl.toml", 'template = "mustache"\n')
    assert lint_one(git_repo, make_library, "Hi {{who}}\n") == []
    with_front_matter = "---\ndescription: d\n---\nHi {{who}} and {{all}}\n"
    findings = lint_one(git_repo, make_library, with_front_matter, name="q")
    assert located(findings) == [("prompts/q.prompt", 4, WARNING, "no-input")]
    assert "uses all, who but" in findings[0].message


PLAIN_HINT = (
    'if this file is plain text, set `template: plain` in its front matter or `template = "plain"`'
    " in promptctl.toml"
)


@pytest.mark.parametrize(
    ("text", "line", "jinja_says"),
    [
        ("# Guide\n\n## Setup {#setup}\n\nRun it.\n", 3, "Missing end of comment tag"),
        (
            "Intro\n\n```\nsome code\n```\n\n{{ x | }}\n",
            7,
            "expected token 'name', got 'end of print statement'",
        ),
        ("Hello {{ .Name }}, welcome.\n", 1, "unexpected '.'"),
    ],
)
def test_a_file_that_reads_as_plain_text_gets_a_hint_with_its_syntax_error(
    git_repo, make_library, text, line, jinja_says
):
    [finding] = lint_one(git_repo, make_library, text)
    assert located([finding]) == [("prompts/p.prompt", line, ERROR, "template-syntax")]
    assert finding.message == f"template syntax error: {jinja_says}; {PLAIN_HINT}"


def test_a_mustache_looking_file_is_told_of_both_styles(git_repo, make_library):
    [finding] = lint_one(git_repo, make_library, "{{#items}}- {{name}}\n{{/items}}\n")
    assert finding.message.endswith(
        f"; {PLAIN_HINT} (`template: mustache` if it is a mustache template)"
    )


def test_a_jinja2_template_with_an_anchor_is_told_how_to_write_it_as_text(
    git_repo, make_library
):
    text = "{% if x %}## Setup {#setup}{% endif %}\n"
    [finding] = lint_one(git_repo, make_library, text)
    assert "Missing end of comment tag; a `{#` starts a Jinja2 comment" in finding.message
    assert "template: plain" not in finding.message


@pytest.mark.parametrize(
    "text",
    [
        "{% if x %}{{ x }\n",  # a Jinja2 template with a mistake in it
        "Dear {{ name }\n",  # nothing in it says it is anything but Jinja2
    ],
)
def test_a_jinja2_mistake_gets_no_plain_text_hint(git_repo, make_library, text):
    [finding] = lint_one(git_repo, make_library, text)
    assert finding.code == "template-syntax"
    assert "template: plain" not in finding.message


def test_a_partial_gets_no_hint_it_could_not_follow(git_repo, make_library):
    findings = lint_one(
        git_repo,
        make_library,
        'Intro {% include "partials/doc.md" %}',
        partials={"partials/doc.md": "## Setup {#setup}\n"},
    )
    assert located(findings) == [("prompts/partials/doc.md", 1, ERROR, "template-syntax")]
    assert findings[0].message == "template syntax error: Missing end of comment tag"


def test_a_file_named_plain_in_its_front_matter_lints_clean(git_repo, make_library):
    text = "---\ntemplate: plain\n---\n# Guide\n\n## Setup {#setup}\n\nRun it.\n"
    assert lint_one(git_repo, make_library, text) == []
