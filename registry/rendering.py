"""Rendering prompt bodies: a sandboxed Jinja2 environment with a structural `message` block.

`{% message "role" %}...{% endmessage %}` appends one chat message to a collector held in
a context variable; nothing is parsed out of rendered text, so a variable's value can
never create a message. A body with message blocks (its own or in a partial) renders to
`[{role, content}]`; a body without them renders to one string.
"""

from __future__ import annotations

import contextvars
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, nodes
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment

from promptctl.registry.errors import TemplateError

# Names a body may reference as another file: the static dependency scan used for
# digests and history. Dynamic includes are rejected by lint, so this stays exact.
_INCLUDE_RE = re.compile(
    r"\{%-?\s*(?:include|import|extends|from)\s+(?P<q>[\"'])(?P<name>[^\"']+)(?P=q)"
)

ReadFile = Callable[[str], str | None]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Rendered:
    """The result of rendering: chat messages, or text for a body without message blocks."""

    messages: tuple[Message, ...] | None
    text: str | None

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def to_json(self) -> dict[str, Any]:
        if self.messages is not None:
            return {"messages": [m.to_dict() for m in self.messages]}
        return {"text": self.text}


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.depth = 0


_COLLECTOR: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "promptctl_messages", default=None
)


class MessageExtension(Extension):
    """The `{% message role %}...{% endmessage %}` block."""

    tags = {"message"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        role = parser.parse_expression()
        body = parser.parse_statements(("name:endmessage",), drop_needle=True)
        call = self.call_method("_emit", [role])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _emit(self, role: Any, caller: Callable[[], str]) -> str:
        collector = _COLLECTOR.get()
        if collector is None:
            raise RuntimeError("message blocks render only through registry.rendering")
        if collector.depth:
            raise TemplateSyntaxError("a message block cannot contain another message block", 0)
        if not isinstance(role, str) or not role.strip():
            raise UndefinedError(f"message role must be a non-empty string, got {role!r}")
        collector.depth += 1
        try:
            content = caller()
        finally:
            collector.depth -= 1
        collector.messages.append(Message(role.strip(), content.strip()))
        return ""


class _FileLoader(BaseLoader):
    """Loads templates by their path below the prompt root through a read function."""

    def __init__(self, read: ReadFile, repo_path: Callable[[str], str]) -> None:
        self._read = read
        self._repo_path = repo_path

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable]:
        source = self._read(template)
        if source is None:
            raise TemplateNotFound(template)
        return source, self._repo_path(template), lambda: True


class _CompiledPartials(BytecodeCache):
    """Compiled partials, shared by every environment make_environment() builds.

    Each version gets its own environment (its partials come from its own commit), so
    without this every prompt would compile `partials/tone.j2` again: in `lint` and `list`
    that is most of the work. An entry is keyed by the include name, the file name and a
    checksum of the source, so only the very same text compiled the very same way is
    reused; all those environments share one configuration, and so one compiled form.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._codes: dict[str, Any] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def get_bucket(self, environment: Any, name: str, filename: str | None, source: str) -> Bucket:
        checksum = self.get_source_checksum(source)
        bucket = Bucket(environment, f"{self.get_cache_key(name, filename)}:{checksum}", checksum)
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        bucket.code = self._codes.get(bucket.key)  # a code object runs any number of times

    def dump_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            if len(self._codes) >= self._capacity:
                self._codes.pop(next(iter(self._codes)))  # the oldest entry
            self._codes[bucket.key] = bucket.code

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()


_COMPILED_PARTIALS = _CompiledPartials()


def make_environment(read: ReadFile, repo_path: Callable[[str], str]) -> SandboxedEnvironment:
    """Return a sandboxed environment reading templates through `read`."""
    return SandboxedEnvironment(
        loader=_FileLoader(read, repo_path),
        undefined=StrictUndefined,
        extensions=[MessageExtension],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_COMPILED_PARTIALS,
    )


def referenced_names(source: str) -> list[str]:
    """Return the names of the files a template body includes, imports or extends."""
    return list(dict.fromkeys(m.group("name") for m in _INCLUDE_RE.finditer(source)))


def has_message_blocks(source: str) -> bool:
    """Tell whether a template body uses message blocks (cheap, textual check)."""
    return re.search(r"\{%-?\s*message\b", source) is not None


def compile_body(env: SandboxedEnvironment, source: str, *, repo_path: str) -> Template:
    """Compile a template body, or raise TemplateError naming the file and line."""
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, repo_path) from exc
    template.filename = repo_path
    return template


def render_compiled(
    template: Template, variables: dict[str, Any], *, chat: bool, repo_path: str
) -> Rendered:
    """Render a compiled body and return messages or text.

    Runtime errors become TemplateError naming the file and line where they happened.
    """
    collector = _Collector()
    token = _COLLECTOR.set(collector)
    try:
        text = template.render(variables)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, repo_path) from exc
    except TemplateNotFound as exc:
        where, line = _location(exc, repo_path)
        raise TemplateError(where, f"included file '{exc.name}' does not exist", line=line) from exc
    except SecurityError as exc:
        where, line = _location(exc, repo_path)
        raise TemplateError(where, f"blocked by the sandbox: {exc}", line=line) from exc
    except UndefinedError as exc:
        where, line = _location(exc, repo_path)
        raise TemplateError(where, _undefined_detail(exc), line=line) from exc
    except Exception as exc:  # a template can fail in any way its expressions can
        where, line = _location(exc, repo_path)
        detail = f"rendering failed: {type(exc).__name__}: {exc}"
        raise TemplateError(where, detail, line=line) from exc
    finally:
        _COLLECTOR.reset(token)
    if not chat:
        return Rendered(None, text.strip())
    stray = text.strip()
    if stray:
        raise TemplateError(repo_path, f"text outside message blocks: {stray[:60]!r}")
    return Rendered(tuple(collector.messages), None)


def render_template(
    env: SandboxedEnvironment,
    source: str,
    variables: dict[str, Any],
    *,
    chat: bool,
    repo_path: str,
) -> Rendered:
    """Compile and render a body in one go."""
    template = compile_body(env, source, repo_path=repo_path)
    return render_compiled(template, variables, chat=chat, repo_path=repo_path)


def _undefined_detail(exc: UndefinedError) -> str:
    message = str(exc)
    if "unsafe" in message:
        return f"blocked by the sandbox: {message}"
    return f"undefined: {message}"


def _syntax_error(exc: TemplateSyntaxError, default_path: str) -> TemplateError:
    path = exc.filename or default_path
    return TemplateError(path, f"template syntax error: {exc.message}", line=exc.lineno or None)


def _location(exc: BaseException, default_path: str) -> tuple[str, int | None]:
    """Find the innermost template frame of a render error (Jinja rewrites frames so)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        filename = frame.filename
        if filename and not filename.endswith(".py") and "<" not in filename:
            return filename, frame.lineno
    return default_path, None
