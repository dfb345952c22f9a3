"""`promptctl ci`: continuous integration for prompt repositories.

`ci github-actions` writes the review workflow for this repository; `ci comment` is the
step of that workflow that posts the report on the pull request, a command rather than an
inline script so that it runs (and is tested) the same anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from promptctl.cli.github_comments import (
    DEFAULT_AUTHOR,
    DEFAULT_MARKER,
    DEFAULT_MAX_CHARS,
    GITHUB_BODY_LIMIT,
    CommentClient,
    pull_request_from_env,
    upsert_comment,
)
from promptctl.cli.github_workflow import (
    DEFAULT_LABEL,
    WorkflowOptions,
    pinned_requirement,
    render_workflow,
    trigger_paths,
)
from promptctl.cli.main import Options, cli, pass_options
from promptctl.cli.output import emit_json
from promptctl.registry.errors import UsageError


@cli.group("ci")
def ci_group() -> None:
    """Run promptctl in continuous integration: the review workflow and its comment."""


@ci_group.command("github-actions")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the workflow to this file (folders made) instead of standard output.",
)
@click.option(
    "--requirement",
    default=None,
    help="What the workflow installs [promptctl[cli]==<this version>], e.g. a git URL "
    "pinned to a tag.",
)
@click.option(
    "--label",
    default=DEFAULT_LABEL,
    show_default=True,
    help="The pull-request label that accepts an intended breaking change.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_options
def github_actions_command(
    options: Options, output: str | None, requirement: str | None, label: str, as_json: bool
) -> None:
    """Write the GitHub Actions workflow that reviews prompt changes on pull requests.

    Its trigger paths come from this repository's layout (promptctl.toml's root), and it
    installs this very version of promptctl. Write it again after changing either:

        promptctl ci github-actions -o .github/workflows/prompt-review.yml
    """
    layout = options.library.layout
    workflow = WorkflowOptions(
        layout=layout, requirement=requirement or pinned_requirement(), label=label
    )
    text = render_workflow(workflow)
    if output is not None:
        target = Path(output)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the workflow to {output}: {exc.strerror}") from exc
    if as_json:
        emit_json(
            {
                "output": output,
                "paths": trigger_paths(layout),
                "tracked_branch": layout.branch,
                "requirement": workflow.requirement,
                "label": workflow.label,
                "workflow": None if output else text,
            }
        )
    elif output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)


@ci_group.command("comment")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The comment's Markdown (e.g. the review report).",
)
@click.option(
    "--marker",
    default=DEFAULT_MARKER,
    show_default=True,
    help="First line that finds the comment again; one marker per kind of comment.",
)
@click.option(
    "--author",
    default=DEFAULT_AUTHOR,
    show_default=True,
    help="Who posts the comment (the token's account); only a comment of theirs is "
    "updated. '' for anyone's.",
)
@click.option("--pr", "number", type=int, default=None, help="Pull request [from the event].")
@click.option("--repository", default=None, help="owner/name [GITHUB_REPOSITORY].")
@click.option(
    "--max-chars",
    type=click.IntRange(1_000, GITHUB_BODY_LIMIT),
    default=DEFAULT_MAX_CHARS,
    show_default=True,
    help="Cut a longer body at a line, with a note.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def comment_command(
    path: str,
    marker: str,
    author: str,
    number: int | None,
    repository: str | None,
    max_chars: int,
    as_json: bool,
) -> None:
    """Post FILE as the pull request's review comment, or update the one posted before.

    Runs in GitHub Actions: the API from GITHUB_API_URL, the repository and pull request
    from GITHUB_REPOSITORY and the event (GITHUB_EVENT_PATH), the token from GITHUB_TOKEN.
    A token that may not comment (a fork's pull request) skips it with a notice, exit 0.
    """
    if not marker.strip():
        raise UsageError("--marker must not be empty: it is how the comment is found again")
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise UsageError(
            "GITHUB_TOKEN is not set: in the workflow, give the step "
            "`env: {GITHUB_TOKEN: ${{ github.token }}}`"
        )
    pull = pull_request_from_env(number=number, repository=repository)
    body = Path(path).read_text(encoding="utf-8")
    client = CommentClient(pull, token)
    try:
        posted = upsert_comment(
            client, body, marker=marker, max_chars=max_chars, author=author or None
        )
    finally:
        client.close()
    if as_json:
        emit_json(
            {
                "action": posted.action,
                "comment_id": posted.comment_id,
                "url": posted.url,
                "truncated": posted.truncated,
                "reason": posted.reason or None,
            }
        )
    where = f"{pull.repository}#{pull.number}"
    if posted.action == "skipped":
        # A workflow command: GitHub shows it on the run's summary page.
        click.echo(f"::notice title=prompt review::comment skipped on {where}: {posted.reason}")
        return
    if posted.truncated:
        click.echo(
            f"::warning title=prompt review::the comment was cut to {max_chars:,} characters; "
            "the whole report is in the job summary"
        )
    if not as_json:
        click.echo(
            f"{posted.action} the review comment on {where}: {posted.url or posted.comment_id}"
        )
