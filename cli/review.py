"""`promptctl review`: the pull-request report, and the gate CI runs on it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from promptctl.cli.main import Options, cli, pass_options
from promptctl.cli.output import emit_json
from promptctl.registry.errors import UsageError
from promptctl.registry.review.markdown import to_markdown


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
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--allow-breaking",
    is_flag=True,
    help="Exit 0 despite breaking changes (lint errors still fail).",
)
@pass_options
def review_command(
    options: Options,
    base: str | None,
    head: str,
    fmt: str,
    output: str | None,
    allow_breaking: bool,
) -> None:
    """Report the prompt changes between two revisions, for a pull-request comment.

    Exits 1 on lint errors, and on breaking changes unless --allow-breaking. With a server
    (or a local release database) it adds what runs in each environment today.
    """
    report = options.registry.review(base, head, options.backend)
    if fmt == "json":
        data = report.to_json()
        data["exit_code"] = report.exit_code(allow_breaking=allow_breaking)
        text = None
    else:
        data = None
        text = to_markdown(report)
    if output:
        import json

        try:
            Path(output).write_text(
                text if text is not None else json.dumps(data, indent=2, default=str),
                encoding="utf-8",
            )
        except OSError as exc:  # a missing folder or no permission: the user's mistake
            raise UsageError(f"cannot write the review to {output}: {exc.strerror}") from exc
        click.echo(
            f"wrote the review of {len(report.prompts)} prompt change(s) to {output}", err=True
        )
    elif data is not None:
        emit_json(data)
    else:
        click.echo(text, nl=False)
    code = report.exit_code(allow_breaking=allow_breaking)
    if code:
        reasons = []
        if report.lint_errors:
            reasons.append(f"{report.lint_errors} lint error(s)")
        if report.breaking and not allow_breaking:
            reasons.append(
                f"{len(report.breaking)} breaking change(s) (--allow-breaking to accept them)"
            )
        click.echo("review failed: " + "; ".join(reasons), err=True)
        sys.exit(code)
