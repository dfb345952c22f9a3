"""Lint: everything that can be wrong with a prompt before it reaches a reviewer.

Each finding names a file and line. Errors fail `promptctl lint`; warnings are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from promptctl.registry.errors import InvalidPromptFile, RegistryError
from promptctl.registry.prompts.budget import Budget
from promptctl.registry.prompts.engines import (
    JINJA2,
    PLAIN,
    mustache_partials,
    mustache_syntax_error,
    mustache_variables,
    plain_references,
    templated_text,
)
from promptctl.registry.prompts.library import PromptLibrary, PromptVersion, Snapshot
from promptctl.registry.prompts.outputs import OUTPUT_KEYS, schema_problems
from promptctl.registry.prompts.promptversion import ENGINE_FILE
from promptctl.registry.prompts.rendering import Rendered, make_environment
from promptctl.registry.prompts.syntax_hints import syntax_hint
from promptctl.registry.prompts.versions import normalize_include

if TYPE_CHECKING:
    from promptctl.registry.metrics.prices import PriceBook
    from promptctl.registry.prompts.promptfile import PromptFile

ERROR = "error"
WARNING = "warning"
SKIPPED = "skipped-file"  # the code of a file shaped like a prompt whose name is refused
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
    library: PromptLibrary,
    names: Iterable[str] | None = None,
    rev: str | None = None,
    prices: PriceBook | None = None,
) -> list[Finding]:
    """Lint the named prompts (default: all) at a revision (default: the working tree).

    With `prices`, a sample whose worst case costs more than `budget.cost_usd` is warned of.
    """
    snapshot = library.snapshot(rev)
    wanted = list(names) if names else snapshot.names()
    env = make_environment(lambda p: _text_or_none(snapshot, p), library.layout.repo_path)
    facts: dict[str, _Facts] = {}  # partials are shared: each is analysed once
    findings: set[Finding] = set()
    for name in wanted:
        findings.update(lint_prompt(library, snapshot, name, env, facts, prices))
    if not names:  # nothing is left out in silence: what looks like a prompt and is not
        for path, reason in snapshot.skipped():
            findings.add(Finding(path, 1, WARNING, SKIPPED, f"not a prompt, skipped: {reason}"))
    return sorted(findings)


def lint_version(version: PromptVersion, prices: PriceBook | None = None) -> list[Finding]:
    """Lint one loaded version (its partials come with it)."""
    files = {p: t for p, t in version.files().items() if p != ENGINE_FILE}
    env = make_environment(files.get, version.repo_path)
    return sorted(set(_lint_loaded(version, env, prices=prices)))


def lint_prompt(
    library: PromptLibrary,
    snapshot: Snapshot,
    name: str,
    env: object,
    facts: dict[str, _Facts] | None = None,
    prices: PriceBook | None = None,
) -> list[Finding]:
    repo_path = library.layout.repo_path(library.layout.relpath_of(name))
    try:
        version = library.load(snapshot, name, numbered=False)  # findings need no number
    except InvalidPromptFile as exc:
        return [Finding(exc.path, exc.line or 1, ERROR, "invalid-file", exc.detail, name)]
    except RegistryError as exc:
        return [Finding(repo_path, 1, ERROR, "unreadable", str(exc), name)]
    return _lint_loaded(version, env, facts, prices)


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
    version: PromptVersion,
    env: object,
    cache: dict[str, _Facts] | None = None,
    prices: PriceBook | None = None,
) -> list[Finding]:
    name = version.name
    prompt = version.prompt
    out: list[Finding] = []

    def add(path: str, line: int | None, severity: str, code: str, message: str) -> None:
        out.append(Finding(path, line or 1, severity, code, message, name))

    if version.engine != JINJA2:
        _check_output(version, add)
        if version.engine == PLAIN:
            _lint_plain(version, add)
        else:
            _lint_mustache(version, add)
        if not any(f.severity == ERROR for f in out):
            _check_samples(version, prices, add)
        return out

    analysed: list[tuple[str, _Facts]] = []
    sources = [(prompt.path, prompt.padded_body())]
    _check_output(version, add)
    schema_file = version.schema_file  # JSON, not a template: checked as a schema above
    for relpath, text in sorted(version.partials.items()):
        if text is not None and relpath != schema_file:
            sources.append((version.repo_path(relpath), text))
    for path, source in sources:
        facts = _facts_of(env, source, cache)
        if facts.syntax_error is None:
            analysed.append((path, facts))
        else:
            line, message = facts.syntax_error
            said = f"template syntax error: {message}"
            # A partial has no front matter to name its style in: hints are the prompt's.
            hint = syntax_hint(source, message or "") if path == prompt.path else None
            add(path, line, ERROR, "template-syntax", f"{said}; {hint}" if hint else said)
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

    _check_declared(prompt, add, unguarded, referenced)

    declared = prompt.inputs
    if prompt.front_matter and not prompt.samples and declared:
        add(prompt.path, 1, WARNING, "no-samples", "no samples: lint cannot try a real input")
    if any(f.severity == ERROR for f in out):
        return out
    _check_samples(version, prices, add)
    return out


def _check_samples(version: PromptVersion, prices: PriceBook | None, add) -> None:
    """Render every sample (and check it against the budget)."""
    prompt = version.prompt
    budget = prompt.budget
    if budget is not None:
        _check_max_tokens(version, budget, add)
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
        if budget is not None:
            _check_sample_budget(version, budget, index, rendered, prices, add)


def _lint_plain(version: PromptVersion, add) -> None:
    """A plain body renders as it is: warn of what looks like a template expression, and
    check `${name}` against the declared variables."""
    prompt = version.prompt
    line0 = prompt.body_line - 1
    looks = templated_text(prompt.body)
    if looks:
        text, line = looks[0]
        more = f" (and {len(looks) - 1} more)" if len(looks) > 1 else ""
        add(
            prompt.path,
            line0 + line,
            WARNING,
            "template-text",
            f"{text!r}{more} looks like a template expression, but this plain prompt "
            "renders it as it is; set 'template: jinja2' or 'template: mustache' if it is one",
        )
    declared = prompt.inputs or {}
    used = plain_references(prompt.body)
    for var, line in used:
        if var not in declared:
            add(
                prompt.path,
                line0 + line,
                WARNING,
                "undeclared-variable",
                f"'${{{var}}}' is not declared in 'input', so it stays as written",
            )
    names = {var for var, _ in used}
    for var in sorted(declared):
        if var not in names:
            add(
                prompt.path,
                prompt.line_of(f"input.{var}"),
                WARNING,
                "unused-variable",
                f"variable '{var}' is declared but never used (write it as ${{{var}}})",
            )


def _lint_mustache(version: PromptVersion, add) -> None:
    """Mustache: syntax, partials that exist, variables against the declared ones."""
    prompt = version.prompt
    line0 = prompt.body_line - 1
    sources = [(prompt.path, prompt.body, line0)]
    for relpath, text in sorted(version.partials.items()):
        if text is not None and relpath != version.schema_file:
            sources.append((version.repo_path(relpath), text, 0))
    used: dict[str, tuple[str, int]] = {}
    for path, source, offset in sources:
        problem = mustache_syntax_error(source)
        if problem is not None:
            line, message = problem
            add(path, offset + (line or 1), ERROR, "template-syntax", message)
            continue
        for target in mustache_partials(source):
            if version.partials.get(normalize_include(target)) is None:
                add(
                    path, offset + 1, ERROR, "missing-include", f"partial '{target}' does not exist"
                )
        for var, line in mustache_variables(source):
            used.setdefault(var, (path, offset + line))
    _check_declared(prompt, add, used, used)


def _check_declared(
    prompt: PromptFile,
    add: Callable[..., None],
    used: dict[str, tuple[str, int]],
    referenced: dict[str, tuple[str, int]],
) -> None:
    """Judge the variables a template uses (`used`: where each is first needed) against
    its `input` section: undeclared ones, declared ones never `referenced`, and no section
    at all. A file without front matter is a text prompt whose variables are its own
    business; one with front matter has a place to declare them and does not."""
    declared = prompt.inputs
    if declared is None:
        if used and prompt.front_matter:
            path, line = used[min(used)]
            add(
                path,
                line,
                WARNING,
                "no-input",
                f"uses {', '.join(sorted(used))} but has no 'input' section to declare them",
            )
        return
    for var, (path, line) in sorted(used.items()):
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


def _check_output(version: PromptVersion, add) -> None:
    """The output contract: known keys, and a schema that is valid, bounded and local."""
    prompt = version.prompt
    output = prompt.front_matter.get("output")
    if not isinstance(output, dict):
        return
    for key in sorted(set(map(str, output)) - set(OUTPUT_KEYS)):
        add(
            prompt.path,
            prompt.line_of(f"output.{key}"),
            WARNING,
            "output-unknown-key",
            f"unknown key '{key}' in output (known: {', '.join(OUTPUT_KEYS)})",
        )
    for problem in schema_problems(prompt, version.partials, version.root):
        add(
            problem.path,
            problem.line,
            ERROR,
            "output-schema",
            f"{problem.detail} (field '{problem.field}')",
        )


def _check_max_tokens(version: PromptVersion, budget: Budget, add) -> None:
    prompt = version.prompt
    max_tokens = prompt.params.get("max_tokens")
    limit = budget.output_tokens
    if limit is None or isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return
    if max_tokens > limit:
        add(
            prompt.path,
            prompt.line_of("params.max_tokens"),
            WARNING,
            "max-tokens-over-budget",
            f"params.max_tokens {max_tokens:,} allows answers over budget.output_tokens {limit:,}",
        )


def _check_sample_budget(
    version: PromptVersion,
    budget: Budget,
    index: int,
    rendered: Rendered,
    prices: PriceBook | None,
    add,
) -> None:
    """A sample's input tokens against budget.input_tokens; its worst case (input plus
    max_tokens of output) against budget.cost_usd, at the model's known price."""
    from promptctl.registry.prompts.tokencount import count_rendered, describe

    prompt = version.prompt
    cost_limit = budget.cost_usd if prices is not None and prompt.model else None
    if budget.input_tokens is None and cost_limit is None:
        return
    line = prompt.line_of(f"samples[{index}]")
    tokens = count_rendered(rendered, prompt.model)
    if budget.input_tokens is not None and tokens > budget.input_tokens:
        add(
            prompt.path,
            line,
            ERROR,
            "input-over-budget",
            f"sample {index + 1} renders to {tokens:,} input tokens, over "
            f"budget.input_tokens {budget.input_tokens:,} ({describe(prompt.model)})",
        )
    if prices is None or cost_limit is None:
        return
    max_tokens = prompt.params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        max_tokens = budget.output_tokens
    if max_tokens is None:
        return  # no bound on the answer: the worst case is unknown
    cost = prices.cost(prompt.model, tokens, max_tokens)
    if cost is not None and cost > cost_limit:
        add(
            prompt.path,
            line,
            WARNING,
            "cost-over-budget",
            f"sample {index + 1} may cost ${cost:.6f} per call ({tokens:,} input + "
            f"{max_tokens:,} output tokens of {prompt.model} at {prices.source}), over "
            f"budget.cost_usd ${cost_limit:g}",
        )


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
