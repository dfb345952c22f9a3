"""`promptctl log NAME`."""

from __future__ import annotations


def test_log_lists_versions_newest_first_and_marks_the_current_one(promptctl, repo):
    result = promptctl("log", "support/triage")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "DIGEST", "COMMIT", "DATE", "AUTHOR", "MESSAGE"]
    shas = [repo.git("rev-parse", f"HEAD~{n}")[:10] for n in (0, 1, 2)]
    assert [line.split()[0] for line in lines[1:]] == ["v3", "v2", "v1"]
    assert [line.split()[2] for line in lines[1:]] == shas
    assert lines[1].split()[-3:] == ["triage", "<-", "main"]
    assert lines[2].endswith("brief tone")
    assert "Test Author" in lines[3]
    assert lines[3].endswith("add triage and summarize")


def test_log_json_lists_versions_and_every_change(promptctl, repo, json_of):
    repo.git("revert", "--no-edit", "HEAD")
    data = json_of(promptctl("log", "support/triage", "--json"))
    assert data["prompt"] == "support/triage"
    assert data["branch"] == "main"
    assert [v["label"] for v in data["versions"]] == ["v3", "v2", "v1"]
    assert data["current"] == data["versions"][1]["digest"]
    assert [c["version"] for c in data["changes"]] == [2, 3, 2, 1]
    assert data["changes"][0]["commit"]["summary"].startswith('Revert "sharper triage"')
    assert data["versions"][0]["commit"]["sha"] == repo.git("rev-parse", "HEAD~1")


def test_log_after_a_revert_marks_the_earlier_version_as_current(promptctl, repo):
    repo.git("revert", "--no-edit", "HEAD")
    lines = promptctl("log", "support/triage").stdout.splitlines()
    assert lines[2].startswith("v2")
    assert lines[2].endswith("<- main")
    assert not lines[1].endswith("<- main")


def test_log_of_a_removed_prompt_says_where_it_was_removed(promptctl, repo):
    repo.remove("prompts/summarize.prompt")
    sha = repo.commit("drop summarize")
    result = promptctl("log", "summarize")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == f"(removed from main in {sha[:10]})"


def test_log_follows_the_tracked_branch_given_by_option(promptctl, repo, json_of):
    repo.git("checkout", "-q", "-b", "next")
    repo.commit("next only", {"prompts/summarize.prompt": "Next: {{ article }}"})
    assert len(json_of(promptctl("log", "summarize", "--json"))["versions"]) == 1
    data = json_of(promptctl("--branch", "next", "log", "summarize", "--json"))
    assert data["branch"] == "next"
    assert [v["label"] for v in data["versions"]] == ["v2", "v1"]


def test_log_of_an_unknown_prompt_is_a_clean_error(promptctl, fails):
    fails(promptctl("log", "nothing"), "unknown prompt 'nothing' at any commit of branch 'main'")


def test_log_without_commits_says_there_are_none(promptctl, make_git_repo, fails):
    repo = make_git_repo("empty")
    repo.write("prompts/a.prompt", "A")
    fails(promptctl("log", "a", repo=repo), "the repository has no commits yet")


def test_log_with_a_missing_tracked_branch_names_the_branches_there(promptctl, fails):
    line = fails(promptctl("--branch", "trunk", "log", "summarize"), "tracked branch 'trunk'")
    assert "(local branches: main)" in line
    assert "--branch or PROMPTCTL_BRANCH" in line
