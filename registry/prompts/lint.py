"""Lint: everything that can be wrong with a prompt before it reaches a reviewer.

Each finding names a file and line. Errors fail `promptctl lint`; warnings are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from promptctl.registry.errors import InvalidPromptFile, RegistryError
from promptctl.registry.prompts.library import PromptLibrary, PromptVersion, Snapshot
from promptctl.registry.prompts.rendering import make_environment
from promptctl.registry.prompts.versions import normalize_include

ERROR = "error"
WARNING = "warning"
_GUARD_FILTERS = {"default", "d"}
_GUARD_TESTS = {"defined", "undefined", "none"}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem, located in a file."""

    path: str
    line: int
    severity: str
    code: str
    message: str
    prompt: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message} [{self.code}]"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "prompt": self.prompt,
        }


def lint_library(
    library: PromptLibrary, names: Iterable[str] | None = None, rev: str | None = None
) -> list[Finding]:
    """Lint the named prompts (default: all) at a revision (default: the working tree)."""
    snapshot = library.snapshot(rev)
    wanted = list(names) if names else snapshot.names()
    env = make_environment(lambda p: _text_or_none(snapshot, p), library.layout.repo_path)
    facts: dict[str, _Facts] = {}  # partials are shared: each is analysed once
    findings: set[Finding] = set()
    for name in wanted:
        findings.update(lint_prompt(library, snapshot, name, env, facts))
    return sorted(findings)


def lint_version(version: PromptVersion) -> list[Finding]:
    """Lint one loaded version (its partials come with it)."""
    env = make_environment(version.files().get, version.repo_path)
    return sorted(set(_lint_loaded(version, env)))


def lint_prompt(
    library: PromptLibrary,
    snapshot: Snapshot,
    name: str,
    env: object,
    facts: dict[str, _Facts] | None = None,
) -> list[Finding]:
    repo_path = library.layout.repo_path(library.layout.relpath_of(name))
    try:
        version = library.load(snapshot, name, numbered=False)  # findings need no number
    except InvalidPromptFile as exc:
        return [Finding(exc.path, exc.line or 1, ERROR, "invalid-file", exc.detail, name)]
    except RegistryError as exc:
        return [Finding(repo_path, 1, ERROR, "unreadable", str(exc), name)]
    return _lint_loaded(version, env, facts)


@dataclass(frozen=True)
class _Facts:
    """What lint reads from one template source; it depends on nothing but the source."""

    syntax_error: tuple[int | None, str | None] | None = None
    includes: tuple[tuple[int, str | None], ...] = ()  # (line, literal name or None)
    assigned: frozenset[str] = frozenset()
    undeclared: tuple[str, ...] = ()  # sorted
    # Per undeclared variable: the line of its first use, and of its first unguarded use.
    first_use: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


def _facts_of(env: object, source: str, cache: dict[str, _Facts] | None) -> _Facts:
    found = cache.get(source) if cache is not None else None
    if found is not None:
        return found
    try:
        tree = env.parse(source)  # type: ignore[attr-defined]
    except TemplateSyntaxError as exc:
        found = _Facts(syntax_error=(exc.lineno, exc.message))
    else:
        includes = tuple(
            (node.lineno, _literal(node.template))
            for node in tree.find_all(
                (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
            )
        )
        assigned = frozenset(n.name for n in tree.find_all(nodes.Name) if n.ctx != "load")
        # find_undeclared_variables may fold constants in the tree: keep this order.
        undeclared = tuple(sorted(meta.find_undeclared_variables(tree)))
        found = _Facts(None, includes, assigned, undeclared, _first_uses(tree, set(undeclared)))
    if cache is not None:
        cache[source] = found
    return found


def _literal(target: nodes.Node) -> str | None:
    if isinstance(target, nodes.Const) and isinstance(target.value, str):
        return target.value
    return None


def _lint_loaded(
    version: PromptVersion, env: object, cache: dict[str, _Facts] | None = None
) -> list[Finding]:
    name = version.name
    prompt = version.prompt
    out: list[Finding] = []

    def add(path: str, line: int | None, severity: str, code: str, message: str) -> None:
        out.append(Finding(path, line or 1, severity, code, message, name))

    analysed: list[tuple[str, _Facts]] = []
    sources = [(prompt.path, prompt.padded_body())]
    for relpath, text in sorted(version.partials.items()):
        if text is not None:
            sources.append((version.repo_path(relpath), text))
    for path, source in sources:
        facts = _facts_of(env, source, cache)
        if facts.syntax_error is None:
            analysed.append((path, facts))
        else:
            line, message = facts.syntax_error
            add(path, line, ERROR, "template-syntax", f"template syntax error: {message}")
    if len(analysed) < len(sources):
        return out

    known = set(env.globals)  # type: ignore[attr-defined]
    # Names a prompt binds (loop targets, set) are visible in the partials it includes.
    assigned = set().union(*(facts.assigned for _, facts in analysed))
    referenced: dict[str, tuple[str, int]] = {}
    unguarded: dict[str, tuple[str, int]] = {}
    for path, facts in analysed:
        _check_includes(facts, path, version, add)
        for var in facts.undeclared:
            if var in known or (path != prompt.path and var in assigned):
                continue
            first, first_unguarded = facts.first_use[var]
            referenced.setdefault(var, (path, first or 1))
            if first_unguarded is not None:
                unguarded.setdefault(var, (path, first_unguarded))

    declared = prompt.inputs
    if declared is None:
        undeclared = sorted(unguarded)
        if undeclared and prompt.front_matter:
            path, line = unguarded[undeclared[0]]
            add(
                path,
                line,
                WARNING,
                "no-input",
                f"uses {', '.join(undeclared)} but has no 'input' section to declare them",
            )
    else:
        for var, (path, line) in sorted(unguarded.items()):
            if var not in declared:
                add(
                    path,
                    line,
                    ERROR,
                    "undeclared-variable",
                    f"variable '{var}' is used but not declared in 'input'",
                )
        for var in sorted(declared):
            if var not in referenced:
                add(
                    prompt.path,
                    prompt.line_of(f"input.{var}"),
                    WARNING,
                    "unused-variable",
                    f"variable '{var}' is declared but never used",
                )

    if prompt.front_matter and not prompt.samples and declared:
        add(prompt.path, 1, WARNING, "no-samples", "no samples: lint cannot try a real input")
    if any(f.severity == ERROR for f in out):
        return out
    for index, sample in enumerate(prompt.samples):
        line = prompt.line_of(f"samples[{index}]")
        try:
            rendered = version.render(sample)
        except RegistryError as exc:
            detail = exc.detail if isinstance(exc, InvalidPromptFile) else str(exc)
            where = (
                f" ({exc.path}:{exc.line})"
                if isinstance(exc, InvalidPromptFile) and exc.line
                else ""
            )
            add(prompt.path, line, ERROR, "sample-fails", f"sample {index + 1}: {detail}{where}")
            continue
        if rendered.ignored:
            names = ", ".join(f"'{n}'" for n in rendered.ignored)
            add(
                prompt.path,
                line,
                WARNING,
                "sample-undeclared",
                f"sample {index + 1} passes {names}, not declared in 'input': ignored",
            )
    return out


def _check_includes(facts: _Facts, path: str, version: PromptVersion, add) -> None:
    for line, target in facts.includes:
        if target is None:
            add(
                path,
                line,
                ERROR,
                "dynamic-include",
                "include a partial by a string literal, so versions can cover it",
            )
            continue
        relpath = normalize_include(target)
        if version.partials.get(relpath) is None:
            add(
                path,
                line,
                ERROR,
                "missing-include",
                f"included file '{target}' does not exist",
            )


def _first_uses(tree: nodes.Template, names: set[str]) -> dict[str, tuple[int | None, int | None]]:
    """Return, per variable, the line of its first use and of its first use not guarded by
    `| default` or `is defined` (guarded uses are safe without a declaration)."""
    guarded: set[int] = set()
    for node in tree.find_all(nodes.Filter):
        if node.name in _GUARD_FILTERS and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
    for node in tree.find_all(nodes.Test):
        if node.name in _GUARD_TESTS and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
    first: dict[str, int] = {}
    unguarded: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in names and node.ctx == "load":
            first.setdefault(node.name, node.lineno)
            if id(node) not in guarded:
                unguarded.setdefault(node.name, node.lineno)
    return {name: (first.get(name), unguarded.get(name)) for name in names}


def _text_or_none(snapshot: Snapshot, relpath: str) -> str | None:
    data = snapshot.read(relpath)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
