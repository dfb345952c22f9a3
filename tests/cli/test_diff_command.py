"""`promptctl diff NAME [A [B]]`."""

from __future__ import annotations

from promptctl.cli.main import cli


def test_diff_without_changes_in_the_working_tree_says_so(promptctl):
    result = promptctl("diff", "support/triage")
    assert result.exit_code == 0
    assert result.stdout == "support/triage: no change (v3)\n"


def test_diff_compares_head_with_the_working_tree_by_default(promptctl, repo, json_of):
    text = (repo.path / "prompts/support/triage.prompt").read_text()
    repo.write(
        "prompts/support/triage.prompt",
        text.replace("model: gpt-4o-mini", "model: gpt-4o").replace("Triage now.", "Go."),
    )
    result = promptctl("diff", "support/triage")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    digest = json_of(promptctl("show", "support/triage", "--json"))["digest"]
    assert lines[0] == f"support/triage: v3 -> {digest[:12]}"
    assert lines[1] == '  ~ model: "gpt-4o-mini" -> "gpt-4o"'
    assert "-Triage now." in lines
    assert "+Go." in lines


def test_diff_between_two_versions_shows_partial_changes(promptctl):
    result = promptctl("diff", "support/triage", "v1", "v2")
    lines = result.stdout.splitlines()
    assert lines[0] == "support/triage: v1 -> v2"
    assert "--- a/partials/tone.j2" in lines
    assert "-Be kind." in lines
    assert "+Be brief." in lines
    assert not any(line.startswith("--- support/triage@") for line in lines)


def test_diff_names_variables_added_and_removed(promptctl, repo):
    text = (repo.path / "prompts/support/triage.prompt").read_text()
    text = text.replace("  urgent: {type: boolean, default: false}\n", "  locale: string\n")
    text = text.replace("{% if urgent %}", "{{ locale }}{% if false %}")
    text = text.replace(", urgent: true", ", locale: en")
    repo.write("prompts/support/triage.prompt", text)
    lines = promptctl("diff", "support/triage", "HEAD").stdout.splitlines()
    assert "  + variable locale" in lines
    assert "  - variable urgent" in lines


def test_diff_json_has_both_sides_and_every_part(promptctl, json_of):
    data = json_of(promptctl("diff", "support/triage", "release-1", "main", "--json"))
    assert data["old"]["label"] == "v1"
    assert data["new"]["label"] == "v3"
    assert data["unchanged"] is False
    assert data["variables"] == {"added": [], "removed": [], "changed": []}
    assert data["body"].startswith("--- support/triage@v1\n+++ support/triage@v3\n")
    assert list(data["partials"]) == ["partials/tone.j2"]


def test_a_new_prompt_diffs_against_nothing_and_a_removed_one_to_nothing(promptctl, repo):
    repo.write("prompts/fresh.prompt", "Fresh {{ x }}")
    assert promptctl("diff", "fresh").stdout.splitlines()[0].startswith("fresh: (none) -> ")
    repo.remove("prompts/summarize.prompt")
    assert promptctl("diff", "summarize").stdout.splitlines()[0] == "summarize: v1 -> (removed)"


def test_diff_before_the_first_commit_shows_the_whole_prompt_as_new(runner, tmp_path):
    target = tmp_path / "fresh"
    runner.invoke(cli, ["init", str(target)])
    result = runner.invoke(cli, ["--repo", str(target), "diff", "hello"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hello: (none) -> ")
    assert "  + variable user_name" in lines


def test_diff_of_a_prompt_that_exists_nowhere_is_a_clean_error(promptctl, fails):
    fails(promptctl("diff", "ghost"), "unknown prompt 'ghost' at HEAD or working tree")


def test_diff_with_an_unknown_reference_is_a_clean_error(promptctl, fails):
    fails(promptctl("diff", "support/triage", "v1", "v7"), "has no version 'v7' (it has v1..v3)")
