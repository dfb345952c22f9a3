"""A variable a version does not declare is ignored and reported, unless `strict: true`.

One application build can then serve a stable and a canary that differ by an optional
variable: the version that does not know it renders without it and says so.
"""

from __future__ import annotations

import pytest

from promptctl.registry.errors import InvalidPromptFile, VariablesInvalid
from promptctl.registry.prompts.lint import ERROR, WARNING, lint_library
from promptctl.registry.prompts.promptversion import version_from_files

TOLERANT = """\
---
input:
  ticket: string
---
{% message "user" %}{{ ticket }}{% endmessage %}
"""
STRICT = TOLERANT.replace("---\ninput:", "---\nstrict: true\ninput:", 1)


def version(text: str):
    return version_from_files(
        "triage", digest="0" * 64, root="prompts", relpath="triage.prompt",
        files={"triage.prompt": text}, source="test",
    )


def test_an_undeclared_variable_is_ignored_and_named_in_the_rendering():
    rendered = version(TOLERANT).render({"ticket": "help", "audience": "pro", "tone": "warm"})
    assert [m.content for m in rendered.messages] == ["help"]
    assert rendered.ignored == ("audience", "tone")
    assert rendered.to_json()["ignored"] == ["audience", "tone"]


def test_a_rendering_with_only_declared_variables_ignores_nothing():
    assert version(TOLERANT).render({"ticket": "help"}).ignored == ()


def test_an_ignored_variable_is_not_visible_to_the_template():
    guarded = TOLERANT.replace("{{ ticket }}", "{{ ticket }}{{ audience | default('-') }}")
    rendered = version(guarded).render({"ticket": "help", "audience": "pro"})
    assert rendered.messages[0].content == "help-"
    assert rendered.ignored == ("audience",)


def test_a_strict_prompt_refuses_an_undeclared_variable():
    with pytest.raises(VariablesInvalid) as caught:
        version(STRICT).render({"ticket": "help", "audience": "pro"})
    assert caught.value.problems == ["'audience' is not declared (declared: ticket)"]


def test_a_strict_prompt_still_renders_its_declared_variables():
    rendered = version(STRICT).render({"ticket": "help"})
    assert rendered.ignored == ()
    assert version(STRICT).prompt.strict is True
    assert version(TOLERANT).prompt.strict is False


def test_strict_must_be_true_or_false():
    with pytest.raises(InvalidPromptFile) as caught:
        version(TOLERANT.replace("---\ninput:", "---\nstrict: yes please\ninput:", 1))
    assert "'strict' must be true or false" in str(caught.value)


def test_lint_warns_of_a_sample_passing_an_undeclared_variable(git_repo, make_library):
    text = TOLERANT.replace("---\n{%", "samples:\n  - {ticket: t, tone: warm}\n---\n{%", 1)
    git_repo.write("prompts/p.prompt", text)
    findings = lint_library(make_library(git_repo), ["p"])
    assert [(f.severity, f.code, f.line) for f in findings] == [
        (WARNING, "sample-undeclared", 5)
    ]
    assert findings[0].message == "sample 1 passes 'tone', not declared in 'input': ignored"


def test_lint_fails_a_strict_prompts_sample_passing_an_undeclared_variable(
    git_repo, make_library
):
    text = STRICT.replace("---\n{%", "samples:\n  - {ticket: t, tone: warm}\n---\n{%", 1)
    git_repo.write("prompts/p.prompt", text)
    findings = lint_library(make_library(git_repo), ["p"])
    assert [(f.severity, f.code) for f in findings] == [(ERROR, "sample-fails")]
    assert "'tone' is not declared" in findings[0].message


def test_lint_still_rejects_a_template_using_a_variable_it_does_not_declare(
    git_repo, make_library
):
    git_repo.write("prompts/p.prompt", TOLERANT.replace("{{ ticket }}", "{{ ticket }}{{ tone }}"))
    findings = lint_library(make_library(git_repo), ["p"])
    assert ("undeclared-variable", ERROR) in [(f.code, f.severity) for f in findings]
