"""`promptctl review`: the pull-request report, and the gate CI runs on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from promptctl.cli.main import Options, cli, pass_options
from promptctl.registry.errors import UsageError
from promptctl.registry.review.markdown import MAX_CHARS, to_markdown


@cli.command("review")
@click.option("--base", default=None, help="The revision the change starts from [tracked branch].")
@click.option("--head", default="HEAD", show_default=True, help="The revision under review.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (--format json).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=0),
    default=MAX_CHARS,
    show_default=True,
    help="Keep the Markdown under this many characters (GitHub rejects comments over "
    "65,536) by folding, then cutting long sections; 0 for the whole report.",
)
@click.option(
    "--allow-breaking",
    is_flag=True,
    help="Pass despite breaking changes (lint errors still fail).",
)
@pass_options
def review_command(
    options: Options,
    base: str | None,
    head: str,
    fmt: str,
    as_json: bool,
    output: str | None,
    max_chars: int,
    allow_breaking: bool,
) -> None:
    """Report the prompt changes between two revisions, for a pull-request comment.

    The result line comes first, then a table of the changed prompts; with a server (or
    a local release database) it shows what runs in each environment today and whether
    the change breaks it. Exits 1 on lint errors, and on breaking changes unless
    --allow-breaking; the result line says the same.
    """
    report = options.registry.review(base, head, options.backend)
    if as_json or fmt == "json":
        data = report.to_json(allow_breaking=allow_breaking)
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        text += "\n"
    else:
        text = to_markdown(report, allow_breaking=allow_breaking, max_chars=max_chars)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:  # a missing folder or no permission: the user's mistake
            raise UsageError(f"cannot write the review to {output}: {exc.strerror}") from exc
        click.echo(
            f"wrote the review of {len(report.prompts)} prompt change(s) to {output}", err=True
        )
    else:
        click.echo(text, nl=False)
    outcome = report.outcome(allow_breaking=allow_breaking)
    if outcome.exit_code:
        reasons = []
        if report.lint_errors:
            reasons.append(f"{report.lint_errors} lint error(s)")
        if report.breaking and not allow_breaking:
            reasons.append(
                f"{len(report.breaking)} breaking change(s) (--allow-breaking to accept them)"
            )
        click.echo("review failed: " + "; ".join(reasons), err=True)
        sys.exit(outcome.exit_code)
