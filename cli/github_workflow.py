"""The GitHub Actions workflow that reviews prompt changes, written for one repository.

`promptctl ci github-actions` prints it. What differs between repositories is filled in
from the layout (promptctl.toml, PROMPTCTL_* and the options): the `paths` that trigger it
(the prompt root, which holds every file a version is made of: prompts, partials, schema
files; and promptctl.toml), the tracked branch that numbers versions, the promptctl
requirement pinned to the version that generated it, and the label that accepts an
intended breaking change. examples/github-actions/prompt-review.yml is its output for the
promptctl repository, and tests/packaging/test_ci_recipe.py runs its shell steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from promptctl.registry.errors import UsageError
from promptctl.registry.prompts.layout import CONFIG_FILE, Layout

WORKFLOW_PATH = ".github/workflows/prompt-review.yml"
DEFAULT_LABEL = "prompt-breaking-ok"


@dataclass(frozen=True)
class WorkflowOptions:
    """What one repository's review workflow is made of."""

    layout: Layout
    requirement: str
    label: str = DEFAULT_LABEL
    python: str = "3.12"


def pinned_requirement() -> str:
    """The install line of the promptctl running now, pinned to its exact version."""
    try:
        current = version("promptctl")
    except PackageNotFoundError as exc:  # run from a checkout that was never installed
        raise UsageError(
            "promptctl is not installed as a package, so there is no version to pin: "
            "pass --requirement (e.g. 'promptctl[cli]==0.1.0')"
        ) from exc
    return f"promptctl[cli]=={current}"


def trigger_paths(layout: Layout) -> list[str] | None:
    """The paths whose change runs the review, or None when every change must (root "")."""
    if not layout.root:
        return None
    return [f"{layout.root}/**", CONFIG_FILE, WORKFLOW_PATH]


def render_workflow(options: WorkflowOptions) -> str:
    """Return the workflow's YAML text."""
    for what, value in (("label", options.label), ("branch", options.layout.branch)):
        if not value.strip() or not value.isprintable():
            raise UsageError(f"{what} {value!r}: give a name on one line")
    paths = trigger_paths(options.layout)
    if paths is None:
        paths_block = (
            '    # No `paths`: the prompts live at the repository\'s top (root ""), so any\n'
            "    # file may be a prompt or a partial.\n"
        )
        where = "at the repository's top"
    else:
        lines = "".join(f"      - {json.dumps(p)}\n" for p in paths)
        paths_block = (
            "    # The prompt root holds every file a version is made of (prompts, partials,\n"
            "    # schema files); promptctl.toml says where it is.\n"
            f"    paths:\n{lines}"
        )
        where = f"under {options.layout.root}/"
    return (
        _TEMPLATE.replace("@WHERE@", where)
        .replace("@PATHS@\n", paths_block)
        .replace("@REQUIREMENT@", json.dumps(options.requirement))
        .replace("@BRANCH@", json.dumps(options.layout.branch))
        .replace("@LABEL_YAML@", json.dumps(options.label))
        .replace("@LABEL@", options.label)
        .replace("@PYTHON@", json.dumps(options.python))
        .replace("@BRANCH_PLAIN@", options.layout.branch)
        .replace("@WORKFLOW_PATH@", WORKFLOW_PATH)
    )


# GitHub's own `${{ }}` expressions are left as they are; @NAME@ marks what is filled in.
# Values reach the shell through `env:`, never by `${{ }}` inside `run:`, so a branch or
# label name can never be read as shell code.
_TEMPLATE = """\
# Prompt review on pull requests, written by `promptctl ci github-actions` for a
# repository whose prompts live @WHERE@. Copy it to
# @WORKFLOW_PATH@, and write it again after changing promptctl.toml or
# upgrading promptctl:
#
#   promptctl ci github-actions -o @WORKFLOW_PATH@
#
# One job: lint every prompt, review the change, post the report as one comment that each
# push updates (and in the job summary), and only then fail when lint or review failed,
# so the comment saying why is always there.
#
# Optional repository secrets: PROMPTCTL_SERVER and PROMPTCTL_TOKEN (a `read` token) add
# what runs in each environment today, with its metrics, to the report.
#
# An intended breaking change: label the pull request `@LABEL@`. The label
# runs the review again, which then accepts breaking changes (`--allow-breaking`); lint
# errors still fail. Whoever may label pull requests (triage access) may accept, and the
# timeline shows who did.
#
# Pull requests from forks get a read-only token and no secrets: the comment is skipped
# with a notice, and the report is in the job summary; the check still passes or fails.
# To comment on them too, see "Forks" at the end of this file.
name: prompt review

on:
  pull_request:
    # labeled/unlabeled: adding or removing the override label reviews again.
    types: [opened, synchronize, reopened, labeled, unlabeled]
@PATHS@

permissions:
  contents: read
  pull-requests: write  # the comment (a fork's token stays read-only whatever this says)

# A newer push cancels the review still running for the same pull request, so two runs
# never race to create the comment.
concurrency:
  group: prompt-review-${{ github.event.pull_request.number }}
  cancel-in-progress: true

env:
  # The promptctl this file was written for, pinned so a new release never changes the
  # check unseen. From a mirror or a fork of promptctl instead of PyPI, e.g.
  # "promptctl[cli] @ git+https://github.com/OWNER/promptctl@v0.1.0" (a tag, not a branch).
  PROMPTCTL_REQUIREMENT: @REQUIREMENT@
  # promptctl.toml's `branch`: versions are numbered along it.
  TRACKED_BRANCH: @BRANCH@
  # The pull-request label that accepts an intended breaking change.
  BREAKING_LABEL: @LABEL_YAML@

defaults:
  run:
    shell: bash  # bash -eo pipefail: a failing command fails its step

jobs:
  review:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # the whole history: versions are numbered from it

      - uses: actions/setup-python@v5
        with:
          python-version: @PYTHON@

      - name: Install promptctl
        id: install
        run: python -m pip install "$PROMPTCTL_REQUIREMENT"

      # The checkout is the pull request's merge commit, on no branch. promptctl numbers
      # versions along a local branch named like the tracked one; without it every
      # version would show as a digest instead of vN.
      - name: Fetch the base and tracked branches
        run: |
          git fetch --no-tags origin "+refs/heads/$GITHUB_BASE_REF:refs/heads/$GITHUB_BASE_REF"
          if [ "$TRACKED_BRANCH" != "$GITHUB_BASE_REF" ]; then
            git fetch --no-tags origin "+refs/heads/$TRACKED_BRANCH:refs/heads/$TRACKED_BRANCH"
          fi

      # Every prompt, not only the changed ones review lints. A failure is recorded, not
      # raised, so that the comment is still posted.
      - name: Lint
        id: lint
        run: |
          set +e
          promptctl lint 2>&1 | tee lint.txt
          echo "exit_code=${PIPESTATUS[0]}" >> "$GITHUB_OUTPUT"

      - name: Review
        id: review
        env:
          PROMPTCTL_SERVER: ${{ secrets.PROMPTCTL_SERVER }}
          PROMPTCTL_TOKEN: ${{ secrets.PROMPTCTL_TOKEN }}
          LABELED: ${{ contains(github.event.pull_request.labels.*.name, env.BREAKING_LABEL) }}
        run: |
          flags=()
          if [ "$LABELED" = true ]; then
            flags+=(--allow-breaking)
            echo "::notice title=prompt review::label $BREAKING_LABEL: breaking changes accepted"
          fi
          set +e
          promptctl review --base "$GITHUB_BASE_REF" --head HEAD \\
            --format markdown --output review.md "${flags[@]}"
          echo "exit_code=$?" >> "$GITHUB_OUTPUT"

      # Posted whatever lint and review said: the comment is where the author reads why.
      - name: Comment on the pull request
        env:
          GITHUB_TOKEN: ${{ github.token }}
          LINT_EXIT: ${{ steps.lint.outputs.exit_code }}
        run: |
          if [ ! -s review.md ]; then
            echo "**promptctl review** wrote no report; the job's log says why." > review.md
          fi
          cp review.md comment.md
          if [ "$LINT_EXIT" != 0 ]; then
            printf '\\n### `promptctl lint` failed\\n\\n````text\\n' >> comment.md
            cat lint.txt >> comment.md
            printf '````\\n' >> comment.md
          fi
          cat comment.md >> "$GITHUB_STEP_SUMMARY"
          promptctl ci comment --file comment.md

      - name: Fail when lint or review failed
        if: ${{ !cancelled() }}
        env:
          LINT_EXIT: ${{ steps.lint.outputs.exit_code }}
          REVIEW_EXIT: ${{ steps.review.outputs.exit_code }}
        run: |
          status=0
          if [ "$LINT_EXIT" != 0 ]; then
            echo "::error title=prompt review::promptctl lint found errors (see the comment)"
            status=1
          fi
          if [ "$REVIEW_EXIT" != 0 ]; then
            echo "::error title=prompt review::promptctl review failed: lint errors in a" \\
              "changed prompt, or breaking changes (the label $BREAKING_LABEL accepts them)"
            status=1
          fi
          exit "$status"

# Forks. A `pull_request_target` workflow can comment on a fork's pull request: it runs
# the base branch's copy of this file with a write token and the secrets, so it must
# never check out or run the fork's code. promptctl runs none of a repository's code (it
# reads prompt files from git objects and renders them in Jinja2's sandbox, with limits),
# so the safe variant is this job with these changes:
#
#   on: {pull_request_target: {types: [...as above], paths: [...as above]}}
#   - uses: actions/checkout@v4       # no `ref:`: the base branch, trusted, stays checked out
#     with: {fetch-depth: 0}
#   - install promptctl from PROMPTCTL_REQUIREMENT, as above (never from the pull request)
#   - the fork's commits as data, in a branch nothing checks out:
#       git fetch --no-tags origin "+refs/pull/$PR_NUMBER/head:refs/heads/pull-request"
#     (PR_NUMBER: ${{ github.event.pull_request.number }}, through `env:`)
#   - lint: promptctl lint --rev pull-request
#   - review: promptctl review --base "$GITHUB_BASE_REF" --head pull-request ...
#
# Never add `ref: ${{ github.event.pull_request.head.sha }}` to the checkout, nor run the
# pull request's scripts, Makefile or pip install of its tree in that workflow.
#
# After merge, put every changed prompt into staging (idempotent):
#
#   on: {push: {branches: [@BRANCH_PLAIN@]}}
#   ...
#       - run: promptctl promote --all --env staging --reason "merged $GITHUB_SHA"
#         env: {PROMPTCTL_SERVER: ..., PROMPTCTL_TOKEN: ...}   # a `release` token for staging
"""
