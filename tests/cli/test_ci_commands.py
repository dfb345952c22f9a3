"""`promptctl ci`: the workflow written from a repository's layout, and the comment kept up
to date through GitHub's API (tests/fake_github.py on a real socket).

The whole recipe, run step by step, is tests/packaging/test_ci_recipe.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from fake_github import TOKEN, FakeGitHub, fake_github

from promptctl.cli.github_comments import GITHUB_BODY_LIMIT, cap_body
from promptctl.cli.main import cli

MARKER = "<!-- promptctl review -->"
NUMBER = 12


def workflow_of(text: str) -> dict:
    data = yaml.safe_load(text)
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


@pytest.fixture
def ci(runner: CliRunner, git_repo) -> Callable[..., Result]:
    """Run `promptctl --repo <an empty repository> ci ARGS`."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, ["--repo", str(git_repo.path), "ci", *args], env=env)

    return invoke


def test_workflow_paths_and_branch_follow_promptctl_toml(ci, git_repo) -> None:
    git_repo.write(
        "promptctl.toml", 'root = "llm/prompts"\npattern = "{name}.md"\nbranch = "trunk"\n'
    )

    result = ci("github-actions")

    assert result.exit_code == 0, result.output
    workflow = workflow_of(result.stdout)
    assert workflow["on"]["pull_request"]["paths"] == [
        "llm/prompts/**",
        "promptctl.toml",
        ".github/workflows/prompt-review.yml",
    ]
    assert workflow["env"]["TRACKED_BRANCH"] == "trunk"
    assert workflow["env"]["PROMPTCTL_REQUIREMENT"] == f"promptctl[cli]=={version('promptctl')}"
    assert "on: {push: {branches: [trunk]}}" in result.stdout


def test_root_option_wins_over_the_file_like_everywhere(runner, git_repo) -> None:
    git_repo.write("promptctl.toml", 'root = "prompts"\n')

    from_option = runner.invoke(
        cli, ["--repo", str(git_repo.path), "--root", "other", "ci", "github-actions"]
    )

    assert from_option.exit_code == 0, from_option.output
    assert workflow_of(from_option.stdout)["on"]["pull_request"]["paths"][0] == "other/**"


def test_prompts_at_the_top_run_on_every_change(ci, git_repo) -> None:
    git_repo.write("promptctl.toml", 'root = "."\n')

    result = ci("github-actions")

    assert result.exit_code == 0, result.output
    trigger = workflow_of(result.stdout)["on"]["pull_request"]
    assert "paths" not in trigger
    assert "at the repository's top" in result.stdout


def test_requirement_label_and_output_file(ci, git_repo, tmp_path: Path) -> None:
    target = tmp_path / "out" / ".github" / "workflows" / "prompt-review.yml"
    pinned = "promptctl[cli] @ git+https://github.com/acme/promptctl@v0.1.0"

    result = ci("github-actions", "-o", str(target), "--requirement", pinned, "--label", "ok-break")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {target}" in result.stderr
    workflow = workflow_of(target.read_text(encoding="utf-8"))
    assert workflow["env"]["PROMPTCTL_REQUIREMENT"] == pinned
    assert workflow["env"]["BREAKING_LABEL"] == "ok-break"


def test_json_says_what_the_workflow_was_made_of(ci, git_repo, tmp_path: Path) -> None:
    target = tmp_path / "prompt-review.yml"

    data = json.loads(ci("github-actions", "-o", str(target), "--json").stdout)

    assert data == {
        "output": str(target),
        "paths": ["prompts/**", "promptctl.toml", ".github/workflows/prompt-review.yml"],
        "tracked_branch": "main",
        "requirement": f"promptctl[cli]=={version('promptctl')}",
        "label": "prompt-breaking-ok",
        "workflow": None,
    }
    assert target.is_file()


def test_any_label_name_is_one_yaml_string(ci) -> None:
    for label in ("it's: fine # really", "yes", "123"):
        result = ci("github-actions", "--label", label)
        assert workflow_of(result.stdout)["env"]["BREAKING_LABEL"] == label


def test_a_label_on_two_lines_is_refused(ci, fails) -> None:
    fails(ci("github-actions", "--label", "one\ntwo"), "give a name on one line")


# -- ci comment ---------------------------------------------------------------------


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with fake_github(page_size=3) as fake:
        yield fake


@pytest.fixture
def comment(ci, github: FakeGitHub, tmp_path: Path) -> Callable[..., Result]:
    """Run `promptctl ci comment --file <text>` as a workflow step on pull request 12."""
    event = tmp_path / "event.json"

    def invoke(text: str, *args: str, fork: bool = False, token: str | None = TOKEN) -> Result:
        head = "someone/fork" if fork else github.repository
        event.write_text(
            json.dumps({"pull_request": {"number": NUMBER, "head": {"repo": {"full_name": head}}}})
        )
        body = tmp_path / "comment.md"
        body.write_text(text, encoding="utf-8")
        env = {
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": github.repository,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_TOKEN": token or "",
        }
        return ci("comment", "--file", str(body), *args, env=env)

    return invoke


def test_comment_is_created_then_updated_then_left_alone(comment, github) -> None:
    for n in range(7):
        github.add(NUMBER, f"remark {n}")

    created = comment("## report one\n")
    updated = comment("## report two\n")
    unchanged = comment("## report two\n", "--json")

    assert created.exit_code == 0, created.output
    assert "created the review comment on acme/prompts#12" in created.stdout
    assert "updated the review comment" in updated.stdout
    assert json.loads(unchanged.stdout)["action"] == "unchanged"
    ours = [c for c in github.comments[NUMBER] if c["body"].startswith(MARKER)]
    assert [c["body"] for c in ours] == [f"{MARKER}\n## report two\n"]
    assert [m for m, _ in github.writes()] == ["POST", "PATCH"]


def test_a_comment_someone_else_starts_with_the_marker_is_never_taken_over(comment, github) -> None:
    theirs = github.add(NUMBER, f"{MARKER}\nquoting the bot, as a joke")

    comment("## report one\n")
    comment("## report two\n")

    assert theirs["body"] == f"{MARKER}\nquoting the bot, as a joke"
    ours = [c for c in github.comments[NUMBER] if c["user"]["login"] == "github-actions[bot]"]
    assert [c["body"] for c in ours] == [f"{MARKER}\n## report two\n"]
    assert [m for m, _ in github.writes()] == ["POST", "PATCH"]


def test_author_option_names_whose_comment_is_kept(comment, github) -> None:
    mine = github.add(NUMBER, f"{MARKER}\nold report", user="release-bot")

    result = comment("## report\n", "--author", "release-bot")

    assert result.exit_code == 0, result.output
    assert mine["body"] == f"{MARKER}\n## report\n"
    assert len(github.comments[NUMBER]) == 1


def test_markers_keep_kinds_of_comment_apart(comment, github) -> None:
    comment("review of prompts\n")
    comment("review of policies\n", "--marker", "<!-- policies -->")

    assert len(github.comments[NUMBER]) == 2


def test_a_long_report_is_cut_under_githubs_limit_with_a_note(comment, github) -> None:
    report = "## report\n\n```diff\n" + "".join(f"+ line {n}\n" for n in range(20_000))

    result = comment(report)

    assert result.exit_code == 0, result.output
    assert "::warning title=prompt review::the comment was cut" in result.stdout
    [posted] = github.comments[NUMBER]
    assert len(posted["body"]) <= 65_000
    assert "Cut at 65,000 characters" in posted["body"]
    assert posted["body"].count("```") % 2 == 0, "the cut code block is closed"


def test_cap_closes_folds_and_leaves_short_bodies_alone() -> None:
    short = "<details><summary>x</summary>\n\nsmall\n</details>\n"
    assert cap_body(short) == (short, False)
    long = "<details><summary>samples</summary>\n\n" + "text line\n" * 10_000
    capped, cut = cap_body(long, 5_000)
    assert cut
    assert len(capped) <= 5_000 < GITHUB_BODY_LIMIT
    assert capped.count("<details") == capped.count("</details>")


def test_a_read_only_token_skips_with_a_notice(comment, github) -> None:
    github.read_only = True

    result = comment("## report\n", fork=True)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("::notice title=prompt review::comment skipped")
    assert "fork runs with a read-only token" in result.stdout
    assert github.comments.get(NUMBER, []) == []


def test_a_read_only_token_on_the_repositorys_own_branch_names_the_permission(
    comment, github
) -> None:
    github.read_only = True

    result = comment("## report\n")

    assert result.exit_code == 0, result.output
    assert "permissions: pull-requests: write" in result.stdout


def test_github_down_fails_the_step(comment, github, fails) -> None:
    github.down = True

    fails(comment("## report\n"), "GitHub answered 502 to GET")


def test_without_a_token_it_says_how_to_pass_one(comment, fails) -> None:
    fails(comment("## report\n", token=None), "GITHUB_TOKEN is not set")


def test_outside_a_pull_request_it_asks_for_the_number(ci, github, tmp_path, fails) -> None:
    body = tmp_path / "c.md"
    body.write_text("x")
    env = {"GITHUB_REPOSITORY": "acme/prompts", "GITHUB_TOKEN": TOKEN, "GITHUB_EVENT_PATH": ""}

    fails(ci("comment", "--file", str(body), env=env), "no pull request number")
