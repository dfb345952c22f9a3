"""`promptctl lint [NAME...]`."""

from __future__ import annotations

BROKEN = (
    "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n"
    '{{ x }}\n{% include "partials/nope.j2" %}\n'
)
WARNS = (
    "---\ninput:\n  x: string\n  spare: {type: string, default: s}\nsamples:\n  - {x: a}\n---\n"
    "{{ x }}\n"
)


def test_a_clean_library_lints_with_exit_0(promptctl):
    result = promptctl("lint")
    assert result.exit_code == 0
    assert result.stdout == "2 prompt(s) checked: 0 error(s), 0 warning(s)\n"


def test_warnings_alone_exit_0(promptctl, repo):
    repo.write("prompts/warns.prompt", WARNS)
    result = promptctl("lint")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "prompts/warns.prompt:4: warning: variable 'spare' is declared but never used "
        "[unused-variable]",
        "3 prompt(s) checked: 0 error(s), 1 warning(s)",
    ]


def test_errors_are_listed_with_file_and_line_and_exit_1(promptctl, repo):
    repo.write("prompts/broken.prompt", BROKEN)
    repo.write("prompts/warns.prompt", WARNS)
    result = promptctl("lint")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "prompts/broken.prompt:8: error: included file 'partials/nope.j2' does not exist "
        "[missing-include]",
        "prompts/warns.prompt:4: warning: variable 'spare' is declared but never used "
        "[unused-variable]",
        "4 prompt(s) checked: 1 error(s), 1 warning(s)",
    ]
    assert result.stderr == ""


def test_lint_json_counts_and_lists_findings_and_still_exits_1(promptctl, repo):
    import json

    repo.write("prompts/broken.prompt", BROKEN)
    result = promptctl("lint", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["checked"], data["errors"], data["warnings"]) == (3, 1, 0)
    assert data["findings"] == [{
        "path": "prompts/broken.prompt",
        "line": 8,
        "severity": "error",
        "code": "missing-include",
        "message": "included file 'partials/nope.j2' does not exist",
        "prompt": "broken",
    }]


def test_lint_of_named_prompts_checks_only_those(promptctl, repo):
    repo.write("prompts/broken.prompt", BROKEN)
    result = promptctl("lint", "summarize", "support/triage")
    assert result.exit_code == 0
    assert result.stdout == "2 prompt(s) checked: 0 error(s), 0 warning(s)\n"


def test_lint_at_a_revision_ignores_the_working_tree(promptctl, repo):
    repo.write("prompts/broken.prompt", BROKEN)
    result = promptctl("lint", "--rev", "HEAD")
    assert result.exit_code == 0
    assert result.stdout.startswith("2 prompt(s) checked")


def test_lint_of_an_unknown_prompt_is_a_clean_error(promptctl, fails):
    fails(promptctl("lint", "ghost"), "unknown prompt 'ghost' at working tree")


def test_a_markdown_file_read_as_jinja2_is_told_to_say_it_is_plain(promptctl, repo):
    repo.write("prompts/guide.prompt", "# Guide\n\n## Setup {#setup}\n\nRun `make`.\n")
    result = promptctl("lint", "guide")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "prompts/guide.prompt:3: error: template syntax error: Missing end of comment tag; "
        "if this file is plain text, set `template: plain` in its front matter or "
        '`template = "plain"` in promptctl.toml [template-syntax]'
    )
    rendered = promptctl("render", "guide")
    assert rendered.exit_code == 1
    assert "Missing end of comment tag; if this file is plain text" in rendered.stderr
