"""Lint: everything that can be wrong with a prompt before it reaches a reviewer.

Each finding names a file and line. Errors fail `promptctl lint`; warnings are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from registry.errors import InvalidPromptFile, RegistryError
from registry.library import PromptLibrary, PromptVersion, Snapshot
from registry.rendering import make_environment
from registry.variables import validate_variables
from registry.versions import normalize_include

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
    findings: set[Finding] = set()
    for name in wanted:
        findings.update(lint_prompt(library, snapshot, name, env))
    return sorted(findings)


def lint_version(version: PromptVersion) -> list[Finding]:
    """Lint one loaded version (its partials come with it)."""
    env = make_environment(version.files().get, version.repo_path)
    return sorted(set(_lint_loaded(version, env)))


def lint_prompt(
    library: PromptLibrary, snapshot: Snapshot, name: str, env: object
) -> list[Finding]:
    repo_path = library.layout.repo_path(library.layout.relpath_of(name))
    try:
        version = library.load(snapshot, name)
    except InvalidPromptFile as exc:
        return [Finding(exc.path, exc.line or 1, ERROR, "invalid-file", exc.detail, name)]
    except RegistryError as exc:
        return [Finding(repo_path, 1, ERROR, "unreadable", str(exc), name)]
    return _lint_loaded(version, env)


def _lint_loaded(version: PromptVersion, env: object) -> list[Finding]:
    name = version.name
    prompt = version.prompt
    out: list[Finding] = []

    def add(path: str, line: int | None, severity: str, code: str, message: str) -> None:
        out.append(Finding(path, line or 1, severity, code, message, name))

    trees: list[tuple[str, nodes.Template]] = []
    sources = [(prompt.path, prompt.padded_body())]
    for relpath, text in sorted(version.partials.items()):
        if text is not None:
            sources.append((version.repo_path(relpath), text))
    for path, source in sources:
        try:
            trees.append((path, env.parse(source)))  # type: ignore[attr-defined]
        except TemplateSyntaxError as exc:
            add(path, exc.lineno, ERROR, "template-syntax", f"template syntax error: {exc.message}")
    if len(trees) < len(sources):
        return out

    known = set(env.globals)  # type: ignore[attr-defined]
    # Names a prompt binds (loop targets, set) are visible in the partials it includes.
    assigned = {n.name for _, tree in trees for n in tree.find_all(nodes.Name) if n.ctx != "load"}
    referenced: dict[str, tuple[str, int]] = {}
    unguarded: dict[str, tuple[str, int]] = {}
    for path, tree in trees:
        _check_includes(tree, path, version, add)
        for var in sorted(meta.find_undeclared_variables(tree) - known):
            if path != prompt.path and var in assigned:
                continue
            referenced.setdefault(var, (path, _first_use(tree, var, guarded_too=True) or 1))
            line = _first_use(tree, var, guarded_too=False)
            if line is not None:
                unguarded.setdefault(var, (path, line))

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
            values = validate_variables(name, prompt.inputs, sample)
            version.render(values)
        except RegistryError as exc:
            detail = exc.detail if isinstance(exc, InvalidPromptFile) else str(exc)
            where = (
                f" ({exc.path}:{exc.line})"
                if isinstance(exc, InvalidPromptFile) and exc.line
                else ""
            )
            add(prompt.path, line, ERROR, "sample-fails", f"sample {index + 1}: {detail}{where}")
    return out


def _check_includes(tree: nodes.Template, path: str, version: PromptVersion, add) -> None:
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        target = node.template
        if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
            add(
                path,
                node.lineno,
                ERROR,
                "dynamic-include",
                "include a partial by a string literal, so versions can cover it",
            )
            continue
        relpath = normalize_include(target.value)
        if version.partials.get(relpath) is None:
            add(
                path,
                node.lineno,
                ERROR,
                "missing-include",
                f"included file '{target.value}' does not exist",
            )


def _first_use(tree: nodes.Template, var: str, *, guarded_too: bool) -> int | None:
    """Return the line of the first use of `var`; optionally skip uses guarded by
    `| default` or `is defined`, which are safe without a declaration."""
    guarded: set[int] = set()
    for node in tree.find_all(nodes.Filter):
        if node.name in _GUARD_FILTERS and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
    for node in tree.find_all(nodes.Test):
        if node.name in _GUARD_TESTS and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
    for node in tree.find_all(nodes.Name):
        if node.name == var and node.ctx == "load" and (guarded_too or id(node) not in guarded):
            return node.lineno
    return None


def _text_or_none(snapshot: Snapshot, relpath: str) -> str | None:
    data = snapshot.read(relpath)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
