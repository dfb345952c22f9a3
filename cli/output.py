"""Printing helpers shared by the commands: JSON, tables and rendered prompts."""

from __future__ import annotations

import json
import sys
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
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        click.echo(click.style(line, bold=True) if index == 0 and _tty() else line)


def rendered_text(rendered: Rendered) -> str:
    if rendered.messages is None:
        return rendered.text or ""
    blocks = [f"[{m.role}]\n{m.content}" for m in rendered.messages]
    return "\n\n".join(blocks)


def _tty() -> bool:
    return sys.stdout.isatty()
