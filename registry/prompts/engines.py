"""Template engines other than Jinja2: `plain` and `mustache`, bounded like Jinja2 is.

A prompt picks its engine with `template:` in its front matter; a file that names none
follows the repository's default (`template` in promptctl.toml, else `jinja2`).

- `plain`: the body is the text, as it is. Braces, `{#anchors}`, `{{url}}` in a code
  example all stay. The only substitution is `${name}` for a variable the front matter
  declares under `input` (so a file without front matter is never changed); `$${name}`
  writes a literal `${name}`. Anything else that looks like a placeholder is left alone.
- `mustache`: rendered by mstache (a maintained, dependency-free implementation), with
  HTML escaping off (a prompt is not HTML), partials (`{{> partials/tone.mustache}}`, a
  path below the prompt root) read from the version's own files, values that are
  callables refused, and the same limits as Jinja2: the clock is checked on every lookup
  and every chunk of output, output size per chunk, nesting of partials by depth.

Neither engine has message blocks: both render to one text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from promptctl.registry.errors import RenderLimitExceeded, TemplateError
from promptctl.registry.prompts import render_limits
from promptctl.registry.prompts.layout import ENGINES
from promptctl.registry.prompts.render_limits import LimitHit, RenderLimits

JINJA2, PLAIN, MUSTACHE = ENGINES
# `${name}`, or `$${name}` for the literal text `${name}`.
PLAIN_VARIABLE = re.compile(r"(\$?)\$\{([A-Za-z][A-Za-z0-9_]*)\}")
# What reads as a template expression in text that will not be rendered as one.
_LOOKS_TEMPLATED = re.compile(
    r"\{\{[^{}\n]{1,80}\}\}|\{%[^\n]{0,80}?%\}|(?<![{$#])\{[A-Za-z_][A-Za-z0-9_.]{0,40}\}(?!\})"
)
# Mustache tags with the default delimiters: `{{name}}`, `{{{name}}}`, `{{&name}}`,
# sections `{{#name}}` / `{{^name}}`, partials `{{> name}}`.
_MUSTACHE_TAG = re.compile(r"\{\{(\{?)\s*([#^/>&!=]?)\s*([^}]*?)\s*\}?\}\}", re.DOTALL)
MAX_PARTIAL_DEPTH = 16


def declared_engine_in(data: bytes) -> str | None:
    """Return the engine a prompt file's bytes name in `template:`, cheaply, or None."""
    head = data[:65_536]
    if not head.startswith((b"---", b"\xef\xbb\xbf---")) or b"template" not in head:
        return None
    from promptctl.registry.errors import InvalidPromptFile
    from promptctl.registry.prompts.promptfile import parse_prompt_file

    try:
        return parse_prompt_file("", data).engine
    except InvalidPromptFile:
        return None  # loading the prompt reports it


# -- plain -----------------------------------------------------------------------------


def plain_references(body: str) -> list[tuple[str, int]]:
    """Return (variable, line) for every `${name}` of a plain body (escapes left out)."""
    out = []
    for match in PLAIN_VARIABLE.finditer(body):
        if not match.group(1):
            out.append((match.group(2), body.count("\n", 0, match.start()) + 1))
    return out


def templated_text(body: str) -> list[tuple[str, int]]:
    """Return (text, line) for what looks like a template expression in a body that
    renders as it is: `{{x}}`, `{% x %}`, `{x}` (not `{#anchor}` nor `${x}`)."""
    return [
        (m.group(0), body.count("\n", 0, m.start()) + 1) for m in _LOOKS_TEMPLATED.finditer(body)
    ]


def render_plain(
    body: str, values: Mapping[str, Any], declared: set[str], *, path: str, limits: RenderLimits
) -> str:
    """Render a plain body: `${name}` of declared variables replaced, the rest as is."""
    budget, token = render_limits.start_budget(limits)
    try:

        def substitute(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped or name not in declared:
                return match.group(0)[1:] if escaped else match.group(0)
            value = values.get(name)
            text = "" if value is None else str(value)
            budget.add_output(len(text))
            return text

        text = PLAIN_VARIABLE.sub(substitute, body)
        if len(text) > limits.max_output_chars:
            budget.add_output(len(text))
    except LimitHit as exc:
        raise RenderLimitExceeded(path, exc.limit, exc.detail) from None
    finally:
        render_limits.end_budget(token)
    return text.strip()


# -- mustache ----------------------------------------------------------------------------


def mustache_partials(source: str) -> list[str]:
    """Return the partial names a mustache body names (`{{> name}}`), in order."""
    names = [m.group(3) for m in _MUSTACHE_TAG.finditer(source) if m.group(2) == ">"]
    return list(dict.fromkeys(n for n in names if n))


def mustache_variables(source: str) -> list[tuple[str, int]]:
    """Return (name, line) for the variables and sections a mustache body uses outside
    any section (the first part of a dotted name). Names inside a section may be fields
    of its items, which no declaration names, so they are not judged."""
    out = []
    depth = 0
    for match in _MUSTACHE_TAG.finditer(source):
        kind, name = match.group(2), match.group(3)
        if kind == "/":
            depth = max(0, depth - 1)
            continue
        if kind in (">", "!", "=") or not name or name == ".":
            continue
        if depth == 0:
            out.append((name.split(".")[0], source.count("\n", 0, match.start()) + 1))
        if kind in ("#", "^"):
            depth += 1
    return out


def mustache_syntax_error(source: str) -> tuple[int | None, str] | None:
    """Return (line, message) when a mustache body does not parse, else None."""
    mstache = _mstache("")
    try:
        mstache.tokenize(source.encode(), cache={})
    except mstache.TokenException as exc:
        line = re.search(r"line (\d+)", str(exc))
        return (int(line.group(1)) if line else None), str(exc)
    return None


def render_mustache(
    body: str,
    values: Mapping[str, Any],
    read: Callable[[str], str | None],
    *,
    path: str,
    limits: RenderLimits,
) -> str:
    """Render a mustache body within `limits`; partials come through `read` (a path below
    the prompt root, or None when there is no such file)."""
    mstache = _mstache(path)
    budget, token = render_limits.start_budget(limits)

    def getter(scope: Any, scopes: Any, key: Any, default: Any = None, **kwargs: Any) -> Any:
        budget.tick()
        value = mstache.default_getter(scope, scopes, key, default, **kwargs)
        if callable(value) and value is not default:
            raise TemplateError(path, f"'{key}' is a callable: mustache prompts render data only")
        return value

    def resolver(name: Any) -> bytes | None:
        from promptctl.registry.prompts.promptversion import normalize_include

        text = read(normalize_include(str(name)))
        if text is None:
            raise TemplateError(path, f"included file '{name}' does not exist")
        return text.encode()

    chunks: list[str] = []
    try:
        for chunk in mstache.stream(
            body,
            dict(values),
            resolver=resolver,
            getter=getter,
            escape=_no_escape,
            cache={},
            recursion_limit=MAX_PARTIAL_DEPTH,
        ):
            budget.add_output(len(chunk))
            chunks.append(chunk)
    except LimitHit as exc:
        raise RenderLimitExceeded(path, exc.limit, exc.detail) from None
    except mstache.TokenException as exc:
        raise TemplateError(path, f"template syntax error: {exc}") from None
    except RecursionError:
        raise TemplateError(
            path, f"partials nest deeper than {MAX_PARTIAL_DEPTH} levels (a cycle?)"
        ) from None
    finally:
        render_limits.end_budget(token)
    return "".join(chunks).strip()


def _no_escape(data: bytes, **_: Any) -> bytes:
    return data


def _mstache(path: str) -> Any:
    try:
        import mstache
    except ImportError as exc:  # an extra: the base client stays light
        raise TemplateError(
            path,
            "mustache prompts need the 'mstache' package: pip install 'promptctl[mustache]'",
        ) from exc
    return mstache
