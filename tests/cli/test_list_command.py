"""`promptctl list`."""

from __future__ import annotations

from promptctl.cli.main import cli


def rows(stdout: str) -> list[list[str]]:
    return [line.split(None, 5) for line in stdout.splitlines()]


def test_list_prints_a_table_of_prompts_with_version_digest_kind_and_model(promptctl, json_of):
    result = promptctl("list")
    assert result.exit_code == 0
    table = rows(result.stdout)
    assert table[0] == ["NAME", "VERSION", "DIGEST", "KIND", "MODEL", "DESCRIPTION"]
    digests = {e["prompt"]: e["digest"][:12] for e in json_of(promptctl("list", "--json"))}
    assert table[1] == ["summarize", "v1", digests["summarize"], "text", "-"]
    assert table[2] == [
        "support/triage", "v3", digests["support/triage"], "chat", "gpt-4o-mini",
        "Triage a support ticket",
    ]


def test_list_json_gives_each_prompt_without_its_content(promptctl, json_of):
    entries = json_of(promptctl("list", "--json"))
    assert [e["prompt"] for e in entries] == ["summarize", "support/triage"]
    triage = entries[1]
    assert (triage["version"], triage["label"], triage["kind"]) == (3, "v3", "chat")
    assert len(triage["digest"]) == 64
    assert triage["source"] == "working tree"
    assert triage["partials"] == ["partials/tone.j2"]
    assert triage["first_commit"]["summary"] == "sharper triage"
    assert "body" not in triage
    assert "front_matter" not in triage


def test_list_at_a_revision_shows_the_versions_there(promptctl, json_of):
    entries = json_of(promptctl("list", "--rev", "release-1", "--json"))
    assert [(e["prompt"], e["label"]) for e in entries] == [
        ("summarize", "v1"), ("support/triage", "v1"),
    ]


def test_an_uncommitted_change_is_listed_as_new(promptctl, repo):
    repo.write("prompts/summarize.prompt", "Summarise briefly: {{ article }}")
    repo.write("prompts/draft.prompt", "Draft.")
    table = rows(promptctl("list").stdout)
    assert [r[:2] for r in table[1:]] == [
        ["draft", "(new)"], ["summarize", "(new)"], ["support/triage", "v3"],
    ]


def test_an_invalid_prompt_is_listed_with_its_error_not_hidden(promptctl, repo, json_of):
    repo.write("prompts/broken.prompt", "---\ndescription: [unclosed\n---\nbody\n")
    result = promptctl("list")
    assert result.exit_code == 0
    broken = [line for line in result.stdout.splitlines() if line.startswith("broken")]
    assert "INVALID: prompts/broken.prompt:" in broken[0]
    entry = json_of(promptctl("list", "--json"))[0]
    assert entry["prompt"] == "broken"
    assert entry["error"].startswith("prompts/broken.prompt:")


def test_an_empty_library_says_where_it_looked(promptctl, make_git_repo):
    result = promptctl("list", repo=make_git_repo("empty"))
    assert result.exit_code == 0
    assert result.stdout == "No prompts under prompts (pattern {name}.prompt).\n"


def test_root_and_pattern_options_and_environment_variables_adopt_a_layout(
    runner, make_git_repo, json_of, monkeypatch
):
    repo = make_git_repo("folders")
    repo.commit("one folder per prompt", {
        "assistants/billing/system.md": "Billing {{ q }}",
        "assistants/billing/README.md": "not a prompt",
        "assistants/eu/shipping/system.md": "Shipping",
    })
    args = ["--repo", str(repo.path), "--root", "assistants", "--pattern", "{name}/system.md"]
    entries = json_of(runner.invoke(cli, [*args, "list", "--json"]))
    listed = [(e["prompt"], e["label"]) for e in entries]
    assert listed == [("billing", "v1"), ("eu/shipping", "v1")]
    monkeypatch.setenv("PROMPTCTL_REPO", str(repo.path))
    monkeypatch.setenv("PROMPTCTL_ROOT", "assistants")
    monkeypatch.setenv("PROMPTCTL_PATTERN", "{name}/system.md")
    entries = json_of(runner.invoke(cli, ["list", "--json"]))
    assert [e["prompt"] for e in entries] == ["billing", "eu/shipping"]


def test_commands_on_a_bare_repository_read_head(promptctl, repo, tmp_path, json_of):
    bare = tmp_path / "bare.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    entries = json_of(promptctl("list", "--json", repo=bare))
    assert [(e["prompt"], e["label"]) for e in entries] == [
        ("summarize", "v1"), ("support/triage", "v3"),
    ]
    assert entries[1]["commit"]["sha"] == repo.git("rev-parse", "HEAD")
    rendered = json_of(promptctl("render", "summarize", "--var", "article=A", "--json", repo=bare))
    assert rendered["text"] == "Summarise in one line:\nA"
    assert promptctl("lint", repo=bare).stdout.startswith("2 prompt(s) checked: 0 error(s)")
    assert promptctl("diff", "support/triage", repo=bare).stdout == (
        "support/triage: no change (v3)\n"
    )
