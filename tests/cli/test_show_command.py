"""`promptctl show NAME[@REF]`."""

from __future__ import annotations

import pytest


def test_show_prints_where_the_version_comes_from_and_its_file(promptctl, repo):
    result = promptctl("show", "support/triage")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    sha = repo.git("rev-parse", "HEAD")
    assert lines[0].startswith("# support/triage v3  digest ")
    assert lines[1] == "# from working tree"
    assert lines[2].startswith(f"# first appeared in {sha[:10]} by Test Author on ")
    assert lines[2].endswith("(sharper triage)")
    assert lines[3] == "# partials: partials/tone.j2"
    assert lines[4] == "# file: prompts/support/triage.prompt"
    assert "\n".join(lines[5:]) + "\n" == (
        repo.path / "prompts/support/triage.prompt"
    ).read_text()


@pytest.mark.parametrize(
    ("ref", "label"),
    [("v1", "v1"), ("v2", "v2"), ("HEAD", "v3"), ("HEAD~2", "v1"), ("HEAD~1", "v2"),
     ("main", "v3"), ("release-1", "v1")],
)
def test_show_accepts_every_reference_form_after_the_at_sign(promptctl, ref, label):
    result = promptctl("show", f"support/triage@{ref}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"# support/triage {label}  digest ")


def test_show_accepts_a_digest_prefix_and_a_commit_sha(promptctl, repo, json_of):
    digest = json_of(promptctl("show", "support/triage@v2", "--json"))["digest"]
    assert json_of(promptctl("show", f"support/triage@{digest[:7]}", "--json"))["label"] == "v2"
    sha = repo.git("rev-parse", "HEAD~2")
    data = json_of(promptctl("show", f"support/triage@{sha}", "--json"))
    assert (data["label"], data["commit"]["sha"]) == ("v1", sha)


def test_show_json_carries_settings_inputs_front_matter_and_body(promptctl, json_of):
    data = json_of(promptctl("show", "support/triage@v1", "--json"))
    assert (data["prompt"], data["version"], data["label"]) == ("support/triage", 1, "v1")
    assert data["kind"] == "chat"
    assert data["model"] == "gpt-4o-mini"
    assert data["params"] == {"temperature": 0.2}
    assert data["path"] == "prompts/support/triage.prompt"
    assert data["inputs"]["tier"] == {
        "type": "string", "enum": ["free", "pro", "enterprise"], "default": "free",
        "required": False,
    }
    assert data["front_matter"]["owner"] == "support-team"
    assert data["body"].startswith('{% message "system" %}\nYou triage tickets.')
    assert data["first_commit"]["summary"] == "add triage and summarize"
    assert data["commit"]["author"] == "Test Author"


def test_show_body_only_prints_the_template_body(promptctl):
    result = promptctl("show", "summarize", "--body-only")
    assert result.exit_code == 0
    assert result.stdout == "Summarise in one line:\n{{ article }}\n"


def test_an_uncommitted_version_is_shown_without_a_number(promptctl, repo):
    repo.write("prompts/summarize.prompt", "Shorter: {{ article }}\n")
    lines = promptctl("show", "summarize").stdout.splitlines()
    assert lines[0].startswith("# summarize ")
    assert "v1" not in lines[0]
    assert lines[2] == "# not on branch 'main' yet: no version number"


def test_a_version_only_on_a_branch_is_shown_without_a_number(promptctl, repo, json_of):
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("feature work", {"prompts/summarize.prompt": "Feature {{ article }}"})
    repo.git("checkout", "-q", "main")
    data = json_of(promptctl("show", "summarize@feature", "--json"))
    assert data["version"] is None
    assert data["label"] == data["digest"][:12]
    assert data["first_commit"] is None
    assert "# not on branch 'main' yet" in promptctl("show", "summarize@feature").stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("support/triage@v9", "error: prompt 'support/triage' has no version 'v9' (it has v1..v3)"),
        ("support/triage@nope", "has no version 'nope' (not a vN number, a digest prefix"),
        ("support/triage@", "'support/triage@': nothing after '@'"),
        ("missing", "error: unknown prompt 'missing' at working tree"),
        ("bad name", "invalid prompt name 'bad name'"),
    ],
)
def test_show_errors_are_one_clear_line(promptctl, fails, spec, message):
    fails(promptctl("show", spec), message)
