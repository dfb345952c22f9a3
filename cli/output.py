"""Printing helpers shared by the commands: JSON, tables and rendered prompts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from promptctl.registry.prompts.rendering import Rendered


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as aligned columns under a header."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    # A styled cell's colour codes take no room on screen (and are gone when piped).
    shown = [
        [len(click.unstyle(cell)) if "\x1b" in cell else len(cell) for cell in row] for row in cells
    ]
    widths = [max(row[i] for row in shown) for i in range(len(headers))]
    lines = [
        "  ".join(cell + " " * (widths[i] - shown[index][i]) for i, cell in enumerate(row)).rstrip()
        for index, row in enumerate(cells)
    ]
    # Styled always: click.echo drops the style when piped, NO_COLOR or --color never. The
    # rows go out in one write: `log` of a prompt with thousands of versions spent a
    # fifth of its time in one echo per row.
    click.echo(click.style(lines[0], bold=True))
    if len(lines) > 1:
        click.echo("\n".join(lines[1:]))


def rendered_text(rendered: Rendered) -> str:
    if rendered.messages is None:
        return rendered.text or ""
    blocks = [f"[{m.role}]\n{m.content}" for m in rendered.messages]
    return "\n\n".join(blocks)


def colored_diff(text: str) -> str:
    """Colour a unified diff: added lines green, removed red, hunk headers cyan (click
    leaves the colours out when the output is not a terminal, or colour is off)."""
    lines = []
    for line in text.splitlines(keepends=True):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        if line.startswith(("+++", "---")):
            lines.append(click.style(body, bold=True) + end)
        elif line.startswith("@@"):
            lines.append(click.style(body, fg="cyan") + end)
        elif line.startswith("+"):
            lines.append(click.style(body, fg="green") + end)
        elif line.startswith("-"):
            lines.append(click.style(body, fg="red") + end)
        else:
            lines.append(line)
    return "".join(lines)


def error_type(exc: Exception) -> str:
    """The `type` of an error under --json: the server's kind for a refusal it sent, else
    the error's class name."""
    return getattr(exc, "error_type", None) or type(exc).__name__


def report_error(exc: Exception, *, as_json: bool) -> None:
    """Print an error on stderr: `error: ...` (with the CLI's hint, if any), or under
    --json one object {"error": {"type", "title", "detail"}}."""
    from promptctl.cli.confirm import cli_hint

    detail = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    hint = cli_hint(exc)
    if hint:
        detail += f" ({hint})"
    title = getattr(exc, "title", None) or "Bad usage"
    emit_error(error_type(exc), title, detail, as_json=as_json)


def emit_error(kind: str, title: str, detail: str, *, as_json: bool) -> None:
    """Print one error on stderr: `error: DETAIL`, or its JSON object under --json."""
    if as_json:
        error = {"type": kind, "title": title, "detail": detail}
        click.echo(json.dumps({"error": error}, ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {detail}", err=True)
