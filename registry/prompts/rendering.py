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

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, nodes, pass_environment
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.ext import Extension
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from promptctl.registry.errors import RenderLimitExceeded, TemplateError
from promptctl.registry.prompts import render_limits
from promptctl.registry.prompts.promptfile import DEFAULT_DATA_ROLES
from promptctl.registry.prompts.render_limits import DEFAULT_LIMITS, LimitHit, RenderLimits
from promptctl.registry.prompts.syntax_hints import syntax_hint

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
    """The result of rendering: chat messages, or text for a body without message blocks.

    `ignored` names the variables the caller gave that the version does not declare: they
    were left out of the rendering (a `strict: true` prompt refuses them instead).
    """

    messages: tuple[Message, ...] | None
    text: str | None
    ignored: tuple[str, ...] = ()

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.messages is not None:
            out = {"messages": [m.to_dict() for m in self.messages]}
        else:
            out = {"text": self.text}
        out["ignored"] = list(self.ignored)
        return out


class _Collector:
    def __init__(self, data_roles: tuple[str, ...]) -> None:
        self.messages: list[Message] = []
        self.depth = 0
        self.data_roles = data_roles


_COLLECTOR: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "promptctl_messages", default=None
)


class RoleNotAllowed(Exception):
    """A message role taken from data that the prompt does not allow."""

    def __init__(self, role: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"message role {role!r} comes from data and is not allowed (allowed: "
            f"{', '.join(allowed)}; a prompt allows more with 'roles:' in its front matter)"
        )


class MessageExtension(Extension):
    """The `{% message role %}...{% endmessage %}` block."""

    tags = {"message"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        role = parser.parse_expression()
        # A role written as a literal is the author's; any other comes from data and must
        # be one the prompt allows (a caller must not be able to add a system message).
        from_data = nodes.Const(not isinstance(role, nodes.Const))
        body = parser.parse_statements(("name:endmessage",), drop_needle=True)
        call = self.call_method("_emit", [role, from_data])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _emit(self, role: Any, from_data: bool, caller: Callable[[], str]) -> str:
        collector = _COLLECTOR.get()
        if collector is None:
            raise RuntimeError("message blocks render only through registry.rendering")
        if collector.depth:
            raise TemplateSyntaxError("a message block cannot contain another message block", 0)
        if not isinstance(role, str) or not role.strip():
            raise UndefinedError(f"message role must be a non-empty string, got {role!r}")
        if from_data and role.strip() not in collector.data_roles:
            raise RoleNotAllowed(role.strip(), collector.data_roles)
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


class _Guards(NodeTransformer):
    """Routes loops, `~` and literal output through the guards of render_limits."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter_node(node.iter, _LOOP_FILTER, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter_node(nodes.List(node.nodes), _CONCAT_FILTER, node.lineno)

    def visit_TemplateData(self, node: nodes.TemplateData) -> nodes.Node:
        # A literal is output as is at compile time; as a constant it passes through
        # `finalize` at run time, so text a loop repeats is counted too.
        return nodes.Const(node.data, lineno=node.lineno)


def _filter_node(value: nodes.Expr, name: str, lineno: int) -> nodes.Filter:
    return nodes.Filter(value, name, [], [], None, None, lineno=lineno)


_LOOP_FILTER = "_promptctl_loop"
_CONCAT_FILTER = "_promptctl_concat"
_GUARDED_FILTERS = {
    **{name: render_limits.guard_filter(name, f) for name, f in DEFAULT_FILTERS.items()},
    _LOOP_FILTER: render_limits.guard_loop,
    _CONCAT_FILTER: render_limits.concat,
}


# With an environment-taking finalize Jinja cannot apply it at compile time, so every
# piece of output, literals included, is counted at run time.
_COUNT_OUTPUT = pass_environment(render_limits.count_produced)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with limits on time and size (see render_limits)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        return _Guards().visit(tree)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        render_limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        render_limits.tick()  # macros and callers come here: recursion meets the clock
        target = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            render_limits.check_str_method(owner, target.__name__, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return render_limits.check_value(result, "a call")


def make_environment(read: ReadFile, repo_path: Callable[[str], str]) -> BoundedEnvironment:
    """Return a bounded sandboxed environment reading templates through `read`."""
    env = BoundedEnvironment(
        loader=_FileLoader(read, repo_path),
        undefined=StrictUndefined,
        extensions=[MessageExtension],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_COMPILED_PARTIALS,
        finalize=_COUNT_OUTPUT,
        # Folding constants runs template code at compile time (`9 ** 200000000`).
        optimized=False,
    )
    env.filters.update(_GUARDED_FILTERS)
    return env


def referenced_names(source: str) -> list[str]:
    """Return the names of the files a template body includes, imports or extends."""
    return list(dict.fromkeys(m.group("name") for m in _INCLUDE_RE.finditer(source)))


def has_message_blocks(source: str) -> bool:
    """Tell whether a template body uses message blocks (cheap, textual check)."""
    return re.search(r"\{%-?\s*message\b", source) is not None


def compile_body(env: BoundedEnvironment, source: str, *, repo_path: str) -> Template:
    """Compile a template body, or raise TemplateError naming the file and line."""
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, repo_path, source) from exc
    template.filename = repo_path
    return template


def render_compiled(
    template: Template,
    variables: dict[str, Any],
    *,
    chat: bool,
    repo_path: str,
    limits: RenderLimits = DEFAULT_LIMITS,
    data_roles: tuple[str, ...] = DEFAULT_DATA_ROLES,
) -> Rendered:
    """Render a compiled body within `limits` and return messages or text.

    A message block whose role comes from data may only take one of `data_roles`.

    Runtime errors become TemplateError naming the file and line where they happened; a
    passed limit is RenderLimitExceeded.
    """
    collector = _Collector(data_roles)
    token = _COLLECTOR.set(collector)
    budget, budget_token = render_limits.start_budget(limits)
    try:
        text = _render_chunks(template, variables, budget)
    except LimitHit as exc:
        where, line = _location(exc, repo_path)
        raise RenderLimitExceeded(where, exc.limit, exc.detail, line=line) from None
    except RoleNotAllowed as exc:
        where, line = _location(exc, repo_path)
        raise TemplateError(where, str(exc), line=line) from None
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
    except RecursionError as exc:
        where, line = _location(exc, repo_path)
        raise TemplateError(where, "rendering recursed too deeply", line=line) from None
    except Exception as exc:  # a template can fail in any way its expressions can
        where, line = _location(exc, repo_path)
        detail = f"rendering failed: {type(exc).__name__}: {exc}"
        raise TemplateError(where, detail, line=line) from exc
    finally:
        render_limits.end_budget(budget_token)
        _COLLECTOR.reset(token)
    if not chat:
        return Rendered(None, text.strip())
    stray = text.strip()
    if stray:
        raise TemplateError(repo_path, f"text outside message blocks: {stray[:60]!r}")
    size = sum(len(m.content) for m in collector.messages)
    if size > limits.max_output_chars:
        raise RenderLimitExceeded(
            repo_path,
            "max_output_chars",
            f"the messages total {size:,} characters, over the limit of "
            f"{limits.max_output_chars:,}",
        )
    return Rendered(tuple(collector.messages), None)


def _render_chunks(
    template: Template, variables: dict[str, Any], budget: render_limits.Budget
) -> str:
    """`template.render`, counting the output as it comes and stopping at the limits."""
    context = template.new_context(dict(variables))
    chunks: list[str] = []
    try:
        for chunk in template.root_render_func(context):
            budget.add_output(len(chunk))
            chunks.append(chunk)
    except Exception:
        template.environment.handle_exception()  # re-raises with the template's frames
    return "".join(chunks)


def render_template(
    env: BoundedEnvironment,
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


def _syntax_error(
    exc: TemplateSyntaxError, default_path: str, source: str | None = None
) -> TemplateError:
    """The error of a syntax error; with the body's `source`, and the error in that body
    (not in a partial), a hint when the body looks like plain text or another style."""
    path = exc.filename or default_path
    said = f"template syntax error: {exc.message}"
    if source is not None and path == default_path:
        hint = syntax_hint(source, exc.message or "")
        said = f"{said}; {hint}" if hint else said
    return TemplateError(path, said, line=exc.lineno or None)


def _location(exc: BaseException, default_path: str) -> tuple[str, int | None]:
    """Find the innermost template frame of a render error (Jinja rewrites frames so)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        filename = frame.filename
        if filename and not filename.endswith(".py") and "<" not in filename:
            return filename, frame.lineno
    return default_path, None
