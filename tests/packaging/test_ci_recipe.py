"""The CI recipe runs as written: examples/github-actions/prompt-review.yml's shell steps,
run here against a pull request between two branches, without GitHub.

- The repository: `origin` (made with `git`) holds `main`, where prompts/greet.prompt has
  two versions (v1, v2), and a pull request's branch. The workspace is a clone of it as
  actions/checkout leaves one for a pull request: the merge commit of the branch into
  main, checked out on no branch, with no local `main` (only origin/*). So the recipe's
  own fetch step is what makes the base version read `v2`, not a digest.
- The job runs with tests/workflow_runner.py: each `run:` step with bash as GitHub runs
  it, with GITHUB_* variables, the event file, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.
- Substituted: the "Install promptctl" step. It would `pip install` the pinned release
  from the index; here the promptctl under test, installed beside this interpreter, is put
  first on PATH instead (and the pin is checked to be this version). actions/checkout and
  actions/setup-python are stood in for by the workspace and this interpreter.
- GitHub's REST API is tests/fake_github.py on a real socket, two comments a page.

The tests that run the job are marked slow (each runs a few promptctl commands and clones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from fake_github import TOKEN, FakeGitHub, fake_github
from remotes import GIT_ENV, git
from support import promptctl_command
from workflow_runner import JobResult, load_workflow, run_job, runner_environment

CHECKOUT = Path(__file__).resolve().parents[2]
RECIPE = CHECKOUT / "examples" / "github-actions" / "prompt-review.yml"
MARKER = "<!-- promptctl review -->"
NUMBER = 7
GREET = "prompts/greet.prompt"


def greet(body: str, *, extra_input: str = "", sample: str = "{name: Ada}") -> str:
    return (
        "---\n"
        "description: Greet a user\n"
        "model: gpt-4o-mini\n"
        "input:\n"
        "  name: {type: string}\n"
        f"{extra_input}"
        "samples:\n"
        f"  - {sample}\n"
        "---\n"
        f"{body}\n"
    )


CLEAN = greet("Hello {{ name }}, welcome back!")
BREAKING = greet(
    "Hello {{ name }} ({{ locale }})!",
    extra_input="  locale: {type: string}\n",
    sample="{name: Ada, locale: en}",
)
LINT_ERROR = greet("Hello {{ name }}, alias {{ nickname }}!")


def commit(repo: Path, message: str, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        (repo / relpath).parent.mkdir(parents=True, exist_ok=True)
        (repo / relpath).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@dataclass
class PullRequest:
    """origin with main and a pull request's branch; `run` runs the recipe's job on it."""

    origin: Path
    tmp: Path
    github: FakeGitHub
    runs: int = 0

    def push(self, files: dict[str, str], branch: str = "feature") -> None:
        """Commit `files` on the pull request's branch in origin (created from main)."""
        if branch not in git(self.origin, "branch", "--format=%(refname:short)").split():
            git(self.origin, "branch", branch, "main")
        git(self.origin, "checkout", "-q", branch)
        commit(self.origin, f"change on {branch}", files)
        git(self.origin, "checkout", "-q", "main")

    def checkout(self, branch: str) -> Path:
        """What actions/checkout leaves for a pull request: the merge commit, no branch."""
        self.runs += 1
        workspace = self.tmp / f"workspace-{self.runs}"
        git(self.tmp, "clone", "-q", str(self.origin), str(workspace))
        git(workspace, "checkout", "-q", "--detach", "origin/main")
        git(workspace, "merge", "-q", "--no-ff", "-m", "Merge pull request", f"origin/{branch}")
        git(workspace, "branch", "-q", "-D", "main")
        return workspace

    def run(
        self,
        branch: str = "feature",
        *,
        labels: tuple[str, ...] = (),
        from_fork: bool = False,
    ) -> JobResult:
        workspace = self.checkout(branch)
        scratch = self.tmp / f"runner-{self.runs}"
        scratch.mkdir()
        head_repo = "someone/prompts-fork" if from_fork else self.github.repository
        event = {
            "action": "synchronize",
            "number": NUMBER,
            "pull_request": {
                "number": NUMBER,
                "labels": [{"name": label} for label in labels],
                "base": {"ref": "main", "repo": {"full_name": self.github.repository}},
                "head": {"ref": branch, "repo": {"full_name": head_repo}},
            },
            "repository": {"full_name": self.github.repository},
        }
        event_path = scratch / "event.json"
        event_path.write_text(json.dumps(event))
        env = runner_environment()
        env.update(GIT_ENV)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_API_URL": self.github.url,
                "GITHUB_REPOSITORY": self.github.repository,
                "GITHUB_EVENT_NAME": "pull_request",
                "GITHUB_EVENT_PATH": str(event_path),
                "GITHUB_BASE_REF": "main",
                "GITHUB_HEAD_REF": branch,
                "GITHUB_REF": f"refs/pull/{NUMBER}/merge",
                "GITHUB_SHA": git(workspace, "rev-parse", "HEAD"),
                "GITHUB_WORKSPACE": str(workspace),
            }
        )
        return run_job(
            load_workflow(RECIPE),
            "review",
            workspace=workspace,
            github={"token": TOKEN, "event": event, "base_ref": "main", "head_ref": branch},
            env=env,
            secrets={},  # no PROMPTCTL_SERVER: nothing released, the report says so
            emulated={
                "actions/checkout": "the workspace is the checkout",
                "actions/setup-python": f"this interpreter, {sys.executable}",
            },
            replaced={"Install promptctl": INSTALLED},
            scratch=scratch,
        )


# The install step, replaced: the promptctl under test comes first on PATH.
INSTALLED = f'echo "$PROMPTCTL_REQUIREMENT: using {Path(promptctl_command()[0]).parent}"\n'


@pytest.fixture(autouse=True)
def installed_promptctl_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the promptctl under test first on PATH: the "Install promptctl" step's stand-in."""
    command = Path(promptctl_command()[0])
    assert command.name == "promptctl", "the recipe test needs the installed promptctl command"
    monkeypatch.setenv("PATH", f"{command.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def pull_request(tmp_path: Path) -> Iterator[PullRequest]:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    commit(
        origin,
        "add greet",
        {"promptctl.toml": 'root = "prompts"\n', GREET: greet("Hi {{ name }}.")},
    )
    commit(origin, "friendlier greet", {GREET: greet("Hello {{ name }}!")})
    with fake_github() as github:
        yield PullRequest(origin, tmp_path, github)


def comment_bodies(github: FakeGitHub) -> list[str]:
    return [c["body"] for c in github.comments.get(NUMBER, []) if c["body"].startswith(MARKER)]


def test_the_recipe_pins_this_promptctl_as_the_readme_installs_it() -> None:
    workflow = load_workflow(RECIPE)
    assert workflow["env"]["PROMPTCTL_REQUIREMENT"] == f"promptctl[cli]=={version('promptctl')}"
    install = next(s for s in workflow["jobs"]["review"]["steps"] if s.get("id") == "install")
    assert install["run"] == 'python -m pip install "$PROMPTCTL_REQUIREMENT"'
    assert "<your-org>" not in RECIPE.read_text(encoding="utf-8")


def test_the_example_is_what_the_generator_writes_for_this_repository() -> None:
    written = subprocess.run(
        [*promptctl_command(), "--repo", str(CHECKOUT), "ci", "github-actions"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert written == RECIPE.read_text(encoding="utf-8"), (
        "examples/github-actions/prompt-review.yml is stale: "
        "promptctl ci github-actions -o examples/github-actions/prompt-review.yml"
    )
    triggers = load_workflow(RECIPE)["on"]["pull_request"]
    assert triggers["paths"] == [
        "prompts/**",
        "promptctl.toml",
        ".github/workflows/prompt-review.yml",
    ]
    assert {"labeled", "unlabeled", "synchronize"} <= set(triggers["types"])


@pytest.mark.slow  # runs the job: a few promptctl commands and git clones
def test_comment_is_created_once_then_updated_among_many_comments(
    pull_request: PullRequest,
) -> None:
    github = pull_request.github
    for n in range(5):  # the report lands on page 4 of 2-comment pages
        github.add(NUMBER, f"review remark {n}")
    github.add(NUMBER, f"> {MARKER}\n> quoting the report: keep mine")  # a reply, not ours
    pull_request.push({GREET: CLEAN})

    first = pull_request.run()

    assert first.ok, first.log
    [body] = comment_bodies(github)
    assert "greet" in body
    assert "`v2`" in body, "the base version must be numbered (the fetch step), not a digest"
    assert body.removeprefix(MARKER + "\n") in first.summary, "the report is in the summary too"
    assert [m for m, _ in github.writes()] == ["POST"]

    pull_request.push({GREET: CLEAN.replace("welcome back", "good to see you")})
    github.add(NUMBER, "another remark after the first run")
    github.requests.clear()
    second = pull_request.run()

    assert second.ok, second.log
    [updated] = comment_bodies(github)
    assert "good to see you" in updated
    assert updated != body
    assert [m for m, _ in github.writes()] == ["PATCH"], "updated, never posted twice"
    assert github.pages_read() >= 4, "the lookup read every page"
    assert len(github.comments[NUMBER]) == 8
    assert github.comments[NUMBER][5]["body"].startswith("> "), "the quoting reply is untouched"


@pytest.mark.slow  # runs the job: a few promptctl commands and git clones
def test_lint_failure_still_posts_the_comment_then_fails_the_job(
    pull_request: PullRequest,
) -> None:
    pull_request.push({GREET: LINT_ERROR})

    job = pull_request.run()

    assert not job.ok
    assert job.step("Lint").outputs["exit_code"] == "1"
    assert job.step("Comment on the pull request").returncode == 0, job.log
    [body] = comment_bodies(pull_request.github)
    assert "nickname" in body
    assert "`promptctl lint` failed" in body
    gate = job.step("Fail when lint or review failed")
    assert gate.ran
    assert gate.returncode == 1
    assert "::error title=prompt review::promptctl lint found errors" in gate.output


@pytest.mark.slow  # runs the job: a few promptctl commands and git clones
def test_breaking_change_fails_unless_the_pull_request_has_the_label(
    pull_request: PullRequest,
) -> None:
    pull_request.push({GREET: BREAKING})

    refused = pull_request.run()

    assert not refused.ok
    assert refused.step("Review").outputs["exit_code"] == "1"
    assert (
        "prompt-breaking-ok accepts them" in refused.step("Fail when lint or review failed").output
    )
    assert len(comment_bodies(pull_request.github)) == 1

    accepted = pull_request.run(labels=("documentation", "prompt-breaking-ok"))

    assert accepted.ok, accepted.log
    assert "label prompt-breaking-ok: breaking changes accepted" in accepted.step("Review").output
    assert len(comment_bodies(pull_request.github)) == 1, "the same comment, updated"


@pytest.mark.slow  # runs the job: a few promptctl commands and git clones
def test_fork_pull_request_skips_the_comment_with_a_notice_and_still_reports(
    tmp_path: Path, pull_request: PullRequest
) -> None:
    github = pull_request.github
    github.read_only = True  # a fork's pull_request token may read, never write
    pull_request.push({GREET: CLEAN})

    passed = pull_request.run(from_fork=True)

    assert passed.ok, passed.log
    comment = passed.step("Comment on the pull request").output
    assert "::notice title=prompt review::comment skipped" in comment
    assert "fork" in comment
    assert comment_bodies(github) == []
    assert "greet" in passed.summary
    assert "`v2`" in passed.summary

    pull_request.push({GREET: BREAKING}, branch="fork-breaking")
    failed = pull_request.run("fork-breaking", from_fork=True)

    assert not failed.ok, "skipping the comment never hides a failing review"
    assert "::notice" in failed.step("Comment on the pull request").output


def recipe_steps() -> list[str]:
    return [s.get("name", s.get("uses")) for s in load_workflow(RECIPE)["jobs"]["review"]["steps"]]


def test_the_job_has_one_review_path_in_order() -> None:
    assert recipe_steps() == [
        "actions/checkout@v4",
        "actions/setup-python@v5",
        "Install promptctl",
        "Fetch the base and tracked branches",
        "Lint",
        "Review",
        "Comment on the pull request",
        "Fail when lint or review failed",
    ]
