"""Hints beside a Jinja2 syntax error whose cause is a file that is not Jinja2 at all.

A markdown heading anchor (`## Setup {#setup}`) opens a Jinja2 comment that never ends; a
mustache section (`{{#items}}`), a partial (`{{> tone}}`) or a Go template field
(`{{ .Name }}`) is not a Jinja2 expression. Jinja2's own message ("Missing end of comment
tag", "unexpected char '#'") does not say that the file is read as the wrong kind of
template, nor how to say which kind it is; the hint does.

The hint is given only to a source without Jinja2 statements (`{% if %}`, `{% message %}`
and the like): a file that has them is a Jinja2 template with a mistake in it, and is
told how to write a `{#` that is text instead.
"""

from __future__ import annotations

import re

PLAIN_HINT = (
    'if this file is plain text, set `template: plain` in its front matter or `template = "plain"`'
    " in promptctl.toml"
)
MUSTACHE_HINT = "`template: mustache` if it is a mustache template"
LITERAL_HINT = (
    "a `{#` starts a Jinja2 comment: write `{{ '{#' }}` for the text, or wrap it in "
    "`{% raw %}…{% endraw %}`"
)

_JINJA_STATEMENT = re.compile(
    r"\{%[-+]?\s*(?:if|for|set|message|include|import|from|extends|macro|call|block|raw|"
    r"filter|with|autoescape)\b"
)
# Mustache and Handlebars: sections, inverted sections, closings, partials, comments,
# triple braces.
_MUSTACHE = re.compile(r"\{\{\{|\{\{\s*[#^/>!&]")
_OTHER_STYLES = re.compile(
    r"\{#[A-Za-z_][\w-]*(?:\s+[^}\n]*)?\}"  # a heading anchor or attributes: {#setup .wide}
    r"|\{\{-?\s*\.[A-Za-z]"  # a Go template field: {{ .Name }}
    r"|\{\{-?\s*end\s*-?\}\}"  # a Go template's {{end}}
)
# Markdown headings and fenced code blocks: a document, not a template.
_MARKDOWN = re.compile(r"^(?:#{1,6}[ \t]\S|```|~~~)", re.MULTILINE)


def syntax_hint(source: str, message: str) -> str | None:
    """Return what to do about a Jinja2 syntax error `message` in `source`, when the file
    looks like plain text or another template style; None otherwise."""
    comment = "comment" in message.lower()
    if _JINJA_STATEMENT.search(source):
        return LITERAL_HINT if comment else None
    mustache = _MUSTACHE.search(source) is not None
    if not (comment or mustache or _OTHER_STYLES.search(source) or _MARKDOWN.search(source)):
        return None
    return f"{PLAIN_HINT} ({MUSTACHE_HINT})" if mustache else PLAIN_HINT
